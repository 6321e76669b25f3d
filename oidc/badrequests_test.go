package oidc

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"net/http"
	"net/url"
	"regexp"
	"strings"
	"testing"
	"time"

	"golang.org/x/oauth2"

	"github.com/slobridge/slobridge"
)

// quietEngine keeps the delivery workers from polling the outbox during a
// test, so that store snapshots are taken between writes.
func quietEngine(o *slobridge.Options) { o.PollInterval = time.Hour }

// badEnv is a bridge with a signed-in browser, a confidential client
// ("app", client_secret_basic, signed in) and a public one ("spa").
type badEnv struct {
	b     *bridge
	app   *testRP
	spa   *testRP
	br    *http.Client // follows redirects
	nf    *http.Client // same cookies, stops at the first redirect
	login rpLogin      // app's login
	// Filled by a case's setup.
	code, verifier, confirmID, csrf string
	tokens                          TokenResponse
}

func newBadEnv(t *testing.T, opts ...bridgeOpt) *badEnv {
	t.Helper()
	b := newBridgeEngine(t, quietEngine, opts...)
	e := &badEnv{b: b, br: browser(t)}
	e.nf = noFollow(e.br)
	e.app = newRP(t, b, rpConfig{Name: "app", AuthMethod: AuthSecretBasic, BackChannel: true})
	e.spa = newRP(t, b, rpConfig{Name: "spa", AuthMethod: AuthNone, FrontChannel: true})
	e.login = signIn(t, e.br, e.app, "")
	return e
}

// authorizeURL builds an authorization request for rp with PKCE S256 over
// verifier (none when empty), the RP's registered redirect URI unless
// redirectURI is set.
func (e *badEnv) authorizeURL(rp *testRP, redirectURI, verifier string) string {
	q := url.Values{
		"response_type": {"code"}, "client_id": {rp.clientID}, "scope": {"openid email"},
		"redirect_uri": {rp.url("/callback")}, "state": {"xyz-state"}, "nonce": {"n-0S6"},
	}
	if redirectURI != "" {
		q.Set("redirect_uri", redirectURI)
	}
	if verifier != "" {
		q.Set("code_challenge", oauth2.S256ChallengeFromVerifier(verifier))
		q.Set("code_challenge_method", "S256")
	}
	return e.b.p.Issuer() + PathAuthorize + "?" + q.Encode()
}

// getCode runs an authorization request for rp and returns the code.
func (e *badEnv) getCode(t *testing.T, rp *testRP) {
	t.Helper()
	e.verifier = oauth2.GenerateVerifier()
	resp := get(t, e.nf, e.authorizeURL(rp, "", e.verifier))
	loc, err := url.Parse(resp.Header.Get("Location"))
	if resp.StatusCode != http.StatusFound || err != nil || loc.Query().Get("code") == "" {
		t.Fatalf("authorize: HTTP %d to %q", resp.StatusCode, resp.Header.Get("Location"))
	}
	e.code = loc.Query().Get("code")
}

// tokenRequest posts a code exchange for app with client_secret_basic.
func (e *badEnv) tokenRequest(t *testing.T, id, secret string, form url.Values) *http.Response {
	t.Helper()
	req, err := http.NewRequest(http.MethodPost, e.b.p.Issuer()+PathToken, strings.NewReader(form.Encode()))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	if id != "" {
		req.SetBasicAuth(url.QueryEscape(id), url.QueryEscape(secret))
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { resp.Body.Close() })
	return resp
}

func (e *badEnv) exchangeForm(redirectURI, verifier string) url.Values {
	return url.Values{"grant_type": {"authorization_code"}, "code": {e.code}, "redirect_uri": {redirectURI}, "code_verifier": {verifier}}
}

func (e *badEnv) endSession(t *testing.T, q url.Values) *http.Response {
	t.Helper()
	return get(t, e.nf, e.b.p.Issuer()+PathEndSession+"?"+q.Encode())
}

// hint signs an ID token with the bridge's own key and the given issuer.
func (e *badEnv) hint(t *testing.T, p *Provider, iss string) string {
	t.Helper()
	now := time.Now()
	tok, err := p.keys.sign(context.Background(), "RS256", typJWT, IDTokenClaims{
		Issuer: iss, Subject: "alice", Audience: []string{e.app.clientID}, AZP: e.app.clientID,
		Expiry: now.Add(time.Hour).Unix(), IssuedAt: now.Unix(), AuthTime: now.Unix(), SID: e.login.SID,
	})
	if err != nil {
		t.Fatal(err)
	}
	return tok
}

// tamper flips one bit in the middle of a JWS signature.
func tamper(t *testing.T, jws string) string {
	t.Helper()
	parts := strings.Split(jws, ".")
	sig, err := base64.RawURLEncoding.DecodeString(parts[2])
	if err != nil {
		t.Fatal(err)
	}
	sig[len(sig)/2] ^= 0x01
	parts[2] = base64.RawURLEncoding.EncodeToString(sig)
	return strings.Join(parts, ".")
}

func (e *badEnv) register(t *testing.T, auth string, md ClientMetadata) *http.Response {
	t.Helper()
	body, _ := json.Marshal(md)
	req, err := http.NewRequest(http.MethodPost, e.b.p.Issuer()+PathRegister, bytes.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Content-Type", "application/json")
	if auth != "" {
		req.Header.Set("Authorization", auth)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { resp.Body.Close() })
	return resp
}

// How a refusal reaches the client.
const (
	asJSON     = "json"     // OAuth error JSON (RFC 6749 §5.2, RFC 7591 §3.2.2)
	asPage     = "page"     // an HTML page for the person, no redirect
	asRedirect = "redirect" // back to the validated redirect_uri with error, state, iss
)

var pageCodeRE = regexp.MustCompile(`Error: ([a-z_]+)`)

// checkRefusal checks status, error code and channel of a refusal.
func checkRefusal(t *testing.T, resp *http.Response, how string, status int, code string, redirectTo string) {
	t.Helper()
	body := readBody(t, resp)
	if resp.StatusCode != status {
		t.Fatalf("HTTP %d, want %d; body: %s", resp.StatusCode, status, body)
	}
	switch how {
	case asJSON:
		var e struct {
			Error string `json:"error"`
			Desc  string `json:"error_description"`
		}
		if err := json.Unmarshal([]byte(body), &e); err != nil || e.Error != code {
			t.Fatalf("error JSON %q, want error %q", body, code)
		}
		if cc := resp.Header.Get("Cache-Control"); cc != "no-store" {
			t.Fatalf("Cache-Control %q, want no-store", cc)
		}
	case asPage:
		if loc := resp.Header.Get("Location"); loc != "" {
			t.Fatalf("refusal redirects to %q", loc)
		}
		if !strings.HasPrefix(resp.Header.Get("Content-Type"), "text/html") {
			t.Fatalf("refusal is %q, want an HTML page", resp.Header.Get("Content-Type"))
		}
		if m := pageCodeRE.FindStringSubmatch(body); m == nil || m[1] != code {
			t.Fatalf("error page does not name %q:\n%s", code, body)
		}
	case asRedirect:
		loc, err := url.Parse(resp.Header.Get("Location"))
		if err != nil {
			t.Fatal(err)
		}
		q := loc.Query()
		loc.RawQuery = ""
		if loc.String() != redirectTo || q.Get("error") != code || q.Get("state") != "xyz-state" || q.Get("code") != "" {
			t.Fatalf("redirect to %s, want %s with error=%s and state", resp.Header.Get("Location"), redirectTo, code)
		}
	}
}

// TestBadRequests: each malformed or hostile request gets the error the spec
// names, through the channel the spec allows (no redirect where the client
// or URI cannot be trusted), and changes nothing in the store: the whole
// bbolt content is compared before and after.
func TestBadRequests(t *testing.T) {
	type tcase struct {
		name  string
		opts  []bridgeOpt
		setup func(t *testing.T, e *badEnv)
		do    func(t *testing.T, e *badEnv) *http.Response
		how   string
		code  string
		// status is the HTTP status; redirect is the expected target of an
		// asRedirect refusal.
		status   int
		redirect func(e *badEnv) string
		// allowed lists buckets the refusal may change (reuse detection
		// revokes tokens), with after checking what it did.
		allowed []string
		after   func(t *testing.T, e *badEnv)
	}
	authorize := func(rp func(e *badEnv) *testRP, redirectURI func(e *badEnv) string) func(t *testing.T, e *badEnv) *http.Response {
		return func(t *testing.T, e *badEnv) *http.Response {
			return get(t, e.nf, e.authorizeURL(rp(e), redirectURI(e), oauth2.GenerateVerifier()))
		}
	}
	app := func(e *badEnv) *testRP { return e.app }
	appURL := func(path string) func(e *badEnv) string { return func(e *badEnv) string { return e.app.url(path) } }
	getCode := func(t *testing.T, e *badEnv) { e.getCode(t, e.app) }
	sessionActive := func(t *testing.T, e *badEnv) {
		s, err := e.b.st.GetSession(t.Context(), e.login.SID)
		if err != nil || !s.EndedAt.IsZero() {
			t.Fatalf("the session was ended (%v)", err)
		}
	}
	tests := []tcase{
		{
			name: "authorize: unknown client", how: asPage, status: 400, code: ErrInvalidClient,
			do: func(t *testing.T, e *badEnv) *http.Response {
				u := strings.Replace(e.authorizeURL(e.app, "", ""), url.QueryEscape(e.app.clientID), "no-such-client", 1)
				return get(t, e.nf, u)
			},
		},
		{name: "authorize: unregistered redirect_uri", how: asPage, status: 400, code: ErrInvalidRequest,
			do: authorize(app, func(*badEnv) string { return "https://attacker.example/callback" })},
		{name: "authorize: redirect_uri differs in path", how: asPage, status: 400, code: ErrInvalidRequest,
			do: authorize(app, appURL("/callback/evil"))},
		{name: "authorize: redirect_uri differs in case of path", how: asPage, status: 400, code: ErrInvalidRequest,
			do: authorize(app, appURL("/Callback"))},
		{name: "authorize: redirect_uri differs in query", how: asPage, status: 400, code: ErrInvalidRequest,
			do: authorize(app, appURL("/callback?next=/admin"))},
		{name: "authorize: redirect_uri differs by a trailing slash", how: asPage, status: 400, code: ErrInvalidRequest,
			do: authorize(app, appURL("/callback/"))},
		{
			name: "authorize: repeated redirect_uri", how: asPage, status: 400, code: ErrInvalidRequest,
			do: func(t *testing.T, e *badEnv) *http.Response {
				return get(t, e.nf, e.authorizeURL(e.app, "", oauth2.GenerateVerifier())+"&redirect_uri="+url.QueryEscape(e.app.url("/callback")))
			},
		},
		{
			name: "token: repeated code", how: asJSON, status: 400, code: ErrInvalidRequest, setup: getCode,
			do: func(t *testing.T, e *badEnv) *http.Response {
				f := e.exchangeForm(e.app.url("/callback"), e.verifier)
				f.Add("code", e.code)
				return e.tokenRequest(t, e.app.clientID, e.app.oauth.ClientSecret, f)
			},
		},
		{
			name: "authorize: public client without PKCE", how: asRedirect, status: 302, code: ErrInvalidRequest,
			redirect: func(e *badEnv) string { return e.spa.url("/callback") },
			do:       func(t *testing.T, e *badEnv) *http.Response { return get(t, e.nf, e.authorizeURL(e.spa, "", "")) },
		},
		{
			name: "authorize: PKCE method plain", how: asRedirect, status: 302, code: ErrInvalidRequest,
			redirect: func(e *badEnv) string { return e.spa.url("/callback") },
			do: func(t *testing.T, e *badEnv) *http.Response {
				u := e.authorizeURL(e.spa, "", "") + "&code_challenge=" + strings.Repeat("a", 43) + "&code_challenge_method=plain"
				return get(t, e.nf, u)
			},
		},
		{
			name: "token: wrong code_verifier", how: asJSON, status: 400, code: ErrInvalidGrant, setup: getCode,
			do: func(t *testing.T, e *badEnv) *http.Response {
				return e.tokenRequest(t, e.app.clientID, e.app.oauth.ClientSecret, e.exchangeForm(e.app.url("/callback"), oauth2.GenerateVerifier()))
			},
		},
		{
			name: "token: missing code_verifier", how: asJSON, status: 400, code: ErrInvalidGrant, setup: getCode,
			do: func(t *testing.T, e *badEnv) *http.Response {
				return e.tokenRequest(t, e.app.clientID, e.app.oauth.ClientSecret, e.exchangeForm(e.app.url("/callback"), ""))
			},
		},
		{
			name: "token: redirect_uri differs by a trailing slash", how: asJSON, status: 400, code: ErrInvalidGrant, setup: getCode,
			do: func(t *testing.T, e *badEnv) *http.Response {
				return e.tokenRequest(t, e.app.clientID, e.app.oauth.ClientSecret, e.exchangeForm(e.app.url("/callback/"), e.verifier))
			},
		},
		{
			name: "token: code of another client", how: asJSON, status: 400, code: ErrInvalidGrant,
			setup: func(t *testing.T, e *badEnv) { e.getCode(t, e.spa) },
			do: func(t *testing.T, e *badEnv) *http.Response {
				return e.tokenRequest(t, e.app.clientID, e.app.oauth.ClientSecret, e.exchangeForm(e.spa.url("/callback"), e.verifier))
			},
		},
		{
			name: "token: reused code", how: asJSON, status: 400, code: ErrInvalidGrant,
			setup: func(t *testing.T, e *badEnv) {
				e.getCode(t, e.app)
				resp := e.tokenRequest(t, e.app.clientID, e.app.oauth.ClientSecret, e.exchangeForm(e.app.url("/callback"), e.verifier))
				if resp.StatusCode != http.StatusOK {
					t.Fatalf("first exchange: HTTP %d", resp.StatusCode)
				}
				if err := json.NewDecoder(resp.Body).Decode(&e.tokens); err != nil {
					t.Fatal(err)
				}
			},
			do: func(t *testing.T, e *badEnv) *http.Response {
				return e.tokenRequest(t, e.app.clientID, e.app.oauth.ClientSecret, e.exchangeForm(e.app.url("/callback"), e.verifier))
			},
			// RFC 6749 §4.1.2: the reuse revokes what the code issued; only
			// token records change.
			allowed: []string{"records", "records_exp"},
			after: func(t *testing.T, e *badEnv) {
				resp := e.tokenRequest(t, e.app.clientID, e.app.oauth.ClientSecret,
					url.Values{"grant_type": {"refresh_token"}, "refresh_token": {e.tokens.RefreshToken}})
				checkRefusal(t, resp, asJSON, 400, ErrInvalidGrant, "")
				if _, err := e.b.p.Userinfo(t.Context(), e.tokens.AccessToken); err == nil {
					t.Fatal("the access token of a reused code still works")
				}
			},
		},
		{
			name: "token: expired code", how: asJSON, status: 400, code: ErrInvalidGrant,
			setup: func(t *testing.T, e *badEnv) {
				e.getCode(t, e.app)
				e.b.clock.Advance(e.b.p.opts.CodeTTL + time.Second)
			},
			do: func(t *testing.T, e *badEnv) *http.Response {
				return e.tokenRequest(t, e.app.clientID, e.app.oauth.ClientSecret, e.exchangeForm(e.app.url("/callback"), e.verifier))
			},
		},
		{
			name: "token: wrong client secret (basic)", how: asJSON, status: 401, code: ErrInvalidClient, setup: getCode,
			do: func(t *testing.T, e *badEnv) *http.Response {
				resp := e.tokenRequest(t, e.app.clientID, "not-the-secret", e.exchangeForm(e.app.url("/callback"), e.verifier))
				if !strings.HasPrefix(resp.Header.Get("WWW-Authenticate"), "Basic") {
					t.Errorf("401 without WWW-Authenticate: Basic (RFC 6749 §5.2)")
				}
				return resp
			},
		},
		{
			name: "token: client_id alone for a confidential client", how: asJSON, status: 401, code: ErrInvalidClient, setup: getCode,
			do: func(t *testing.T, e *badEnv) *http.Response {
				f := e.exchangeForm(e.app.url("/callback"), e.verifier)
				f.Set("client_id", e.app.clientID)
				return e.tokenRequest(t, "", "", f)
			},
		},
		{
			name: "token: unknown client", how: asJSON, status: 401, code: ErrInvalidClient, setup: getCode,
			do: func(t *testing.T, e *badEnv) *http.Response {
				return e.tokenRequest(t, "no-such-client", "whatever-secret", e.exchangeForm(e.app.url("/callback"), e.verifier))
			},
		},
		{
			name: "end-session: id_token_hint with a bad signature", how: asPage, status: 400, code: ErrInvalidRequest, after: sessionActive,
			do: func(t *testing.T, e *badEnv) *http.Response {
				return e.endSession(t, url.Values{"id_token_hint": {tamper(t, e.login.RawIDToken)},
					"post_logout_redirect_uri": {e.app.url("/after-logout")}, "state": {"s"}})
			},
		},
		{
			name: "end-session: id_token_hint from another issuer", how: asPage, status: 400, code: ErrInvalidRequest, after: sessionActive,
			do: func(t *testing.T, e *badEnv) *http.Response {
				return e.endSession(t, url.Values{"id_token_hint": {e.hint(t, e.b.p, "https://other-op.example")},
					"post_logout_redirect_uri": {e.app.url("/after-logout")}})
			},
		},
		{
			name: "end-session: id_token_hint signed by another provider's key", how: asPage, status: 400, code: ErrInvalidRequest, after: sessionActive,
			do: func(t *testing.T, e *badEnv) *http.Response {
				other := newBridgeEngine(t, quietEngine)
				return e.endSession(t, url.Values{"id_token_hint": {e.hint(t, other.p, e.b.p.Issuer())},
					"post_logout_redirect_uri": {e.app.url("/after-logout")}})
			},
		},
		{
			name: "end-session: unregistered post_logout_redirect_uri", how: asPage, status: 400, code: ErrInvalidRequest, after: sessionActive,
			do: func(t *testing.T, e *badEnv) *http.Response {
				return e.endSession(t, url.Values{"id_token_hint": {e.login.RawIDToken},
					"post_logout_redirect_uri": {"https://attacker.example/after-logout"}, "state": {"s"}})
			},
		},
		{
			name: "end-session: post_logout_redirect_uri of another client", how: asPage, status: 400, code: ErrInvalidRequest, after: sessionActive,
			do: func(t *testing.T, e *badEnv) *http.Response {
				return e.endSession(t, url.Values{"id_token_hint": {e.login.RawIDToken},
					"post_logout_redirect_uri": {e.spa.url("/after-logout")}})
			},
		},
		{
			name: "end-session: client_id that is not the hint's audience", how: asPage, status: 400, code: ErrInvalidRequest, after: sessionActive,
			do: func(t *testing.T, e *badEnv) *http.Response {
				return e.endSession(t, url.Values{"id_token_hint": {e.login.RawIDToken}, "client_id": {e.spa.clientID},
					"post_logout_redirect_uri": {e.spa.url("/after-logout")}})
			},
		},
		{
			name: "logout confirmation without its CSRF token", how: asPage, status: 403, code: ErrAccessDenied, after: sessionActive,
			setup: confirmSetup,
			do: func(t *testing.T, e *badEnv) *http.Response {
				resp, err := e.nf.PostForm(e.b.p.Issuer()+PathConfirm, url.Values{"id": {e.confirmID}})
				if err != nil {
					t.Fatal(err)
				}
				t.Cleanup(func() { resp.Body.Close() })
				return resp
			},
		},
		{
			name: "logout confirmation with a wrong CSRF token", how: asPage, status: 403, code: ErrAccessDenied, after: sessionActive,
			setup: confirmSetup,
			do: func(t *testing.T, e *badEnv) *http.Response {
				resp, err := e.nf.PostForm(e.b.p.Issuer()+PathConfirm, url.Values{"id": {e.confirmID}, "csrf": {e.csrf + "x"}})
				if err != nil {
					t.Fatal(err)
				}
				t.Cleanup(func() { resp.Body.Close() })
				return resp
			},
		},
		{
			name: "registration without the initial access token", how: asJSON, status: 401, code: "",
			do: func(t *testing.T, e *badEnv) *http.Response {
				resp := e.register(t, "", ClientMetadata{RedirectURIs: []string{"https://app.example/cb"}})
				// RFC 6750 §3.1: no credentials, so no error code, only
				// the challenge.
				if h := resp.Header.Get("WWW-Authenticate"); !strings.HasPrefix(h, "Bearer ") || strings.Contains(h, "error=") {
					t.Errorf("WWW-Authenticate = %q, want a Bearer challenge without error", h)
				}
				return resp
			},
		},
		{
			name: "registration with a wrong initial access token", how: asJSON, status: 401, code: ErrInvalidToken,
			do: func(t *testing.T, e *badEnv) *http.Response {
				resp := e.register(t, "Bearer "+testIAT+"x", ClientMetadata{RedirectURIs: []string{"https://app.example/cb"}})
				if h := resp.Header.Get("WWW-Authenticate"); !strings.Contains(h, `error="invalid_token"`) {
					t.Errorf("WWW-Authenticate = %q, want error=\"invalid_token\"", h)
				}
				return resp
			},
		},
	}
	for _, ip := range []string{"10.1.2.3", "172.16.0.1", "192.168.1.10", "169.254.169.254", "100.64.0.1", "[fd00::1]", "[fe80::1]", "0.0.0.0"} {
		tests = append(tests, tcase{
			name: "registration: back-channel URI on private range " + ip, how: asJSON, status: 400, code: ErrInvalidClientMetadata,
			opts: []bridgeOpt{func(o *Options) { o.AllowPrivateBackchannel = false }},
			do: func(t *testing.T, e *badEnv) *http.Response {
				return e.register(t, "Bearer "+testIAT, ClientMetadata{
					RedirectURIs: []string{"https://app.example/cb"}, BackchannelLogoutURI: "https://" + ip + "/backchannel",
				})
			},
		})
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			e := newBadEnv(t, tc.opts...)
			if tc.setup != nil {
				tc.setup(t, e)
			}
			before := e.b.snapshot(t)
			resp := tc.do(t, e)
			redirect := ""
			if tc.redirect != nil {
				redirect = tc.redirect(e)
			}
			if tc.code == "" {
				if resp.StatusCode != tc.status {
					t.Fatalf("HTTP %d, want %d", resp.StatusCode, tc.status)
				}
			} else {
				checkRefusal(t, resp, tc.how, tc.status, tc.code, redirect)
			}
			requireUnchanged(t, before, e.b.snapshot(t), tc.allowed...)
			if tc.after != nil {
				tc.after(t, e)
			}
		})
	}
}

var confirmFieldRE = regexp.MustCompile(`name="(id|csrf)" value="([^"]+)"`)

// confirmSetup asks for a logout without id_token_hint, which shows the
// confirmation page, and keeps its form fields.
func confirmSetup(t *testing.T, e *badEnv) {
	t.Helper()
	resp := e.endSession(t, url.Values{"client_id": {e.app.clientID}, "post_logout_redirect_uri": {e.app.url("/after-logout")}})
	body := readBody(t, resp)
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("end-session without hint: HTTP %d", resp.StatusCode)
	}
	for _, m := range confirmFieldRE.FindAllStringSubmatch(body, -1) {
		if m[1] == "id" {
			e.confirmID = m[2]
		} else {
			e.csrf = m[2]
		}
	}
	if e.confirmID == "" || e.csrf == "" {
		t.Fatalf("confirmation page without its form fields:\n%s", body)
	}
}

// TestChallengeFromVerifier pins the S256 transform the bad-request table
// relies on (RFC 7636 Appendix B).
func TestChallengeFromVerifier(t *testing.T) {
	const verifier = "dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk"
	sum := sha256.Sum256([]byte(verifier))
	if got := base64.RawURLEncoding.EncodeToString(sum[:]); got != "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM" ||
		oauth2.S256ChallengeFromVerifier(verifier) != got {
		t.Fatalf("S256(%s) = %s", verifier, got)
	}
	if err := checkVerifier("E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM", verifier); err != nil {
		t.Fatalf("checkVerifier refuses the RFC 7636 example: %v", err)
	}
}
