package resource

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	jose "github.com/go-jose/go-jose/v4"

	"github.com/slobridge/slobridge/oidc/ssf"
	"github.com/slobridge/slobridge/store"
)

// signKid signs claims as k with the JOSE header kid.
func signKid(t *testing.T, k keyPair, kid, typ string, claims any) string {
	t.Helper()
	sig, err := jose.NewSigner(jose.SigningKey{Algorithm: jose.RS256, Key: k.key},
		(&jose.SignerOptions{}).WithType(jose.ContentType(typ)).WithHeader("kid", kid))
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

// TestForgedTokensDoNotDriveJWKSDownloads: anonymous callers of a
// resource server cannot make the guard download the bridge's JWKS at
// will. 120 tokens naming unknown kids and 120 with a known kid but a bad
// signature cause no download within the refresh interval; once it has
// passed, an unknown kid (a rotated bridge key) causes exactly one, after
// which the new key verifies.
func TestForgedTokensDoNotDriveJWKSDownloads(t *testing.T) {
	k1, k2, evil := newKey(t), newKey(t), newKey(t)
	var hits atomic.Int32
	var rotated atomic.Bool
	jwks := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		hits.Add(1)
		keys := []jose.JSONWebKey{{Key: &k1.key.PublicKey, KeyID: "k1", Algorithm: "RS256", Use: "sig"}}
		if rotated.Load() {
			keys = append(keys, jose.JSONWebKey{Key: &k2.key.PublicKey, KeyID: "k2", Algorithm: "RS256", Use: "sig"})
		}
		w.Header().Set("Content-Type", "application/json")
		_ = json.NewEncoder(w).Encode(jose.JSONWebKeySet{Keys: keys})
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
	claims := func(sid string) map[string]any {
		return map[string]any{"iss": issuer, "aud": audience, "sub": "alice", "client_id": "app", "sid": sid,
			"jti": "at-" + sid, "iat": now().Unix(), "exp": now().Add(5 * time.Minute).Unix()}
	}
	if code, _ := get(t, srv, signKid(t, k1, "k1", AccessTokenType, claims("ok"))); code != http.StatusOK {
		t.Fatalf("genuine token: HTTP %d", code)
	}
	if n := hits.Load(); n != 1 {
		t.Fatalf("%d JWKS downloads for the first token, want 1", n)
	}
	for i := range 120 {
		if code, _ := get(t, srv, signKid(t, evil, fmt.Sprintf("evil-%d", i), AccessTokenType, claims("x"))); code != http.StatusUnauthorized {
			t.Fatalf("forged token with an unknown kid: HTTP %d", code)
		}
		if code, _ := get(t, srv, signKid(t, evil, "k1", AccessTokenType, claims(fmt.Sprint("y", i)))); code != http.StatusUnauthorized {
			t.Fatalf("forged token with the known kid: HTTP %d", code)
		}
	}
	set := ssf.NewSessionRevoked(issuer, []string{audience}, "d-1", store.Session{ID: "s1", UserID: "u"}, store.Logout{ID: "lo"}, now())
	if code, body := push(t, srv, signKid(t, evil, "evil-set", ssf.TokenType, set)); code != http.StatusBadRequest || body["err"] != "invalid_key" {
		t.Fatalf("forged SET: HTTP %d %v", code, body)
	}
	if n := hits.Load(); n != 1 {
		t.Fatalf("%d JWKS downloads after 241 forgeries, want still 1", n)
	}
	// The bridge rotates its key; after the refresh interval one token
	// with the new kid causes one download and verifies.
	rotated.Store(true)
	mu.Lock()
	clk = clk.Add(DefaultJWKSRefresh)
	mu.Unlock()
	for range 5 {
		if code, _ := get(t, srv, signKid(t, k2, "k2", AccessTokenType, claims("rotated"))); code != http.StatusOK {
			t.Fatalf("token signed with the rotated key: HTTP %d", code)
		}
	}
	if n := hits.Load(); n != 2 {
		t.Fatalf("%d JWKS downloads after the rotation, want 2", n)
	}
}

// TestSETReplayRefused: a pushed SET is applied once. Pushed again within
// the replay window it is acknowledged (the bridge retries with the same
// jti after a lost acknowledgement) and not applied; once the window has
// passed it is refused, and the session it names, forgotten by then, is
// not ended again.
func TestSETReplayRefused(t *testing.T) {
	k := newKey(t)
	var mu sync.Mutex
	clk := time.Now()
	now := func() time.Time { mu.Lock(); defer mu.Unlock(); return clk }
	g := newGuard(t, k, now, nil)
	srv := api(t, g)
	set := k.sign(t, ssf.TokenType, ssf.NewSessionRevoked(issuer, []string{audience}, "d-1", store.Session{ID: "s1", UserID: "u"}, store.Logout{ID: "lo"}, now()))
	if code, body := push(t, srv, set); code != http.StatusAccepted || !g.Ended("s1") {
		t.Fatalf("first push: HTTP %d %v", code, body)
	}
	g.mu.Lock()
	before := g.ended["s1"]
	g.mu.Unlock()
	mu.Lock()
	clk = clk.Add(time.Minute)
	mu.Unlock()
	if code, body := push(t, srv, set); code != http.StatusAccepted {
		t.Fatalf("retry within the window: HTTP %d %v, want 202", code, body)
	}
	g.mu.Lock()
	after := g.ended["s1"]
	g.mu.Unlock()
	if !after.Equal(before) {
		t.Fatal("the replayed SET was applied again")
	}
	mu.Lock()
	clk = clk.Add(2 * time.Hour)
	mu.Unlock()
	if g.Ended("s1") {
		t.Fatal("the ended session was not forgotten after EndedTTL")
	}
	if code, body := push(t, srv, set); code != http.StatusBadRequest || body["err"] != "invalid_request" || g.Ended("s1") {
		t.Fatalf("replay after the window: HTTP %d %v, session ended %v; want 400 invalid_request", code, body, g.Ended("s1"))
	}
}
