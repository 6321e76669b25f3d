package oidc

import (
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	"golang.org/x/oauth2"
)

// TestAuthorizeErrorsRedirected: once client and redirect URI are trusted,
// errors go back to the client with error, state and iss (RFC 6749
// §4.1.2.1, OpenID Connect Core §3.1.2.6, RFC 9207).
func TestAuthorizeErrorsRedirected(t *testing.T) {
	tests := []struct {
		name   string
		change func(q url.Values)
		want   string
	}{
		{"prompt=none without a bridge session", func(q url.Values) { q.Set("prompt", "none") }, ErrLoginRequired},
		{"response_type token", func(q url.Values) { q.Set("response_type", "token") }, ErrUnsupportedResponseType},
		{"response_type id_token", func(q url.Values) { q.Set("response_type", "code id_token") }, ErrUnsupportedResponseType},
		{"scope without openid", func(q url.Values) { q.Set("scope", "email profile") }, ErrInvalidScope},
		{"request object", func(q url.Values) { q.Set("request", "eyJhbGciOiJub25lIn0.e30.") }, ErrRequestNotSupported},
		{"request_uri", func(q url.Values) { q.Set("request_uri", "https://app.example/req") }, ErrRequestURINotSupported},
		{"malformed max_age", func(q url.Values) { q.Set("max_age", "soon") }, ErrInvalidRequest},
		{"negative max_age", func(q url.Values) { q.Set("max_age", "-1") }, ErrInvalidRequest},
		{"unknown prompt", func(q url.Values) { q.Set("prompt", "sometimes") }, ErrInvalidRequest},
		{"prompt=none with login", func(q url.Values) { q.Set("prompt", "none login") }, ErrInvalidRequest},
		{"code_challenge too short", func(q url.Values) { q.Set("code_challenge", "abc") }, ErrInvalidRequest},
		{"code_challenge_method alone", func(q url.Values) { q.Del("code_challenge") }, ErrInvalidRequest},
		{"response_mode fragment", func(q url.Values) { q.Set("response_mode", "fragment") }, ErrInvalidRequest},
		{"response_mode form_post.jwt", func(q url.Values) { q.Set("response_mode", "form_post.jwt") }, ErrInvalidRequest},
		{"repeated scope", func(q url.Values) { q.Add("scope", "openid email") }, ErrInvalidRequest},
		{"repeated state", func(q url.Values) { q.Add("state", "other") }, ErrInvalidRequest},
		{"repeated code_challenge", func(q url.Values) { q.Add("code_challenge", q.Get("code_challenge")) }, ErrInvalidRequest},
	}
	b := newBridgeEngine(t, quietEngine)
	rp := newRP(t, b, rpConfig{Name: "spa", AuthMethod: AuthNone})
	nf := noFollow(browser(t)) // no bridge session
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			q := url.Values{
				"response_type": {"code"}, "client_id": {rp.clientID}, "scope": {"openid"},
				"redirect_uri": {rp.url("/callback")}, "state": {"st"},
				"code_challenge": {oauth2.S256ChallengeFromVerifier(oauth2.GenerateVerifier())}, "code_challenge_method": {"S256"},
			}
			tc.change(q)
			resp := get(t, nf, b.p.Issuer()+PathAuthorize+"?"+q.Encode())
			loc, err := url.Parse(resp.Header.Get("Location"))
			if err != nil || resp.StatusCode != http.StatusFound {
				t.Fatalf("HTTP %d to %q, want a redirect", resp.StatusCode, resp.Header.Get("Location"))
			}
			got := loc.Query()
			loc.RawQuery = ""
			if loc.String() != rp.url("/callback") || got.Get("error") != tc.want || got.Get("state") != "st" || got.Get("iss") != b.p.Issuer() {
				t.Fatalf("redirect %s, want %s with error=%s, state and iss", resp.Header.Get("Location"), rp.url("/callback"), tc.want)
			}
			if n := b.auth.calls.Load(); n != 0 {
				t.Fatalf("a refused request started %d upstream logins", n)
			}
		})
	}
}

// TestAuthorizeReauthentication: with a bridge session, prompt=none answers
// at once; prompt=login and an exceeded max_age send the user upstream
// again, and the new auth_time reaches the ID token.
func TestAuthorizeReauthentication(t *testing.T) {
	b := newBridge(t)
	rp := newRP(t, b, rpConfig{Name: "app", AuthMethod: AuthSecretBasic})
	br := browser(t)
	first := signIn(t, br, rp, "")

	if l := signIn(t, br, rp, "prompt=none"); l.SID != first.SID || b.auth.calls.Load() != 1 {
		t.Fatalf("prompt=none with a session: sid %q, upstream logins %d", l.SID, b.auth.calls.Load())
	}
	if l := signIn(t, br, rp, "max_age=3600"); l.SID != first.SID || b.auth.calls.Load() != 1 {
		t.Fatalf("max_age not exceeded: sid %q, upstream logins %d", l.SID, b.auth.calls.Load())
	}
	b.clock.Advance(2 * time.Second)
	l := signIn(t, br, rp, "max_age=1")
	if b.auth.calls.Load() != 2 || !l.AuthTime.After(first.AuthTime) {
		t.Fatalf("max_age exceeded: upstream logins %d, auth_time %v (first %v)", b.auth.calls.Load(), l.AuthTime, first.AuthTime)
	}
	b.clock.Advance(2 * time.Second)
	l2 := signIn(t, br, rp, "prompt=login")
	if b.auth.calls.Load() != 3 || !l2.AuthTime.After(l.AuthTime) {
		t.Fatalf("prompt=login: upstream logins %d, auth_time %v (before %v)", b.auth.calls.Load(), l2.AuthTime, l.AuthTime)
	}
}

// TestAuthorizeResponse: a successful response carries code, state and iss
// (RFC 9207) and is not cacheable; the code is single-use and short-lived.
func TestAuthorizeResponse(t *testing.T) {
	b := newBridgeEngine(t, quietEngine)
	rp := newRP(t, b, rpConfig{Name: "app", AuthMethod: AuthSecretBasic})
	br := browser(t)
	signIn(t, br, rp, "")
	e := &badEnv{b: b, app: rp, br: br, nf: noFollow(br)}
	resp := get(t, e.nf, e.authorizeURL(rp, "", oauth2.GenerateVerifier()))
	loc, _ := url.Parse(resp.Header.Get("Location"))
	q := loc.Query()
	if q.Get("code") == "" || q.Get("state") != "xyz-state" || q.Get("iss") != b.p.Issuer() {
		t.Fatalf("authorization response %s", resp.Header.Get("Location"))
	}
	if cc := resp.Header.Get("Cache-Control"); !strings.Contains(cc, "no-store") {
		t.Fatalf("Cache-Control %q", cc)
	}
	rec, err := b.st.GetRecord(t.Context(), nsCode, hashKey(q.Get("code")), b.clock.Now())
	if err != nil {
		t.Fatalf("the code is not stored under its hash: %v", err)
	}
	if life := time.Until(rec.ExpiresAt); life > b.p.opts.CodeTTL || life < b.p.opts.CodeTTL-10*time.Second {
		t.Fatalf("code lives %v, want %v", life, b.p.opts.CodeTTL)
	}
}
