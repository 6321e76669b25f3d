package oidc

import (
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/slobridge/slobridge"
	"github.com/slobridge/slobridge/store"
)

// endSessionEnv signs a browser in at one back-channel app.
func endSessionEnv(t *testing.T) (*bridge, *testRP, *http.Client, rpLogin) {
	t.Helper()
	b := newBridgeEngine(t, quietEngine)
	rp := newRP(t, b, rpConfig{Name: "app", AuthMethod: AuthSecretBasic, BackChannel: true})
	br := browser(t)
	return b, rp, br, signIn(t, br, rp, "")
}

func sessionEnded(t *testing.T, b *bridge, sid string) bool {
	t.Helper()
	s, err := b.st.GetSession(t.Context(), sid)
	if err != nil {
		t.Fatal(err)
	}
	return !s.EndedAt.IsZero()
}

// TestEndSessionRequests covers RP-Initiated Logout 1.0 requests that are
// valid: GET and POST, an expired hint (still a valid hint, §2), the
// bridge's own /logout, a browser that lost its cookie, and a request with
// nothing left to log out.
func TestEndSessionRequests(t *testing.T) {
	tests := []struct {
		name string
		// send makes the request; the browser has its bridge cookie unless
		// dropCookie.
		send       func(t *testing.T, b *bridge, rp *testRP, nf *http.Client, login rpLogin) *http.Response
		dropCookie bool
		// logsOut: the request ends the session and goes to the logout
		// page; otherwise it asks for confirmation (confirm) or redirects
		// straight to the post_logout_redirect_uri.
		logsOut, confirm bool
		// ended: the session was already ended before the request.
		ended bool
	}{
		{
			name: "GET with hint", logsOut: true,
			send: func(t *testing.T, b *bridge, rp *testRP, nf *http.Client, l rpLogin) *http.Response {
				return get(t, nf, b.p.Issuer()+PathEndSession+"?"+endSessionQuery(rp, l.RawIDToken).Encode())
			},
		},
		{
			name: "POST with hint", logsOut: true,
			send: func(t *testing.T, b *bridge, rp *testRP, nf *http.Client, l rpLogin) *http.Response {
				resp, err := nf.PostForm(b.p.Issuer()+PathEndSession, endSessionQuery(rp, l.RawIDToken))
				if err != nil {
					t.Fatal(err)
				}
				t.Cleanup(func() { resp.Body.Close() })
				return resp
			},
		},
		{
			name: "expired hint is still a hint", logsOut: true,
			send: func(t *testing.T, b *bridge, rp *testRP, nf *http.Client, l rpLogin) *http.Response {
				b.clock.Advance(b.p.opts.IDTokenTTL + time.Hour)
				return get(t, nf, b.p.Issuer()+PathEndSession+"?"+endSessionQuery(rp, l.RawIDToken).Encode())
			},
		},
		{
			name: "hint without cookie logs out the hinted session", logsOut: true, dropCookie: true,
			send: func(t *testing.T, b *bridge, rp *testRP, nf *http.Client, l rpLogin) *http.Response {
				return get(t, nf, b.p.Issuer()+PathEndSession+"?"+endSessionQuery(rp, l.RawIDToken).Encode())
			},
		},
		{
			name: "client_id without hint asks the person", confirm: true,
			send: func(t *testing.T, b *bridge, rp *testRP, nf *http.Client, l rpLogin) *http.Response {
				q := endSessionQuery(rp, "")
				q.Set("client_id", rp.clientID)
				return get(t, nf, b.p.Issuer()+PathEndSession+"?"+q.Encode())
			},
		},
		{
			name: "bridge /logout asks the person", confirm: true,
			send: func(t *testing.T, b *bridge, rp *testRP, nf *http.Client, l rpLogin) *http.Response {
				return get(t, nf, b.p.Issuer()+PathLogout)
			},
		},
		{
			name: "hint of an ended session goes straight back", dropCookie: true,
			send: func(t *testing.T, b *bridge, rp *testRP, nf *http.Client, l rpLogin) *http.Response {
				if _, err := b.eng.Logout(t.Context(), slobridge.LogoutRequest{SessionIDs: []string{l.SID}, Initiator: store.Initiator{Kind: store.InitiatorAdmin}}); err != nil {
					t.Fatal(err)
				}
				receive(t, "logout token of the first logout", rp.backLogouts)
				return get(t, nf, b.p.Issuer()+PathEndSession+"?"+endSessionQuery(rp, l.RawIDToken).Encode())
			},
			ended: true,
		},
		{
			name: "nothing to log out goes straight back", dropCookie: true,
			send: func(t *testing.T, b *bridge, rp *testRP, nf *http.Client, l rpLogin) *http.Response {
				q := endSessionQuery(rp, "")
				q.Set("client_id", rp.clientID)
				return get(t, nf, b.p.Issuer()+PathEndSession+"?"+q.Encode())
			},
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			b, rp, br, login := endSessionEnv(t)
			nf := noFollow(br)
			if tc.dropCookie {
				nf = noFollow(browser(t))
			}
			resp := tc.send(t, b, rp, nf, login)
			loc := resp.Header.Get("Location")
			switch {
			case tc.logsOut:
				if resp.StatusCode != http.StatusSeeOther || !strings.HasPrefix(loc, "/logout/page/") {
					t.Fatalf("HTTP %d to %q, want 303 to the logout page", resp.StatusCode, loc)
				}
				if !sessionEnded(t, b, login.SID) {
					t.Fatal("the session is still active")
				}
				checkCookieCleared(t, resp)
				if lt := receive(t, "logout token", rp.backLogouts); lt.Token.SessionID != login.SID {
					t.Fatalf("logout token for sid %q", lt.Token.SessionID)
				}
			case tc.confirm:
				body := readBody(t, resp)
				if resp.StatusCode != http.StatusOK || !strings.Contains(body, `name="csrf"`) || loc != "" {
					t.Fatalf("HTTP %d, want the confirmation page:\n%s", resp.StatusCode, body)
				}
				if csp := resp.Header.Get("Content-Security-Policy"); !strings.Contains(csp, "frame-ancestors 'none'") {
					t.Fatalf("confirmation page CSP %q allows framing", csp)
				}
				if sessionEnded(t, b, login.SID) {
					t.Fatal("the session ended before the person confirmed")
				}
			default:
				if resp.StatusCode != http.StatusSeeOther || loc != rp.url("/after-logout")+"?state=es-state" {
					t.Fatalf("HTTP %d to %q, want the post_logout_redirect_uri with state", resp.StatusCode, loc)
				}
				if got := sessionEnded(t, b, login.SID); got != tc.ended {
					t.Fatalf("session ended = %v, want %v: only a cookie or a hint of a live session logs out", got, tc.ended)
				}
				select {
				case lt := <-rp.backLogouts:
					t.Fatalf("a second logout token was sent: %+v", lt.Token)
				default:
				}
			}
		})
	}
}

func endSessionQuery(rp *testRP, hint string) url.Values {
	q := url.Values{"post_logout_redirect_uri": {rp.url("/after-logout")}, "state": {"es-state"}, "ui_locales": {"de-CH fr"}}
	if hint != "" {
		q.Set("id_token_hint", hint)
	}
	return q
}

// TestConfirmLogoutCompletes: the confirmation form, posted with its CSRF
// token by the browser that was shown it, logs out and keeps the
// post_logout_redirect_uri and state; a second post of the same form does
// nothing.
func TestConfirmLogoutCompletes(t *testing.T) {
	b, rp, br, login := endSessionEnv(t)
	e := &badEnv{b: b, app: rp, br: br, nf: noFollow(br), login: login}
	confirmSetup(t, e)
	post := func() *http.Response {
		resp, err := e.nf.PostForm(b.p.Issuer()+PathConfirm, url.Values{"id": {e.confirmID}, "csrf": {e.csrf}})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { resp.Body.Close() })
		return resp
	}
	resp := post()
	if resp.StatusCode != http.StatusSeeOther || !strings.HasPrefix(resp.Header.Get("Location"), "/logout/page/") {
		t.Fatalf("confirm: HTTP %d to %q", resp.StatusCode, resp.Header.Get("Location"))
	}
	if !sessionEnded(t, b, login.SID) {
		t.Fatal("confirmed logout left the session active")
	}
	resp = get(t, e.nf, b.p.Issuer()+"/logout/done/"+strings.TrimPrefix(resp.Header.Get("Location"), "/logout/page/"))
	// confirmSetup sends no state: the URI comes back as registered.
	if loc := resp.Header.Get("Location"); loc != rp.url("/after-logout") {
		t.Fatalf("after the logout: %q, want %s", loc, rp.url("/after-logout"))
	}
	if resp := post(); resp.StatusCode != http.StatusForbidden {
		t.Fatalf("the confirmation was accepted twice: HTTP %d", resp.StatusCode)
	}
}

// checkCookieCleared: the logout response removes the bridge session
// cookie with the attributes it was set with (HttpOnly, SameSite=Lax, not
// Secure on loopback http).
func checkCookieCleared(t *testing.T, resp *http.Response) {
	t.Helper()
	for _, c := range resp.Cookies() {
		if c.Name != slobridge.SessionCookieName {
			continue
		}
		if c.MaxAge >= 0 || c.Value != "" || !c.HttpOnly || c.SameSite != http.SameSiteLaxMode || c.Secure {
			t.Fatalf("session cookie not cleared properly: %+v", c)
		}
		return
	}
	t.Fatal("the logout response does not clear the session cookie")
}
