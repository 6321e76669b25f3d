package demo

import (
	"context"
	"crypto/rand"
	"encoding/base64"
	"fmt"
	"html/template"
	"io"
	"log/slog"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"time"

	"github.com/coreos/go-oidc/v3/oidc"
	jose "github.com/go-jose/go-jose/v4"
	"golang.org/x/oauth2"
)

// RPConfig configures a demo OIDC relying party.
type RPConfig struct {
	// Name is shown on the app's page.
	Name string
	// BaseURL is where the app is served, e.g. http://127.0.0.1:8082.
	BaseURL string
	// Issuer is the bridge's issuer URL.
	Issuer string
	// ClientID and ClientSecret are the app's registration at the bridge.
	ClientID, ClientSecret string
	// FrontChannel selects front-channel logout (an iframe) instead of
	// back-channel logout (a logout token POSTed by the bridge).
	FrontChannel bool
	// APIURL, when set, is a demo API the app calls with its access token.
	APIURL string
	// HTTPClient talks to the bridge and the API; default http.DefaultClient.
	HTTPClient *http.Client
	Logger     *slog.Logger
}

// Registration returns the client metadata (OIDC Dynamic Registration
// names) the bridge must hold for this app.
func (c RPConfig) Registration() map[string]any {
	m := map[string]any{
		"client_id":                  c.ClientID,
		"client_name":                c.Name,
		"redirect_uris":              []string{c.BaseURL + "/callback"},
		"post_logout_redirect_uris":  []string{c.BaseURL + "/logged-out"},
		"token_endpoint_auth_method": "client_secret_basic",
	}
	if c.FrontChannel {
		m["frontchannel_logout_uri"] = c.BaseURL + "/frontchannel-logout"
		m["frontchannel_logout_session_required"] = true
	} else {
		m["backchannel_logout_uri"] = c.BaseURL + "/backchannel-logout"
		m["backchannel_logout_session_required"] = true
	}
	return m
}

// rpSession is one browser's login at the app.
type rpSession struct {
	Subject, SID, Email string
	IDToken             string
	Token               *oauth2.Token
	// pending login state
	State, Nonce, Verifier string
	// EndedBy says how the app learned that the login ended; empty while
	// logged in. The ended session keeps its access token so the page can
	// show that the API no longer accepts it.
	EndedBy string
}

// How an app learns that its login ended.
const (
	EndedByBackChannel  = "back-channel logout token from the bridge"
	EndedByFrontChannel = "front-channel logout (iframe on the bridge's logout page)"
	EndedByRP           = "you logged out here"
	EndedBySessionCheck = "the bridge no longer accepts the session (userinfo answered 401)"
)

// RP is a demo relying party.
type RP struct {
	cfg      RPConfig
	log      *slog.Logger
	provider *oidc.Provider
	verifier *oidc.IDTokenVerifier
	oauth    oauth2.Config

	mu       sync.Mutex
	sessions map[string]*rpSession // app cookie -> session
	seenJTI  map[string]time.Time
}

// cookieName is the app's session cookie. Cookies are not isolated by
// port, and every demo part lives on 127.0.0.1, so each app names its own.
func (a *RP) cookieName() string { return "demo_rp_" + a.cfg.ClientID }

// NewRP discovers the bridge (OIDC Discovery) and returns the app.
func NewRP(ctx context.Context, cfg RPConfig) (*RP, error) {
	if cfg.HTTPClient == nil {
		cfg.HTTPClient = http.DefaultClient
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	ctx = oidc.ClientContext(ctx, cfg.HTTPClient)
	p, err := oidc.NewProvider(ctx, cfg.Issuer)
	if err != nil {
		return nil, fmt.Errorf("demo rp %s: discover bridge: %w", cfg.Name, err)
	}
	return &RP{
		cfg: cfg, log: cfg.Logger.With("app", cfg.Name), provider: p,
		verifier: p.Verifier(&oidc.Config{ClientID: cfg.ClientID}),
		oauth: oauth2.Config{
			ClientID: cfg.ClientID, ClientSecret: cfg.ClientSecret, Endpoint: p.Endpoint(),
			RedirectURL: cfg.BaseURL + "/callback", Scopes: []string{oidc.ScopeOpenID, "email", "profile"},
		},
		sessions: map[string]*rpSession{}, seenJTI: map[string]time.Time{},
	}, nil
}

// Handler returns the app's routes.
func (a *RP) Handler() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /{$}", a.home)
	mux.HandleFunc("GET /favicon.ico", noFavicon)
	mux.HandleFunc("GET /login", a.login)
	mux.HandleFunc("GET /callback", a.callback)
	mux.HandleFunc("POST /logout", a.logout)
	mux.HandleFunc("GET /logged-out", a.loggedOut)
	mux.HandleFunc("POST /backchannel-logout", a.backchannelLogout)
	mux.HandleFunc("GET /frontchannel-logout", a.frontchannelLogout)
	mux.HandleFunc("GET /whoami", a.whoami)
	return mux
}

func randomString() string {
	var b [24]byte
	if _, err := rand.Read(b[:]); err != nil {
		panic(err)
	}
	return base64.RawURLEncoding.EncodeToString(b[:])
}

func (a *RP) session(r *http.Request) (string, *rpSession) {
	c, err := r.Cookie(a.cookieName())
	if err != nil {
		return "", nil
	}
	a.mu.Lock()
	defer a.mu.Unlock()
	return c.Value, a.sessions[c.Value]
}

func (a *RP) login(w http.ResponseWriter, r *http.Request) {
	id := randomString()
	s := &rpSession{State: randomString(), Nonce: randomString(), Verifier: oauth2.GenerateVerifier()}
	a.mu.Lock()
	a.sessions[id] = s
	a.mu.Unlock()
	http.SetCookie(w, &http.Cookie{Name: a.cookieName(), Value: id, Path: "/", HttpOnly: true, SameSite: http.SameSiteLaxMode})
	http.Redirect(w, r, a.oauth.AuthCodeURL(s.State, oidc.Nonce(s.Nonce), oauth2.S256ChallengeOption(s.Verifier)), http.StatusFound)
}

func (a *RP) callback(w http.ResponseWriter, r *http.Request) {
	_, s := a.session(r)
	if s == nil || s.State == "" || r.URL.Query().Get("state") != s.State {
		http.Error(w, "login state mismatch: start again from the app's home page", http.StatusBadRequest)
		return
	}
	if e := r.URL.Query().Get("error"); e != "" {
		http.Error(w, "the bridge answered: "+e+": "+r.URL.Query().Get("error_description"), http.StatusBadRequest)
		return
	}
	ctx := oidc.ClientContext(r.Context(), a.cfg.HTTPClient)
	tok, err := a.oauth.Exchange(ctx, r.URL.Query().Get("code"), oauth2.VerifierOption(s.Verifier))
	if err != nil {
		http.Error(w, "code exchange failed: "+err.Error(), http.StatusBadGateway)
		return
	}
	raw, _ := tok.Extra("id_token").(string)
	idt, err := a.verifier.Verify(ctx, raw)
	if err != nil {
		http.Error(w, "ID token invalid: "+err.Error(), http.StatusBadGateway)
		return
	}
	var claims struct {
		SID   string `json:"sid"`
		Nonce string `json:"nonce"`
		Email string `json:"email"`
	}
	if err := idt.Claims(&claims); err != nil || claims.Nonce != s.Nonce || claims.SID == "" {
		http.Error(w, "ID token lacks the expected nonce or sid", http.StatusBadGateway)
		return
	}
	a.mu.Lock()
	s.Subject, s.SID, s.Email, s.IDToken, s.Token = idt.Subject, claims.SID, claims.Email, raw, tok
	s.State, s.Nonce, s.Verifier = "", "", ""
	a.mu.Unlock()
	http.Redirect(w, r, "/", http.StatusFound)
}

// logout starts RP-Initiated Logout 1.0 at the bridge's end_session_endpoint.
func (a *RP) logout(w http.ResponseWriter, r *http.Request) {
	id, s := a.session(r)
	var end struct {
		EndSession string `json:"end_session_endpoint"`
	}
	if err := a.provider.Claims(&end); err != nil || end.EndSession == "" {
		http.Error(w, "the bridge advertises no end_session_endpoint", http.StatusBadGateway)
		return
	}
	state := randomString()
	q := url.Values{"client_id": {a.cfg.ClientID}, "post_logout_redirect_uri": {a.cfg.BaseURL + "/logged-out"}, "state": {state}}
	a.mu.Lock()
	if s != nil {
		if s.IDToken != "" {
			q.Set("id_token_hint", s.IDToken)
		}
		if s.Subject != "" && s.EndedBy == "" {
			s.EndedBy, s.IDToken = EndedByRP, ""
		} else {
			delete(a.sessions, id)
		}
	}
	a.sessions["logout:"+state] = &rpSession{}
	a.mu.Unlock()
	http.Redirect(w, r, end.EndSession+"?"+q.Encode(), http.StatusFound)
}

func (a *RP) loggedOut(w http.ResponseWriter, r *http.Request) {
	state := r.URL.Query().Get("state")
	a.mu.Lock()
	_, ok := a.sessions["logout:"+state]
	delete(a.sessions, "logout:"+state)
	a.mu.Unlock()
	if !ok {
		http.Error(w, "unexpected logout state", http.StatusBadRequest)
		return
	}
	http.Redirect(w, r, "/?logged_out=1", http.StatusFound)
}

// backchannelLogout receives an OIDC Back-Channel Logout 1.0 logout token.
func (a *RP) backchannelLogout(w http.ResponseWriter, r *http.Request) {
	w.Header().Set("Cache-Control", "no-store")
	raw := r.PostFormValue("logout_token")
	if raw == "" || checkTyp(raw, "logout+jwt") != nil {
		http.Error(w, `{"error":"invalid_request"}`, http.StatusBadRequest)
		return
	}
	lt, err := a.verifier.VerifyLogout(r.Context(), raw)
	if err != nil {
		a.log.Warn("logout token refused", "err", err)
		http.Error(w, `{"error":"invalid_request"}`, http.StatusBadRequest)
		return
	}
	a.mu.Lock()
	if _, seen := a.seenJTI[lt.TokenID]; !seen {
		a.seenJTI[lt.TokenID] = lt.Expiry
	}
	n := a.dropLocked(lt.SessionID, lt.Subject, EndedByBackChannel)
	a.mu.Unlock()
	a.log.Info("back-channel logout", "sid", lt.SessionID, "ended", n)
	w.WriteHeader(http.StatusOK)
}

// frontchannelLogout is loaded in an iframe by the bridge's logout page
// (Front-Channel Logout 1.0 §3): iss must be the bridge, sid names the
// session.
func (a *RP) frontchannelLogout(w http.ResponseWriter, r *http.Request) {
	w.Header().Set("Cache-Control", "no-store")
	q := r.URL.Query()
	if q.Get("iss") != a.cfg.Issuer || q.Get("sid") == "" {
		http.Error(w, "wrong or missing iss/sid", http.StatusBadRequest)
		return
	}
	a.mu.Lock()
	n := a.dropLocked(q.Get("sid"), "", EndedByFrontChannel)
	a.mu.Unlock()
	a.log.Info("front-channel logout", "sid", q.Get("sid"), "ended", n)
	io.WriteString(w, "<!doctype html><title>logged out</title><p>"+template.HTMLEscapeString(a.cfg.Name)+": logged out</p>")
}

// dropLocked ends every app session of the bridge session sid (or, when
// sid is empty, of the subject), saying how.
func (a *RP) dropLocked(sid, sub, how string) int {
	n := 0
	for _, s := range a.sessions {
		if s.Subject == "" || s.EndedBy != "" {
			continue
		}
		if (sid != "" && s.SID == sid) || (sid == "" && sub != "" && s.Subject == sub) {
			s.EndedBy, s.IDToken = how, ""
			n++
		}
	}
	return n
}

// checkSession asks the bridge's userinfo endpoint whether the login's
// access token still works, as an app does that cannot be told about a
// logout without the user's browser (front-channel only) when the logout
// happened elsewhere (an operator, the upstream IdP). It reports false
// only when the bridge answered 401.
func (a *RP) checkSession(ctx context.Context, token string) bool {
	var ep struct {
		Userinfo string `json:"userinfo_endpoint"`
	}
	if err := a.provider.Claims(&ep); err != nil || ep.Userinfo == "" {
		return true
	}
	ctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, ep.Userinfo, nil)
	if err != nil {
		return true
	}
	req.Header.Set("Authorization", "Bearer "+token)
	resp, err := a.cfg.HTTPClient.Do(req)
	if err != nil {
		return true
	}
	_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 64<<10))
	resp.Body.Close()
	return resp.StatusCode != http.StatusUnauthorized
}

func checkTyp(raw, want string) error {
	jws, err := jose.ParseSigned(raw, []jose.SignatureAlgorithm{jose.RS256, jose.ES256})
	if err != nil {
		return err
	}
	typ, _ := jws.Signatures[0].Protected.ExtraHeaders[jose.HeaderType].(string)
	if !strings.EqualFold(typ, want) && !strings.EqualFold(typ, "application/"+want) {
		return fmt.Errorf("typ %q, want %q", typ, want)
	}
	return nil
}
