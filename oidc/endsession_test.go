package oidc

import (
	"html"
	"net/http"
	"net/url"
	"regexp"
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
// bridge's own /logout, a browser that does not hold the hinted session
// (asked, RP-Initiated Logout §2), and a request with nothing left to log
// out.
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
			name: "hint without cookie asks the person", confirm: true, dropCookie: true,
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
			// A second app in the same session: the logout reaches it, and
			// not the RP that started it (slobridge.InitiatorKey).
			other := newRP(t, b, rpConfig{Name: "other", AuthMethod: AuthSecretBasic, BackChannel: true})
			if ol := signIn(t, br, other, ""); ol.SID != login.SID {
				t.Fatalf("the second app joined session %s, want %s", ol.SID, login.SID)
			}
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
				if lt := receive(t, "logout token", other.backLogouts); lt.Token.SessionID != login.SID {
					t.Fatalf("logout token for sid %q", lt.Token.SessionID)
				}
				select {
				case lt := <-rp.backLogouts:
					t.Fatalf("the RP that started the logout was sent a logout token: %+v", lt.Token)
				case <-time.After(200 * time.Millisecond):
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

// TestHintWithoutCookieNeedsConfirmation: a GET with a valid (even
// expired) id_token_hint from a browser that does not hold the session
// ends nothing; the confirmation page it gets, posted back by that same
// browser (which got the SameSite=Strict confirmation cookie), logs the
// hinted session out; the same form posted by another browser is refused.
func TestHintWithoutCookieNeedsConfirmation(t *testing.T) {
	b, rp, _, login := endSessionEnv(t)
	b.clock.Advance(b.p.opts.IDTokenTTL + time.Hour)
	stranger := noFollow(browser(t))
	resp := get(t, stranger, b.p.Issuer()+PathEndSession+"?"+endSessionQuery(rp, login.RawIDToken).Encode())
	body := readBody(t, resp)
	if resp.StatusCode != http.StatusOK || sessionEnded(t, b, login.SID) {
		t.Fatalf("GET with a hint and no cookie: HTTP %d, session ended %v", resp.StatusCode, sessionEnded(t, b, login.SID))
	}
	_, form := parseHTMLForm(t, body)
	other := noFollow(browser(t))
	r, err := other.PostForm(b.p.Issuer()+PathConfirm, form)
	if err != nil {
		t.Fatal(err)
	}
	r.Body.Close()
	if r.StatusCode != http.StatusForbidden || sessionEnded(t, b, login.SID) {
		t.Fatalf("confirmation posted by another browser: HTTP %d, session ended %v", r.StatusCode, sessionEnded(t, b, login.SID))
	}
	r, err = stranger.PostForm(b.p.Issuer()+PathConfirm, form)
	if err != nil {
		t.Fatal(err)
	}
	r.Body.Close()
	if r.StatusCode != http.StatusSeeOther || !sessionEnded(t, b, login.SID) {
		t.Fatalf("confirmation by the browser shown it: HTTP %d, session ended %v", r.StatusCode, sessionEnded(t, b, login.SID))
	}
}

// parseHTMLForm returns the action and hidden inputs of the first form.
func parseHTMLForm(t *testing.T, body string) (string, url.Values) {
	t.Helper()
	v := url.Values{}
	for _, m := range regexp.MustCompile(`<input type="hidden" name="([^"]+)" value="([^"]*)">`).FindAllStringSubmatch(body, -1) {
		v.Set(m[1], html.UnescapeString(m[2]))
	}
	a := regexp.MustCompile(`<form method="post" action="([^"]+)">`).FindStringSubmatch(body)
	if a == nil || v.Get("csrf") == "" {
		t.Fatalf("no confirmation form in:\n%s", body)
	}
	return a[1], v
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
