package oidc

import (
	"net/http"
	"net/url"
	"slices"
	"strings"
	"testing"
)

// FuzzCheckURI: whatever checkURI accepts is absolute, has a host, no
// fragment and no user info, and is https or loopback http.
func FuzzCheckURI(f *testing.F) {
	for _, s := range []string{
		"https://app.example/cb", "http://127.0.0.1:8080/cb", "http://localhost/cb", "https://app.example/cb#x",
		"https://app.example/cb#", "javascript:alert(1)", "//app.example/cb", "https://u:p@app.example/", "http://[::1]:9/x?y=1",
		"https://app.example\\@evil.example/", "http://127.0.0.1.evil.example/cb",
	} {
		f.Add(s)
	}
	p := &Provider{opts: Options{AllowLoopbackHTTP: true}}
	f.Fuzz(func(t *testing.T, raw string) {
		if err := p.checkURI(raw); err != nil {
			return
		}
		u, err := url.Parse(raw)
		if err != nil || !u.IsAbs() || u.Host == "" || u.User != nil || strings.Contains(raw, "#") {
			t.Fatalf("accepted %q", raw)
		}
		if u.Scheme != "https" && !(u.Scheme == "http" && isLoopbackHost(u.Hostname())) {
			t.Fatalf("accepted %q with scheme %q host %q", raw, u.Scheme, u.Hostname())
		}
	})
}

// FuzzBasicAuth: decoding client credentials never panics, and what it
// accepts round-trips through the RFC 6749 §2.3.1 encoding.
func FuzzBasicAuth(f *testing.F) {
	for _, s := range []string{"Basic YXBwOnNlY3JldA==", "basic YSUzQWI6Yw==", "Bearer x", "Basic !!!", "Basic YTpi%"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, h string) {
		r, _ := http.NewRequest(http.MethodPost, "http://bridge.example/oidc/token", nil)
		r.Header.Set("Authorization", h)
		c, ok, err := basicAuth(r)
		if err != nil || !ok || c.decodeErr {
			return
		}
		r2, _ := http.NewRequest(http.MethodPost, "http://bridge.example/oidc/token", nil)
		r2.SetBasicAuth(url.QueryEscape(c.id), url.QueryEscape(c.secret))
		c2, ok2, err2 := basicAuth(r2)
		if err2 != nil || !ok2 || c2.decodeErr || c2.id != c.id || c2.secret != c.secret {
			t.Fatalf("%q decoded to (%q, %q) but does not round-trip", h, c.id, c.secret)
		}
	})
}

// FuzzAuthorizeRequest: a request that validation accepts asks for the code
// flow with openid, carries no parameter twice, and a public client's
// request carries an S256 challenge.
func FuzzAuthorizeRequest(f *testing.F) {
	f.Add("response_type=code&scope=openid&code_challenge=E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM&code_challenge_method=S256", true)
	f.Add("response_type=code&scope=openid+email&prompt=none&max_age=0", false)
	f.Add("response_type=code+id_token&scope=openid&scope=openid", false)
	f.Add("response_type=code&scope=openid&request=x&max_age=-3", true)
	f.Fuzz(func(t *testing.T, query string, public bool) {
		v, err := url.ParseQuery(query)
		if err != nil {
			return
		}
		method := AuthSecretBasic
		if public {
			method = AuthNone
		}
		cl := Client{ID: "app", Metadata: ClientMetadata{TokenEndpointAuthMethod: method}}
		r := ParseAuthorizeRequest(v)
		if err := ValidateAuthorizeRequest(cl, r); err != nil {
			if _, ok := err.(*Error); !ok {
				t.Fatalf("validation error %T is not a protocol error", err)
			}
			return
		}
		switch {
		case r.ResponseType != "code", !slices.Contains(strings.Fields(r.Scope), "openid"), r.Repeated != "":
			t.Fatalf("accepted %q", query)
		case public && (r.CodeChallengeMethod != "S256" || len(r.CodeChallenge) != 43):
			t.Fatalf("accepted a public client's request without S256 PKCE: %q", query)
		case r.MaxAge < -1:
			t.Fatalf("accepted a malformed max_age: %q", query)
		}
	})
}
