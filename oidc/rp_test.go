package oidc

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"net/url"
	"sync"
	"testing"
	"time"

	gooidc "github.com/coreos/go-oidc/v3/oidc"
	jose "github.com/go-jose/go-jose/v4"
	"golang.org/x/oauth2"
)

// rpLogin is what a relying party learned from one completed code flow.
type rpLogin struct {
	Subject      string
	SID          string
	Nonce        string
	AuthTime     time.Time
	RawIDToken   string
	AccessToken  string
	RefreshToken string
}

// rpLogout is one back-channel logout token an RP accepted.
type rpLogout struct {
	Typ   string
	Alg   string
	Token *gooidc.LogoutToken
}

// rpConfig describes a test relying party: how it registers at the bridge.
type rpConfig struct {
	Name         string
	AuthMethod   string // token_endpoint_auth_method
	Alg          string // id_token_signed_response_alg, "" for the default
	BackChannel  bool
	FrontChannel bool
}

// testRP is a relying party written the way a real Go application would be:
// golang.org/x/oauth2 for the code flow with PKCE and go-oidc for discovery
// and ID token / logout token verification. It runs on its own 127.0.0.1
// listener and registers itself at the bridge through RFC 7591 dynamic
// registration.
type testRP struct {
	tb       testing.TB
	cfg      rpConfig
	srv      *httptest.Server
	issuer   string
	clientID string
	oauth    *oauth2.Config
	provider *gooidc.Provider
	verifier *gooidc.IDTokenVerifier
	endSess  string

	mu       sync.Mutex
	pending  map[string]rpPending // state → what the callback must check
	sessions map[string]rpLogin   // RP session cookie → login

	logins      chan rpLogin
	loginErrors chan url.Values
	backLogouts chan rpLogout
	backErrors  chan error
	frontHits   chan url.Values
	afterLogout chan url.Values
}

type rpPending struct {
	Verifier string
	Nonce    string
}

// newRP starts an RP, registers it at the bridge and discovers the bridge
// with go-oidc.
func newRP(tb testing.TB, b *bridge, cfg rpConfig) *testRP {
	tb.Helper()
	rp := &testRP{
		tb: tb, cfg: cfg, issuer: b.p.Issuer(),
		pending: map[string]rpPending{}, sessions: map[string]rpLogin{},
		logins: make(chan rpLogin, 16), loginErrors: make(chan url.Values, 16),
		backLogouts: make(chan rpLogout, 16), backErrors: make(chan error, 16),
		frontHits: make(chan url.Values, 16), afterLogout: make(chan url.Values, 16),
	}
	mux := http.NewServeMux()
	mux.HandleFunc("GET /login", rp.handleLogin)
	mux.HandleFunc("GET /callback", rp.handleCallback)
	mux.HandleFunc("POST /backchannel", rp.handleBackChannel)
	mux.HandleFunc("GET /frontchannel", rp.handleFrontChannel)
	mux.HandleFunc("GET /logout", rp.handleLogout)
	mux.HandleFunc("GET /after-logout", rp.handleAfterLogout)
	rp.srv = httptest.NewServer(mux)
	tb.Cleanup(rp.srv.Close)

	md := ClientMetadata{
		ClientName:               cfg.Name,
		RedirectURIs:             []string{rp.url("/callback")},
		PostLogoutRedirectURIs:   []string{rp.url("/after-logout")},
		TokenEndpointAuthMethod:  cfg.AuthMethod,
		IDTokenSignedResponseAlg: cfg.Alg,
	}
	if cfg.BackChannel {
		md.BackchannelLogoutURI = rp.url("/backchannel")
		md.BackchannelLogoutSessionRequired = true
	}
	if cfg.FrontChannel {
		md.FrontchannelLogoutURI = rp.url("/frontchannel")
		md.FrontchannelLogoutSessionRequired = true
	}
	reg := registerHTTP(tb, b, md)
	rp.clientID = reg.ClientID

	ctx := context.Background()
	prov, err := gooidc.NewProvider(ctx, rp.issuer)
	if err != nil {
		tb.Fatalf("%s: discover the bridge: %v", cfg.Name, err)
	}
	var meta struct {
		EndSession string `json:"end_session_endpoint"`
	}
	if err := prov.Claims(&meta); err != nil || meta.EndSession == "" {
		tb.Fatalf("%s: discovery has no end_session_endpoint (%v)", cfg.Name, err)
	}
	rp.provider, rp.endSess = prov, meta.EndSession
	vc := &gooidc.Config{ClientID: rp.clientID}
	if cfg.Alg != "" {
		vc.SupportedSigningAlgs = []string{cfg.Alg}
	}
	rp.verifier = prov.Verifier(vc)
	ep := prov.Endpoint()
	switch cfg.AuthMethod {
	case AuthSecretPost, AuthNone:
		ep.AuthStyle = oauth2.AuthStyleInParams
	default:
		ep.AuthStyle = oauth2.AuthStyleInHeader
	}
	rp.oauth = &oauth2.Config{
		ClientID: rp.clientID, ClientSecret: reg.ClientSecret, Endpoint: ep,
		RedirectURL: rp.url("/callback"), Scopes: []string{gooidc.ScopeOpenID, "email", "profile"},
	}
	return rp
}

// registerHTTP registers a client through the HTTP registration endpoint
// with the initial access token, as an operator's tooling would.
func registerHTTP(tb testing.TB, b *bridge, md ClientMetadata) RegistrationResponse {
	tb.Helper()
	body, err := json.Marshal(md)
	if err != nil {
		tb.Fatal(err)
	}
	req, err := http.NewRequest(http.MethodPost, b.p.Issuer()+PathRegister, bytes.NewReader(body))
	if err != nil {
		tb.Fatal(err)
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Authorization", "Bearer "+testIAT)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		tb.Fatalf("register: %v", err)
	}
	defer resp.Body.Close()
	var reg RegistrationResponse
	if err := json.NewDecoder(resp.Body).Decode(&reg); err != nil {
		tb.Fatalf("register: decode response: %v", err)
	}
	if resp.StatusCode != http.StatusCreated || reg.ClientID == "" {
		tb.Fatalf("register: HTTP %d, client_id %q", resp.StatusCode, reg.ClientID)
	}
	return reg
}

func (rp *testRP) url(path string) string { return rp.srv.URL + path }

func (rp *testRP) cookie(kind string) string { return "rp_" + rp.clientID[:8] + "_" + kind }

func randomString(tb testing.TB) string {
	b := make([]byte, 18)
	if _, err := rand.Read(b); err != nil {
		tb.Fatal(err)
	}
	return base64.RawURLEncoding.EncodeToString(b)
}

// handleLogin starts the code flow: state and nonce bound to the browser by
// a cookie, a fresh PKCE verifier kept server-side. Query parameters extra
// to the flow (prompt, max_age) are passed through.
func (rp *testRP) handleLogin(w http.ResponseWriter, r *http.Request) {
	state, nonce, verifier := randomString(rp.tb), randomString(rp.tb), oauth2.GenerateVerifier()
	rp.mu.Lock()
	rp.pending[state] = rpPending{Verifier: verifier, Nonce: nonce}
	rp.mu.Unlock()
	http.SetCookie(w, &http.Cookie{Name: rp.cookie("state"), Value: state, Path: "/", HttpOnly: true, SameSite: http.SameSiteLaxMode})
	opts := []oauth2.AuthCodeOption{gooidc.Nonce(nonce), oauth2.S256ChallengeOption(verifier)}
	for _, k := range []string{"prompt", "max_age"} {
		if v := r.URL.Query().Get(k); v != "" {
			opts = append(opts, oauth2.SetAuthURLParam(k, v))
		}
	}
	http.Redirect(w, r, rp.oauth.AuthCodeURL(state, opts...), http.StatusFound)
}

// handleCallback finishes the code flow the way a careful RP does: state
// from its cookie, iss of the authorization response (RFC 9207), the code
// exchanged with the PKCE verifier, the ID token verified with go-oidc
// (signature, iss, aud, exp), its nonce and at_hash checked, sid present.
func (rp *testRP) handleCallback(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	fail := func(status int, format string, args ...any) {
		rp.loginErrors <- q
		http.Error(w, fmt.Sprintf(format, args...), status)
	}
	ck, err := r.Cookie(rp.cookie("state"))
	if err != nil || ck.Value != q.Get("state") {
		fail(http.StatusBadRequest, "state mismatch")
		return
	}
	rp.mu.Lock()
	pend, ok := rp.pending[ck.Value]
	delete(rp.pending, ck.Value)
	rp.mu.Unlock()
	if !ok {
		fail(http.StatusBadRequest, "unknown state")
		return
	}
	if q.Get("iss") != rp.issuer {
		fail(http.StatusBadRequest, "iss %q is not the bridge", q.Get("iss"))
		return
	}
	if q.Get("error") != "" {
		fail(http.StatusBadRequest, "authorization error %s", q.Get("error"))
		return
	}
	ctx := r.Context()
	tok, err := rp.oauth.Exchange(ctx, q.Get("code"), oauth2.VerifierOption(pend.Verifier))
	if err != nil {
		fail(http.StatusBadGateway, "exchange: %v", err)
		return
	}
	raw, _ := tok.Extra("id_token").(string)
	idt, err := rp.verifier.Verify(ctx, raw)
	if err != nil {
		fail(http.StatusBadGateway, "verify ID token: %v", err)
		return
	}
	if idt.Nonce != pend.Nonce {
		fail(http.StatusBadGateway, "nonce mismatch")
		return
	}
	if err := idt.VerifyAccessToken(tok.AccessToken); err != nil {
		fail(http.StatusBadGateway, "at_hash: %v", err)
		return
	}
	var claims struct {
		SID      string `json:"sid"`
		AuthTime int64  `json:"auth_time"`
	}
	if err := idt.Claims(&claims); err != nil || claims.SID == "" || claims.AuthTime == 0 {
		fail(http.StatusBadGateway, "ID token lacks sid or auth_time (%v)", err)
		return
	}
	login := rpLogin{
		Subject: idt.Subject, SID: claims.SID, Nonce: idt.Nonce, AuthTime: time.Unix(claims.AuthTime, 0),
		RawIDToken: raw, AccessToken: tok.AccessToken, RefreshToken: tok.RefreshToken,
	}
	sess := randomString(rp.tb)
	rp.mu.Lock()
	rp.sessions[sess] = login
	rp.mu.Unlock()
	http.SetCookie(w, &http.Cookie{Name: rp.cookie("session"), Value: sess, Path: "/", HttpOnly: true, SameSite: http.SameSiteLaxMode})
	rp.logins <- login
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	fmt.Fprintf(w, "<!doctype html><title>%s</title><h1 id=\"user\">signed in to %s</h1>", rp.cfg.Name, rp.cfg.Name)
}

// handleBackChannel receives a logout token (Back-Channel Logout 1.0
// §2.5–§2.8): explicit typ logout+jwt, then go-oidc's VerifyLogout.
func (rp *testRP) handleBackChannel(w http.ResponseWriter, r *http.Request) {
	w.Header().Set("Cache-Control", "no-store")
	raw := r.PostFormValue("logout_token")
	jws, err := jose.ParseSigned(raw, []jose.SignatureAlgorithm{jose.RS256, jose.ES256, jose.PS256, jose.EdDSA})
	if err != nil || len(jws.Signatures) != 1 {
		rp.backErrors <- fmt.Errorf("parse logout token: %v", err)
		http.Error(w, `{"error":"invalid_request"}`, http.StatusBadRequest)
		return
	}
	typ, _ := jws.Signatures[0].Header.ExtraHeaders[jose.HeaderType].(string)
	if typ != "logout+jwt" {
		rp.backErrors <- fmt.Errorf("logout token typ %q", typ)
		http.Error(w, `{"error":"invalid_request"}`, http.StatusBadRequest)
		return
	}
	lt, err := rp.verifier.VerifyLogout(r.Context(), raw)
	if err != nil {
		rp.backErrors <- err
		http.Error(w, `{"error":"invalid_request"}`, http.StatusBadRequest)
		return
	}
	rp.backLogouts <- rpLogout{Typ: typ, Alg: jws.Signatures[0].Header.Algorithm, Token: lt}
	w.WriteHeader(http.StatusOK)
}

// handleFrontChannel is the frontchannel_logout_uri (Front-Channel Logout
// 1.0 §2): it records iss and sid and answers uncacheable.
func (rp *testRP) handleFrontChannel(w http.ResponseWriter, r *http.Request) {
	rp.frontHits <- r.URL.Query()
	w.Header().Set("Cache-Control", "no-cache, no-store")
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	fmt.Fprint(w, "<!doctype html><title>front-channel logout</title>")
}

// handleLogout starts RP-Initiated Logout with id_token_hint,
// post_logout_redirect_uri and state.
func (rp *testRP) handleLogout(w http.ResponseWriter, r *http.Request) {
	ck, err := r.Cookie(rp.cookie("session"))
	rp.mu.Lock()
	login, ok := rp.sessions[cookieValue(ck, err)]
	rp.mu.Unlock()
	if !ok {
		http.Error(w, "not signed in", http.StatusUnauthorized)
		return
	}
	q := url.Values{
		"id_token_hint":            {login.RawIDToken},
		"post_logout_redirect_uri": {rp.url("/after-logout")},
		"state":                    {r.URL.Query().Get("state")},
	}
	http.Redirect(w, r, rp.endSess+"?"+q.Encode(), http.StatusFound)
}

func cookieValue(c *http.Cookie, err error) string {
	if err != nil {
		return ""
	}
	return c.Value
}

func (rp *testRP) handleAfterLogout(w http.ResponseWriter, r *http.Request) {
	rp.afterLogout <- r.URL.Query()
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	fmt.Fprint(w, "<!doctype html><title>logged out</title><h1 id=\"bye\">logged out</h1>")
}

// receive waits for one value on ch.
func receive[T any](tb testing.TB, what string, ch <-chan T) T {
	tb.Helper()
	select {
	case v := <-ch:
		return v
	case <-time.After(15 * time.Second):
		tb.Fatalf("timed out waiting for %s", what)
		panic("unreachable")
	}
}
