package oidc

import (
	"context"
	"net/http"
	"net/url"
	"testing"
)

func TestRefreshReuseRevokesTheFamily(t *testing.T) {
	for _, tc := range []struct {
		name       string
		endSession bool
	}{
		{"family only", false},
		{"family and session", true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			env := newTokenEnv(t, func(o *Options) { o.EndSessionOnRefreshReuse = tc.endSession })
			rp := env.newRPClient(t, "mobile")
			_, tok0 := env.login(t, rp)
			sid := sidOf(t, env, tok0.AccessToken)
			ec, tok1 := refreshErr(t, rp, tok0.RefreshToken)
			if ec != "" {
				t.Fatalf("first rotation: %s", ec)
			}
			ec, tok2 := refreshErr(t, rp, tok1.RefreshToken)
			if ec != "" {
				t.Fatalf("second rotation: %s", ec)
			}
			if tok2.RefreshToken == tok1.RefreshToken || tok1.RefreshToken == tok0.RefreshToken {
				t.Fatal("refresh tokens were not rotated")
			}

			// An attacker replays the first, rotated refresh token.
			if ec, _ := refreshErr(t, rp, tok0.RefreshToken); ec != ErrInvalidGrant {
				t.Fatalf("reused refresh token: error %q, want invalid_grant", ec)
			}
			if ec, _ := refreshErr(t, rp, tok2.RefreshToken); ec != ErrInvalidGrant {
				t.Fatalf("newest refresh token after reuse: error %q, want invalid_grant", ec)
			}
			for _, at := range []string{tok0.AccessToken, tok1.AccessToken, tok2.AccessToken} {
				wantInactive(t, "family access token", env.introspect(t, rp.id, rp.conf.ClientSecret, at))
			}
			s, err := env.st.GetSession(context.Background(), sid)
			if err != nil {
				t.Fatal(err)
			}
			if ended := !s.EndedAt.IsZero(); ended != tc.endSession {
				t.Fatalf("session ended = %v, want %v", ended, tc.endSession)
			}
			if tc.endSession {
				env.waitEvent(t)
				if code, _ := env.callAPI(t, tok2.AccessToken); code != http.StatusUnauthorized {
					t.Fatalf("API after the reuse ended the session: HTTP %d, want 401", code)
				}
			}
		})
	}
}

func TestRevokeRefreshTokenRevokesTheFamily(t *testing.T) {
	for _, tc := range []struct {
		name   string
		revoke func(tok0, tok1 string) string // which refresh token the client revokes
	}{
		{"the live refresh token", func(_, tok1 string) string { return tok1 }},
		{"an already rotated refresh token", func(tok0, _ string) string { return tok0 }},
	} {
		t.Run(tc.name, func(t *testing.T) {
			env := newTokenEnv(t)
			rp := env.newRPClient(t, "web")
			_, tok0 := env.login(t, rp)
			ec, tok1 := refreshErr(t, rp, tok0.RefreshToken)
			if ec != "" {
				t.Fatalf("rotation: %s", ec)
			}
			code, _, body := env.postToken(t, PathRevoke, rp.id, rp.conf.ClientSecret,
				url.Values{"token": {tc.revoke(tok0.RefreshToken, tok1.RefreshToken)}, "token_type_hint": {"refresh_token"}})
			if code != http.StatusOK || body != nil {
				t.Fatalf("revoke: HTTP %d body %v, want 200 and no body", code, body)
			}
			if ec, _ := refreshErr(t, rp, tok1.RefreshToken); ec != ErrInvalidGrant {
				t.Fatalf("refresh after revocation: error %q, want invalid_grant", ec)
			}
			wantInactive(t, "refresh token", env.introspect(t, rp.id, rp.conf.ClientSecret, tok1.RefreshToken))
			wantInactive(t, "first access token", env.introspect(t, rp.id, rp.conf.ClientSecret, tok0.AccessToken))
			wantInactive(t, "second access token", env.introspect(t, rp.id, rp.conf.ClientSecret, tok1.AccessToken))
		})
	}
}

func TestRevokeAccessToken(t *testing.T) {
	env := newTokenEnv(t)
	rp := env.newRPClient(t, "web")
	_, tok := env.login(t, rp)
	if code, _, _ := env.postToken(t, PathRevoke, rp.id, rp.conf.ClientSecret, url.Values{"token": {tok.AccessToken}}); code != http.StatusOK {
		t.Fatalf("revoke: HTTP %d, want 200", code)
	}
	wantInactive(t, "revoked access token", env.introspect(t, rsID, rsSecret, tok.AccessToken))
	if _, err := env.p.Userinfo(context.Background(), tok.AccessToken); err == nil {
		t.Fatal("userinfo accepts a revoked access token")
	}
	// Revoking again is not an error (RFC 7009 §2.2).
	if code, _, _ := env.postToken(t, PathRevoke, rp.id, rp.conf.ClientSecret, url.Values{"token": {tok.AccessToken}}); code != http.StatusOK {
		t.Fatalf("second revoke: HTTP %d, want 200", code)
	}
	// The refresh token is another grant artefact and stays usable.
	if m := env.introspect(t, rp.id, rp.conf.ClientSecret, tok.RefreshToken); m["active"] != true {
		t.Fatalf("refresh token after revoking the access token: %v", m)
	}
}
