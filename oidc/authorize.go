package oidc

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/gin-gonic/gin"

	"github.com/slobridge/slobridge"
	"github.com/slobridge/slobridge/store"
)

// Record namespaces used by the authorization code flow.
const (
	nsAuthRequest = store.VolatilePrefix + "oidc-authreq" // authorization requests waiting for an upstream login
	nsCode        = store.VolatilePrefix + "oidc-code"    // authorization codes, keyed by their hash
	authReqTTL    = 10 * time.Minute
)

// AuthRequest is a parsed authorization request (OpenID Connect Core
// §3.1.2.1, RFC 7636 §4.3).
type AuthRequest struct {
	ClientID     string `json:"client_id"`
	RedirectURI  string `json:"redirect_uri"`
	ResponseType string `json:"response_type"`
	// ResponseMode is response_mode (OAuth 2.0 Multiple Response Types
	// §2.1): query (the default of the code flow) or form_post.
	ResponseMode        string `json:"response_mode,omitempty"`
	Scope               string `json:"scope"`
	State               string `json:"state,omitempty"`
	Nonce               string `json:"nonce,omitempty"`
	CodeChallenge       string `json:"code_challenge,omitempty"`
	CodeChallengeMethod string `json:"code_challenge_method,omitempty"`
	Prompt              string `json:"prompt,omitempty"`
	// MaxAge is max_age in seconds, -1 when absent.
	MaxAge     int64  `json:"max_age"`
	Request    string `json:"-"`
	RequestURI string `json:"-"`
	// LoginAfter, set when the request waits for an upstream login that
	// prompt=login or max_age forced, is the earliest acceptable
	// auth_time.
	LoginAfter time.Time `json:"login_after,omitzero"`
	// Resumed marks a request coming back from the upstream login: it
	// never starts another one (no login loops).
	Resumed bool `json:"resumed,omitempty"`
	// Repeated names a parameter the request carried more than once,
	// which RFC 6749 §3.1 forbids; empty when none was.
	Repeated string `json:"-"`
}

// authorizeParams are the parameters of an authorization request that
// must not be repeated (RFC 6749 §3.1).
var authorizeParams = []string{
	"client_id", "redirect_uri", "response_type", "response_mode", "scope", "state", "nonce",
	"code_challenge", "code_challenge_method", "prompt", "max_age", "request", "request_uri",
}

// repeated returns the first of names that v carries more than once.
func repeated(v url.Values, names []string) string {
	for _, n := range names {
		if len(v[n]) > 1 {
			return n
		}
	}
	return ""
}

// ParseAuthorizeRequest reads an authorization request from query or form
// values. A malformed max_age is kept as -2 and refused by validation.
func ParseAuthorizeRequest(v url.Values) AuthRequest {
	r := AuthRequest{
		ClientID: v.Get("client_id"), RedirectURI: v.Get("redirect_uri"),
		ResponseType: v.Get("response_type"), ResponseMode: v.Get("response_mode"), Scope: v.Get("scope"), State: v.Get("state"),
		Nonce: v.Get("nonce"), CodeChallenge: v.Get("code_challenge"),
		CodeChallengeMethod: v.Get("code_challenge_method"), Prompt: v.Get("prompt"),
		MaxAge: -1, Request: v.Get("request"), RequestURI: v.Get("request_uri"),
		Repeated: repeated(v, authorizeParams),
	}
	if s := v.Get("max_age"); s != "" {
		n, err := strconv.ParseInt(s, 10, 64)
		if err != nil || n < 0 {
			n = -2
		}
		r.MaxAge = n
	}
	return r
}

// ValidateAuthorizeClient checks the client and the redirect URI. Errors
// here are shown to the person, never redirected (RFC 6749 §4.1.2.1).
func (p *Provider) ValidateAuthorizeClient(ctx context.Context, r AuthRequest) (Client, error) {
	if r.Repeated == "client_id" || r.Repeated == "redirect_uri" {
		return Client{}, oauthErr(ErrInvalidRequest, http.StatusBadRequest, r.Repeated+" is repeated")
	}
	cl, err := p.client(ctx, r.ClientID)
	if errors.Is(err, errUnknownClient) {
		return Client{}, oauthErr(ErrInvalidClient, http.StatusBadRequest, "unknown client")
	}
	if err != nil {
		return Client{}, serverErr(err)
	}
	if cl.Disabled {
		return Client{}, errDisabledClient()
	}
	// Exact string match (OpenID Connect Core §3.1.2.1): no prefix,
	// normalisation or trailing-slash leniency.
	if r.RedirectURI == "" || !slices.Contains(cl.Metadata.RedirectURIs, r.RedirectURI) {
		return Client{}, oauthErr(ErrInvalidRequest, http.StatusBadRequest, "redirect_uri is not registered for this client")
	}
	return cl, nil
}

// ValidateAuthorizeRequest checks the rest of the request; its errors are
// returned to the client at the validated redirect URI.
func ValidateAuthorizeRequest(cl Client, r AuthRequest) error {
	bad := func(code, desc string) error { return oauthErr(code, http.StatusBadRequest, desc) }
	switch {
	case r.Repeated != "":
		return bad(ErrInvalidRequest, r.Repeated+" is repeated")
	case r.Request != "":
		return bad(ErrRequestNotSupported, "request objects are not supported")
	case r.RequestURI != "":
		return bad(ErrRequestURINotSupported, "request_uri is not supported")
	case r.ResponseType != "code":
		return bad(ErrUnsupportedResponseType, "only response_type=code is supported")
	case r.ResponseMode != "" && !slices.Contains(responseModes, r.ResponseMode):
		return bad(ErrInvalidRequest, "only response_mode query and form_post are supported")
	case !slices.Contains(strings.Fields(r.Scope), "openid"):
		return bad(ErrInvalidScope, "scope must include openid")
	case r.MaxAge == -2:
		return bad(ErrInvalidRequest, "max_age must be a non-negative integer")
	}
	if err := validatePKCE(cl, r); err != nil {
		return err
	}
	prompts := strings.Fields(r.Prompt)
	for _, pr := range prompts {
		if !slices.Contains([]string{"none", "login", "consent", "select_account"}, pr) {
			return bad(ErrInvalidRequest, "unsupported prompt value")
		}
	}
	if slices.Contains(prompts, "none") && len(prompts) > 1 {
		return bad(ErrInvalidRequest, "prompt=none cannot be combined with other values")
	}
	return nil
}

// validatePKCE applies RFC 7636: S256 only (plain is refused: it protects
// nothing against an attacker who sees the request), and a challenge is
// required from public clients.
func validatePKCE(cl Client, r AuthRequest) error {
	bad := func(desc string) error { return oauthErr(ErrInvalidRequest, http.StatusBadRequest, desc) }
	if r.CodeChallenge == "" {
		if r.CodeChallengeMethod != "" {
			return bad("code_challenge_method without code_challenge")
		}
		if cl.Public() {
			return bad("PKCE (code_challenge with S256) is required for public clients")
		}
		return nil
	}
	if r.CodeChallengeMethod != "S256" {
		return bad("code_challenge_method must be S256")
	}
	// BASE64URL(SHA256(verifier)) is exactly 43 characters.
	if len(r.CodeChallenge) != 43 || !isBase64URL(r.CodeChallenge) {
		return bad("code_challenge must be a base64url SHA-256 value")
	}
	return nil
}

func isBase64URL(s string) bool {
	for _, c := range s {
		if !(c >= 'A' && c <= 'Z' || c >= 'a' && c <= 'z' || c >= '0' && c <= '9' || c == '-' || c == '_') {
			return false
		}
	}
	return true
}

// needsLogin reports whether the request needs a (new) upstream login.
func (p *Provider) needsLogin(r AuthRequest, s store.Session, hasSession bool, now time.Time) bool {
	switch {
	case !hasSession:
		return true
	case !r.LoginAfter.IsZero():
		return s.AuthTime.Before(r.LoginAfter.Truncate(time.Second))
	case r.Resumed:
		return false
	case slices.Contains(strings.Fields(r.Prompt), "login"),
		slices.Contains(strings.Fields(r.Prompt), "select_account"):
		return true
	case r.MaxAge >= 0:
		return now.Sub(s.AuthTime) > time.Duration(r.MaxAge)*time.Second
	}
	return false
}

// IssueCode stores a one-time authorization code for the session and
// returns it. Only its hash is stored.
func (p *Provider) IssueCode(ctx context.Context, r AuthRequest, s store.Session, now time.Time) (string, error) {
	code, err := p.newToken(32)
	if err != nil {
		return "", err
	}
	g := grant{
		ClientID: r.ClientID, RedirectURI: r.RedirectURI, SessionID: s.ID, UserID: s.UserID,
		Scope: r.Scope, Nonce: r.Nonce, AuthTime: s.AuthTime, Challenge: r.CodeChallenge,
	}
	val, err := json.Marshal(g)
	if err != nil {
		return "", fmt.Errorf("oidc: encode code: %w", err)
	}
	rec := store.Record{Namespace: nsCode, Key: hashKey(code), Value: val, ExpiresAt: now.Add(p.opts.CodeTTL)}
	if err := p.st.PutRecord(ctx, rec); err != nil {
		return "", fmt.Errorf("oidc: store code: %w", err)
	}
	return code, nil
}

func (p *Provider) handleAuthorize(c *gin.Context) {
	c.Request.Body = http.MaxBytesReader(c.Writer, c.Request.Body, maxFormBytes)
	if err := c.Request.ParseForm(); err != nil {
		p.renderErrorPage(c, oauthErr(ErrInvalidRequest, http.StatusBadRequest, "malformed request"))
		return
	}
	r := ParseAuthorizeRequest(c.Request.Form)
	cl, err := p.ValidateAuthorizeClient(c.Request.Context(), r)
	if err != nil {
		p.renderErrorPage(c, err)
		return
	}
	if err := ValidateAuthorizeRequest(cl, r); err != nil {
		p.redirectError(c, r, err)
		return
	}
	p.authorize(c, r)
}

// authorize answers a validated request: a code when the browser has a
// suitable session, login_required for prompt=none, else an upstream login
// that comes back to the resume endpoint.
func (p *Provider) authorize(c *gin.Context, r AuthRequest) {
	ctx := c.Request.Context()
	now := p.now()
	s, err := p.eng.ActiveSession(ctx, p.opts.Cookies, c.Request)
	hasSession := err == nil
	if err != nil && !errors.Is(err, slobridge.ErrNoSession) {
		p.redirectError(c, r, serverErr(err))
		return
	}
	if p.needsLogin(r, s, hasSession, now) {
		if r.Prompt == "none" || r.Resumed {
			p.redirectError(c, r, oauthErr(ErrLoginRequired, http.StatusBadRequest, "the user is not logged in"))
			return
		}
		p.startLogin(c, r, hasSession, now)
		return
	}
	code, err := p.IssueCode(ctx, r, s, now)
	if err != nil {
		p.redirectError(c, r, serverErr(err))
		return
	}
	q := url.Values{"code": {code}, "iss": {p.opts.Issuer}}
	if r.State != "" {
		q.Set("state", r.State)
	}
	p.authResponse(c, r, q)
}

// startLogin parks the request in the store and hands the browser to the
// upstream authenticator, which returns it to the resume endpoint.
func (p *Provider) startLogin(c *gin.Context, r AuthRequest, hasSession bool, now time.Time) {
	ctx := c.Request.Context()
	r.Resumed = true
	if hasSession {
		r.LoginAfter = now // prompt=login or max_age: the session is too old
	}
	id, err := p.newToken(16)
	if err == nil {
		var val []byte
		if val, err = json.Marshal(r); err == nil {
			err = p.st.PutRecord(ctx, store.Record{Namespace: nsAuthRequest, Key: id, Value: val, ExpiresAt: now.Add(authReqTTL)})
		}
	}
	if err != nil {
		p.redirectError(c, r, serverErr(fmt.Errorf("oidc: park authorization request: %w", err)))
		return
	}
	returnTo := p.issuer.Path + PathResume + "?id=" + url.QueryEscape(id)
	if err := p.opts.Authenticator.StartLogin(c.Writer, c.Request, returnTo); err != nil {
		p.renderErrorPage(c, serverErr(fmt.Errorf("oidc: start upstream login: %w", err)))
	}
}

// handleResume continues an authorization request after the upstream
// login. The parked request is taken (one use) and re-validated against
// the client's current registration.
func (p *Provider) handleResume(c *gin.Context) {
	ctx := c.Request.Context()
	rec, err := p.st.TakeRecord(ctx, nsAuthRequest, c.Query("id"), p.now())
	if errors.Is(err, store.ErrNotFound) {
		p.renderErrorPage(c, oauthErr(ErrInvalidRequest, http.StatusBadRequest, "this sign-in request has expired; start again from the application"))
		return
	}
	if err != nil {
		p.renderErrorPage(c, serverErr(err))
		return
	}
	var r AuthRequest
	if err := json.Unmarshal(rec.Value, &r); err != nil {
		p.renderErrorPage(c, serverErr(fmt.Errorf("oidc: decode parked request: %w", err)))
		return
	}
	cl, err := p.ValidateAuthorizeClient(ctx, r)
	if err != nil {
		p.renderErrorPage(c, err)
		return
	}
	if err := ValidateAuthorizeRequest(cl, r); err != nil {
		p.redirectError(c, r, err)
		return
	}
	p.authorize(c, r)
}
