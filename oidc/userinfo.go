package oidc

import (
	"context"
	"net/http"
	"strings"

	"github.com/gin-gonic/gin"

	"github.com/slobridge/slobridge/store"
)

// VerifyAccessToken checks an access token issued by this provider: the
// signature, typ at+jwt (so an ID or logout token is not accepted), iss,
// aud, exp, that it was not revoked, and that its session is still active.
func (p *Provider) VerifyAccessToken(ctx context.Context, raw string) (AccessTokenClaims, store.Session, error) {
	invalid := oauthErr(ErrInvalidToken, http.StatusUnauthorized, "the access token is invalid, expired or revoked")
	c, ok := p.verifyAccessJWT(ctx, raw)
	if !ok {
		return AccessTokenClaims{}, store.Session{}, invalid
	}
	now := p.now()
	if live, err := p.accessLive(ctx, c, now); err != nil {
		return AccessTokenClaims{}, store.Session{}, err
	} else if !live {
		return AccessTokenClaims{}, store.Session{}, invalid
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
	tok, err := bearerToken(c)
	if err != nil {
		p.renderJSONError(c, err)
		return
	}
	if tok == "" {
		// RFC 6750 §3.1: no credentials, so a bare challenge.
		c.Header("WWW-Authenticate", `Bearer realm="slobridge"`)
		c.Status(http.StatusUnauthorized)
		return
	}
	claims, err := p.Userinfo(c.Request.Context(), tok)
	if err != nil {
		p.renderJSONError(c, err)
		return
	}
	c.Header("Cache-Control", "no-store")
	c.JSON(http.StatusOK, claims)
}

// bearerToken reads the access token from the Authorization header (RFC
// 6750 §2.1) or, on a POST with a form body, the access_token parameter
// (§2.2). Using both is refused (§2). It returns "" when there is none.
func bearerToken(c *gin.Context) (string, error) {
	var tok string
	if h := c.GetHeader("Authorization"); h != "" {
		scheme, t, _ := strings.Cut(h, " ")
		if strings.EqualFold(scheme, "Bearer") {
			tok = strings.TrimSpace(t)
		}
	}
	ct, _, _ := strings.Cut(c.GetHeader("Content-Type"), ";")
	if c.Request.Method != http.MethodPost || !strings.EqualFold(strings.TrimSpace(ct), "application/x-www-form-urlencoded") {
		return tok, nil
	}
	form, err := readForm(c.Writer, c.Request)
	if err != nil {
		return "", oauthErr(ErrInvalidRequest, http.StatusBadRequest, "malformed form body")
	}
	body := form["access_token"]
	switch {
	case len(body) == 0:
		return tok, nil
	case len(body) > 1 || tok != "":
		return "", oauthErr(ErrInvalidRequest, http.StatusBadRequest, "send the access token once, in one way")
	}
	return body[0], nil
}
