package slobridge

import (
	"context"
	"io"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/slobridge/slobridge/store"
)

// browserWith returns a request that carries the cookie for session sid
// ("" for none).
func browserWith(c SessionCookies, sid string, expires time.Time) *http.Request {
	r := httptest.NewRequest(http.MethodPost, "https://bridge.example.org/saml/acs", nil)
	if sid == "" {
		return r
	}
	w := httptest.NewRecorder()
	c.Set(w, sid, expires)
	for _, ck := range w.Result().Cookies() {
		r.AddCookie(ck)
	}
	return r
}

// upstreamLogin is a session as an Authenticator builds it from an
// upstream assertion.
func upstreamLogin(e *Engine, user, nameID, sessionIndex string, ttl time.Duration) store.Session {
	now := e.Now()
	return store.Session{
		UserID: user, Upstream: "idp",
		NameID:       store.NameID{Value: nameID, Format: "urn:oasis:names:tc:SAML:2.0:nameid-format:transient"},
		SessionIndex: sessionIndex,
		Attributes:   map[string][]string{"email": {user + "@example.org"}, "login": {sessionIndex}},
		AuthTime:     now, ExpiresAt: now.Add(ttl),
	}
}

func TestEstablishSession(t *testing.T) {
	st := openStore(t, t.TempDir()+"/slobridge.db")
	e, _ := runEngine(t, testOptions(st))
	ctx := context.Background()
	cookies := SessionCookies{Secret: []byte("0123456789abcdef0123456789abcdef")}
	rc := newReceiver(t, nil)

	// No bridge session in the browser: a new one.
	first, err := e.EstablishSession(ctx, cookies.BrowserSessionID(browserWith(cookies, "", time.Time{})), upstreamLogin(e, "alice", "tr-1", "si-1", time.Hour))
	if err != nil {
		t.Fatalf("EstablishSession without a session: %v", err)
	}
	if _, err := e.AddParticipant(ctx, store.Participant{SessionID: first.ID, Kind: "http", AppID: "app1",
		Channels: store.ChannelBack, BackChannelURL: rc.srv.URL + "/app1"}); err != nil {
		t.Fatal(err)
	}

	tests := []struct {
		name string
		// cookie says which cookie the browser carries: "first" (the
		// first session's) or "forged" (signed with another secret).
		cookie string
		login  store.Session
		// same: the browser's session is kept.
		same bool
	}{
		{"same user again keeps the session", "first", upstreamLogin(e, "alice", "tr-2", "si-2", 3*time.Hour), true},
		{"same user, upstream reused its session", "first", upstreamLogin(e, "alice", "tr-2", "si-2", 2*time.Hour), true},
		{"forged cookie is no session", "forged", upstreamLogin(e, "alice", "tr-3", "si-3", time.Hour), false},
	}
	for _, tc := range tests {
		r := browserWith(cookies, first.ID, first.ExpiresAt)
		if tc.cookie == "forged" {
			r = browserWith(SessionCookies{Secret: []byte("another secret, another bridge!!")}, first.ID, first.ExpiresAt)
		}
		got, err := e.EstablishSession(ctx, cookies.BrowserSessionID(r), tc.login)
		if err != nil {
			t.Fatalf("%s: %v", tc.name, err)
		}
		if (got.ID == first.ID) != tc.same {
			t.Fatalf("%s: session %s, browser held %s, want kept = %v", tc.name, got.ID, first.ID, tc.same)
		}
		stored, err := st.GetSession(ctx, got.ID)
		if err != nil {
			t.Fatal(err)
		}
		if stored.SessionIndex != tc.login.SessionIndex || stored.NameID != tc.login.NameID ||
			!stored.ExpiresAt.Equal(tc.login.ExpiresAt) || !slices.Equal(stored.Attributes["login"], tc.login.Attributes["login"]) {
			t.Fatalf("%s: stored session %+v does not carry the new login %+v", tc.name, stored, tc.login)
		}
		if !tc.same && stored.ID == first.ID {
			t.Fatalf("%s: reused the session", tc.name)
		}
	}
	kept, err := st.GetSession(ctx, first.ID)
	if err != nil {
		t.Fatal(err)
	}
	if !kept.CreatedAt.Equal(first.CreatedAt) || !kept.EndedAt.IsZero() {
		t.Fatalf("kept session %+v", kept)
	}
	// Both the new and the first upstream login find the session.
	for _, si := range []string{"si-1", "si-2"} {
		nid := "tr-" + si[len("si-"):]
		found, err := st.FindSessionsByNameID(ctx, "idp", store.NameID{Value: nid}, si)
		if err != nil || len(found) != 1 || found[0].ID != first.ID {
			t.Fatalf("FindSessionsByNameID %s %s: %v %v", nid, si, found, err)
		}
	}
	if len(rc.got()) != 0 {
		t.Fatalf("a re-login of the same user notified participants: %v", rc.got())
	}

	// Somebody else logs in in the same browser: alice's session is
	// logged out (app1 notified) and bob gets a new one.
	bob, err := e.EstablishSession(ctx, cookies.BrowserSessionID(browserWith(cookies, first.ID, kept.ExpiresAt)), upstreamLogin(e, "bob", "tr-bob", "si-bob", time.Hour))
	if err != nil {
		t.Fatalf("EstablishSession as another user: %v", err)
	}
	if bob.ID == first.ID || bob.UserID != "bob" {
		t.Fatalf("login as bob got session %+v", bob)
	}
	ended, err := st.GetSession(ctx, first.ID)
	if err != nil {
		t.Fatal(err)
	}
	if ended.EndedAt.IsZero() || ended.LogoutID == "" {
		t.Fatalf("alice's session not ended: %+v", ended)
	}
	lo, err := st.GetLogout(ctx, ended.LogoutID)
	if err != nil {
		t.Fatal(err)
	}
	if lo.Initiator != (store.Initiator{Kind: store.InitiatorSystem, ID: ReloginInitiatorID}) {
		t.Fatalf("logout initiator %+v", lo.Initiator)
	}
	status := waitStatus(t, e, lo.ID, "app1 notified", allDone)
	if row(t, status, "http:app1").State != string(store.DeliveryDelivered) || len(rc.got()) != 1 {
		t.Fatalf("app1 after alice's session was replaced: %+v, receiver got %v", row(t, status, "http:app1"), rc.got())
	}

	// A cookie of an ended session is no session: a new one.
	again, err := e.EstablishSession(ctx, cookies.BrowserSessionID(browserWith(cookies, first.ID, kept.ExpiresAt)), upstreamLogin(e, "alice", "tr-4", "si-4", time.Hour))
	if err != nil {
		t.Fatal(err)
	}
	if again.ID == first.ID {
		t.Fatal("an ended session was brought back")
	}
}

func TestLogoutDetour(t *testing.T) {
	st := openStore(t, t.TempDir()+"/slobridge.db")
	e, _ := runEngine(t, testOptions(st))
	ctx := context.Background()
	rc := newReceiver(t, nil)
	front := store.Participant{Kind: "http", AppID: "front", Channels: store.ChannelFront, FrontChannelURL: "https://front.example.org/logout"}
	back := store.Participant{Kind: "http", AppID: "back", Channels: store.ChannelBack, BackChannelURL: rc.srv.URL + "/back"}
	for _, tc := range []struct {
		name   string
		user   string // who logs in in alice's browser
		ps     []store.Participant
		detour bool
	}{
		{"same user: no logout", "alice", []store.Participant{front}, false},
		{"another user, back-channel participant only", "bob", []store.Participant{back}, false},
		{"another user, front-channel participant", "bob", []store.Participant{back, front}, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			alice := newSession(t, e, "alice", tc.ps...)
			est, err := e.EstablishLogin(ctx, alice.ID, upstreamLogin(e, tc.user, "tr-"+tc.user, "si-"+tc.user, time.Hour))
			if err != nil {
				t.Fatal(err)
			}
			if est.Kept != (tc.user == "alice") || (est.Replaced.ID != "") == (tc.user == "alice") {
				t.Fatalf("kept %v, replaced %q", est.Kept, est.Replaced.ID)
			}
			path, detour, err := e.LogoutDetour(ctx, est, "/oidc/authorize/resume?id=x")
			if err != nil {
				t.Fatal(err)
			}
			if detour != tc.detour {
				t.Fatalf("detour = %v, want %v (path %s)", detour, tc.detour, path)
			}
			if !detour {
				if path != "/oidc/authorize/resume?id=x" {
					t.Fatalf("path %q, want the login's destination", path)
				}
				return
			}
			if path != LogoutPagePath(est.Replaced.ID) {
				t.Fatalf("path %q, want the replaced session's logout page", path)
			}
			rec, err := st.GetRecord(ctx, LogoutReturnNamespace, est.Replaced.ID, e.Now())
			if err != nil || !strings.Contains(string(rec.Value), `"/oidc/authorize/resume?id=x"`) {
				t.Fatalf("logout return %s, %v", rec.Value, err)
			}
			if !isRelogin(est.Replaced) {
				t.Fatalf("replaced logout initiator %+v", est.Replaced.Initiator)
			}
		})
	}
}

// TestReloginLogoutPage: the logout page of a session ended because
// another user logged in frames the previous user's front-channel app,
// does not send the browser to the upstream (where the new user has just
// logged in), and continues to the login's destination.
func TestReloginLogoutPage(t *testing.T) {
	h := newPageHarness(t, true, LogoutPageOptions{})
	ctx := context.Background()
	alice := newSession(t, h.eng, "alice", h.front("Mail"))
	est, err := h.eng.EstablishLogin(ctx, alice.ID, upstreamLogin(h.eng, "bob", "tr-bob", "si-bob", time.Hour))
	if err != nil {
		t.Fatal(err)
	}
	page, detour, err := h.eng.LogoutDetour(ctx, est, "/after-login")
	if err != nil || !detour {
		t.Fatalf("LogoutDetour: %q %v %v", page, detour, err)
	}
	client := &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	resp, err := client.Get(h.bridge.URL + page)
	if err != nil {
		t.Fatal(err)
	}
	body := readAll(t, resp)
	if resp.StatusCode != http.StatusOK || !strings.Contains(body, `src="`+h.app.URL+`/fc/Mail"`) {
		t.Fatalf("logout page %d does not frame alice's app:\n%s", resp.StatusCode, body)
	}
	next := "/logout/continue/" + est.Replaced.ID
	for range 3 {
		resp, err = client.Get(h.bridge.URL + next)
		if err != nil {
			t.Fatal(err)
		}
		readAll(t, resp)
		if resp.StatusCode != http.StatusSeeOther {
			t.Fatalf("GET %s: %d", next, resp.StatusCode)
		}
		next = resp.Header.Get("Location")
		if !strings.HasPrefix(next, "/logout/") {
			break
		}
	}
	if next != "/after-login" {
		t.Fatalf("the logout page continued to %q, want the login's destination", next)
	}
	h.mu.Lock()
	up := h.upstream
	h.mu.Unlock()
	if up != 0 {
		t.Fatalf("the browser was sent to the upstream %d times", up)
	}
}

func readAll(t *testing.T, resp *http.Response) string {
	t.Helper()
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}
