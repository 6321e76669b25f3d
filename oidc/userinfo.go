package oidc

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"strings"

	"github.com/gin-gonic/gin"
	jose "github.com/go-jose/go-jose/v4"

	"github.com/slobridge/slobridge/store"
)

// VerifyAccessToken checks an access token issued by this provider: the
// signature, typ at+jwt (so an ID or logout token is not accepted), iss,
// aud, exp, that it was not revoked, and that its session is still active.
func (p *Provider) VerifyAccessToken(ctx context.Context, raw string) (AccessTokenClaims, store.Session, error) {
	invalid := oauthErr(ErrInvalidToken, http.StatusUnauthorized, "the access token is invalid, expired or revoked")
	jws, err := jose.ParseSigned(raw, []jose.SignatureAlgorithm{jose.RS256, jose.ES256})
	if err != nil || len(jws.Signatures) != 1 || jws.Signatures[0].Header.ExtraHeaders[jose.HeaderType] != typAccess {
		return AccessTokenClaims{}, store.Session{}, invalid
	}
	payload, err := p.keys.VerifySignature(ctx, raw)
	if err != nil {
		return AccessTokenClaims{}, store.Session{}, invalid
	}
	var c AccessTokenClaims
	if err := json.Unmarshal(payload, &c); err != nil {
		return AccessTokenClaims{}, store.Session{}, invalid
	}
	now := p.now()
	if c.Issuer != p.opts.Issuer || c.Audience != p.opts.Issuer || now.Unix() >= c.Expiry {
		return AccessTokenClaims{}, store.Session{}, invalid
	}
	if _, err := p.st.GetRecord(ctx, nsRevokedToken, c.JTI, now); err == nil {
		return AccessTokenClaims{}, store.Session{}, invalid
	} else if !errors.Is(err, store.ErrNotFound) {
		return AccessTokenClaims{}, store.Session{}, serverErr(err)
	}
	s, err := p.st.GetSession(ctx, c.SID)
	if err != nil || !s.Active(now) {
		return AccessTokenClaims{}, store.Session{}, invalid
	}
	return c, s, nil
}

// Userinfo returns the claims of the token's user (OpenID Connect Core
// §5.3.2).
func (p *Provider) Userinfo(ctx context.Context, raw string) (map[string]any, error) {
	c, s, err := p.VerifyAccessToken(ctx, raw)
	if err != nil {
		return nil, err
	}
	var idc IDTokenClaims
	claimsFor(&idc, s, c.Scope)
	out := map[string]any{"sub": c.Subject}
	if idc.Email != "" {
		out["email"] = idc.Email
	}
	if idc.Name != "" {
		out["name"] = idc.Name
	}
	if idc.PreferredUsername != "" {
		out["preferred_username"] = idc.PreferredUsername
	}
	if len(idc.Groups) > 0 {
		out["groups"] = idc.Groups
	}
	return out, nil
}

func (p *Provider) handleUserinfo(c *gin.Context) {
	scheme, tok, _ := strings.Cut(c.GetHeader("Authorization"), " ")
	if !strings.EqualFold(scheme, "Bearer") || tok == "" {
		c.Header("WWW-Authenticate", `Bearer realm="slobridge"`)
		c.Status(http.StatusUnauthorized)
		return
	}
	claims, err := p.Userinfo(c.Request.Context(), strings.TrimSpace(tok))
	if err != nil {
		p.renderJSONError(c, err)
		return
	}
	c.Header("Cache-Control", "no-store")
	c.JSON(http.StatusOK, claims)
}
