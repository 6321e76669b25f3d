package oidc

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"slices"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"golang.org/x/oauth2"

	"github.com/slobridge/slobridge"
	"github.com/slobridge/slobridge/oidc/resource"
	"github.com/slobridge/slobridge/oidc/ssf"
	"github.com/slobridge/slobridge/store"
)

// Fixed credentials of the test resource server and its push endpoint.
const (
	rsID       = "orders-api"
	rsSecret   = "orders-api-secret-0123456789"
	pushSecret = "Bearer push-credential-0123456789"
	// unusedCallback is the RP's redirect URI; nothing listens there: the
	// test stops the browser at the redirect and hands the code to the RP.
	unusedCallback = "http://127.0.0.1:9/callback"
)

// ssfAuth is the slobridge.Authenticator of these tests: it creates the
// bridge session through the engine, as the SAML upstream does after a
// valid assertion, and joins the registered event receivers to it, as the
// serve wiring does for every new session.
type ssfAuth struct {
	eng     *slobridge.Engine
	cookies slobridge.SessionCookies
	tx      *ssf.Transmitter
	user    string
}

func (a *ssfAuth) StartLogin(w http.ResponseWriter, r *http.Request, returnTo string) error {
	s, err := a.createSession(r.Context())
	if err != nil {
		return err
	}
	a.cookies.Set(w, s.ID, s.ExpiresAt)
	http.Redirect(w, r, returnTo, http.StatusFound)
	return nil
}

func (a *ssfAuth) createSession(ctx context.Context) (store.Session, error) {
	now := a.eng.Now()
	s, err := a.eng.CreateSession(ctx, store.Session{
		UserID: a.user, AuthTime: now, ExpiresAt: now.Add(8 * time.Hour),
		Attributes: map[string][]string{"email": {a.user + "@example.com"}},
	})
	if err != nil {
		return store.Session{}, err
	}
	return s, a.tx.JoinSession(ctx, a.eng, s)
}

// lateSigner lets the SET pusher, registered before the provider exists,
// sign with the provider's keys.
type lateSigner struct{ p atomic.Pointer[Provider] }

func (s *lateSigner) SignJWT(ctx context.Context, typ string, claims any) (string, error) {
	return s.p.Load().SignJWT(ctx, typ, claims)
}

// tokenEnv is a bridge with a resource server that uses oidc/resource and
// is registered both as an introspecting resource server and as an event
// receiver, all on 127.0.0.1.
type tokenEnv struct {
	*bridge
	auth   *ssfAuth
	guard  *resource.Guard
	api    *httptest.Server
	events chan string // the sid of each session-revoked SET the API took
}

func newTokenEnv(tb testing.TB, opts ...bridgeOpt) *tokenEnv {
	tb.Helper()
	env := &tokenEnv{events: make(chan string, 1024)}
	signer := &lateSigner{}
	// The API must exist before the bridge (its push URL is registered),
	// and the guard needs the bridge's issuer: start the listener first.
	api := httptest.NewUnstartedServer(nil)
	opts = append([]bridgeOpt{func(o *Options) {
		o.ResourceServers = []ResourceServer{{ID: rsID, Name: "Orders API", Secret: rsSecret}}
		env.auth = &ssfAuth{eng: o.Engine, cookies: o.Cookies, user: "alice",
			tx: &ssf.Transmitter{Issuer: o.Issuer, JWKSURI: o.Issuer + PathJWKS, Store: o.Engine.Store()}}
		o.Authenticator = env.auth
		o.Engine.SetNotifier(ssf.Kind, &ssf.Pusher{
			Issuer: o.Issuer, Store: o.Engine.Store(), Signer: signer, Now: o.Now,
			Client: slobridge.NewBackChannelClient(slobridge.ClientOptions{AllowLoopback: true, AllowPrivate: true}),
		})
	}}, opts...)
	b := newBridge(tb, opts...)
	signer.p.Store(b.p)
	env.bridge = b
	iss := b.p.Issuer()
	// The access tokens' aud is the bridge's issuer (RFC 9068 §3: the
	// default resource), so the guard's audience is the issuer, and the
	// receiver's SETs are addressed to it.
	rcv := ssf.Receiver{ID: rsID, Name: "Orders API", PushURL: "http://" + api.Listener.Addr().String() + "/events",
		Audience: []string{iss}, Authorization: pushSecret}
	if err := ssf.PutReceiver(context.Background(), b.st, rcv, true, true, b.clock.Now()); err != nil {
		tb.Fatalf("register receiver: %v", err)
	}
	g, err := resource.New(context.Background(), resource.Options{
		Issuer: iss, Audience: iss, JWKSURL: iss + PathJWKS, PushAuthorization: pushSecret,
		Introspection: &resource.Introspector{URL: iss + PathIntrospect, ClientID: rsID, ClientSecret: rsSecret},
		Logger:        quietLogger(),
	})
	if err != nil {
		tb.Fatalf("guard: %v", err)
	}
	env.guard = g
	mux := http.NewServeMux()
	mux.Handle("GET /orders", g.Middleware(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		t, _ := resource.TokenFromContext(r.Context())
		io.WriteString(w, "orders of "+t.Subject)
	})))
	push := g.EventHandler()
	mux.Handle("POST /events", http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		rec := httptest.NewRecorder()
		push.ServeHTTP(rec, r)
		for k, v := range rec.Header() {
			w.Header()[k] = v
		}
		w.WriteHeader(rec.Code)
		_, _ = w.Write(rec.Body.Bytes())
		if rec.Code == http.StatusAccepted {
			env.events <- "accepted"
		}
	}))
	api.Config.Handler = mux
	api.Start()
	tb.Cleanup(api.Close)
	env.api = api
	return env
}

// waitEvent waits until the API has accepted one session-revoked SET.
func (env *tokenEnv) waitEvent(tb testing.TB) {
	tb.Helper()
	select {
	case <-env.events:
	case <-time.After(10 * time.Second):
		tb.Fatal("timed out waiting for the session-revoked SET at the API")
	}
}

// rpClient is a confidential relying party using golang.org/x/oauth2.
type rpClient struct {
	conf *oauth2.Config
	id   string
}

func (env *tokenEnv) newRPClient(tb testing.TB, name string) rpClient {
	tb.Helper()
	reg := env.register(tb, ClientMetadata{ClientName: name, RedirectURIs: []string{unusedCallback}})
	iss := env.p.Issuer()
	return rpClient{id: reg.ClientID, conf: &oauth2.Config{
		ClientID: reg.ClientID, ClientSecret: reg.ClientSecret, RedirectURL: unusedCallback,
		Scopes:   []string{"openid", "email"},
		Endpoint: oauth2.Endpoint{AuthURL: iss + PathAuthorize, TokenURL: iss + PathToken, AuthStyle: oauth2.AuthStyleInHeader},
	}}
}

// login runs the authorization code flow with PKCE in a browser with a
// cookie jar and returns the browser and the RP's tokens.
func (env *tokenEnv) login(tb testing.TB, rp rpClient) (*http.Client, *oauth2.Token) {
	tb.Helper()
	br := browser(tb)
	br.CheckRedirect = func(r *http.Request, _ []*http.Request) error {
		if strings.HasPrefix(r.URL.String(), unusedCallback) {
			return http.ErrUseLastResponse
		}
		return nil
	}
	verifier := oauth2.GenerateVerifier()
	resp, err := br.Get(rp.conf.AuthCodeURL("st-1", oauth2.S256ChallengeOption(verifier)))
	if err != nil {
		tb.Fatalf("authorize: %v", err)
	}
	resp.Body.Close()
	loc, err := url.Parse(resp.Header.Get("Location"))
	if err != nil || resp.StatusCode != http.StatusFound || loc.Query().Get("code") == "" {
		tb.Fatalf("authorize: HTTP %d to %q, want a redirect with a code", resp.StatusCode, resp.Header.Get("Location"))
	}
	tok, err := rp.conf.Exchange(context.Background(), loc.Query().Get("code"), oauth2.VerifierOption(verifier))
	if err != nil {
		tb.Fatalf("exchange: %v", err)
	}
	if tok.AccessToken == "" || tok.RefreshToken == "" {
		tb.Fatal("token response lacks an access or refresh token")
	}
	return br, tok
}

// callAPI calls the resource server with a bearer token.
func (env *tokenEnv) callAPI(tb testing.TB, tok string) (int, string) {
	tb.Helper()
	req, _ := http.NewRequest(http.MethodGet, env.api.URL+"/orders", nil)
	req.Header.Set("Authorization", "Bearer "+tok)
	resp, err := env.api.Client().Do(req)
	if err != nil {
		tb.Fatalf("call API: %v", err)
	}
	io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	return resp.StatusCode, resp.Header.Get("WWW-Authenticate")
}

// postToken POSTs form to one of the bridge's token endpoints with HTTP
// Basic credentials (none when id is "") and returns status, headers and
// the body decoded as JSON (nil for an empty body).
func (env *tokenEnv) postToken(tb testing.TB, path, id, secret string, form url.Values) (int, http.Header, map[string]any) {
	tb.Helper()
	req, _ := http.NewRequest(http.MethodPost, env.p.Issuer()+path, strings.NewReader(form.Encode()))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	if id != "" {
		req.SetBasicAuth(url.QueryEscape(id), url.QueryEscape(secret))
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		tb.Fatalf("POST %s: %v", path, err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	var m map[string]any
	if len(body) > 0 {
		if err := json.Unmarshal(body, &m); err != nil {
			tb.Fatalf("POST %s: body %q is not JSON", path, body)
		}
	}
	return resp.StatusCode, resp.Header, m
}

func (env *tokenEnv) introspect(tb testing.TB, id, secret, tok string) map[string]any {
	tb.Helper()
	code, _, m := env.postToken(tb, PathIntrospect, id, secret, url.Values{"token": {tok}})
	if code != http.StatusOK {
		tb.Fatalf("introspect: HTTP %d %v", code, m)
	}
	return m
}

// wantInactive checks the exact RFC 7662 §2.2 answer for an inactive
// token: {"active": false} and nothing else.
func wantInactive(tb testing.TB, what string, m map[string]any) {
	tb.Helper()
	if len(m) != 1 || m["active"] != false {
		tb.Fatalf("%s: introspection = %v, want exactly {\"active\": false}", what, m)
	}
}

// refreshErr refreshes with x/oauth2 and returns the OAuth error code, ""
// on success.
func refreshErr(tb testing.TB, rp rpClient, rt string) (string, *oauth2.Token) {
	tb.Helper()
	tok, err := rp.conf.TokenSource(context.Background(), &oauth2.Token{RefreshToken: rt}).Token()
	var re *oauth2.RetrieveError
	if errors.As(err, &re) {
		return re.ErrorCode, nil
	}
	if err != nil {
		tb.Fatalf("refresh: %v", err)
	}
	return "", tok
}

func sidOf(tb testing.TB, env *tokenEnv, at string) string {
	tb.Helper()
	c, ok := env.p.verifyAccessJWT(context.Background(), at)
	if !ok {
		tb.Fatal("the bridge does not verify its own access token")
	}
	return c.SID
}

func TestTokensDieWithTheSession(t *testing.T) {
	env := newTokenEnv(t)
	rp := env.newRPClient(t, "shop")
	br, tok := env.login(t, rp)
	sid := sidOf(t, env, tok.AccessToken)

	if code, _ := env.callAPI(t, tok.AccessToken); code != http.StatusOK {
		t.Fatalf("API before logout: HTTP %d, want 200", code)
	}
	for _, who := range []struct{ id, secret string }{{rp.id, rp.conf.ClientSecret}, {rsID, rsSecret}} {
		m := env.introspect(t, who.id, who.secret, tok.AccessToken)
		if m["active"] != true || m["sid"] != sid || m["sub"] != "alice" || m["client_id"] != rp.id ||
			m["scope"] != "openid email" || m["token_type"] != "Bearer" || m["iss"] != env.p.Issuer() ||
			m["exp"] == nil || m["iat"] == nil {
			t.Fatalf("introspection by %s before logout = %v", who.id, m)
		}
	}

	// The user logs out through RP-Initiated Logout (cookie + hint).
	idt, _ := tok.Extra("id_token").(string)
	q := url.Values{"id_token_hint": {idt}}
	resp, err := noFollow(br).Get(env.p.Issuer() + PathEndSession + "?" + q.Encode())
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusSeeOther {
		t.Fatalf("end-session: HTTP %d, want 303 to the logout page", resp.StatusCode)
	}
	env.waitEvent(t)

	code, hdr := env.callAPI(t, tok.AccessToken)
	if code != http.StatusUnauthorized || !strings.HasPrefix(hdr, "Bearer") || !strings.Contains(hdr, `error="invalid_token"`) {
		t.Fatalf("API after logout: HTTP %d, WWW-Authenticate %q; want 401 Bearer error=\"invalid_token\"", code, hdr)
	}
	wantInactive(t, "access token after logout (client)", env.introspect(t, rp.id, rp.conf.ClientSecret, tok.AccessToken))
	wantInactive(t, "access token after logout (resource server)", env.introspect(t, rsID, rsSecret, tok.AccessToken))
	wantInactive(t, "refresh token after logout", env.introspect(t, rp.id, rp.conf.ClientSecret, tok.RefreshToken))
	if ec, _ := refreshErr(t, rp, tok.RefreshToken); ec != ErrInvalidGrant {
		t.Fatalf("refresh after logout: error %q, want invalid_grant", ec)
	}
}

// TestRestartedResourceServerAsksIntrospection: a resource server that
// was down when the logout happened missed the SET; after its restart the
// guard asks the bridge's introspection endpoint (authenticating as a
// registered resource server) about tokens issued before it started.
func TestRestartedResourceServerAsksIntrospection(t *testing.T) {
	env := newTokenEnv(t)
	rp := env.newRPClient(t, "web")
	_, ended := env.login(t, rp)
	_, live := env.login(t, rp)
	lo, err := env.eng.Logout(context.Background(), slobridge.LogoutRequest{
		SessionIDs: []string{sidOf(t, env, ended.AccessToken)}, Initiator: store.Initiator{Kind: store.InitiatorAdmin}})
	if err != nil || len(lo.SessionIDs) != 1 {
		t.Fatalf("logout: %v %v", lo, err)
	}
	iss := env.p.Issuer()
	restarted, err := resource.New(context.Background(), resource.Options{
		Issuer: iss, Audience: iss, JWKSURL: iss + PathJWKS, Logger: quietLogger(),
		Introspection: &resource.Introspector{URL: iss + PathIntrospect, ClientID: rsID, ClientSecret: rsSecret},
	})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := restarted.Verify(context.Background(), ended.AccessToken); !errors.Is(err, resource.ErrSessionEnded) {
		t.Fatalf("token of a session ended while the API was down: %v, want ErrSessionEnded", err)
	}
	tok, err := restarted.Verify(context.Background(), live.AccessToken)
	if err != nil || tok.Subject != "alice" {
		t.Fatalf("live token after restart: %v %v", tok, err)
	}
}

func TestAccessTokenIsRFC9068(t *testing.T) {
	env := newTokenEnv(t, func(o *Options) {
		o.Clients = []StaticClient{{Secret: "static-client-secret-0123", AccessTokenTTL: 90 * time.Second,
			Metadata: ClientMetadata{ClientID: "short-lived", RedirectURIs: []string{unusedCallback}}}}
	})
	for _, tc := range []struct {
		name string
		rp   rpClient
		ttl  time.Duration
	}{
		{"default TTL", env.newRPClient(t, "default"), 5 * time.Minute},
		{"per-client TTL", rpClient{id: "short-lived", conf: &oauth2.Config{
			ClientID: "short-lived", ClientSecret: "static-client-secret-0123", RedirectURL: unusedCallback,
			Scopes:   []string{"openid"},
			Endpoint: oauth2.Endpoint{AuthURL: env.p.Issuer() + PathAuthorize, TokenURL: env.p.Issuer() + PathToken, AuthStyle: oauth2.AuthStyleInHeader},
		}}, 90 * time.Second},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, tok := env.login(t, tc.rp)
			hdr, claims := decodeJWT(t, tok.AccessToken)
			if hdr["typ"] != "at+jwt" {
				t.Errorf("typ = %v, want at+jwt", hdr["typ"])
			}
			for _, k := range []string{"iss", "sub", "aud", "client_id", "exp", "iat", "jti", "scope", "sid"} {
				if claims[k] == nil || claims[k] == "" {
					t.Errorf("claim %s missing in %v", k, claims)
				}
			}
			if claims["client_id"] != tc.rp.id || claims["iss"] != env.p.Issuer() {
				t.Errorf("client_id/iss = %v/%v", claims["client_id"], claims["iss"])
			}
			if life := time.Duration(claims["exp"].(float64)-claims["iat"].(float64)) * time.Second; life != tc.ttl {
				t.Errorf("exp - iat = %v, want %v", life, tc.ttl)
			}
			if got := time.Until(tok.Expiry); got > tc.ttl || got < tc.ttl-10*time.Second {
				t.Errorf("expires_in gives %v left, want %v", got, tc.ttl)
			}
		})
	}
}

// decodeJWT returns the JOSE header and claims of a compact JWS without
// verifying it (the bridge's verification is tested elsewhere).
func decodeJWT(tb testing.TB, raw string) (map[string]any, map[string]any) {
	tb.Helper()
	parts := strings.Split(raw, ".")
	if len(parts) != 3 {
		tb.Fatalf("not a compact JWS: %d parts", len(parts))
	}
	var out [2]map[string]any
	for i := range 2 {
		b, err := base64.RawURLEncoding.DecodeString(parts[i])
		if err != nil {
			tb.Fatal(err)
		}
		if err := json.Unmarshal(b, &out[i]); err != nil {
			tb.Fatal(err)
		}
	}
	return out[0], out[1]
}

// BenchmarkLogoutToRejection measures, over many logouts, the time from the
// start of an RP-Initiated Logout request (end-session with id_token_hint)
// to the first request the resource server rejects with 401, the session
// having reached it as a pushed session-revoked SET through the engine's
// outbox. The client polls the API with the token as fast as it can. It
// reports p50 and p99 in milliseconds.
func BenchmarkLogoutToRejection(b *testing.B) {
	env := newTokenEnv(b)
	rp := env.newRPClient(b, "bench")
	ctx := context.Background()
	cl, err := env.p.client(ctx, rp.id)
	if err != nil {
		b.Fatal(err)
	}
	hc := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: 4},
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	call := func(at string) int {
		req, _ := http.NewRequest(http.MethodGet, env.api.URL+"/orders", nil)
		req.Header.Set("Authorization", "Bearer "+at)
		resp, err := hc.Do(req)
		if err != nil {
			b.Fatal(err)
		}
		io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		return resp.StatusCode
	}
	lat := make([]time.Duration, 0, b.N)
	b.ResetTimer()
	for range b.N {
		b.StopTimer()
		s, err := env.auth.createSession(ctx)
		if err != nil {
			b.Fatal(err)
		}
		now := env.clock.Now()
		g := grant{ClientID: rp.id, SessionID: s.ID, UserID: s.UserID, Scope: "openid", AuthTime: s.AuthTime}
		at, _, err := env.p.mintAccessToken(ctx, g, now)
		if err != nil {
			b.Fatal(err)
		}
		idt, err := env.p.mintIDToken(ctx, cl, g, s, "", now)
		if err != nil {
			b.Fatal(err)
		}
		if code := call(at); code != http.StatusOK {
			b.Fatalf("API before logout: HTTP %d", code)
		}
		logout := env.p.Issuer() + PathEndSession + "?" + url.Values{"id_token_hint": {idt}}.Encode()
		b.StartTimer()

		start := time.Now()
		resp, err := hc.Get(logout)
		if err != nil {
			b.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusSeeOther {
			b.Fatalf("end-session: HTTP %d", resp.StatusCode)
		}
		for call(at) != http.StatusUnauthorized {
			if time.Since(start) > 10*time.Second {
				b.Fatal("the API still accepts the token 10 s after the logout")
			}
		}
		lat = append(lat, time.Since(start))
		for len(env.events) > 0 {
			<-env.events
		}
	}
	b.StopTimer()
	slices.Sort(lat)
	b.ReportMetric(float64(lat[len(lat)/2].Microseconds())/1e3, "p50-ms")
	b.ReportMetric(float64(lat[len(lat)*99/100].Microseconds())/1e3, "p99-ms")
	b.ReportMetric(float64(lat[len(lat)-1].Microseconds())/1e3, "max-ms")
}
