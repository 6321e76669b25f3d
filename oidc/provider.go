package oidc

import (
	"crypto/rand"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/url"
	"strings"
	"time"

	"github.com/gin-gonic/gin"

	"github.com/slobridge/slobridge"
	"github.com/slobridge/slobridge/store"
)

// Routes served by the Provider, relative to the issuer URL. The issuer's
// path (if any) is the prefix of the router group passed to Mount.
const (
	PathDiscovery   = "/.well-known/openid-configuration"
	PathJWKS        = "/oidc/jwks"
	PathAuthorize   = "/oidc/authorize"
	PathResume      = "/oidc/authorize/resume"
	PathToken       = "/oidc/token"
	PathUserinfo    = "/oidc/userinfo"
	PathRegister    = "/oidc/register"
	PathEndSession  = "/oidc/logout"
	PathConfirm     = "/oidc/logout/confirm"
	PathLogout      = "/logout"
	PathIntrospect  = "/oidc/introspect"
	PathRevoke      = "/oidc/revoke"
	defaultScopes   = "openid"
	maxFormBytes    = 64 << 10
	maxRegistration = 64 << 10
)

// Options configure a Provider. Zero values take the documented defaults.
type Options struct {
	// Issuer is the issuer identifier, an https URL without query or
	// fragment (http is allowed on loopback when AllowLoopbackHTTP is
	// set). Required.
	Issuer string
	// Engine is the logout engine. Required.
	Engine *slobridge.Engine
	// Store persists codes, tokens, clients and keys; default
	// Engine.Store().
	Store store.Store
	// Cookies reads and writes the bridge session cookie. Its Secret is
	// required.
	Cookies slobridge.SessionCookies
	// Authenticator logs a browser in at the upstream IdP. Required.
	Authenticator slobridge.Authenticator
	// Now is the clock; default Engine.Now.
	Now func() time.Time
	// Rand is the source of codes, tokens, secrets and key material;
	// default crypto/rand.Reader.
	Rand io.Reader
	// Logger receives structured logs; default slog.Default().
	Logger *slog.Logger

	// Clients are the static clients from the configuration.
	Clients []StaticClient
	// ResourceServers are the APIs allowed to introspect every access
	// token the bridge issues (RFC 7662 §2.1); see ResourceServer.
	ResourceServers []ResourceServer
	// EndSessionOnRefreshReuse ends the whole bridge session (a logout
	// everywhere, initiator "system") when a rotated refresh token is
	// presented again; the token family is revoked either way.
	EndSessionOnRefreshReuse bool
	// RegistrationToken is the initial access token (RFC 7591 §3) that
	// protects dynamic registration. Empty disables registration.
	RegistrationToken string
	// AllowLoopbackHTTP allows http:// URIs (redirect, logout) on loopback
	// hosts (127.0.0.0/8, ::1, localhost): development only.
	AllowLoopbackHTTP bool
	// AllowPrivateBackchannel allows back-channel logout URIs that resolve
	// to private, loopback or link-local addresses.
	AllowPrivateBackchannel bool
	// Resolver resolves back-channel hosts at registration; default
	// net.DefaultResolver.
	Resolver *net.Resolver

	// CodeTTL is the life of an authorization code; default 60s (RFC 6749
	// §4.1.2 recommends at most 10 minutes).
	CodeTTL time.Duration
	// IDTokenTTL is the life of an ID token; default 1h.
	IDTokenTTL time.Duration
	// AccessTokenTTL is the life of an access token; default 5m (short:
	// a JWT cannot be recalled, so it dies soon after its session).
	AccessTokenTTL time.Duration
	// SigningAlg signs ID tokens and logout tokens of clients that did not
	// register an id_token_signed_response_alg, and the SSF events: RS256
	// (the default, which every RP accepts), ES256, PS256 or EdDSA.
	SigningAlg string
	// AccessTokenAlg signs access tokens; default SigningAlg. RFC 9068
	// makes RS256 the algorithm every conforming resource server
	// supports; ES256 and EdDSA sign twenty to forty times faster (the
	// RSA signature is the largest cost of a code exchange), so choose
	// one when every resource server accepts it.
	AccessTokenAlg string
	// RefreshTokenTTL is the life of a refresh token, capped by the
	// session's expiry; default 24h.
	RefreshTokenTTL time.Duration
	// KeyRotation is how long a signing key signs; default 30 days.
	KeyRotation time.Duration
	// KeyPublishAhead is how long a new key is published in the JWKS
	// before it signs; default 24h.
	KeyPublishAhead time.Duration
}

// StaticClient is a client from the configuration file.
type StaticClient struct {
	// Metadata is the registration (client_id, redirect_uris, logout
	// fields ...), validated like a dynamic registration.
	Metadata ClientMetadata
	// Secret is the client secret in clear (hashed at start-up); empty
	// for a public client (token_endpoint_auth_method "none").
	Secret string
	// AccessTokenTTL is the life of this client's access tokens; default
	// Options.AccessTokenTTL.
	AccessTokenTTL time.Duration
}

// Provider is the OpenID Provider. Create it with New and mount its routes
// with Mount.
type Provider struct {
	opts    Options
	issuer  *url.URL
	st      store.Store
	eng     *slobridge.Engine
	log     *slog.Logger
	now     func() time.Time
	rand    io.Reader
	keys    *keyring
	static  map[string]Client
	closeFn func()
	// clientTTL holds per-client access-token lifetimes.
	clientTTL map[string]time.Duration
	// resourceServers are the client IDs of ResourceServers.
	resourceServers map[string]bool
	// verified caches access tokens whose signature and claims checked
	// out, for introspection.
	verified *tokenCache
	// sessions caches session states for introspection.
	sessions *sessionCache
}

// New validates opts, applies defaults and returns a Provider.
func New(opts Options) (*Provider, error) {
	if opts.Engine == nil {
		return nil, errors.New("oidc: provider needs an engine")
	}
	if opts.Authenticator == nil {
		return nil, errors.New("oidc: provider needs an authenticator")
	}
	if len(opts.Cookies.Secret) < 32 {
		return nil, errors.New("oidc: session cookie secret must be at least 32 bytes")
	}
	iss, err := url.Parse(opts.Issuer)
	if err != nil || !iss.IsAbs() || iss.RawQuery != "" || iss.Fragment != "" || iss.Host == "" {
		return nil, fmt.Errorf("oidc: issuer %q must be an absolute URL without query or fragment", opts.Issuer)
	}
	if iss.Scheme != "https" && !(iss.Scheme == "http" && opts.AllowLoopbackHTTP && isLoopbackHost(iss.Hostname())) {
		return nil, fmt.Errorf("oidc: issuer %q must use https", opts.Issuer)
	}
	opts.Issuer = strings.TrimSuffix(opts.Issuer, "/")
	if opts.SigningAlg != "" {
		if err := checkAlg(opts.SigningAlg); err != nil {
			return nil, fmt.Errorf("oidc: signing algorithm %w", err)
		}
	}
	if opts.AccessTokenAlg != "" {
		if err := checkAlg(opts.AccessTokenAlg); err != nil {
			return nil, fmt.Errorf("oidc: access token algorithm %w", err)
		}
	}
	applyDefaults(&opts)
	p := &Provider{
		opts: opts, issuer: iss, st: opts.Store, eng: opts.Engine,
		log: opts.Logger, now: opts.Now, rand: opts.Rand,
		static: map[string]Client{}, clientTTL: map[string]time.Duration{},
		resourceServers: map[string]bool{}, verified: newTokenCache(),
		sessions: newSessionCache(opts.Engine),
	}
	maxTTL := max(opts.IDTokenTTL, opts.AccessTokenTTL, logoutTokenTTL)
	for _, sc := range opts.Clients {
		maxTTL = max(maxTTL, sc.AccessTokenTTL)
	}
	p.keys = newKeyring(opts.Store, opts.Now, opts.Rand, keyringPolicy{
		rotation:     opts.KeyRotation,
		publishAhead: opts.KeyPublishAhead,
		maxTokenTTL:  maxTTL,
	})
	for _, sc := range opts.Clients {
		c, err := p.staticClient(sc)
		if err != nil {
			return nil, err
		}
		p.static[c.ID] = c
		if sc.AccessTokenTTL > 0 {
			p.clientTTL[c.ID] = sc.AccessTokenTTL
		}
	}
	if err := p.addResourceServers(opts.ResourceServers); err != nil {
		return nil, err
	}
	return p, nil
}

func applyDefaults(o *Options) {
	if o.Store == nil {
		o.Store = o.Engine.Store()
	}
	if o.Now == nil {
		o.Now = o.Engine.Now
	}
	if o.Rand == nil {
		o.Rand = rand.Reader
	}
	if o.Logger == nil {
		o.Logger = slog.Default()
	}
	if o.Resolver == nil {
		o.Resolver = net.DefaultResolver
	}
	defDur(&o.CodeTTL, time.Minute)
	defDur(&o.IDTokenTTL, time.Hour)
	defDur(&o.AccessTokenTTL, 5*time.Minute)
	if o.SigningAlg == "" {
		o.SigningAlg = signingAlgs[0]
	}
	if o.AccessTokenAlg == "" {
		o.AccessTokenAlg = o.SigningAlg
	}
	defDur(&o.RefreshTokenTTL, 24*time.Hour)
	defDur(&o.KeyRotation, 30*24*time.Hour)
	defDur(&o.KeyPublishAhead, 24*time.Hour)
}

func defDur(d *time.Duration, v time.Duration) {
	if *d <= 0 {
		*d = v
	}
}

// Issuer returns the issuer identifier.
func (p *Provider) Issuer() string { return p.opts.Issuer }

// endpoint returns the absolute URL of one of the provider's paths.
func (p *Provider) endpoint(path string) string { return p.opts.Issuer + path }

// Mount registers the provider's routes on r: discovery, JWKS, authorize,
// token, userinfo, registration (when a registration token is set),
// end-session, the bridge's own browser logout at /logout, token
// introspection (RFC 7662) and revocation (RFC 7009), with CORS on the
// endpoints browser applications fetch (corsPaths).
func (p *Provider) Mount(r gin.IRouter) {
	for _, path := range corsPaths {
		r.OPTIONS(path, handlePreflight)
	}
	r.GET(PathDiscovery, cors, p.handleDiscovery)
	r.GET(PathJWKS, cors, p.handleJWKS)
	r.GET(PathAuthorize, p.handleAuthorize)
	r.POST(PathAuthorize, p.handleAuthorize)
	r.GET(PathResume, p.handleResume)
	r.POST(PathToken, cors, p.handleToken)
	r.GET(PathUserinfo, cors, p.handleUserinfo)
	r.POST(PathUserinfo, cors, p.handleUserinfo)
	if p.opts.RegistrationToken != "" {
		r.POST(PathRegister, p.handleRegister)
	}
	r.GET(PathEndSession, p.handleEndSession)
	r.POST(PathEndSession, p.handleEndSession)
	r.POST(PathConfirm, p.handleConfirm)
	r.GET(PathLogout, p.handleEndSession)
	r.POST(PathLogout, p.handleEndSession)
	r.POST(PathIntrospect, p.handleIntrospect)
	r.POST(PathRevoke, cors, p.handleRevoke)
}

// newToken returns n random bytes, base64url without padding.
func (p *Provider) newToken(n int) (string, error) {
	b := make([]byte, n)
	if _, err := io.ReadFull(p.rand, b); err != nil {
		return "", fmt.Errorf("oidc: random source: %w", err)
	}
	return b64(b), nil
}

func isLoopbackHost(h string) bool {
	if h == "localhost" {
		return true
	}
	ip := net.ParseIP(h)
	return ip != nil && ip.IsLoopback()
}
