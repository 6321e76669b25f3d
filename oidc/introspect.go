package oidc

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"time"

	"github.com/gin-gonic/gin"
	jose "github.com/go-jose/go-jose/v4"

	"github.com/slobridge/slobridge"
	"github.com/slobridge/slobridge/store"
)

// Token type hints (RFC 7009 §2.1, RFC 7662 §2.1, registered in RFC 7009
// §4.1.2). An unknown hint is ignored: the server must search all types
// anyway when the hint does not find the token.
const (
	hintAccessToken  = "access_token"
	hintRefreshToken = "refresh_token"
)

// ResourceServer is an API (an OAuth protected resource) registered with
// the bridge so that it can call the introspection endpoint. It
// authenticates exactly like a confidential client (RFC 7662 §2.1 "the
// protected resource ... using client_secret_basic or client_secret_post"),
// with ID as client_id and Secret as client_secret. Unlike a client, which
// may only introspect the tokens issued to itself, a resource server may
// introspect every access token the bridge issued (never a refresh token: those
// are for the client alone). It cannot use the authorization or token
// endpoints, having no redirect URI and no grant.
type ResourceServer struct {
	// ID is the client_id the resource server authenticates with.
	ID string `yaml:"id"`
	// Name is shown to operators.
	Name string `yaml:"name"`
	// Secret is its client secret in clear (hashed at start-up), at least
	// 16 characters.
	Secret string `yaml:"secret"`
	// AuthMethod is client_secret_basic (default) or client_secret_post.
	AuthMethod string `yaml:"auth_method"`
}

// addResourceServers registers the configured resource servers as
// confidential clients without grants.
func (p *Provider) addResourceServers(rss []ResourceServer) error {
	for _, rs := range rss {
		switch {
		case rs.ID == "":
			return errors.New("oidc: resource server without id")
		case len(rs.Secret) < 16:
			return fmt.Errorf("oidc: resource server %s: secret must be at least 16 characters", rs.ID)
		case p.static[rs.ID].ID != "":
			return fmt.Errorf("oidc: resource server %s: a client has the same id", rs.ID)
		}
		m := rs.AuthMethod
		switch m {
		case "":
			m = AuthSecretBasic
		case AuthSecretBasic, AuthSecretPost:
		default:
			return fmt.Errorf("oidc: resource server %s: auth_method must be client_secret_basic or client_secret_post", rs.ID)
		}
		p.static[rs.ID] = Client{ID: rs.ID, SecretHash: hashSecret(rs.Secret), Metadata: ClientMetadata{
			ClientID: rs.ID, ClientName: rs.Name, TokenEndpointAuthMethod: m,
			GrantTypes: []string{}, ResponseTypes: []string{},
		}}
		p.resourceServers[rs.ID] = true
	}
	return nil
}

// Introspection is an introspection answer (RFC 7662 §2.2). An inactive
// token is exactly {"active": false}: every other member is omitted.
type Introspection struct {
	Active    bool   `json:"active"`
	Scope     string `json:"scope,omitempty"`
	ClientID  string `json:"client_id,omitempty"`
	TokenType string `json:"token_type,omitempty"`
	Expiry    int64  `json:"exp,omitempty"`
	IssuedAt  int64  `json:"iat,omitempty"`
	Subject   string `json:"sub,omitempty"`
	Audience  string `json:"aud,omitempty"`
	Issuer    string `json:"iss,omitempty"`
	JTI       string `json:"jti,omitempty"`
	// SID is the bridge session the token belongs to.
	SID string `json:"sid,omitempty"`
}

// inactive is the only answer about a token the caller may not know about
// or that is not active (RFC 7662 §2.2: "MUST NOT include any additional
// information about an inactive token").
var inactive = Introspection{}

// IntrospectionRequest is a parsed introspection or revocation request.
type IntrospectionRequest struct {
	// Token is the token asked about.
	Token string
	// Hint is token_type_hint. It is read but not needed: the two kinds
	// tell themselves apart (an access token is a JWS, a refresh token an
	// opaque string without dots), and RFC 7009 §2.1 requires searching
	// every type when the hint is wrong anyway.
	Hint string
}

// ParseIntrospectionRequest reads token and token_type_hint from the form.
func ParseIntrospectionRequest(form map[string][]string) (IntrospectionRequest, error) {
	get := func(k string) string {
		if v := form[k]; len(v) > 0 {
			return v[0]
		}
		return ""
	}
	if len(form["token"]) > 1 || len(form["token_type_hint"]) > 1 {
		return IntrospectionRequest{}, oauthErr(ErrInvalidRequest, http.StatusBadRequest, "parameters must not be repeated")
	}
	r := IntrospectionRequest{Token: get("token"), Hint: get("token_type_hint")}
	if r.Token == "" {
		return IntrospectionRequest{}, oauthErr(ErrInvalidRequest, http.StatusBadRequest, "token is required")
	}
	return r, nil
}

// Introspect answers whether a token is active for caller (RFC 7662 §2).
// A token is active when it was issued by this provider, is unexpired and
// not revoked, and its bridge session has not ended. A client learns only
// about tokens issued to itself, a resource server about any access token;
// for every other token the answer is inactive, so a caller cannot tell a
// token it may not see from one that does not exist (RFC 7662 §4).
func (p *Provider) Introspect(ctx context.Context, caller Client, r IntrospectionRequest) (Introspection, error) {
	now := p.now()
	if looksLikeJWS(r.Token) {
		return p.introspectAccess(ctx, caller, r.Token, now)
	}
	return p.introspectRefresh(ctx, caller, r.Token, now)
}

func (p *Provider) introspectAccess(ctx context.Context, caller Client, raw string, now time.Time) (Introspection, error) {
	c, ok := p.verifyAccessJWT(ctx, raw)
	if !ok || !(c.ClientID == caller.ID || p.resourceServers[caller.ID]) {
		return inactive, nil
	}
	if live, err := p.accessLive(ctx, c, now); err != nil || !live {
		return inactive, err
	}
	if live, err := p.sessionActive(ctx, c.SID, now); err != nil || !live {
		return inactive, err
	}
	return Introspection{
		Active: true, Scope: c.Scope, ClientID: c.ClientID, TokenType: "Bearer",
		Expiry: c.Expiry, IssuedAt: c.IssuedAt, Subject: c.Subject, Audience: c.Audience,
		Issuer: c.Issuer, JTI: c.JTI, SID: c.SID,
	}, nil
}

// accessLive reports whether verified access-token claims c are unexpired
// at now and their jti has not been revoked.
func (p *Provider) accessLive(ctx context.Context, c AccessTokenClaims, now time.Time) (bool, error) {
	if now.Unix() >= c.Expiry {
		return false, nil
	}
	if _, err := p.st.GetRecord(ctx, nsRevokedToken, c.JTI, now); err == nil {
		return false, nil
	} else if !errors.Is(err, store.ErrNotFound) {
		return false, serverErr(err)
	}
	return true, nil
}

// introspectRefresh answers about a refresh token; only the client it was
// issued to may learn about it. token_type is left out: RFC 7662 takes its
// values from the access token types of RFC 6749 §7.1.
func (p *Provider) introspectRefresh(ctx context.Context, caller Client, rt string, now time.Time) (Introspection, error) {
	rec, err := p.st.GetRecord(ctx, nsRefresh, hashKey(rt), now)
	if errors.Is(err, store.ErrNotFound) {
		return inactive, nil
	}
	if err != nil {
		return inactive, serverErr(err)
	}
	var g grant
	if err := json.Unmarshal(rec.Value, &g); err != nil {
		return inactive, serverErr(fmt.Errorf("oidc: decode refresh token: %w", err))
	}
	if g.ClientID != caller.ID {
		return inactive, nil
	}
	if live, err := p.sessionActive(ctx, g.SessionID, now); err != nil || !live {
		return inactive, err
	}
	return Introspection{
		Active: true, Scope: g.Scope, ClientID: g.ClientID, Expiry: rec.ExpiresAt.Unix(),
		Subject: g.UserID, Audience: g.ClientID, Issuer: p.opts.Issuer, SID: g.SessionID,
	}, nil
}

// sessionActive reports whether bridge session sid is neither ended nor
// expired: a token never outlives its session. Answers come from the
// session cache when it has a fresh one.
func (p *Provider) sessionActive(ctx context.Context, sid string, now time.Time) (bool, error) {
	sc := p.sessions
	active, gen, ok := sc.get(sid, now)
	if ok {
		return active, nil
	}
	s, err := p.st.GetSession(ctx, sid)
	if errors.Is(err, store.ErrNotFound) {
		return false, nil
	}
	if err != nil {
		return false, serverErr(err)
	}
	active = s.Active(now)
	until := now.Add(sessionCacheTTL)
	if active && s.ExpiresAt.Before(until) {
		until = s.ExpiresAt
	}
	sc.put(sid, sessionState{active: active, until: until}, gen)
	return active, nil
}

// sessionCacheTTL bounds how long a cached session state is used. A logout
// through this process's engine invalidates the cache before the engine's
// Logout returns (see sessionCache), so with the embedded store the
// answer changes at once; the TTL bounds how long a logout made by
// another replica sharing the store can go unseen here.
const sessionCacheTTL = time.Second

// maxCachedSessions bounds the session cache; when full it is emptied.
const maxCachedSessions = 1 << 16

// sessionCache remembers whether sessions are active, so that
// introspection does not read and decode the session on every call. It
// subscribes to the engine's events: the engine publishes a new logout
// into the subscription's buffered channel inside Logout, before it
// returns, and every lookup first checks that channel and, when anything
// is there, drains it and empties the cache under the write lock. A
// generation counter keeps a lookup that read the store before such an
// invalidation from caching its now stale answer. A dropped event (full
// buffer) leaves the channel non-empty, so it invalidates too.
type sessionCache struct {
	events <-chan slobridge.Event

	mu  sync.RWMutex
	gen uint64
	m   map[string]sessionState
}

type sessionState struct {
	active bool
	until  time.Time
}

func newSessionCache(eng *slobridge.Engine) *sessionCache {
	ch, _ := eng.Subscribe(256)
	return &sessionCache{events: ch, m: map[string]sessionState{}}
}

// get returns the cached state of sid and the generation to pass to put.
func (sc *sessionCache) get(sid string, now time.Time) (active bool, gen uint64, ok bool) {
	if len(sc.events) > 0 {
		sc.invalidate()
	}
	sc.mu.RLock()
	st, ok := sc.m[sid]
	gen = sc.gen
	sc.mu.RUnlock()
	if !ok || !now.Before(st.until) {
		return false, gen, false
	}
	return st.active, gen, true
}

// put caches st unless the cache was invalidated since gen was read.
func (sc *sessionCache) put(sid string, st sessionState, gen uint64) {
	sc.mu.Lock()
	defer sc.mu.Unlock()
	if sc.gen != gen {
		return
	}
	if len(sc.m) >= maxCachedSessions {
		clear(sc.m)
	}
	sc.m[sid] = st
}

func (sc *sessionCache) invalidate() {
	sc.mu.Lock()
	defer sc.mu.Unlock()
	for drained := false; !drained; {
		select {
		case <-sc.events:
		default:
			drained = true
		}
	}
	clear(sc.m)
	sc.gen++
}

// looksLikeJWS reports whether tok has the shape of a compact JWS; refresh
// tokens are opaque base64url strings without dots.
func looksLikeJWS(tok string) bool { return strings.Count(tok, ".") == 2 }

// verifyAccessJWT checks what never changes about an access token: the
// signature by a published key, typ at+jwt, iss and aud. Tokens that pass
// are cached (the map key is the whole token), so repeated introspection,
// userinfo or revocation of one token costs no signature check; expiry,
// revocation and the session are checked on every call by the caller. A cached entry lives until the
// token expires (minutes), so a key removed from the store in an emergency
// stops validating cached tokens only then; rotate and wait, or restart.
func (p *Provider) verifyAccessJWT(ctx context.Context, raw string) (AccessTokenClaims, bool) {
	if c, ok := p.verified.get(raw); ok {
		return c, true
	}
	jws, err := jose.ParseSigned(raw, joseAlgs)
	if err != nil || len(jws.Signatures) != 1 || jws.Signatures[0].Header.ExtraHeaders[jose.HeaderType] != typAccess {
		return AccessTokenClaims{}, false
	}
	payload, err := p.keys.verify(ctx, jws)
	if err != nil {
		return AccessTokenClaims{}, false
	}
	var c AccessTokenClaims
	if err := json.Unmarshal(payload, &c); err != nil || c.Issuer != p.opts.Issuer ||
		c.Audience != p.opts.Issuer || c.JTI == "" || c.SID == "" || c.ClientID == "" {
		return AccessTokenClaims{}, false
	}
	p.verified.put(raw, c, p.now())
	return c, true
}

func (p *Provider) handleIntrospect(c *gin.Context) {
	caller, r, ok := p.tokenRequest(c)
	if !ok {
		return
	}
	if caller.Public() {
		// RFC 7662 §2.1: the caller must authenticate; a client_id alone
		// proves nothing and would open the endpoint to token scanning.
		p.renderJSONError(c, oauthErr(ErrInvalidClient, http.StatusUnauthorized, "client authentication failed"))
		return
	}
	res, err := p.Introspect(c.Request.Context(), caller, r)
	if err != nil {
		p.renderJSONError(c, err)
		return
	}
	body, err := json.Marshal(res)
	if err != nil {
		p.renderJSONError(c, serverErr(err))
		return
	}
	h := c.Writer.Header()
	h["Cache-Control"] = noStore
	h["Pragma"] = noCache
	c.Data(http.StatusOK, "application/json", body)
}

// Preallocated header values for the hot path.
var (
	noStore = []string{"no-store"}
	noCache = []string{"no-cache"}
)

// tokenRequestParams are the parameters of an introspection or revocation
// request that must not be repeated.
var tokenRequestParams = []string{"token", "token_type_hint", "client_id", "client_secret"}

// tokenRequest reads and authenticates an introspection or revocation
// request: POST, a form body of bounded size, client authentication, a
// token. It renders the error and returns false when any step fails.
func (p *Provider) tokenRequest(c *gin.Context) (Client, IntrospectionRequest, bool) {
	form, err := readForm(c.Writer, c.Request)
	if err != nil {
		p.renderJSONError(c, oauthErr(ErrInvalidRequest, http.StatusBadRequest, "malformed form body"))
		return Client{}, IntrospectionRequest{}, false
	}
	if k := repeated(form, tokenRequestParams); k != "" { // RFC 6749 §3.2
		p.renderJSONError(c, oauthErr(ErrInvalidRequest, http.StatusBadRequest, k+" is repeated"))
		return Client{}, IntrospectionRequest{}, false
	}
	caller, err := p.AuthenticateClient(c.Request.Context(), c.Request, form)
	if err != nil {
		p.renderJSONError(c, err)
		return Client{}, IntrospectionRequest{}, false
	}
	r, err := ParseIntrospectionRequest(form)
	if err != nil {
		p.renderJSONError(c, err)
		return Client{}, IntrospectionRequest{}, false
	}
	return caller, r, true
}

// readForm reads the application/x-www-form-urlencoded body of a token,
// userinfo, introspection or revocation request, at most maxFormBytes; the
// query string is never read (RFC 6749 §2.3.1), and a body of another
// type yields no values.
func readForm(w http.ResponseWriter, r *http.Request) (url.Values, error) {
	r.Body = http.MaxBytesReader(w, r.Body, maxFormBytes)
	if err := r.ParseForm(); err != nil {
		return nil, err
	}
	return r.PostForm, nil
}

// tokenCache holds verified access-token claims until the tokens expire.
type tokenCache struct {
	mu sync.RWMutex
	m  map[string]AccessTokenClaims
}

// maxVerified bounds the cache; when full it is swept of expired tokens,
// and emptied when that is not enough.
const maxVerified = 1 << 14

func newTokenCache() *tokenCache { return &tokenCache{m: map[string]AccessTokenClaims{}} }

func (tc *tokenCache) get(raw string) (AccessTokenClaims, bool) {
	tc.mu.RLock()
	c, ok := tc.m[raw]
	tc.mu.RUnlock()
	return c, ok
}

func (tc *tokenCache) put(raw string, c AccessTokenClaims, now time.Time) {
	tc.mu.Lock()
	defer tc.mu.Unlock()
	if len(tc.m) >= maxVerified {
		for k, v := range tc.m {
			if now.Unix() >= v.Expiry {
				delete(tc.m, k)
			}
		}
		if len(tc.m) >= maxVerified {
			clear(tc.m)
		}
	}
	tc.m[raw] = c
}
