package resource

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"strings"
	"sync"
	"time"

	"github.com/coreos/go-oidc/v3/oidc"
	jose "github.com/go-jose/go-jose/v4"
)

// AccessTokenType is the JOSE typ of an RFC 9068 access token; resource
// servers must check it (RFC 9068 §4) so an ID token cannot pass as one.
const AccessTokenType = "at+jwt"

// Errors a Guard reports; test with errors.Is.
var (
	// ErrNoToken means the request carried no bearer token.
	ErrNoToken = errors.New("resource: no bearer token")
	// ErrInvalidToken means the token failed verification.
	ErrInvalidToken = errors.New("resource: invalid access token")
	// ErrSessionEnded means the token's bridge session has ended.
	ErrSessionEnded = errors.New("resource: session ended")
)

// Options configure a Guard.
type Options struct {
	// Issuer is the bridge's issuer URL (the tokens' `iss`). Required.
	Issuer string
	// Audience is this resource server's identifier: tokens must carry it
	// in `aud`, and pushed SETs must be addressed to it. Required.
	Audience string
	// KeySet verifies signatures; default oidc.NewRemoteKeySet over
	// JWKSURL.
	KeySet oidc.KeySet
	// JWKSURL is the bridge's JWKS URL when KeySet is nil; when empty it
	// is the jwks_uri of the issuer's discovery document
	// (Issuer + "/.well-known/openid-configuration"), read once by New.
	JWKSURL string
	// Introspection, when set, is asked about tokens issued before the
	// guard started receiving events.
	Introspection *Introspector
	// PushAuthorization, when set, is the Authorization header value the
	// bridge must send with pushed SETs.
	PushAuthorization string
	// EndedTTL is how long an ended session is remembered; it must cover
	// the longest access-token lifetime. Default 1 h.
	EndedTTL time.Duration
	// Now is the clock; default time.Now.
	Now func() time.Time
	// Logger; default slog.Default().
	Logger *slog.Logger
	// HTTPClient fetches the JWKS; default http.DefaultClient.
	HTTPClient *http.Client
	// JWKSRefresh is the least time between two JWKS downloads caused by
	// a token or SET naming an unknown key (a bad signature with a known
	// key never causes one); default DefaultJWKSRefresh (5 min). Only for
	// the key set the guard builds itself (KeySet nil).
	JWKSRefresh time.Duration
}

// Token is a verified access token.
type Token struct {
	Subject  string
	SID      string
	ClientID string
	Scope    string
	ID       string
	IssuedAt time.Time
	Expiry   time.Time
}

// Guard verifies access tokens and tracks ended sessions.
type Guard struct {
	opts     Options
	verifier *oidc.IDTokenVerifier
	keys     oidc.KeySet
	now      func() time.Time
	log      *slog.Logger
	since    time.Time // events are trusted for tokens issued after this

	mu      sync.RWMutex
	ended   map[string]time.Time // sid -> forget after
	checked map[string]time.Time // jti -> introspected active, until expiry
	sets    map[string]time.Time // jti of accepted SETs -> forget after

	// verified caches tokens whose signature and claims were checked, so a
	// client reusing its token does not pay an RSA verification on every
	// request; the session check still runs every time.
	cacheMu  sync.RWMutex
	verified map[string]*Token
}

// maxCached bounds the verified-token cache; when full it is emptied.
const maxCached = 16384

// New returns a Guard. ctx bounds background JWKS fetches.
func New(ctx context.Context, opts Options) (*Guard, error) {
	if opts.Issuer == "" || opts.Audience == "" {
		return nil, errors.New("resource: Issuer and Audience are required")
	}
	if opts.Now == nil {
		opts.Now = time.Now
	}
	if opts.Logger == nil {
		opts.Logger = slog.Default()
	}
	if opts.EndedTTL <= 0 {
		opts.EndedTTL = time.Hour
	}
	if opts.KeySet == nil {
		if opts.HTTPClient != nil {
			ctx = oidc.ClientContext(ctx, opts.HTTPClient)
		}
		u := opts.JWKSURL
		if u == "" {
			p, err := oidc.NewProvider(ctx, opts.Issuer)
			if err != nil {
				return nil, fmt.Errorf("resource: discover the JWKS of %s (set JWKSURL to skip discovery): %w", opts.Issuer, err)
			}
			var md struct {
				JWKSURI string `json:"jwks_uri"`
			}
			if err := p.Claims(&md); err != nil || md.JWKSURI == "" {
				return nil, fmt.Errorf("resource: the discovery document of %s has no jwks_uri", opts.Issuer)
			}
			u = md.JWKSURI
		}
		opts.KeySet = newRemoteKeys(u, opts.HTTPClient, opts.JWKSRefresh, opts.Now)
	}
	g := &Guard{
		opts: opts, keys: opts.KeySet, now: opts.Now, log: opts.Logger,
		ended: map[string]time.Time{}, checked: map[string]time.Time{}, sets: map[string]time.Time{},
		verified: map[string]*Token{},
	}
	g.since = opts.Now()
	g.verifier = oidc.NewVerifier(opts.Issuer, opts.KeySet, &oidc.Config{
		ClientID:             opts.Audience,
		SupportedSigningAlgs: []string{oidc.RS256, oidc.ES256, oidc.PS256, oidc.EdDSA},
		Now:                  opts.Now,
	})
	return g, nil
}

type atClaims struct {
	Subject  string `json:"sub"`
	SID      string `json:"sid"`
	ClientID string `json:"client_id"`
	Scope    string `json:"scope"`
	ID       string `json:"jti"`
}

// Verify checks an access token: signature, iss, aud, exp (go-oidc), the
// at+jwt type, and that its session has not ended.
func (g *Guard) Verify(ctx context.Context, raw string) (*Token, error) {
	g.cacheMu.RLock()
	t, ok := g.verified[raw]
	g.cacheMu.RUnlock()
	if !ok || !g.now().Before(t.Expiry) {
		var err error
		if t, err = g.verifySignature(ctx, raw); err != nil {
			return nil, err
		}
		g.cacheMu.Lock()
		if len(g.verified) >= maxCached {
			clear(g.verified)
		}
		g.verified[raw] = t
		g.cacheMu.Unlock()
	}
	if g.Ended(t.SID) {
		return nil, ErrSessionEnded
	}
	if err := g.checkMissed(ctx, raw, t); err != nil {
		return nil, err
	}
	cp := *t
	return &cp, nil
}

// verifySignature runs the full verification of a token not yet cached.
func (g *Guard) verifySignature(ctx context.Context, raw string) (*Token, error) {
	if err := checkType(raw, AccessTokenType); err != nil {
		return nil, fmt.Errorf("%w: %v", ErrInvalidToken, err)
	}
	idt, err := g.verifier.Verify(ctx, raw)
	if err != nil {
		return nil, fmt.Errorf("%w: %v", ErrInvalidToken, err)
	}
	var c atClaims
	if err := idt.Claims(&c); err != nil {
		return nil, fmt.Errorf("%w: claims: %v", ErrInvalidToken, err)
	}
	if c.SID == "" {
		return nil, fmt.Errorf("%w: no sid claim", ErrInvalidToken)
	}
	return &Token{Subject: c.Subject, SID: c.SID, ClientID: c.ClientID, Scope: c.Scope, ID: c.ID,
		IssuedAt: idt.IssuedAt, Expiry: idt.Expiry}, nil
}

// checkMissed asks the introspection endpoint about a token issued before
// the guard began receiving events: a logout in that window would have
// been missed. An active answer is remembered for the token's life (later
// logouts arrive as events).
func (g *Guard) checkMissed(ctx context.Context, raw string, t *Token) error {
	if g.opts.Introspection == nil || t.IssuedAt.After(g.since) {
		return nil
	}
	key := t.ID
	if key == "" {
		key = raw
	}
	g.mu.RLock()
	until, ok := g.checked[key]
	g.mu.RUnlock()
	if ok && g.now().Before(until) {
		return nil
	}
	active, err := g.opts.Introspection.Active(ctx, raw)
	if err != nil {
		return fmt.Errorf("resource: cannot confirm token issued before events were received: %w", err)
	}
	if !active {
		g.EndSession(t.SID)
		return ErrSessionEnded
	}
	g.mu.Lock()
	g.checked[key] = t.Expiry
	g.mu.Unlock()
	return nil
}

// EndSession records that a session ended.
func (g *Guard) EndSession(sid string) {
	now := g.now()
	g.mu.Lock()
	defer g.mu.Unlock()
	g.ended[sid] = now.Add(g.opts.EndedTTL)
	if len(g.ended)%1024 == 0 {
		g.sweepLocked(now)
	}
}

// Ended reports whether the session is known to have ended.
func (g *Guard) Ended(sid string) bool {
	g.mu.RLock()
	until, ok := g.ended[sid]
	g.mu.RUnlock()
	return ok && g.now().Before(until)
}

func (g *Guard) sweepLocked(now time.Time) {
	for k, v := range g.ended {
		if !now.Before(v) {
			delete(g.ended, k)
		}
	}
	for k, v := range g.checked {
		if !now.Before(v) {
			delete(g.checked, k)
		}
	}
	for k, v := range g.sets {
		if !now.Before(v) {
			delete(g.sets, k)
		}
	}
}

// rememberSET records the jti of an accepted SET until forget; false when
// it was already recorded (a replay).
func (g *Guard) rememberSET(jti string, forget time.Time) bool {
	now := g.now()
	g.mu.Lock()
	defer g.mu.Unlock()
	if until, ok := g.sets[jti]; ok && now.Before(until) {
		return false
	}
	g.sets[jti] = forget
	if len(g.sets)%1024 == 0 {
		g.sweepLocked(now)
	}
	return true
}

// checkType verifies the explicit JOSE type of a compact JWS.
func checkType(raw, want string) error {
	jws, err := jose.ParseSigned(raw, []jose.SignatureAlgorithm{jose.RS256, jose.ES256, jose.PS256, jose.EdDSA})
	if err != nil {
		return fmt.Errorf("malformed JWS: %v", err)
	}
	if len(jws.Signatures) != 1 {
		return errors.New("want exactly one signature")
	}
	typ, _ := jws.Signatures[0].Protected.ExtraHeaders[jose.HeaderType].(string)
	if !strings.EqualFold(typ, want) && !strings.EqualFold(typ, "application/"+want) {
		return fmt.Errorf("typ is %q, want %q", typ, want)
	}
	return nil
}
