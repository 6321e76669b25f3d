package oidc

import (
	"encoding/json"
	"golang.org/x/oauth2"
	"html"
	"net/http"
	"net/http/httptest"
	"net/url"
	"regexp"
	"strings"
	"testing"
	"time"
)

var (
	formActionRE = regexp.MustCompile(`<form method="post" action="([^"]*)">`)
	formInputRE  = regexp.MustCompile(`<input type="hidden" name="([^"]*)" value="([^"]*)">`)
)

// parseFormPost reads the action and fields of a form_post response page.
func parseFormPost(t *testing.T, body string) (string, url.Values) {
	t.Helper()
	m := formActionRE.FindStringSubmatch(body)
	if m == nil {
		t.Fatalf("no auto-submitted form in:\n%s", body)
	}
	fields := url.Values{}
	for _, in := range formInputRE.FindAllStringSubmatch(body, -1) {
		fields.Add(html.UnescapeString(in[1]), html.UnescapeString(in[2]))
	}
	return html.UnescapeString(m[1]), fields
}

// TestAuthorizeFormPost: with response_mode=form_post (the default of
// ASP.NET Core's OpenID Connect handler) the response and errors arrive as
// an HTML form posted to the exact registered redirect URI, carrying code
// or error, state and iss, with no-store and a CSP that allows only the
// page's own script; the posted code redeems at the token endpoint.
func TestAuthorizeFormPost(t *testing.T) {
	e := newBadEnv(t)
	plain, withQuery := e.app.url("/signin-oidc"), e.app.url("/signin-oidc?tenant=a&x=1")
	reg := e.b.register(t, ClientMetadata{RedirectURIs: []string{plain, withQuery}, TokenEndpointAuthMethod: AuthSecretBasic})
	tests := []struct {
		name     string
		client   *http.Client
		change   func(q url.Values)
		wantKeys []string
		want     url.Values
	}{
		{"code with a session", e.nf, func(url.Values) {}, []string{"code", "iss", "state"},
			url.Values{"state": {"xyz-state"}, "iss": {e.b.p.Issuer()}}},
		{"redirect URI with a query", e.nf, func(q url.Values) { q.Set("redirect_uri", withQuery) }, []string{"code", "iss", "state"},
			url.Values{"state": {"xyz-state"}}},
		{"login_required without a session", noFollow(browser(t)), func(q url.Values) { q.Set("prompt", "none") },
			[]string{"error", "error_description", "iss", "state"}, url.Values{"error": {ErrLoginRequired}, "state": {"xyz-state"}}},
		{"unsupported response_type", e.nf, func(q url.Values) { q.Set("response_type", "token") },
			[]string{"error", "error_description", "iss", "state"}, url.Values{"error": {ErrUnsupportedResponseType}}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			verifier := oauth2.GenerateVerifier()
			q := url.Values{
				"response_type": {"code"}, "client_id": {reg.ClientID}, "scope": {"openid"}, "redirect_uri": {plain},
				"state": {"xyz-state"}, "nonce": {"n-0S6"}, "response_mode": {ResponseModeFormPost},
				"code_challenge": {oauth2.S256ChallengeFromVerifier(verifier)}, "code_challenge_method": {"S256"},
			}
			tc.change(q)
			resp := get(t, tc.client, e.b.p.Issuer()+PathAuthorize+"?"+q.Encode())
			body := readBody(t, resp)
			if resp.StatusCode != http.StatusOK || !strings.HasPrefix(resp.Header.Get("Content-Type"), "text/html") {
				t.Fatalf("HTTP %d %s, want 200 text/html", resp.StatusCode, resp.Header.Get("Content-Type"))
			}
			if cc := resp.Header.Get("Cache-Control"); cc != "no-store" || resp.Header.Get("Pragma") != "no-cache" {
				t.Errorf("Cache-Control %q, Pragma %q", cc, resp.Header.Get("Pragma"))
			}
			if csp := resp.Header.Get("Content-Security-Policy"); csp != formPostCSP || !strings.Contains(csp, "script-src 'sha256-") {
				t.Errorf("Content-Security-Policy %q", csp)
			}
			action, fields := parseFormPost(t, body)
			if action != q.Get("redirect_uri") {
				t.Fatalf("form action %q, want the registered redirect URI %q", action, q.Get("redirect_uri"))
			}
			for _, k := range tc.wantKeys {
				if fields.Get(k) == "" {
					t.Errorf("field %s missing from %v", k, fields)
				}
			}
			if len(fields) != len(tc.wantKeys) {
				t.Errorf("fields %v, want exactly %v", fields, tc.wantKeys)
			}
			for k, v := range tc.want {
				if fields.Get(k) != v[0] {
					t.Errorf("%s = %q, want %q", k, fields.Get(k), v[0])
				}
			}
			if fields.Get("code") == "" {
				return
			}
			e.code = fields.Get("code")
			tr := e.tokenRequest(t, reg.ClientID, reg.ClientSecret, e.exchangeForm(action, verifier))
			var tok TokenResponse
			if err := json.NewDecoder(tr.Body).Decode(&tok); err != nil || tr.StatusCode != http.StatusOK || tok.IDToken == "" {
				t.Fatalf("the posted code does not redeem: HTTP %d, %v", tr.StatusCode, err)
			}
		})
	}
}

// TestAuthorizeFormPostChromium: a real browser runs the page under its
// CSP and POSTs the fields to the redirect URI by itself.
func TestAuthorizeFormPostChromium(t *testing.T) {
	ctx := newChromium(t)
	b := newBridgeEngine(t, quietEngine)
	posted := make(chan url.Values, 1)
	rp := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method == http.MethodPost && r.ParseForm() == nil {
			select {
			case posted <- r.PostForm:
			default:
			}
		}
		w.Header().Set("Content-Type", "text/html")
		_, _ = w.Write([]byte("<!doctype html><title>rp</title>ok"))
	}))
	t.Cleanup(rp.Close)
	reg := b.register(t, ClientMetadata{RedirectURIs: []string{rp.URL + "/signin-oidc"}, TokenEndpointAuthMethod: AuthSecretPost})
	q := url.Values{
		"response_type": {"code"}, "client_id": {reg.ClientID}, "scope": {"openid"}, "redirect_uri": {rp.URL + "/signin-oidc"},
		"state": {"s&t<>"}, "prompt": {"none"}, "response_mode": {ResponseModeFormPost},
	}
	navigateUntil(t, ctx, b.p.Issuer()+PathAuthorize+"?"+q.Encode(), rp.URL+"/signin-oidc")
	select {
	case f := <-posted:
		if f.Get("error") != ErrLoginRequired || f.Get("state") != "s&t<>" || f.Get("iss") != b.p.Issuer() {
			t.Fatalf("the browser posted %v", f)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("the browser did not POST the form to the redirect URI")
	}
}
