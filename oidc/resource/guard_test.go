package resource

import (
	"context"
	"crypto"
	"crypto/rand"
	"crypto/rsa"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/coreos/go-oidc/v3/oidc"
	jose "github.com/go-jose/go-jose/v4"

	"github.com/slobridge/slobridge/oidc/ssf"
	"github.com/slobridge/slobridge/store"
)

const (
	issuer   = "https://bridge.test"
	audience = "https://api.test"
)

type keyPair struct {
	key *rsa.PrivateKey
}

func newKey(t testing.TB) keyPair {
	t.Helper()
	k, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	return keyPair{k}
}

func (k keyPair) sign(t testing.TB, typ string, claims any) string {
	t.Helper()
	sig, err := jose.NewSigner(jose.SigningKey{Algorithm: jose.RS256, Key: k.key},
		(&jose.SignerOptions{}).WithType(jose.ContentType(typ)))
	if err != nil {
		t.Fatal(err)
	}
	b, _ := json.Marshal(claims)
	jws, err := sig.Sign(b)
	if err != nil {
		t.Fatal(err)
	}
	s, err := jws.CompactSerialize()
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func (k keyPair) SignJWT(_ context.Context, typ string, claims any) (string, error) {
	sig, err := jose.NewSigner(jose.SigningKey{Algorithm: jose.RS256, Key: k.key},
		(&jose.SignerOptions{}).WithType(jose.ContentType(typ)))
	if err != nil {
		return "", err
	}
	b, _ := json.Marshal(claims)
	jws, err := sig.Sign(b)
	if err != nil {
		return "", err
	}
	return jws.CompactSerialize()
}

func accessToken(t *testing.T, k keyPair, sid string, iat time.Time, mutate func(map[string]any)) string {
	c := map[string]any{
		"iss": issuer, "aud": audience, "sub": "alice", "client_id": "app", "sid": sid,
		"scope": "openid api", "jti": "at-" + sid, "iat": iat.Unix(), "exp": iat.Add(5 * time.Minute).Unix(),
	}
	if mutate != nil {
		mutate(c)
	}
	return k.sign(t, AccessTokenType, c)
}

// api starts a resource server on 127.0.0.1 protected by the guard, with
// the push endpoint mounted at /events.
func api(t *testing.T, g *Guard) *httptest.Server {
	t.Helper()
	mux := http.NewServeMux()
	mux.Handle("/data", g.Middleware(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		tok, ok := TokenFromContext(r.Context())
		if !ok {
			t.Error("no token in context")
		}
		io.WriteString(w, "hello "+tok.Subject)
	})))
	mux.Handle("/events", g.EventHandler())
	srv := httptest.NewServer(mux)
	t.Cleanup(srv.Close)
	return srv
}

func get(t *testing.T, srv *httptest.Server, tok string) (int, string) {
	t.Helper()
	req, _ := http.NewRequest(http.MethodGet, srv.URL+"/data", nil)
	if tok != "" {
		req.Header.Set("Authorization", "Bearer "+tok)
	}
	resp, err := srv.Client().Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	return resp.StatusCode, resp.Header.Get("WWW-Authenticate")
}

func push(t *testing.T, srv *httptest.Server, set string) (int, map[string]string) {
	t.Helper()
	req, _ := http.NewRequest(http.MethodPost, srv.URL+"/events", strings.NewReader(set))
	req.Header.Set("Content-Type", ssf.ContentType)
	resp, err := srv.Client().Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var body map[string]string
	_ = json.NewDecoder(resp.Body).Decode(&body)
	return resp.StatusCode, body
}

func newGuard(t testing.TB, k keyPair, now func() time.Time, in *Introspector) *Guard {
	t.Helper()
	g, err := New(context.Background(), Options{
		Issuer: issuer, Audience: audience, Now: now, Introspection: in,
		KeySet: &oidc.StaticKeySet{PublicKeys: []crypto.PublicKey{&k.key.PublicKey}},
	})
	if err != nil {
		t.Fatal(err)
	}
	return g
}

func TestGuardRejectsTokenAfterSessionRevokedEvent(t *testing.T) {
	k := newKey(t)
	start := time.Now()
	g := newGuard(t, k, time.Now, nil)
	srv := api(t, g)
	tok := accessToken(t, k, "sid-1", start.Add(time.Second), nil)
	other := accessToken(t, k, "sid-2", start.Add(time.Second), nil)

	if code, _ := get(t, srv, tok); code != http.StatusOK {
		t.Fatalf("fresh token: status %d, want 200", code)
	}
	set, _ := k.SignJWT(context.Background(), ssf.TokenType, ssf.NewSessionRevoked(issuer, []string{audience}, "d-1",
		store.Session{ID: "sid-1", UserID: "alice"}, store.Logout{Initiator: store.Initiator{Kind: store.InitiatorUser}}, time.Now()))
	if code, body := push(t, srv, set); code != http.StatusAccepted {
		t.Fatalf("push: status %d %v, want 202", code, body)
	}
	code, hdr := get(t, srv, tok)
	if code != http.StatusUnauthorized || !strings.Contains(hdr, `error="invalid_token"`) {
		t.Fatalf("token of ended session: status %d, WWW-Authenticate %q; want 401 invalid_token", code, hdr)
	}
	if code, _ := get(t, srv, other); code != http.StatusOK {
		t.Fatalf("token of another session: status %d, want 200", code)
	}
}

func TestGuardRejectsBadTokens(t *testing.T) {
	k := newKey(t)
	other := newKey(t)
	g := newGuard(t, k, time.Now, nil)
	srv := api(t, g)
	now := time.Now()
	tests := []struct {
		name    string
		tok     string
		wantErr bool // an error code in WWW-Authenticate (absent for a missing token)
	}{
		{"no token", "", false},
		{"id token typ", k.sign(t, "JWT", map[string]any{"iss": issuer, "aud": audience, "sub": "a", "sid": "s", "exp": now.Add(time.Minute).Unix(), "iat": now.Unix()}), true},
		{"signed by another key", accessToken(t, other, "s", now, nil), true},
		{"other issuer", accessToken(t, k, "s", now, func(c map[string]any) { c["iss"] = "https://evil.test" }), true},
		{"other audience", accessToken(t, k, "s", now, func(c map[string]any) { c["aud"] = "https://other-api.test" }), true},
		{"expired", accessToken(t, k, "s", now.Add(-time.Hour), nil), true},
		{"no sid", accessToken(t, k, "s", now, func(c map[string]any) { delete(c, "sid") }), true},
		{"garbage", "not.a.jwt", true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			code, hdr := get(t, srv, tt.tok)
			if code != http.StatusUnauthorized {
				t.Fatalf("status %d, want 401", code)
			}
			if got := strings.Contains(hdr, `error="invalid_token"`); got != tt.wantErr || !strings.HasPrefix(hdr, "Bearer") {
				t.Fatalf("WWW-Authenticate %q", hdr)
			}
		})
	}
}

func TestEventHandlerRefusesBadSETs(t *testing.T) {
	k := newKey(t)
	other := newKey(t)
	g := newGuard(t, k, time.Now, nil)
	srv := api(t, g)
	mk := func(signer keyPair, typ, iss, aud string) string {
		c := ssf.NewSessionRevoked(iss, []string{aud}, "d", store.Session{ID: "sid-x", UserID: "u"}, store.Logout{}, time.Now())
		return signer.sign(t, typ, c)
	}
	tests := []struct {
		name, set, wantErr string
	}{
		{"wrong key", mk(other, ssf.TokenType, issuer, audience), "invalid_key"},
		{"wrong typ", mk(k, "JWT", issuer, audience), "invalid_request"},
		{"wrong issuer", mk(k, ssf.TokenType, "https://evil.test", audience), "invalid_issuer"},
		{"wrong audience", mk(k, ssf.TokenType, issuer, "https://other.test"), "invalid_audience"},
		{"not a JWT", "garbage", "invalid_request"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			code, body := push(t, srv, tt.set)
			if code != http.StatusBadRequest || body["err"] != tt.wantErr {
				t.Fatalf("status %d body %v, want 400 %s", code, body, tt.wantErr)
			}
			if g.Ended("sid-x") {
				t.Fatal("a refused SET ended the session")
			}
		})
	}
}

func TestIntrospectionFallbackForTokensIssuedBeforeStart(t *testing.T) {
	k := newKey(t)
	var calls atomic.Int32
	active := map[string]bool{}
	isrv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		calls.Add(1)
		if u, p, ok := r.BasicAuth(); !ok || u != "api" || p != "secret" {
			w.WriteHeader(http.StatusUnauthorized)
			return
		}
		_ = r.ParseForm()
		json.NewEncoder(w).Encode(map[string]any{"active": active[r.PostForm.Get("token")]})
	}))
	defer isrv.Close()
	start := time.Now()
	old := accessToken(t, k, "sid-old", start.Add(-time.Minute), nil)
	oldLive := accessToken(t, k, "sid-live", start.Add(-time.Minute), nil)
	active[oldLive] = true
	g := newGuard(t, k, time.Now, &Introspector{URL: isrv.URL, ClientID: "api", ClientSecret: "secret"})
	srv := api(t, g)

	if code, _ := get(t, srv, old); code != http.StatusUnauthorized {
		t.Fatalf("token of a session that ended while we were down: status %d, want 401", code)
	}
	for range 3 {
		if code, _ := get(t, srv, oldLive); code != http.StatusOK {
			t.Fatalf("active old token: status %d, want 200", code)
		}
	}
	if n := calls.Load(); n != 2 {
		t.Fatalf("introspection calls = %d, want 2 (one per old token, then cached)", n)
	}
	fresh := accessToken(t, k, "sid-new", time.Now().Add(time.Second), nil)
	if code, _ := get(t, srv, fresh); code != http.StatusOK || calls.Load() != 2 {
		t.Fatalf("fresh token: status %d, calls %d; want 200 without introspection", code, calls.Load())
	}
}

func TestEndedSessionsExpire(t *testing.T) {
	k := newKey(t)
	now := time.Now()
	clock := func() time.Time { return now }
	g := newGuard(t, k, clock, nil)
	g.EndSession("s")
	if !g.Ended("s") {
		t.Fatal("session not ended")
	}
	now = now.Add(2 * time.Hour)
	if g.Ended("s") {
		t.Fatal("ended session remembered past EndedTTL")
	}
	if _, err := g.Verify(context.Background(), "x"); !errors.Is(err, ErrInvalidToken) {
		t.Fatalf("Verify(garbage) = %v", err)
	}
}

// TestGuardDiscoversJWKS shows that without KeySet or JWKSURL the guard
// reads jwks_uri from the issuer's discovery document, wherever the issuer
// serves its keys.
func TestGuardDiscoversJWKS(t *testing.T) {
	k := newKey(t)
	mux := http.NewServeMux()
	srv := httptest.NewServer(mux)
	t.Cleanup(srv.Close)
	mux.HandleFunc("/.well-known/openid-configuration", func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		json.NewEncoder(w).Encode(map[string]any{
			"issuer": srv.URL, "jwks_uri": srv.URL + "/oidc/jwks",
			"authorization_endpoint": srv.URL + "/authorize", "token_endpoint": srv.URL + "/token",
			"id_token_signing_alg_values_supported": []string{"RS256"},
		})
	})
	mux.HandleFunc("/oidc/jwks", func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		json.NewEncoder(w).Encode(jose.JSONWebKeySet{Keys: []jose.JSONWebKey{{Key: &k.key.PublicKey, KeyID: "k1", Algorithm: "RS256", Use: "sig"}}})
	})
	g, err := New(context.Background(), Options{Issuer: srv.URL, Audience: audience})
	if err != nil {
		t.Fatalf("New with discovery: %v", err)
	}
	tok := accessToken(t, k, "sid-d", time.Now(), func(c map[string]any) { c["iss"] = srv.URL })
	if _, err := g.Verify(context.Background(), tok); err != nil {
		t.Fatalf("token signed by the discovered key refused: %v", err)
	}
	if _, err := New(context.Background(), Options{Issuer: srv.URL + "/nowhere", Audience: audience}); err == nil {
		t.Fatal("New with an issuer that has no discovery document succeeded")
	}
}

// TestEventHandlerKeysUnavailable: when the bridge's JWKS cannot be
// fetched the push endpoint answers 503, which the bridge retries, not the
// 400 invalid_key that would make it drop the SET (RFC 8935 §2.4); once
// the JWKS is back the same SET is accepted, and a SET signed with
// another key is still refused with invalid_key.
func TestEventHandlerKeysUnavailable(t *testing.T) {
	k, other := newKey(t), newKey(t)
	var down atomic.Bool
	jwks := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if down.Load() {
			http.Error(w, "maintenance", http.StatusServiceUnavailable)
			return
		}
		w.Header().Set("Content-Type", "application/json")
		_ = json.NewEncoder(w).Encode(jose.JSONWebKeySet{Keys: []jose.JSONWebKey{{Key: &k.key.PublicKey, KeyID: "k1", Algorithm: "RS256", Use: "sig"}}})
	}))
	t.Cleanup(jwks.Close)
	var mu sync.Mutex
	clk := time.Now()
	now := func() time.Time { mu.Lock(); defer mu.Unlock(); return clk }
	g, err := New(context.Background(), Options{Issuer: issuer, Audience: audience, JWKSURL: jwks.URL, Now: now})
	if err != nil {
		t.Fatal(err)
	}
	srv := api(t, g)
	mk := func(signer keyPair, sid string) string {
		return signer.sign(t, ssf.TokenType, ssf.NewSessionRevoked(issuer, []string{audience}, "d-"+sid, store.Session{ID: sid, UserID: "u"}, store.Logout{ID: "lo"}, time.Now()))
	}
	tests := []struct {
		name       string
		down       bool
		set        string
		sid        string
		wantStatus int
		wantErr    string
	}{
		{"JWKS down", true, mk(k, "sid-a"), "sid-a", http.StatusServiceUnavailable, ""},
		{"JWKS back", false, mk(k, "sid-a"), "sid-a", http.StatusAccepted, ""},
		{"another key", false, mk(other, "sid-b"), "sid-b", http.StatusBadRequest, "invalid_key"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			down.Store(tc.down)
			mu.Lock()
			clk = clk.Add(failedRefresh) // past the wait after a failed download
			mu.Unlock()
			code, body := push(t, srv, tc.set)
			if code != tc.wantStatus || body["err"] != tc.wantErr {
				t.Fatalf("HTTP %d %v, want %d err %q", code, body, tc.wantStatus, tc.wantErr)
			}
			if ended := g.Ended(tc.sid); ended != (code == http.StatusAccepted) {
				t.Fatalf("session ended %v after HTTP %d", ended, code)
			}
		})
	}
}
