package oidc

import (
	"context"
	"crypto/subtle"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strings"

	"github.com/gin-gonic/gin"

	"github.com/slobridge/slobridge/store"
)

// RegistrationResponse is the client information response (RFC 7591
// §3.2.1): the registered metadata plus the issued credentials.
type RegistrationResponse struct {
	ClientMetadata
	ClientSecret          string `json:"client_secret,omitempty"`
	ClientIDIssuedAt      int64  `json:"client_id_issued_at"`
	ClientSecretExpiresAt int64  `json:"client_secret_expires_at"`
}

// errNoCredentials reports a registration request without a bearer token:
// RFC 6750 §3.1 answers it with a bare challenge, no error code.
var errNoCredentials = errors.New("oidc: no bearer token")

// CheckInitialAccessToken verifies the bearer initial access token (RFC
// 7591 §3) in constant time. A request without a bearer token gets
// errNoCredentials, a wrong token invalid_token (RFC 6750 §3.1).
func (p *Provider) CheckInitialAccessToken(authorization string) error {
	scheme, tok, _ := strings.Cut(authorization, " ")
	tok = strings.TrimSpace(tok)
	if !strings.EqualFold(scheme, "Bearer") || tok == "" {
		return errNoCredentials
	}
	want := p.opts.RegistrationToken
	if want == "" || subtle.ConstantTimeCompare([]byte(tok), []byte(want)) != 1 {
		return oauthErr(ErrInvalidToken, http.StatusUnauthorized, "a valid initial access token is required")
	}
	return nil
}

// Register validates a registration request and stores the new client. The
// client_id is always chosen by the bridge; the secret is returned once and
// only its hash is kept.
func (p *Provider) Register(ctx context.Context, md ClientMetadata) (RegistrationResponse, error) {
	md, err := p.validateMetadata(ctx, md)
	if err != nil {
		return RegistrationResponse{}, err
	}
	id, err := p.newToken(16)
	if err != nil {
		return RegistrationResponse{}, serverErr(err)
	}
	md.ClientID = id
	resp := RegistrationResponse{ClientMetadata: md}
	sc := storedClient{Metadata: md}
	if md.TokenEndpointAuthMethod != AuthNone {
		secret, err := p.newToken(32)
		if err != nil {
			return RegistrationResponse{}, serverErr(err)
		}
		resp.ClientSecret, sc.SecretHash = secret, hashSecret(secret)
	}
	raw, err := json.Marshal(sc)
	if err != nil {
		return RegistrationResponse{}, serverErr(fmt.Errorf("oidc: encode client: %w", err))
	}
	now := p.now()
	err = p.st.PutClient(ctx, store.Client{ID: id, Kind: ClientKind, Name: md.ClientName, Metadata: raw, CreatedAt: now, UpdatedAt: now})
	if err != nil {
		return RegistrationResponse{}, serverErr(fmt.Errorf("oidc: store client: %w", err))
	}
	resp.ClientIDIssuedAt = now.Unix()
	p.log.InfoContext(ctx, "client registered", "client_id", id,
		"backchannel", md.BackchannelLogoutURI != "", "frontchannel", md.FrontchannelLogoutURI != "")
	return resp, nil
}

func (p *Provider) handleRegister(c *gin.Context) {
	if err := p.CheckInitialAccessToken(c.GetHeader("Authorization")); err != nil {
		if errors.Is(err, errNoCredentials) {
			c.Header("Cache-Control", "no-store")
			c.Header("WWW-Authenticate", `Bearer realm="slobridge"`)
			c.Status(http.StatusUnauthorized)
			return
		}
		p.renderJSONError(c, err)
		return
	}
	body, err := io.ReadAll(http.MaxBytesReader(c.Writer, c.Request.Body, maxRegistration))
	if err != nil {
		p.renderJSONError(c, oauthErr(ErrInvalidClientMetadata, http.StatusBadRequest, "request body too large or unreadable"))
		return
	}
	var md ClientMetadata
	if err := json.Unmarshal(body, &md); err != nil {
		p.renderJSONError(c, oauthErr(ErrInvalidClientMetadata, http.StatusBadRequest, "request body is not valid client metadata JSON"))
		return
	}
	md.ClientID = ""
	resp, err := p.Register(c.Request.Context(), md)
	if err != nil {
		p.renderJSONError(c, err)
		return
	}
	c.Header("Cache-Control", "no-store")
	c.JSON(http.StatusCreated, resp)
}
