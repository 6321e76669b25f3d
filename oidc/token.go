package oidc

import (
	"cmp"
	"context"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/gin-gonic/gin"

	"github.com/slobridge/slobridge"
	"github.com/slobridge/slobridge/store"
)

// Record namespaces of issued tokens.
const (
	nsRefresh      = "oidc-refresh"     // refresh tokens (grants), keyed by their hash
	nsRevokedToken = "oidc-revoked-jti" // access tokens revoked before their expiry
	maxRevokeChain = 32
)

// TokenResponse is a successful token response (RFC 6749 §5.1, OpenID
// Connect Core §3.1.3.3).
type TokenResponse struct {
	AccessToken  string `json:"access_token"`
	TokenType    string `json:"token_type"`
	ExpiresIn    int64  `json:"expires_in"`
	RefreshToken string `json:"refresh_token,omitempty"`
	IDToken      string `json:"id_token,omitempty"`
	Scope        string `json:"scope,omitempty"`
}

// issued is what one code or refresh token produced, kept with the used
// grant (store.Store.TakeGrant) so that a reuse can revoke it (RFC 6749
// §4.1.2, RFC 9700 §4.14.2).
type issued struct {
	ClientID   string    `json:"client_id,omitempty"`
	SessionID  string    `json:"sid,omitempty"`
	RefreshKey string    `json:"refresh_key,omitempty"`
	RefreshExp time.Time `json:"refresh_exp"`
	AccessJTI  string    `json:"access_jti,omitempty"`
	AccessExp  time.Time `json:"access_exp"`
}

// tokenParams are the token request parameters that must not be repeated
// (RFC 6749 §3.2).
var tokenParams = []string{
	"grant_type", "code", "redirect_uri", "code_verifier", "refresh_token", "scope", "client_id", "client_secret",
}

func (p *Provider) handleToken(c *gin.Context) {
	form, err := readForm(c.Writer, c.Request)
	if err != nil {
		p.renderJSONError(c, oauthErr(ErrInvalidRequest, http.StatusBadRequest, "malformed form body"))
		return
	}
	ctx := c.Request.Context()
	if name := repeated(form, tokenParams); name != "" {
		p.renderJSONError(c, oauthErr(ErrInvalidRequest, http.StatusBadRequest, name+" is repeated"))
		return
	}
	cl, err := p.AuthenticateClient(ctx, c.Request, form)
	if err != nil {
		p.renderJSONError(c, err)
		return
	}
	var resp TokenResponse
	switch gt := form.Get("grant_type"); gt {
	case grantAuthorizationCode:
		resp, err = p.ExchangeCode(ctx, cl, form.Get("code"), form.Get("redirect_uri"), form.Get("code_verifier"))
	case grantRefreshToken:
		resp, err = p.Refresh(ctx, cl, form.Get("refresh_token"))
	case "":
		err = oauthErr(ErrInvalidRequest, http.StatusBadRequest, "grant_type is required")
	default:
		err = oauthErr(ErrUnsupportedGrantType, http.StatusBadRequest, "unsupported grant_type")
	}
	if err != nil {
		p.renderJSONError(c, err)
		return
	}
	c.Header("Cache-Control", "no-store")
	c.Header("Pragma", "no-cache")
	c.JSON(http.StatusOK, resp)
}

// AuthenticateClient authenticates the client at the token endpoint:
// client_secret_basic (RFC 6749 §2.3.1: id and secret form-encoded, then
// Basic), client_secret_post, or none for public clients.
//
// A client registered for one of the two secret methods may use the other:
// both carry the same secret over TLS, and deployed libraries pick one
// without asking (ASP.NET Core's OpenID Connect handler and MSAL always
// post the secret; Spring Security sends Basic), as Keycloak and Dex
// accept. A public client can never present a secret (Basic with an
// empty password only names it), nor a confidential one authenticate with
// none. Basic credentials that their sender did
// not form-encode (older Spring Security, some brokers) are tried as sent
// when their decoded form fails.
func (p *Provider) AuthenticateClient(ctx context.Context, r *http.Request, form url.Values) (Client, error) {
	unauth := oauthErr(ErrInvalidClient, http.StatusUnauthorized, "client authentication failed")
	cred, basic, err := basicAuth(r)
	if err != nil {
		return Client{}, unauth
	}
	method := AuthSecretBasic
	switch {
	case basic && (form.Has("client_secret") || (form.Has("client_id") && !cred.names(form.Get("client_id")))):
		return Client{}, oauthErr(ErrInvalidRequest, http.StatusBadRequest, "use one client authentication method")
	case !basic && form.Has("client_secret"):
		cred, method = basicCred{id: form.Get("client_id"), secret: form.Get("client_secret")}, AuthSecretPost
	case !basic:
		cred, method = basicCred{id: form.Get("client_id")}, AuthNone
	}
	for _, c := range cred.candidates() {
		cl, err := p.client(ctx, c.id)
		if errors.Is(err, errUnknownClient) {
			continue
		}
		if err != nil {
			return Client{}, serverErr(err)
		}
		registered := cl.Metadata.TokenEndpointAuthMethod
		if registered == AuthNone && method == AuthSecretBasic && c.secret == "" {
			// "id:" with an empty password: a public client naming itself
			// in the header (x/oauth2 does so before trying the form).
			return cl.enabled()
		}
		if (registered == AuthNone) != (method == AuthNone) {
			continue
		}
		if method != AuthNone && !cl.checkSecret(c.secret) {
			continue
		}
		return cl.enabled()
	}
	return Client{}, unauth
}

// basicCred is a client_id and secret from a request; for Basic, raw* are
// the values as sent, before form-decoding.
type basicCred struct {
	id, secret       string
	rawID, rawSecret string
	decodeErr        bool
}

// candidates lists the credentials to try: the decoded ones, then the raw
// ones when they differ (or did not decode).
func (c basicCred) candidates() []basicCred {
	var out []basicCred
	if !c.decodeErr {
		out = append(out, basicCred{id: c.id, secret: c.secret})
	}
	if c.rawID != "" && (c.decodeErr || c.rawID != c.id || subtle.ConstantTimeCompare([]byte(c.rawSecret), []byte(c.secret)) != 1) {
		out = append(out, basicCred{id: c.rawID, secret: c.rawSecret})
	}
	return out
}

// names reports whether a client_id form parameter names the same client
// as the Basic credentials.
func (c basicCred) names(id string) bool {
	return (!c.decodeErr && id == c.id) || id == c.rawID
}

// basicAuth reads an Authorization: Basic header per RFC 6749 §2.3.1.
func basicAuth(r *http.Request) (basicCred, bool, error) {
	h := r.Header.Get("Authorization")
	if h == "" {
		return basicCred{}, false, nil
	}
	scheme, val, _ := strings.Cut(h, " ")
	if !strings.EqualFold(scheme, "Basic") {
		return basicCred{}, false, errors.New("unsupported authorization scheme")
	}
	raw, err := base64.StdEncoding.DecodeString(strings.TrimSpace(val))
	if err != nil {
		return basicCred{}, false, err
	}
	u, pw, found := strings.Cut(string(raw), ":")
	if !found || u == "" {
		return basicCred{}, false, errors.New("malformed basic credentials")
	}
	c := basicCred{rawID: u, rawSecret: pw}
	var errID, errPW error
	c.id, errID = url.QueryUnescape(u)
	c.secret, errPW = url.QueryUnescape(pw)
	c.decodeErr = errID != nil || errPW != nil
	return c, true, nil
}

// ExchangeCode redeems an authorization code (RFC 6749 §4.1.3). Everything
// is checked before the code is used, so a failed attempt changes nothing.
// The tokens are minted first and the code is then used in one store
// operation (TakeGrant) that keeps what it issued: of two redemptions,
// sequential or simultaneous, exactly one gets tokens, and the other
// revokes the winner's tokens and its own (RFC 6749 §4.1.2).
func (p *Provider) ExchangeCode(ctx context.Context, cl Client, code, redirectURI, verifier string) (TokenResponse, error) {
	invalid := func(desc string) error { return oauthErr(ErrInvalidGrant, http.StatusBadRequest, desc) }
	if code == "" {
		return TokenResponse{}, oauthErr(ErrInvalidRequest, http.StatusBadRequest, "code is required")
	}
	now := p.now()
	key := hashKey(code)
	rec, err := p.st.GetRecord(ctx, nsCode, key, now)
	if errors.Is(err, store.ErrNotFound) {
		if _, err := p.grantReused(ctx, nsCode, key, now); err != nil {
			return TokenResponse{}, err
		}
		return TokenResponse{}, invalid("the code is invalid, expired or already used")
	}
	if err != nil {
		return TokenResponse{}, serverErr(err)
	}
	var g grant
	if err := json.Unmarshal(rec.Value, &g); err != nil {
		return TokenResponse{}, serverErr(fmt.Errorf("oidc: decode code: %w", err))
	}
	switch {
	case g.ClientID != cl.ID:
		return TokenResponse{}, invalid("the code was issued to another client")
	case g.RedirectURI != redirectURI:
		return TokenResponse{}, invalid("redirect_uri does not match the authorization request")
	}
	if err := checkVerifier(g.Challenge, verifier); err != nil {
		return TokenResponse{}, err
	}
	s, err := p.activeSession(ctx, g.SessionID, now)
	if err != nil {
		return TokenResponse{}, err
	}
	// The client joins the session while its tokens are minted: the two
	// durable writes (participant, refresh token) and the signatures
	// overlap, and no token leaves before the client is a participant.
	joined := make(chan error, 1)
	go func() {
		_, err := p.eng.AddParticipant(ctx, participantFor(cl, s, p.opts.Issuer))
		joined <- err
	}()
	resp, iss, err := p.issueTokens(ctx, cl, g, s, now)
	if jerr := <-joined; jerr != nil {
		if errors.Is(jerr, store.ErrSessionEnded) {
			return TokenResponse{}, invalid("the session has ended")
		}
		return TokenResponse{}, serverErr(jerr)
	}
	if err != nil {
		return TokenResponse{}, err
	}
	if _, err := p.useGrant(ctx, nsCode, key, iss, now); err != nil {
		return TokenResponse{}, err
	}
	p.log.InfoContext(ctx, "code exchanged", "client_id", cl.ID, "sid", s.ID)
	return resp, nil
}

// useGrant uses the grant ns/key after its tokens (iss) were minted. When
// this use is not the first, the grant was used twice: the tokens of the
// first use and those just minted are revoked, and the answer is
// invalid_grant with the family's session.
func (p *Provider) useGrant(ctx context.Context, ns, key string, iss issued, now time.Time) (sid string, err error) {
	val, err := json.Marshal(iss)
	if err != nil {
		return "", serverErr(fmt.Errorf("oidc: encode issued tokens: %w", err))
	}
	// A used refresh token is remembered as long as its family may live.
	// A used code (a volatile record, held in memory by bbolt) is
	// remembered while the access token it gave lives: a replay then
	// revokes the family; a later one is refused as unknown, and the
	// family's refresh tokens still answer reuse with revocation.
	keep := maxTime(iss.AccessExp, iss.RefreshExp)
	if ns == nsCode {
		keep = iss.AccessExp
	}
	u, err := p.st.TakeGrant(ctx, ns, key, val, keep, now)
	if err == nil && u.First {
		return "", nil
	}
	// Lost (or failed): nothing minted here may live.
	p.revokeFamily(ctx, val, now)
	invalid := oauthErr(ErrInvalidGrant, http.StatusBadRequest, "the grant is invalid, expired or already used")
	switch {
	case errors.Is(err, store.ErrNotFound):
		return "", invalid
	case err != nil:
		return "", serverErr(err)
	}
	p.log.WarnContext(ctx, "grant used twice at once: revoking both token families", "namespace", ns,
		"client_id", iss.ClientID, "sid", iss.SessionID)
	return cmp.Or(p.revokeFamily(ctx, u.Issued, now), iss.SessionID), invalid
}

// grantReused handles a grant presented when it is no longer live: if it
// was used, the family its first use issued is revoked and its session
// returned ("" when it is unknown or expired).
func (p *Provider) grantReused(ctx context.Context, ns, key string, now time.Time) (string, error) {
	u, err := p.st.TakeGrant(ctx, ns, key, nil, time.Time{}, now)
	switch {
	case errors.Is(err, store.ErrNotFound):
		return "", nil
	case err != nil:
		return "", serverErr(err)
	case u.First:
		// Put between the read and this use: it is used up now, unissued.
		return "", nil
	}
	p.log.WarnContext(ctx, "used grant presented: revoking its token family", "namespace", ns)
	return p.revokeFamily(ctx, u.Issued, now), nil
}

// checkVerifier applies RFC 7636 §4.6; a verifier sent for a code issued
// without a challenge is refused too (PKCE downgrade, RFC 9700 §2.1.1).
func checkVerifier(challenge, verifier string) error {
	invalid := oauthErr(ErrInvalidGrant, http.StatusBadRequest, "code_verifier does not match the code_challenge")
	if challenge == "" {
		if verifier != "" {
			return invalid
		}
		return nil
	}
	if len(verifier) < 43 || len(verifier) > 128 || !isVerifierChars(verifier) {
		return invalid
	}
	sum := sha256.Sum256([]byte(verifier))
	if subtle.ConstantTimeCompare([]byte(b64(sum[:])), []byte(challenge)) != 1 {
		return invalid
	}
	return nil
}

func isVerifierChars(s string) bool {
	for _, c := range s {
		if !(c >= 'A' && c <= 'Z' || c >= 'a' && c <= 'z' || c >= '0' && c <= '9' || strings.ContainsRune("-._~", c)) {
			return false
		}
	}
	return true
}

// activeSession returns the session a grant belongs to, refusing ended or
// expired ones: tokens die with their session.
func (p *Provider) activeSession(ctx context.Context, sid string, now time.Time) (store.Session, error) {
	s, err := p.st.GetSession(ctx, sid)
	if errors.Is(err, store.ErrNotFound) || (err == nil && !s.Active(now)) {
		return store.Session{}, oauthErr(ErrInvalidGrant, http.StatusBadRequest, "the session has ended")
	}
	if err != nil {
		return store.Session{}, serverErr(err)
	}
	return s, nil
}

// issueTokens mints an access token, an ID token and a refresh token.
func (p *Provider) issueTokens(ctx context.Context, cl Client, g grant, s store.Session, now time.Time) (TokenResponse, issued, error) {
	at, atc, err := p.mintAccessToken(ctx, g, now)
	if err != nil {
		return TokenResponse{}, issued{}, serverErr(err)
	}
	idt, err := p.mintIDToken(ctx, cl, g, s, at, now)
	if err != nil {
		return TokenResponse{}, issued{}, serverErr(err)
	}
	rt, err := p.newToken(32)
	if err != nil {
		return TokenResponse{}, issued{}, serverErr(err)
	}
	exp := now.Add(p.opts.RefreshTokenTTL)
	if s.ExpiresAt.Before(exp) {
		exp = s.ExpiresAt
	}
	rg := g
	rg.Nonce, rg.Challenge, rg.RedirectURI = "", "", ""
	rg.Access = liveAccess(g.Access, accessRef{JTI: atc.JTI, Exp: time.Unix(atc.Expiry, 0)}, now)
	rk := hashKey(rt)
	if err := p.putJSON(ctx, nsRefresh, rk, rg, exp); err != nil {
		return TokenResponse{}, issued{}, serverErr(err)
	}
	resp := TokenResponse{
		AccessToken: at, TokenType: "Bearer", ExpiresIn: atc.Expiry - atc.IssuedAt,
		RefreshToken: rt, IDToken: idt, Scope: g.Scope,
	}
	return resp, issued{ClientID: cl.ID, SessionID: s.ID, RefreshKey: rk, RefreshExp: exp, AccessJTI: atc.JTI,
		AccessExp: time.Unix(atc.Expiry, 0)}, nil
}

// Refresh rotates a refresh token (RFC 6749 §6, RFC 9700 §4.14.2): the
// successor is minted, then the presented token used in one store
// operation (TakeGrant). Presenting a used token again, or two at once,
// revokes the family (and, with Options.EndSessionOnRefreshReuse, ends the
// session). It fails with invalid_grant once the session ended.
func (p *Provider) Refresh(ctx context.Context, cl Client, rt string) (TokenResponse, error) {
	invalid := oauthErr(ErrInvalidGrant, http.StatusBadRequest, "the refresh token is invalid, expired or revoked")
	if rt == "" {
		return TokenResponse{}, oauthErr(ErrInvalidRequest, http.StatusBadRequest, "refresh_token is required")
	}
	now := p.now()
	key := hashKey(rt)
	rec, err := p.st.GetRecord(ctx, nsRefresh, key, now)
	if errors.Is(err, store.ErrNotFound) {
		sid, err := p.grantReused(ctx, nsRefresh, key, now)
		if err != nil {
			return TokenResponse{}, err
		}
		if sid != "" {
			p.refreshReused(ctx, sid)
		}
		return TokenResponse{}, invalid
	}
	if err != nil {
		return TokenResponse{}, serverErr(err)
	}
	var g grant
	if err := json.Unmarshal(rec.Value, &g); err != nil {
		return TokenResponse{}, serverErr(fmt.Errorf("oidc: decode refresh token: %w", err))
	}
	if g.ClientID != cl.ID {
		return TokenResponse{}, invalid
	}
	s, err := p.activeSession(ctx, g.SessionID, now)
	if err != nil {
		return TokenResponse{}, err
	}
	resp, iss, err := p.issueTokens(ctx, cl, g, s, now)
	if err != nil {
		return TokenResponse{}, err
	}
	if sid, err := p.useGrant(ctx, nsRefresh, key, iss, now); err != nil {
		if sid != "" {
			p.refreshReused(ctx, sid)
		}
		return TokenResponse{}, err
	}
	return resp, nil
}

// revokeFamily revokes what a grant's use issued (raw, an issued as JSON)
// and everything that followed from it: its access token, and its refresh
// token (used up now if it was live, with the access tokens of its
// grant) or, when that one was used in turn, what that use issued. It
// returns the family's session, "" when raw issued nothing.
func (p *Provider) revokeFamily(ctx context.Context, raw []byte, now time.Time) (sid string) {
	for range maxRevokeChain {
		var iss issued
		if len(raw) == 0 || json.Unmarshal(raw, &iss) != nil {
			break
		}
		sid = cmp.Or(sid, iss.SessionID)
		p.revokeAccess(ctx, accessRef{JTI: iss.AccessJTI, Exp: iss.AccessExp}, now)
		if iss.RefreshKey == "" {
			break
		}
		u, err := p.st.TakeGrant(ctx, nsRefresh, iss.RefreshKey, nil, time.Time{}, now)
		if err != nil {
			if !errors.Is(err, store.ErrNotFound) {
				p.log.ErrorContext(ctx, "revoke refresh token", "error", err)
			}
			break
		}
		if u.First {
			p.revokeGrantAccess(ctx, u.Record.Value, now)
			break
		}
		raw = u.Issued
	}
	return sid
}

// revokeRefresh removes a live refresh token and revokes the access tokens
// of its family that have not expired.
func (p *Provider) revokeRefresh(ctx context.Context, key string, now time.Time) {
	rec, err := p.st.TakeRecord(ctx, nsRefresh, key, now)
	if err != nil {
		if !errors.Is(err, store.ErrNotFound) {
			p.log.ErrorContext(ctx, "revoke refresh token", "error", err)
		}
		return
	}
	p.revokeGrantAccess(ctx, rec.Value, now)
}

// revokeGrantAccess revokes the live access tokens a refresh token's grant
// (raw, a grant as JSON) lists.
func (p *Provider) revokeGrantAccess(ctx context.Context, raw []byte, now time.Time) {
	var g grant
	if err := json.Unmarshal(raw, &g); err != nil {
		p.log.ErrorContext(ctx, "revoke refresh token: decode", "error", err)
		return
	}
	for _, a := range g.Access {
		p.revokeAccess(ctx, a, now)
	}
}

// revokeAccess records an access token's jti as revoked until it expires.
func (p *Provider) revokeAccess(ctx context.Context, a accessRef, now time.Time) {
	if a.JTI == "" || !a.Exp.After(now) {
		return
	}
	err := p.st.PutRecord(ctx, store.Record{Namespace: nsRevokedToken, Key: a.JTI, ExpiresAt: a.Exp})
	if err != nil && !errors.Is(err, store.ErrAlreadyExists) {
		p.log.ErrorContext(ctx, "revoke access token", "error", err)
	}
}

// refreshReused ends the session of a reused refresh token when the
// configuration says so (RFC 9700 §4.14.2: the token may have been stolen).
func (p *Provider) refreshReused(ctx context.Context, sid string) {
	if !p.opts.EndSessionOnRefreshReuse {
		return
	}
	_, err := p.eng.Logout(ctx, slobridge.LogoutRequest{SessionIDs: []string{sid},
		Initiator: store.Initiator{Kind: store.InitiatorSystem, ID: "refresh-token-reuse"}})
	if err != nil && !errors.Is(err, store.ErrNotFound) {
		p.log.ErrorContext(ctx, "end session after refresh token reuse", "sid", sid, "error", err)
	}
}

func (p *Provider) putJSON(ctx context.Context, ns, key string, v any, exp time.Time) error {
	val, err := json.Marshal(v)
	if err != nil {
		return fmt.Errorf("oidc: encode %s record: %w", ns, err)
	}
	if err := p.st.PutRecord(ctx, store.Record{Namespace: ns, Key: key, Value: val, ExpiresAt: exp}); err != nil {
		return fmt.Errorf("oidc: store %s record: %w", ns, err)
	}
	return nil
}

func maxTime(a, b time.Time) time.Time {
	if a.After(b) {
		return a
	}
	return b
}
