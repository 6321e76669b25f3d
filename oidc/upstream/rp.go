// Package upstream is the bridge as an OpenID Connect relying party of an
// upstream OpenID Provider (Entra ID, Okta, Google, Keycloak, Auth0,
// another slobridge …): the authorization code flow with PKCE, state and
// nonce bound to the browser, the RFC 9207 iss check and go-oidc's ID
// token verification for the login; Back-Channel Logout 1.0 and
// Front-Channel Logout 1.0 as RP, so that the upstream's logouts reach
// every app of the bridge; and RP-Initiated Logout toward the upstream's
// end_session_endpoint as the last browser step of a logout started
// downstream. It uses github.com/coreos/go-oidc/v3 and golang.org/x/oauth2
// for what they do.
//
// A bridge session made by an upstream OP records the upstream's name
// (Session.Upstream), its subject (NameID.Value) and its sid
// (SessionIndex): a logout token naming the sid ends that session, one
// naming only the subject ends every session of that subject there.
package upstream

import (
	"context"
	"crypto"
	"crypto/subtle"
	"encoding/json"
	"errors"
	"fmt"
	"html/template"
	"log/slog"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"sync/atomic"
	"time"

	gooidc "github.com/coreos/go-oidc/v3/oidc"
	"github.com/gin-gonic/gin"
	"golang.org/x/oauth2"

	"github.com/slobridge/slobridge"
	"github.com/slobridge/slobridge/store"
)

// Paths under the bridge's base path, for the upstream named {name}. The
// operator registers the first three at the upstream OP.
const (
	PathPrefix       = "/upstream/oidc/"
	pathCallback     = "/callback"
	pathBackchannel  = "/backchannel-logout"
	pathFrontchannel = "/frontchannel-logout"
	pathLoggedOut    = "/logged-out"
	pathJWKS         = "/jwks.json"
)

// Record namespaces.
const (
	// nsLogin: state → the login in progress (volatile: a crash only makes
	// the person start again).
	nsLogin = store.VolatilePrefix + "oidc-upstream-login"
	// nsLogout: state → the RP-initiated logout in progress.
	nsLogout = "oidc-upstream-logout"
	// nsSID: upstream name and sid → the bridge session (durable: a
	// logout token naming only the sid must find it after a restart).
	nsSID = "oidc-upstream-sid"
	// nsJTI: the jti of every logout token accepted, until its exp.
	nsJTI = "oidc-upstream-logout-jti"
)

// Limits and windows.
const (
	loginTTL         = 15 * time.Minute
	maxLogoutBody    = 64 << 10
	maxIATSkew       = 2 * time.Minute  // iat at most this far in the future
	maxLogoutAge     = 10 * time.Minute // iat at most this far in the past
	stateCookie      = "slobridge_oidc_upstream"
	discoveryRetry   = 5 * time.Second
	discoveryTimeout = 10 * time.Second
)

// DefaultSigningAlgs is the algorithm allow-list of ID and logout tokens
// unless Config.SigningAlgs says otherwise ("none" and HMAC are never
// accepted).
var DefaultSigningAlgs = []string{gooidc.RS256, gooidc.ES256, gooidc.PS256, gooidc.EdDSA}

// Config is one upstream OpenID Provider.
type Config struct {
	// Name identifies the upstream (Session.Upstream, the paths, logs).
	Name string
	// Issuer is the OP's issuer URL; its discovery document is read from
	// Issuer + "/.well-known/openid-configuration".
	Issuer string
	// ClientID is the bridge's registration at the OP. It authenticates
	// at the token endpoint with ClientSecret (client_secret_basic) or,
	// when PrivateKey is set, with a client assertion signed by it
	// (private_key_jwt; ParseClientKey reads one).
	ClientID     string
	ClientSecret string
	PrivateKey   crypto.Signer
	// Scopes asked for besides openid; default email and profile.
	Scopes []string
	// UserIDClaim is the ID token claim that becomes the bridge user ID;
	// default "sub". UserIDPrefix is put before it.
	UserIDClaim  string
	UserIDPrefix string
	// Attributes maps bridge attributes to ID token claims; default
	// email, name, preferred_username and groups to themselves.
	Attributes map[string]string
	// SigningAlgs is the allow-list of ID and logout token algorithms;
	// default DefaultSigningAlgs.
	SigningAlgs []string
	// ACRValues are sent as acr_values; an ID token naming another acr is
	// refused.
	ACRValues []string
	// SkipUserInfo never asks the OP's UserInfo endpoint: the user ID and
	// attributes then come from the ID token alone.
	SkipUserInfo bool
	// NoEndSession skips the OP's end_session_endpoint: a logout started
	// downstream then reports that the upstream session was not ended.
	NoEndSession bool
	// SessionLifetime caps the bridge sessions this upstream makes.
	SessionLifetime time.Duration
}

// Options configure New.
type Options struct {
	Engine  *slobridge.Engine
	Cookies slobridge.SessionCookies
	// BaseURL is the bridge's external URL (the redirect and logout URIs
	// are built from it); BasePath is its path.
	BaseURL  string
	BasePath string
	Upstream Config
	// HTTPClient talks to the OP (discovery, JWKS, token endpoint);
	// default a client with a 10 s timeout.
	HTTPClient *http.Client
	Logger     *slog.Logger
}

// RP is the bridge as relying party of one upstream OP.
type RP struct {
	opts Options
	cfg  Config
	log  *slog.Logger
	hc   *http.Client
	// key signs client assertions (private_key_jwt), nil for
	// client_secret_basic.
	key *clientKey
	// disc is the discovered provider, nil until discovery succeeded.
	disc    atomic.Pointer[discovered]
	lastErr atomic.Pointer[error]
}

// discovered is what discovery yields.
type discovered struct {
	provider *gooidc.Provider
	verifier *gooidc.IDTokenVerifier
	oauth    oauth2.Config
	meta     providerMeta
	// at is when discovery succeeded.
	at time.Time
}

// providerMeta are the discovery members go-oidc does not expose.
type providerMeta struct {
	EndSession         string `json:"end_session_endpoint"`
	ISSParameter       bool   `json:"authorization_response_iss_parameter_supported"`
	FrontchannelSID    bool   `json:"frontchannel_logout_session_supported"`
	BackchannelSupport bool   `json:"backchannel_logout_supported"`
}

// Check reports what is wrong with the configuration, naming the field.
func (c Config) Check() error {
	if c.Name == "" || strings.ContainsAny(c.Name, "/?#% ") {
		return fmt.Errorf("name %q must be set and hold no '/', '?', '#', '%%' or space", c.Name)
	}
	iss, err := url.Parse(c.Issuer)
	if err != nil || !iss.IsAbs() || iss.Host == "" || iss.RawQuery != "" || iss.Fragment != "" {
		return fmt.Errorf("issuer %q must be an absolute URL without query or fragment", c.Issuer)
	}
	if c.ClientID == "" {
		return errors.New("client_id is required")
	}
	if c.PrivateKey != nil {
		if _, err := keyAlg(c.PrivateKey); err != nil {
			return fmt.Errorf("private key: %w", err)
		}
	}
	for _, a := range c.SigningAlgs {
		if !slices.Contains(DefaultSigningAlgs, a) && !slices.Contains([]string{gooidc.RS384, gooidc.RS512, gooidc.ES384, gooidc.ES512, gooidc.PS384, gooidc.PS512}, a) {
			return fmt.Errorf("signing algorithm %q is not accepted (asymmetric algorithms only)", a)
		}
	}
	return nil
}

// New checks the configuration and returns the RP; discovery happens in
// Run (or at the first login), so that the bridge starts while the OP is
// unreachable.
func New(opts Options) (*RP, error) {
	if opts.Engine == nil {
		return nil, errors.New("upstream: an engine is required")
	}
	c := opts.Upstream
	if err := c.Check(); err != nil {
		return nil, err
	}
	if len(c.SigningAlgs) == 0 {
		c.SigningAlgs = DefaultSigningAlgs
	}
	if len(c.Scopes) == 0 {
		c.Scopes = []string{"email", "profile"}
	}
	if c.UserIDClaim == "" {
		c.UserIDClaim = "sub"
	}
	if c.Attributes == nil {
		c.Attributes = map[string]string{"email": "email", "name": "name", "preferred_username": "preferred_username", "groups": "groups"}
	}
	if c.SessionLifetime <= 0 {
		c.SessionLifetime = 8 * time.Hour
	}
	if opts.HTTPClient == nil {
		opts.HTTPClient = &http.Client{Timeout: discoveryTimeout}
	}
	if opts.Logger == nil {
		opts.Logger = slog.Default()
	}
	opts.BaseURL = strings.TrimSuffix(opts.BaseURL, "/")
	rp := &RP{opts: opts, cfg: c, log: opts.Logger.With("upstream", c.Name), hc: opts.HTTPClient}
	if c.PrivateKey != nil {
		k, err := newClientKey(c.PrivateKey)
		if err != nil {
			return nil, err
		}
		rp.key = k
	}
	return rp, nil
}

// Name is the upstream's name.
func (rp *RP) Name() string { return rp.cfg.Name }

// URL returns the absolute URL of one of the RP's endpoints.
func (rp *RP) url(p string) string { return rp.opts.BaseURL + PathPrefix + rp.cfg.Name + p }

// path returns the bridge path of one of the RP's endpoints.
func (rp *RP) path(p string) string { return rp.opts.BasePath + PathPrefix + rp.cfg.Name + p }

// Registration is what an operator registers for the bridge at the OP.
type Registration struct {
	// JWKSURI serves the bridge's public key for private_key_jwt (empty
	// with client_secret_basic).
	JWKSURI string `json:"jwks_uri,omitempty"`
	// RedirectURI receives the authorization response.
	RedirectURI string `json:"redirect_uri"`
	// BackchannelLogoutURI receives logout tokens (Back-Channel Logout).
	BackchannelLogoutURI string `json:"backchannel_logout_uri"`
	// FrontchannelLogoutURI is framed by the OP (Front-Channel Logout).
	FrontchannelLogoutURI string `json:"frontchannel_logout_uri"`
	// PostLogoutRedirectURI is where the OP sends the browser back after
	// RP-Initiated Logout.
	PostLogoutRedirectURI string `json:"post_logout_redirect_uri"`
}

// RegistrationFor returns the URIs of the upstream named name of a bridge
// at baseURL.
func RegistrationFor(baseURL, name string) Registration {
	u := strings.TrimSuffix(baseURL, "/") + PathPrefix + name
	return Registration{RedirectURI: u + pathCallback, BackchannelLogoutURI: u + pathBackchannel,
		FrontchannelLogoutURI: u + pathFrontchannel, PostLogoutRedirectURI: u + pathLoggedOut}
}

// JWKSURIFor is the URI at which a bridge at baseURL publishes its
// private_key_jwt public key for the upstream named name.
func JWKSURIFor(baseURL, name string) string {
	return strings.TrimSuffix(baseURL, "/") + PathPrefix + name + pathJWKS
}

// Registration returns the URIs to register at the OP.
func (rp *RP) Registration() Registration {
	r := RegistrationFor(rp.opts.BaseURL, rp.cfg.Name)
	if rp.key != nil {
		r.JWKSURI = JWKSURIFor(rp.opts.BaseURL, rp.cfg.Name)
	}
	return r
}

// RedirectURI is the bridge's redirect URI at the OP.
func (rp *RP) RedirectURI() string { return rp.url(pathCallback) }

// BackchannelLogoutURI is the bridge's back-channel logout URI.
func (rp *RP) BackchannelLogoutURI() string { return rp.url(pathBackchannel) }

// FrontchannelLogoutURI is the bridge's front-channel logout URI.
func (rp *RP) FrontchannelLogoutURI() string { return rp.url(pathFrontchannel) }

// PostLogoutRedirectURI is the bridge's post-logout redirect URI.
func (rp *RP) PostLogoutRedirectURI() string { return rp.url(pathLoggedOut) }

// ctx gives go-oidc and oauth2 the RP's HTTP client.
func (rp *RP) ctx(ctx context.Context) context.Context { return gooidc.ClientContext(ctx, rp.hc) }

// discover reads the OP's discovery document once it can.
func (rp *RP) discover(ctx context.Context) (*discovered, error) {
	if d := rp.disc.Load(); d != nil {
		return d, nil
	}
	ctx, cancel := context.WithTimeout(ctx, discoveryTimeout)
	defer cancel()
	p, err := gooidc.NewProvider(rp.ctx(ctx), rp.cfg.Issuer)
	if err != nil {
		err = fmt.Errorf("upstream %s: discovery of %s: %w", rp.cfg.Name, rp.cfg.Issuer, err)
		rp.lastErr.Store(&err)
		return nil, err
	}
	var meta providerMeta
	if err := p.Claims(&meta); err != nil {
		return nil, fmt.Errorf("upstream %s: discovery document: %w", rp.cfg.Name, err)
	}
	d := &discovered{
		provider: p, meta: meta, at: rp.opts.Engine.Now(),
		verifier: p.VerifierContext(rp.ctx(context.Background()), &gooidc.Config{ClientID: rp.cfg.ClientID,
			SupportedSigningAlgs: rp.cfg.SigningAlgs, Now: rp.opts.Engine.Now}),
		oauth: oauth2.Config{ClientID: rp.cfg.ClientID, ClientSecret: rp.cfg.ClientSecret, Endpoint: p.Endpoint(),
			RedirectURL: rp.RedirectURI(), Scopes: append([]string{gooidc.ScopeOpenID}, rp.cfg.Scopes...)},
	}
	d.oauth.Endpoint.AuthStyle = oauth2.AuthStyleInHeader
	if rp.key != nil {
		// private_key_jwt: client_id in the body beside the assertion,
		// and no secret.
		d.oauth.ClientSecret, d.oauth.Endpoint.AuthStyle = "", oauth2.AuthStyleInParams
	}
	rp.disc.CompareAndSwap(nil, d)
	rp.lastErr.Store(nil)
	rp.log.InfoContext(ctx, "upstream OpenID Provider discovered", "issuer", rp.cfg.Issuer,
		"end_session_endpoint", meta.EndSession, "backchannel_logout_supported", meta.BackchannelSupport)
	return rp.disc.Load(), nil
}

// Run discovers the OP, retrying until it answers or ctx ends.
func (rp *RP) Run(ctx context.Context) {
	for {
		if _, err := rp.discover(ctx); err == nil {
			return
		} else {
			rp.log.WarnContext(ctx, "upstream OpenID Provider unavailable; retrying", "err", err)
		}
		select {
		case <-ctx.Done():
			return
		case <-time.After(discoveryRetry):
		}
	}
}

// DiscoveredAt is when the OP's discovery document was read; zero
// before.
func (rp *RP) DiscoveredAt() time.Time {
	if d := rp.disc.Load(); d != nil {
		return d.at
	}
	return time.Time{}
}

// Unavailable reports why the upstream cannot be used now (nil once
// discovered): for /readyz and the admin API.
func (rp *RP) Unavailable() error {
	if rp.disc.Load() != nil {
		return nil
	}
	if e := rp.lastErr.Load(); e != nil {
		return *e
	}
	return fmt.Errorf("upstream %s: not discovered yet", rp.cfg.Name)
}

// Mount registers the RP's endpoints.
func (rp *RP) Mount(r gin.IRouter) {
	base := PathPrefix + rp.cfg.Name
	r.GET(base+pathCallback, rp.handleCallback)
	r.POST(base+pathBackchannel, rp.handleBackchannel)
	r.GET(base+pathFrontchannel, rp.handleFrontchannel)
	r.GET(base+pathLoggedOut, rp.handleLoggedOut)
	if rp.key != nil {
		r.GET(base+pathJWKS, func(c *gin.Context) {
			c.Header("Cache-Control", "public, max-age=300")
			c.JSON(http.StatusOK, rp.key.JWKS())
		})
	}
}

// loginState is a login in progress.
type loginState struct {
	ReturnTo string `json:"return_to"`
	Nonce    string `json:"nonce"`
	Verifier string `json:"verifier"`
	// Reauth is set when the browser held an active bridge session: the
	// OP was asked to authenticate afresh (prompt=login, max_age=0), and
	// the ID token's auth_time must be no earlier than Started.
	Reauth  bool  `json:"reauth,omitempty"`
	Started int64 `json:"started"`
}

// StartLogin implements slobridge.Authenticator: it parks the login and
// sends the browser to the OP's authorization endpoint with PKCE (S256),
// state and nonce; the state is bound to the browser by a cookie.
func (rp *RP) StartLogin(w http.ResponseWriter, r *http.Request, returnTo string) error {
	ctx := r.Context()
	if !localPath(returnTo) {
		return fmt.Errorf("upstream %s: return path %q is not local", rp.cfg.Name, returnTo)
	}
	d, err := rp.discover(ctx)
	if err != nil {
		return fmt.Errorf("%w: %w", slobridge.ErrUpstreamUnavailable, err)
	}
	eng := rp.opts.Engine
	st := loginState{ReturnTo: returnTo, Nonce: eng.NewID(), Verifier: oauth2.GenerateVerifier(), Started: eng.Now().Unix()}
	params := []oauth2.AuthCodeOption{oauth2.S256ChallengeOption(st.Verifier), gooidc.Nonce(st.Nonce)}
	// A login asked for while the browser holds an active bridge session
	// is a re-authentication (a downstream prompt=login, max_age or
	// ForceAuthn): the OP must authenticate the user afresh rather than
	// answer from its own session (Core §3.1.2.1), and says when it did.
	switch _, err := eng.ActiveSession(ctx, rp.opts.Cookies, r); {
	case err == nil:
		st.Reauth = true
		params = append(params, oauth2.SetAuthURLParam("prompt", "login"), oauth2.SetAuthURLParam("max_age", "0"))
	case !errors.Is(err, slobridge.ErrNoSession):
		return fmt.Errorf("upstream %s: read the browser's bridge session: %w", rp.cfg.Name, err)
	}
	if len(rp.cfg.ACRValues) > 0 {
		params = append(params, oauth2.SetAuthURLParam("acr_values", strings.Join(rp.cfg.ACRValues, " ")))
	}
	state := eng.NewID()
	val, err := json.Marshal(st)
	if err != nil {
		return err
	}
	exp := eng.Now().Add(loginTTL)
	if err := eng.Store().PutRecord(ctx, store.Record{Namespace: nsLogin, Key: state, Value: val, ExpiresAt: exp}); err != nil {
		return fmt.Errorf("upstream %s: park the login: %w", rp.cfg.Name, err)
	}
	http.SetCookie(w, &http.Cookie{Name: stateCookie, Value: state, Path: rp.path(pathCallback), Expires: exp,
		HttpOnly: true, Secure: rp.opts.Cookies.Secure, SameSite: http.SameSiteLaxMode})
	u := d.oauth.AuthCodeURL(state, params...)
	http.Redirect(w, r, u, http.StatusSeeOther)
	return nil
}

// localPath reports whether p is a path on this host.
func localPath(p string) bool {
	if !strings.HasPrefix(p, "/") || strings.HasPrefix(p, "//") || strings.HasPrefix(p, "/\\") {
		return false
	}
	u, err := url.Parse(p)
	return err == nil && u.Scheme == "" && u.Host == ""
}

// loginError is a refused login: the page says msg, the log says why.
type loginError struct {
	status int
	msg    string
	err    error
}

func (e *loginError) Error() string { return e.msg + ": " + e.err.Error() }

func refuse(status int, msg string, err error) error {
	return &loginError{status: status, msg: msg, err: err}
}

// handleCallback completes a login at the redirect URI.
func (rp *RP) handleCallback(c *gin.Context) {
	c.Request.Body = http.MaxBytesReader(c.Writer, c.Request.Body, maxLogoutBody)
	if err := c.Request.ParseForm(); err != nil {
		rp.page(c, http.StatusBadRequest, "The sign-in answer could not be read.")
		return
	}
	to, err := rp.completeLogin(c.Writer, c.Request)
	if err != nil {
		var le *loginError
		if !errors.As(err, &le) {
			le = &loginError{status: slobridge.FailureStatus(c.Writer.Header(), err), msg: "The sign-in could not be completed; try again.", err: err}
			if why, ok := slobridge.Unavailable(err); ok {
				le.msg = why
			}
		}
		rp.log.WarnContext(c.Request.Context(), "upstream login refused", "reason", le.err.Error())
		rp.page(c, le.status, le.msg)
		return
	}
	c.Redirect(http.StatusSeeOther, to)
}

// completeLogin checks the authorization response, redeems the code,
// verifies the ID token and establishes the bridge session; it returns
// where the browser goes.
func (rp *RP) completeLogin(w http.ResponseWriter, r *http.Request) (string, error) {
	ctx := r.Context()
	eng := rp.opts.Engine
	q := r.Form
	state := q.Get("state")
	ck, err := r.Cookie(stateCookie)
	if err != nil || state == "" || subtle.ConstantTimeCompare([]byte(ck.Value), []byte(state)) != 1 {
		return "", refuse(http.StatusBadRequest, "This sign-in was not started in this browser; start again from the application.",
			errors.New("state does not match the browser's cookie"))
	}
	http.SetCookie(w, &http.Cookie{Name: stateCookie, Value: "", Path: rp.path(pathCallback), MaxAge: -1, HttpOnly: true, Secure: rp.opts.Cookies.Secure})
	rec, err := eng.Store().TakeRecord(ctx, nsLogin, state, eng.Now())
	if errors.Is(err, store.ErrNotFound) {
		return "", refuse(http.StatusBadRequest, "This sign-in has expired or was already completed; start again from the application.", err)
	}
	if err != nil {
		return "", err
	}
	var st loginState
	if err := json.Unmarshal(rec.Value, &st); err != nil || !localPath(st.ReturnTo) {
		return "", refuse(http.StatusInternalServerError, "The sign-in request is damaged; start again from the application.", fmt.Errorf("login state: %v", err))
	}
	d, err := rp.discover(ctx)
	if err != nil {
		return "", fmt.Errorf("%w: %w", slobridge.ErrUpstreamUnavailable, err)
	}
	// RFC 9207: an OP that advertises it must send iss, and a present iss
	// must be the issuer (mix-up defence).
	if iss, ok := q["iss"]; ok || d.meta.ISSParameter {
		if len(iss) != 1 || iss[0] != rp.cfg.Issuer {
			return "", refuse(http.StatusBadRequest, "The sign-in answer did not come from the expected identity provider.",
				fmt.Errorf("iss %q is not %q", q.Get("iss"), rp.cfg.Issuer))
		}
	}
	if e := q.Get("error"); e != "" {
		return "", refuse(http.StatusBadGateway, "The identity provider did not sign you in ("+e+"). Start again from the application.",
			fmt.Errorf("authorization error %q: %q", e, q.Get("error_description")))
	}
	code := q.Get("code")
	if code == "" {
		return "", refuse(http.StatusBadRequest, "The sign-in answer has no code.", errors.New("no code"))
	}
	auth, err := rp.exchangeOptions(d)
	if err != nil {
		return "", err
	}
	tok, err := d.oauth.Exchange(rp.ctx(ctx), code, append(auth, oauth2.VerifierOption(st.Verifier))...)
	if err != nil {
		return "", refuse(http.StatusBadGateway, "The identity provider did not accept the sign-in code; start again from the application.",
			fmt.Errorf("token request: %w", err))
	}
	raw, _ := tok.Extra("id_token").(string)
	if raw == "" {
		return "", refuse(http.StatusBadGateway, "The identity provider sent no ID token.", errors.New("token response without id_token"))
	}
	idt, err := d.verifier.Verify(rp.ctx(ctx), raw)
	if err != nil {
		return "", refuse(http.StatusBadGateway, "The identity provider's ID token was not valid.", fmt.Errorf("verify ID token: %w", err))
	}
	var claims map[string]any
	if err := idt.Claims(&claims); err != nil {
		return "", refuse(http.StatusBadGateway, "The identity provider's ID token was not valid.", err)
	}
	if subtle.ConstantTimeCompare([]byte(idt.Nonce), []byte(st.Nonce)) != 1 {
		return "", refuse(http.StatusBadGateway, "The identity provider's ID token was not for this sign-in.", errors.New("nonce mismatch"))
	}
	// OpenID Connect Core §3.1.3.7 (4, 5): with several audiences azp must
	// be present, and an azp must be this client.
	azp, _ := claims["azp"].(string)
	if (len(idt.Audience) > 1 && azp == "") || (azp != "" && azp != rp.cfg.ClientID) {
		return "", refuse(http.StatusBadGateway, "The identity provider's ID token was not for this bridge.", fmt.Errorf("azp %q, audiences %q", azp, idt.Audience))
	}
	if err := rp.addUserInfo(ctx, d, tok, idt.Subject, claims); err != nil {
		return "", refuse(http.StatusBadGateway, "The identity provider did not say who you are.", err)
	}
	userID, _ := claims[rp.cfg.UserIDClaim].(string)
	if userID == "" {
		return "", refuse(http.StatusBadGateway, "The identity provider did not say who you are.", fmt.Errorf("ID token has no string claim %q", rp.cfg.UserIDClaim))
	}
	sid, _ := claims["sid"].(string)
	now := eng.Now()
	authTime := now
	at, hasAuthTime := claims["auth_time"].(float64)
	if hasAuthTime && at > 0 {
		authTime = time.Unix(int64(at), 0)
	}
	// A re-authentication must have happened after the login started
	// (max_age=0 makes auth_time required, Core §2), give or take the
	// clock skew.
	if st.Reauth && (!hasAuthTime || authTime.Before(time.Unix(st.Started, 0).Add(-maxIATSkew))) {
		return "", refuse(http.StatusBadGateway, "The identity provider did not sign you in afresh, as this application asked; start again from the application.",
			fmt.Errorf("re-authentication asked for at %d, auth_time %v", st.Started, claims["auth_time"]))
	}
	// acr_values are a voluntary request (Core §3.1.2.1): an OP may not
	// say which it met, but one that names another is refused.
	if acr, ok := claims["acr"].(string); ok && len(rp.cfg.ACRValues) > 0 && !slices.Contains(rp.cfg.ACRValues, acr) {
		return "", refuse(http.StatusBadGateway, "The identity provider signed you in at a level this bridge does not accept.",
			fmt.Errorf("acr %q is not among %q", acr, rp.cfg.ACRValues))
	}
	s := store.Session{
		UserID: rp.cfg.UserIDPrefix + userID, Upstream: rp.cfg.Name, NameID: store.NameID{Value: idt.Subject}, SessionIndex: sid,
		Attributes: rp.attributes(claims), AuthTime: authTime, ExpiresAt: now.Add(rp.cfg.SessionLifetime),
	}
	est, err := eng.EstablishLogin(ctx, rp.opts.Cookies.BrowserSessionID(r), s)
	if err != nil {
		return "", fmt.Errorf("upstream %s: establish the session: %w", rp.cfg.Name, err)
	}
	s = est.Session
	if sid != "" {
		err := eng.Store().PutRecord(ctx, store.Record{Namespace: nsSID, Key: sidKey(rp.cfg.Name, sid), Value: []byte(s.ID), ExpiresAt: s.ExpiresAt})
		if err != nil && !errors.Is(err, store.ErrAlreadyExists) {
			return "", fmt.Errorf("upstream %s: remember the upstream sid: %w", rp.cfg.Name, err)
		}
	}
	rp.log.InfoContext(ctx, "upstream login", "sid", s.ID, "user", s.UserID)
	rp.opts.Cookies.Set(w, s.ID, s.ExpiresAt)
	to, detour, err := eng.LogoutDetour(ctx, est, st.ReturnTo)
	switch {
	case err != nil:
		rp.log.ErrorContext(ctx, "logout page of the replaced session", "err", err)
		to = st.ReturnTo
	case detour:
		to = rp.opts.BasePath + to
	}
	return to, nil
}

// addUserInfo fills in, from the OP's UserInfo endpoint, the claims the
// bridge maps (user ID and attributes) that the ID token lacks: many OPs
// (oidc-provider, Okta's org server, Keycloak with thin tokens) put
// profile claims only there. The response must be about the ID token's
// subject (Core §5.3.2); protocol claims (sid, nonce, auth_time …) are
// only ever taken from the ID token. Nothing is asked when the OP has no
// UserInfo endpoint, sent no access token, or the upstream says
// skip_userinfo.
func (rp *RP) addUserInfo(ctx context.Context, d *discovered, tok *oauth2.Token, subject string, claims map[string]any) error {
	if rp.cfg.SkipUserInfo || tok.AccessToken == "" || d.provider.UserInfoEndpoint() == "" {
		return nil
	}
	missing := false
	for _, c := range rp.mappedClaims() {
		if _, ok := claims[c]; !ok {
			missing = true
		}
	}
	if !missing {
		return nil
	}
	ui, err := d.provider.UserInfo(rp.ctx(ctx), oauth2.StaticTokenSource(tok))
	if err != nil {
		return fmt.Errorf("userinfo: %w", err)
	}
	if subtle.ConstantTimeCompare([]byte(ui.Subject), []byte(subject)) != 1 {
		return fmt.Errorf("userinfo is about subject %q, the ID token about %q", ui.Subject, subject)
	}
	var extra map[string]any
	if err := ui.Claims(&extra); err != nil {
		return fmt.Errorf("userinfo: %w", err)
	}
	for _, c := range rp.mappedClaims() {
		if _, ok := claims[c]; !ok {
			if v, ok := extra[c]; ok {
				claims[c] = v
			}
		}
	}
	return nil
}

// mappedClaims are the claims the bridge reads for the user ID and the
// attributes.
func (rp *RP) mappedClaims() []string {
	out := []string{rp.cfg.UserIDClaim}
	for _, c := range rp.cfg.Attributes {
		out = append(out, c)
	}
	return out
}

// sidKey is the record key of an upstream sid.
func sidKey(upstream, sid string) string { return upstream + " " + sid }

// attributes maps the ID token's claims to bridge attributes.
func (rp *RP) attributes(claims map[string]any) map[string][]string {
	out := map[string][]string{}
	for attr, claim := range rp.cfg.Attributes {
		switch v := claims[claim].(type) {
		case string:
			if v != "" {
				out[attr] = []string{v}
			}
		case []any:
			for _, x := range v {
				if s, ok := x.(string); ok {
					out[attr] = append(out[attr], s)
				}
			}
		}
	}
	return out
}

// pageTmpl is the RP's error page.
var pageTmpl = template.Must(template.New("page").Parse(`<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>Sign-in</title></head>
<body><main><h1>Sign-in</h1><p id="message">{{.}}</p></main></body></html>
`))

// page renders a message page with a strict CSP.
func (rp *RP) page(c *gin.Context, status int, msg string) {
	h := c.Writer.Header()
	h.Set("Content-Type", "text/html; charset=utf-8")
	h.Set("Cache-Control", "no-store")
	h.Set("Content-Security-Policy", "default-src 'none'; frame-ancestors 'none'; form-action 'none'; base-uri 'none'")
	h.Set("X-Content-Type-Options", "nosniff")
	c.Status(status)
	_ = pageTmpl.Execute(c.Writer, msg)
}
