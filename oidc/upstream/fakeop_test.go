package upstream

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"encoding/json"
	"errors"
	"fmt"
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
	// checkClient, when set, authenticates each token request; an error
	// is answered 401 invalid_client.
	checkClient func(r *http.Request) error
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
		claims, check := op.idToken(op.nonce), op.checkClient
		op.mu.Unlock()
		if check != nil {
			if err := check(r); err != nil {
				w.Header().Set("Content-Type", "application/json")
				w.WriteHeader(http.StatusUnauthorized)
				_ = json.NewEncoder(w).Encode(map[string]string{"error": "invalid_client", "error_description": err.Error()})
				return
			}
		}
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

// TestPrivateKeyJWT: with a private key the bridge authenticates at the
// token endpoint with a client assertion (RFC 7523, Core §9): iss and sub
// its client ID, aud the token endpoint, a new jti each time, a short
// life, signed by the key whose public half it publishes at its JWKS URI;
// no client secret is sent. An OP that refuses the assertion refuses the
// login.
func TestPrivateKeyJWT(t *testing.T) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	op := newFakeOP(t)
	lo := startLower(t, op.srv.URL, func(c *Config) { c.ClientSecret, c.PrivateKey = "", key })
	jwksURI := lo.rp.Registration().JWKSURI
	if jwksURI != lo.srv.URL+PathPrefix+"corp/jwks.json" {
		t.Fatalf("JWKS URI %q", jwksURI)
	}
	var published jose.JSONWebKeySet
	resp, err := http.Get(jwksURI)
	if err != nil {
		t.Fatal(err)
	}
	err = json.NewDecoder(resp.Body).Decode(&published)
	resp.Body.Close()
	if err != nil || len(published.Keys) != 1 || published.Keys[0].Algorithm != "ES256" {
		t.Fatalf("published JWKS %+v (%v)", published, err)
	}
	seen := map[string]bool{}
	refuse := false
	op.mu.Lock()
	op.idToken = func(nonce string) map[string]any {
		now := time.Now()
		return map[string]any{"iss": op.srv.URL, "aud": "lower-bridge", "sub": "alice", "nonce": nonce,
			"iat": now.Unix(), "exp": now.Add(5 * time.Minute).Unix(), "email": "a@example.com", "name": "A",
			"preferred_username": "a", "groups": []string{}}
	}
	op.checkClient = func(r *http.Request) error {
		if refuse {
			return errors.New("unknown key")
		}
		if err := r.ParseForm(); err != nil {
			return err
		}
		if _, _, ok := r.BasicAuth(); ok || r.PostForm.Has("client_secret") {
			return errors.New("a client secret was sent")
		}
		if r.PostForm.Get("client_assertion_type") != "urn:ietf:params:oauth:client-assertion-type:jwt-bearer" || r.PostForm.Get("client_id") != "lower-bridge" {
			return fmt.Errorf("form %v", r.PostForm)
		}
		jws, err := jose.ParseSigned(r.PostForm.Get("client_assertion"), []jose.SignatureAlgorithm{jose.ES256})
		if err != nil {
			return err
		}
		if jws.Signatures[0].Header.KeyID != published.Keys[0].KeyID {
			return fmt.Errorf("kid %q", jws.Signatures[0].Header.KeyID)
		}
		b, err := jws.Verify(published.Keys[0].Key)
		if err != nil {
			return err
		}
		var c struct {
			Iss, Sub, Aud, Jti string
			Exp, Iat           int64
		}
		if err := json.Unmarshal(b, &c); err != nil {
			return err
		}
		now := time.Now().Unix()
		if c.Iss != "lower-bridge" || c.Sub != "lower-bridge" || c.Aud != op.srv.URL+"/token" || c.Jti == "" || seen[c.Jti] ||
			c.Exp < now || c.Exp > now+120 || c.Iat > now+5 {
			return fmt.Errorf("assertion claims %+v", c)
		}
		seen[c.Jti] = true
		return nil
	}
	op.mu.Unlock()
	for i := range 2 {
		if final, code, body := get(t, browser(t), lo.srv.URL+"/start"); code != 200 || final.Path != "/done" {
			t.Fatalf("login %d with private_key_jwt ended at %s with %d: %s", i, final, code, body)
		}
	}
	if len(seen) != 2 {
		t.Fatalf("%d assertions accepted, want 2", len(seen))
	}
	op.mu.Lock()
	refuse = true
	op.mu.Unlock()
	if _, code, body := get(t, browser(t), lo.srv.URL+"/start"); code != 502 || !strings.Contains(body, "did not accept the sign-in code") {
		t.Fatalf("login with a refused assertion: %d %s", code, body)
	}
}
