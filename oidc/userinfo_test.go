package oidc

import (
	"encoding/json"
	"net/http"
	"net/url"
	"strings"
	"testing"

	"github.com/slobridge/slobridge"
	"github.com/slobridge/slobridge/store"
)

// TestUserinfo: the access token is accepted in the Authorization header
// or a POST form body (RFC 6750 §2.1, §2.2), never both; a missing token
// gets a bare challenge, a bad one invalid_token; the token dies with its
// session; an ID token is not an access token.
func TestUserinfo(t *testing.T) {
	b, _, _, login := endSessionEnv(t)
	u := b.p.Issuer() + PathUserinfo
	form := func(tok string) *http.Request {
		req, _ := http.NewRequest(http.MethodPost, u, strings.NewReader(url.Values{"access_token": {tok}}.Encode()))
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
		return req
	}
	header := func(method, tok string) *http.Request {
		req, _ := http.NewRequest(method, u, nil)
		req.Header.Set("Authorization", "Bearer "+tok)
		return req
	}
	tests := []struct {
		name      string
		req       func() *http.Request
		logout    bool
		status    int
		challenge string // expected WWW-Authenticate prefix
	}{
		{"GET with header", func() *http.Request { return header(http.MethodGet, login.AccessToken) }, false, 200, ""},
		{"POST with header", func() *http.Request { return header(http.MethodPost, login.AccessToken) }, false, 200, ""},
		{"POST form body", func() *http.Request { return form(login.AccessToken) }, false, 200, ""},
		{"header and body", func() *http.Request {
			r := form(login.AccessToken)
			r.Header.Set("Authorization", "Bearer "+login.AccessToken)
			return r
		}, false, 400, ""},
		{"no token", func() *http.Request { r, _ := http.NewRequest(http.MethodGet, u, nil); return r }, false, 401, `Bearer realm=`},
		{"tampered token", func() *http.Request { return header(http.MethodGet, tamper(t, login.AccessToken)) }, false, 401, `Bearer error="invalid_token"`},
		{"ID token as access token", func() *http.Request { return header(http.MethodGet, login.RawIDToken) }, false, 401, `Bearer error="invalid_token"`},
		{"after logout", func() *http.Request { return header(http.MethodGet, login.AccessToken) }, true, 401, `Bearer error="invalid_token"`},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if tc.logout {
				if _, err := b.eng.Logout(t.Context(), slobridge.LogoutRequest{SessionIDs: []string{login.SID}, Initiator: store.Initiator{Kind: store.InitiatorAdmin}}); err != nil {
					t.Fatal(err)
				}
			}
			resp, err := http.DefaultClient.Do(tc.req())
			if err != nil {
				t.Fatal(err)
			}
			defer resp.Body.Close()
			if resp.StatusCode != tc.status || !strings.HasPrefix(resp.Header.Get("WWW-Authenticate"), tc.challenge) {
				t.Fatalf("HTTP %d, WWW-Authenticate %q; want %d, %q", resp.StatusCode, resp.Header.Get("WWW-Authenticate"), tc.status, tc.challenge)
			}
			if tc.status == 200 {
				var claims map[string]any
				if err := json.NewDecoder(resp.Body).Decode(&claims); err != nil || claims["sub"] != "alice" {
					t.Fatalf("claims %v (%v)", claims, err)
				}
			}
		})
	}
}
