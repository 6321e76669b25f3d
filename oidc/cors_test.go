package oidc

import (
	"context"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
)

// TestCORS: the endpoints a browser application fetches (discovery, JWKS,
// token, userinfo, revocation) answer preflights and carry
// Access-Control-Allow-Origin "*" without credentials, on errors too; the
// others carry no CORS header.
func TestCORS(t *testing.T) {
	e := newBadEnv(t)
	iss := e.b.p.Issuer()
	bearer := "Bearer " + e.login.AccessToken
	form := "application/x-www-form-urlencoded"
	tests := []struct {
		name        string
		method      string
		path        string
		auth, ctype string
		body        string
		wantStatus  int
		wantCORS    bool
	}{
		{"preflight token", http.MethodOptions, PathToken, "", "", "", http.StatusNoContent, true},
		{"preflight userinfo", http.MethodOptions, PathUserinfo, "", "", "", http.StatusNoContent, true},
		{"preflight revocation", http.MethodOptions, PathRevoke, "", "", "", http.StatusNoContent, true},
		{"discovery", http.MethodGet, PathDiscovery, "", "", "", http.StatusOK, true},
		{"jwks", http.MethodGet, PathJWKS, "", "", "", http.StatusOK, true},
		{"userinfo", http.MethodGet, PathUserinfo, bearer, "", "", http.StatusOK, true},
		{"userinfo without a token", http.MethodGet, PathUserinfo, "", "", "", http.StatusUnauthorized, true},
		{"token error", http.MethodPost, PathToken, "", form, "grant_type=authorization_code&code=x&client_id=" + e.spa.clientID, http.StatusBadRequest, true},
		{"revocation", http.MethodPost, PathRevoke, "", form, "token=unknown&client_id=" + e.spa.clientID, http.StatusOK, true},
		{"introspection is server to server", http.MethodPost, PathIntrospect, "", form, "token=x", http.StatusUnauthorized, false},
		{"authorize is a navigation", http.MethodGet, PathAuthorize, "", "", "", http.StatusBadRequest, false},
		{"end-session is a navigation", http.MethodGet, PathEndSession, "", "", "", http.StatusOK, false},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			req, err := http.NewRequest(tc.method, iss+tc.path, strings.NewReader(tc.body))
			if err != nil {
				t.Fatal(err)
			}
			req.Header.Set("Origin", "https://spa.example")
			if tc.method == http.MethodOptions {
				req.Header.Set("Access-Control-Request-Method", http.MethodPost)
				req.Header.Set("Access-Control-Request-Headers", "authorization,content-type")
			}
			if tc.auth != "" {
				req.Header.Set("Authorization", tc.auth)
			}
			if tc.ctype != "" {
				req.Header.Set("Content-Type", tc.ctype)
			}
			resp, err := http.DefaultClient.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			resp.Body.Close()
			if resp.StatusCode != tc.wantStatus {
				t.Fatalf("HTTP %d, want %d", resp.StatusCode, tc.wantStatus)
			}
			h := resp.Header
			if got := h.Get("Access-Control-Allow-Origin"); (got == "*") != tc.wantCORS || (!tc.wantCORS && got != "") {
				t.Fatalf("Access-Control-Allow-Origin %q, want CORS %v", got, tc.wantCORS)
			}
			if h.Get("Access-Control-Allow-Credentials") != "" {
				t.Fatalf("Access-Control-Allow-Credentials %q: the endpoints take no cookies", h.Get("Access-Control-Allow-Credentials"))
			}
			if tc.method == http.MethodOptions {
				if !strings.Contains(h.Get("Access-Control-Allow-Headers"), "Authorization") || !strings.Contains(h.Get("Access-Control-Allow-Methods"), "POST") {
					t.Fatalf("preflight allows headers %q, methods %q", h.Get("Access-Control-Allow-Headers"), h.Get("Access-Control-Allow-Methods"))
				}
			}
			if tc.wantCORS && tc.wantStatus == http.StatusUnauthorized && !strings.Contains(h.Get("Access-Control-Expose-Headers"), "WWW-Authenticate") {
				t.Fatalf("the Bearer challenge is not exposed: %q", h.Get("Access-Control-Expose-Headers"))
			}
		})
	}
}

// TestCORSChromium: a page on another origin fetches discovery, the JWKS,
// userinfo with a bearer token (a preflighted request) and an erroneous
// token request in a real browser, and reads every answer.
func TestCORSChromium(t *testing.T) {
	ctx := newChromium(t)
	e := newBadEnv(t)
	spa := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/html")
		_, _ = w.Write([]byte("<!doctype html><title>spa</title>"))
	}))
	t.Cleanup(spa.Close)
	navigateUntil(t, ctx, spa.URL+"/", spa.URL)
	iss := e.b.p.Issuer()
	script := fmt.Sprintf(`(async () => {
  const out = [];
  const d = await (await fetch(%q)).json(); out.push(d.issuer === %q);
  const j = await (await fetch(d.jwks_uri)).json(); out.push(j.keys.length > 0);
  const u = await fetch(d.userinfo_endpoint, {headers: {Authorization: "Bearer " + %q}});
  out.push(u.status + ":" + (await u.json()).sub);
  const t = await fetch(d.token_endpoint, {method: "POST",
    headers: {"Content-Type": "application/x-www-form-urlencoded;charset=UTF-8"},
    body: new URLSearchParams({grant_type: "authorization_code", code: "nope", client_id: %q, redirect_uri: "x", code_verifier: "x"})});
  out.push(t.status + ":" + (await t.json()).error);
  return out.join(" ");
})()`, iss+PathDiscovery, iss, e.login.AccessToken, e.spa.clientID)
	ectx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	got, err := chromedp.Run(ectx, chromedp.Evaluate[string](script, chromedp.EvalAwaitPromise))
	if err != nil {
		t.Fatalf("cross-origin fetches failed in Chromium: %v", err)
	}
	want := "true true 200:" + e.login.Subject + " 400:" + ErrInvalidGrant
	if got != want {
		t.Fatalf("Chromium read %q, want %q", got, want)
	}
}
