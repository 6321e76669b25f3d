package upstream

import (
	"crypto/rand"
	"crypto/rsa"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"

	jose "github.com/go-jose/go-jose/v4"
)

// fakeOP is a hand-written OpenID Provider whose ID tokens and UserInfo
// answers each test shapes, to show what the relying party refuses. Its
// authorization endpoint approves at once.
type fakeOP struct {
	srv *httptest.Server
	key *rsa.PrivateKey

	mu sync.Mutex
	// nonce is the last authorization request's.
	nonce string
	// idToken makes the claims of the ID token for that nonce.
	idToken func(nonce string) map[string]any
	// userinfo is the UserInfo answer; calls counts the requests.
	userinfo map[string]any
	calls    int
}

func newFakeOP(t *testing.T) *fakeOP {
	t.Helper()
	key, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	op := &fakeOP{key: key}
	mux := http.NewServeMux()
	op.srv = httptest.NewServer(mux)
	t.Cleanup(op.srv.Close)
	iss := op.srv.URL
	writeJSON := func(w http.ResponseWriter, v any) {
		w.Header().Set("Content-Type", "application/json")
		_ = json.NewEncoder(w).Encode(v)
	}
	mux.HandleFunc("GET /.well-known/openid-configuration", func(w http.ResponseWriter, r *http.Request) {
		writeJSON(w, map[string]any{"issuer": iss, "authorization_endpoint": iss + "/authorize", "token_endpoint": iss + "/token",
			"jwks_uri": iss + "/jwks", "userinfo_endpoint": iss + "/userinfo", "response_types_supported": []string{"code"},
			"subject_types_supported": []string{"public"}, "id_token_signing_alg_values_supported": []string{"RS256"}})
	})
	mux.HandleFunc("GET /jwks", func(w http.ResponseWriter, r *http.Request) {
		writeJSON(w, jose.JSONWebKeySet{Keys: []jose.JSONWebKey{{Key: &key.PublicKey, KeyID: "k1", Algorithm: "RS256", Use: "sig"}}})
	})
	mux.HandleFunc("GET /authorize", func(w http.ResponseWriter, r *http.Request) {
		q := r.URL.Query()
		op.mu.Lock()
		op.nonce = q.Get("nonce")
		op.mu.Unlock()
		back, _ := url.Parse(q.Get("redirect_uri"))
		back.RawQuery = url.Values{"code": {"code-1"}, "state": {q.Get("state")}}.Encode()
		http.Redirect(w, r, back.String(), http.StatusSeeOther)
	})
	mux.HandleFunc("POST /token", func(w http.ResponseWriter, r *http.Request) {
		op.mu.Lock()
		claims := op.idToken(op.nonce)
		op.mu.Unlock()
		writeJSON(w, map[string]any{"access_token": "at-1", "token_type": "Bearer", "expires_in": 300,
			"id_token": signed(t, key, "k1", jose.RS256, "JWT", claims)})
	})
	mux.HandleFunc("GET /userinfo", func(w http.ResponseWriter, r *http.Request) {
		op.mu.Lock()
		defer op.mu.Unlock()
		op.calls++
		if r.Header.Get("Authorization") != "Bearer at-1" {
			http.Error(w, "no token", http.StatusUnauthorized)
			return
		}
		writeJSON(w, op.userinfo)
	})
	return op
}

// TestIDTokenRefusals: ID tokens that are not for this login, or a
// UserInfo answer about someone else, end on an error page and make no
// session; UserInfo fills in the claims the ID token lacks, and never the
// protocol claims.
func TestIDTokenRefusals(t *testing.T) {
	op := newFakeOP(t)
	lo := startLower(t, op.srv.URL)
	good := func(nonce string) map[string]any {
		now := time.Now()
		return map[string]any{"iss": op.srv.URL, "aud": "lower-bridge", "sub": "alice", "nonce": nonce, "sid": "op-sid-1",
			"iat": now.Unix(), "exp": now.Add(5 * time.Minute).Unix(), "email": "alice@example.com"}
	}
	with := func(k string, v any) func(string) map[string]any {
		return func(nonce string) map[string]any {
			c := good(nonce)
			if v == nil {
				delete(c, k)
			} else {
				c[k] = v
			}
			return c
		}
	}
	tests := []struct {
		name     string
		idToken  func(string) map[string]any
		userinfo map[string]any
		status   int
		says     string
	}{
		{"wrong nonce", with("nonce", "another-login"), nil, 502, "not for this sign-in"},
		{"no nonce", with("nonce", nil), nil, 502, "not for this sign-in"},
		{"wrong aud", with("aud", "someone-else"), nil, 502, "ID token was not valid"},
		{"several audiences, no azp", with("aud", []string{"lower-bridge", "other"}), nil, 502, "not for this bridge"},
		{"azp of another client", with("azp", "other"), nil, 502, "not for this bridge"},
		{"expired", with("exp", time.Now().Add(-time.Hour).Unix()), nil, 502, "ID token was not valid"},
		{"wrong iss", with("iss", "https://evil.example"), nil, 502, "ID token was not valid"},
		{"userinfo about another subject", with("email", nil), map[string]any{"sub": "mallory", "email": "mallory@example.com"}, 502, "did not say who you are"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			op.mu.Lock()
			op.idToken, op.userinfo = tc.idToken, tc.userinfo
			op.mu.Unlock()
			final, code, body := get(t, browser(t), lo.srv.URL+"/start")
			if code != tc.status || !strings.Contains(body, tc.says) || final.Path == "/done" {
				t.Fatalf("ended at %s with %d: %s; want %d saying %q", final, code, body, tc.status, tc.says)
			}
			if n, err := lo.eng.Store().CountActiveSessions(t.Context(), time.Now()); err != nil || n != 0 {
				t.Fatalf("%d sessions (%v) after a refused login", n, err)
			}
		})
	}

	// An ID token without email: UserInfo supplies it (about the same
	// subject), but not a sid of its own.
	op.mu.Lock()
	op.idToken = with("email", nil)
	op.userinfo = map[string]any{"sub": "alice", "email": "alice@userinfo.example", "sid": "forged-sid", "name": "Alice"}
	op.calls = 0
	op.mu.Unlock()
	br := browser(t)
	if final, code, body := get(t, br, lo.srv.URL+"/start"); code != 200 || final.Path != "/done" {
		t.Fatalf("login with UserInfo ended at %s with %d: %s", final, code, body)
	}
	ss, err := lo.eng.Store().ListSessionsByUser(t.Context(), "alice")
	if err != nil || len(ss) != 1 {
		t.Fatalf("sessions %v, %v", ss, err)
	}
	if s := ss[0]; s.SessionIndex != "op-sid-1" || len(s.Attributes["email"]) != 1 || s.Attributes["email"][0] != "alice@userinfo.example" ||
		len(s.Attributes["name"]) != 1 {
		t.Fatalf("session %+v: want sid from the ID token, email and name from UserInfo", s)
	}
	// A re-login in that browser asks for a fresh authentication: an ID
	// token whose auth_time is older than the request, or that has none,
	// is refused.
	for _, at := range []any{time.Now().Add(-time.Hour).Unix(), nil} {
		op.mu.Lock()
		op.idToken = with("auth_time", at)
		op.mu.Unlock()
		if final, code, body := get(t, br, lo.srv.URL+"/start"); code != 502 || !strings.Contains(body, "did not sign you in afresh") {
			t.Fatalf("re-login with auth_time %v ended at %s with %d: %s", at, final, code, body)
		}
	}
	op.mu.Lock()
	op.idToken = with("auth_time", time.Now().Unix())
	op.mu.Unlock()
	if final, code, body := get(t, br, lo.srv.URL+"/start"); code != 200 || final.Path != "/done" {
		t.Fatalf("re-login with a fresh auth_time ended at %s with %d: %s", final, code, body)
	}
	// An ID token with every mapped claim needs no UserInfo request.
	op.mu.Lock()
	op.idToken = func(nonce string) map[string]any {
		c := good(nonce)
		c["name"], c["preferred_username"], c["groups"] = "Alice", "alice", []string{"staff"}
		return c
	}
	op.calls = 0
	op.mu.Unlock()
	if final, code, body := get(t, browser(t), lo.srv.URL+"/start"); code != 200 || final.Path != "/done" {
		t.Fatalf("login ended at %s with %d: %s", final, code, body)
	}
	op.mu.Lock()
	defer op.mu.Unlock()
	if op.calls != 0 {
		t.Fatalf("%d UserInfo requests for an ID token with every mapped claim", op.calls)
	}
}

// TestACRValues: configured acr_values are asked for, and an ID token
// naming another acr is refused; one naming none is accepted (the
// request is voluntary).
func TestACRValues(t *testing.T) {
	op := newFakeOP(t)
	lo := startLower(t, op.srv.URL)
	lo.rp.cfg.ACRValues = []string{"urn:mace:incommon:iap:silver", "phr"}
	var asked string
	for _, tc := range []struct {
		acr    any
		status int
	}{{"urn:weak", 502}, {"phr", 200}, {nil, 200}} {
		op.mu.Lock()
		op.idToken = func(nonce string) map[string]any {
			now := time.Now()
			c := map[string]any{"iss": op.srv.URL, "aud": "lower-bridge", "sub": "alice", "nonce": nonce,
				"iat": now.Unix(), "exp": now.Add(5 * time.Minute).Unix(), "email": "a@example.com", "name": "A",
				"preferred_username": "a", "groups": []string{}}
			if tc.acr != nil {
				c["acr"] = tc.acr
			}
			return c
		}
		op.mu.Unlock()
		br := browser(t)
		br.CheckRedirect = func(req *http.Request, via []*http.Request) error {
			if req.URL.Path == "/authorize" {
				asked = req.URL.Query().Get("acr_values")
			}
			return nil
		}
		if final, code, body := get(t, br, lo.srv.URL+"/start"); code != tc.status {
			t.Fatalf("acr %v: ended at %s with %d: %s; want %d", tc.acr, final, code, body, tc.status)
		}
		if asked != "urn:mace:incommon:iap:silver phr" {
			t.Fatalf("acr_values asked %q", asked)
		}
	}
}
