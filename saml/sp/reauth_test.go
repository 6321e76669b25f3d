package sp

import (
	"encoding/json"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/slobridge/slobridge"
	"github.com/slobridge/slobridge/saml"
	"github.com/slobridge/slobridge/store"
)

// addIdPUser registers another user at the samlidp test IdP.
func addIdPUser(t *testing.T, idpURL, name string) {
	t.Helper()
	user := `{"name":"` + name + `","password":"correct horse","email":"` + name + `@example.com"}`
	req, _ := http.NewRequest(http.MethodPut, idpURL+"/users/"+name, strings.NewReader(user))
	resp, err := http.DefaultClient.Do(req)
	if err != nil || resp.StatusCode/100 != 2 {
		t.Fatalf("add user %s: %v %v", name, err, resp)
	}
	resp.Body.Close()
}

// forgetCookie drops a cookie of the test host from the browser's jar.
func (b *bridge) forgetCookie(name string) {
	u, _ := url.Parse(b.srv.URL)
	b.client.Jar.SetCookies(u, []*http.Cookie{{Name: name, Value: "", Path: "/", MaxAge: -1}})
}

// whoami returns the browser's bridge session.
func (b *bridge) whoami(t *testing.T) store.Session {
	t.Helper()
	resp := b.get("/test/whoami")
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("no bridge session: %d", resp.StatusCode)
	}
	var s store.Session
	if err := json.Unmarshal([]byte(readBody(t, resp)), &s); err != nil {
		t.Fatal(err)
	}
	return s
}

// upstreamLogin logs user in at the IdP afresh (see loginVia) from the
// test login route and returns the bridge session the browser then holds,
// and whether the AuthnRequest asked for ForceAuthn.
func (b *bridge) upstreamLogin(t *testing.T, user string, crossSite bool) (store.Session, bool) {
	t.Helper()
	_, force := b.loginVia(t, "/test/login", user, crossSite)
	return b.whoami(t), force
}

// loginVia starts at start, a bridge URL that needs a login, and logs user
// in at the IdP afresh: the IdP's own session cookie is dropped first, so
// that it authenticates again and issues a new SessionIndex. It posts the
// Response to the ACS and returns the ACS's redirect, and whether the
// AuthnRequest asked for ForceAuthn. With crossSite, the ACS POST carries
// no bridge session cookie, as a browser sends none of its SameSite=Lax
// cookies with a cross-site POST.
func (b *bridge) loginVia(t *testing.T, start, user string, crossSite bool) (*http.Response, bool) {
	t.Helper()
	b.forgetCookie("session") // samlidp's session cookie
	resp := b.get(start)
	if resp.StatusCode != http.StatusSeeOther {
		t.Fatalf("start login at %s: %d %s", start, resp.StatusCode, readBody(t, resp))
	}
	loc := resp.Header.Get("Location")
	u, err := url.Parse(loc)
	if err != nil {
		t.Fatal(err)
	}
	m, err := saml.DecodeRedirect(u.RawQuery, saml.Limits{})
	if err != nil {
		t.Fatalf("decode AuthnRequest: %v", err)
	}
	force := m.Root().SelectAttrValue("ForceAuthn", "") == "true"
	resp, err = b.client.Get(loc)
	if err != nil {
		t.Fatal(err)
	}
	action, form := parseForm(t, readBody(t, resp))
	form.Set("user", user)
	form.Set("password", "correct horse")
	if resp, err = b.client.PostForm(action, form); err != nil || resp.StatusCode != http.StatusOK {
		t.Fatalf("IdP login: %v %v", err, resp)
	}
	readBody(t, resp)
	if resp, err = b.client.Get(loc); err != nil {
		t.Fatal(err)
	}
	acs, form := parseForm(t, readBody(t, resp))
	if crossSite {
		b.forgetCookie(slobridge.SessionCookieName)
	}
	resp = b.post(acs, "application/x-www-form-urlencoded", []byte(form.Encode()))
	if resp.StatusCode != http.StatusSeeOther {
		t.Fatalf("ACS answered %d %s", resp.StatusCode, readBody(t, resp))
	}
	return resp, force
}

// join makes r a back-channel participant of session sid.
func (b *bridge) join(t *testing.T, sid, app string, r *receiver) {
	t.Helper()
	if _, err := b.eng.AddParticipant(t.Context(), store.Participant{SessionID: sid, Kind: "http", AppID: app,
		Channels: store.ChannelBack, BackChannelURL: r.srv.URL}); err != nil {
		t.Fatal(err)
	}
}

// upstreamLogout sends the IdP's SOAP LogoutRequest for nameID and
// sessionIndex, signed with its key, and returns the verified answer.
func (b *bridge) upstreamLogout(t *testing.T, idpURL string, nameID store.NameID, sessionIndex string) *saml.LogoutResponse {
	t.Helper()
	id, err := saml.NewID(nil)
	if err != nil {
		t.Fatal(err)
	}
	req := &saml.LogoutRequest{ID: id, IssueInstant: time.Now(), Destination: b.sp.url(PathSLOSOAP), Issuer: idpURL + "/metadata",
		NameID: saml.NameID{Value: nameID.Value, Format: nameID.Format, NameQualifier: nameID.NameQualifier,
			SPNameQualifier: nameID.SPNameQualifier},
		SessionIndexes: []string{sessionIndex}}
	return b.logoutResponseFrom(b.sendLogoutRequest(saml.BindingSOAP, req), saml.BindingSOAP, req.ID)
}

// TestReloginKeepsSession logs alice in at a real IdP (crewjam samlidp),
// lets an app join, has her log in at the IdP again (a new IdP session,
// so a new SessionIndex), lets a second app join, and has the IdP log the
// session out by one of its SessionIndexes: the bridge session is the
// same throughout, carries the new SessionIndex, and its end reaches both
// apps.
func TestReloginKeepsSession(t *testing.T) {
	for _, tc := range []struct {
		name      string
		crossSite bool // the ACS POST carries no bridge cookie
		logoutBy  string
	}{
		{"new SessionIndex", false, "new"},
		{"new SessionIndex, cross-site ACS", true, "new"},
		{"old SessionIndex", false, "old"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, idpSrv := realIdP(t, true)
			b := newBridge(t, bridgeOptions{upstreams: []UpstreamConfig{{Name: "corp", MetadataURL: idpSrv.URL + "/metadata"}}})
			registerSP(t, idpSrv, b)
			before, after := newReceiver(t, http.StatusOK), newReceiver(t, http.StatusOK)

			first, force := b.upstreamLogin(t, "alice", false)
			if force {
				t.Error("first login asked for ForceAuthn")
			}
			b.join(t, first.ID, "before", before)

			second, force := b.upstreamLogin(t, "alice", tc.crossSite)
			if !force {
				t.Error("a login while the browser holds a session did not ask for ForceAuthn")
			}
			if second.ID != first.ID {
				t.Fatalf("re-login made session %s, the browser held %s", second.ID, first.ID)
			}
			if second.SessionIndex == "" || second.SessionIndex == first.SessionIndex {
				t.Fatalf("SessionIndex %q after re-login, was %q", second.SessionIndex, first.SessionIndex)
			}
			if len(second.PriorLogins) != 1 || second.PriorLogins[0] != first.UpstreamLogin() {
				t.Fatalf("PriorLogins %+v, want the first login", second.PriorLogins)
			}
			if second.AuthTime.Before(first.AuthTime) || !second.CreatedAt.Equal(first.CreatedAt) {
				t.Fatalf("auth_time %v (was %v), created %v (was %v)", second.AuthTime, first.AuthTime, second.CreatedAt, first.CreatedAt)
			}
			n, err := b.st.CountActiveSessions(t.Context(), time.Now())
			if err != nil || n != 1 {
				t.Fatalf("%d active sessions after re-login (%v), want 1", n, err)
			}
			b.join(t, second.ID, "after", after)

			si := second.SessionIndex
			if tc.logoutBy == "old" {
				si = first.SessionIndex
			}
			lr := b.upstreamLogout(t, idpSrv.URL, second.NameID, si)
			if !lr.Success() || lr.Partial() {
				t.Fatalf("LogoutResponse %s/%s, want Success", lr.Status, lr.SubStatus)
			}
			if !b.ended(first.ID) {
				t.Fatal("session not ended by the upstream logout")
			}
			waitFor(t, "both apps notified", func() bool { return before.count() == 1 && after.count() == 1 })
		})
	}
}

// TestReloginAsAnotherUser has bob log in at the IdP in the browser that
// holds alice's session: alice's session is logged out (her back-channel
// app notified at once, her front-channel app by the logout page the
// browser passes through on its way back) and bob gets a session of his
// own.
func TestReloginAsAnotherUser(t *testing.T) {
	_, idpSrv := realIdP(t, true)
	addIdPUser(t, idpSrv.URL, "bob")
	b := newBridge(t, bridgeOptions{upstreams: []UpstreamConfig{{Name: "corp", MetadataURL: idpSrv.URL + "/metadata"}}})
	registerSP(t, idpSrv, b)
	app, frontApp := newReceiver(t, http.StatusOK), newReceiver(t, http.StatusOK)

	alice, _ := b.upstreamLogin(t, "alice", false)
	b.join(t, alice.ID, "app", app)
	if _, err := b.eng.AddParticipant(t.Context(), store.Participant{SessionID: alice.ID, Kind: "http", AppID: "front",
		Channels: store.ChannelFront, FrontChannelURL: frontApp.srv.URL + "/fc"}); err != nil {
		t.Fatal(err)
	}
	acs, _ := b.loginVia(t, "/test/login", "bob", true)
	bob := b.whoami(t)
	if bob.ID == alice.ID || bob.UserID != "bob@example.com" {
		t.Fatalf("bob's login got session %+v (alice's is %s)", bob, alice.ID)
	}
	if !b.ended(alice.ID) {
		t.Fatal("alice's session still active after bob logged in in her browser")
	}
	ended, err := b.st.GetSession(t.Context(), alice.ID)
	if err != nil {
		t.Fatal(err)
	}
	lo, err := b.st.GetLogout(t.Context(), ended.LogoutID)
	if err != nil || lo.Initiator != (store.Initiator{Kind: store.InitiatorSystem, ID: slobridge.ReloginInitiatorID}) {
		t.Fatalf("logout of alice's session: %+v %v", lo, err)
	}
	waitFor(t, "alice's app notified", func() bool { return app.count() == 1 })

	// The browser passes through the logout page of alice's session,
	// which frames her front-channel app, then reaches the login's
	// destination.
	page := acs.Header.Get("Location")
	if page != b.sp.opts.LogoutPageURL(lo.ID) {
		t.Fatalf("ACS sent the browser to %q, want the logout page of alice's session", page)
	}
	if body := readBody(t, b.get(page)); !strings.Contains(body, `src="`+frontApp.srv.URL+`/fc"`) {
		t.Fatalf("logout page does not frame alice's front-channel app:\n%s", body)
	}
	next := "/logout/continue/" + lo.ID
	for range 3 {
		resp := b.get(next)
		readBody(t, resp)
		if resp.StatusCode != http.StatusSeeOther {
			t.Fatalf("GET %s: %d", next, resp.StatusCode)
		}
		if next = resp.Header.Get("Location"); !strings.HasPrefix(next, "/logout/") {
			break
		}
	}
	if !strings.HasPrefix(next, "/test/whoami") {
		t.Fatalf("after the logout page the browser went to %q, want the login's destination", next)
	}
	if ps, err := b.st.ListParticipants(t.Context(), bob.ID); err != nil || len(ps) != 0 {
		t.Fatalf("bob's session has participants %+v (%v)", ps, err)
	}
}

func TestSessionIndexes(t *testing.T) {
	nid := store.NameID{Value: "alice@example.com", Format: emailFmt}
	other := store.NameID{Value: "tr-1", Format: "urn:oasis:names:tc:SAML:2.0:nameid-format:transient"}
	for _, tc := range []struct {
		name string
		s    store.Session
		want []string
	}{
		{"one login", store.Session{Upstream: "corp", NameID: nid, SessionIndex: "_s1"}, []string{"_s1"}},
		{"no SessionIndex names every session", store.Session{Upstream: "corp", NameID: nid,
			PriorLogins: []store.UpstreamLogin{{Upstream: "corp", NameID: nid, SessionIndex: "_s0"}}}, nil},
		{"earlier logins of the same NameID, newest first", store.Session{Upstream: "corp", NameID: nid, SessionIndex: "_s3",
			PriorLogins: []store.UpstreamLogin{
				{Upstream: "corp", NameID: nid, SessionIndex: "_s1"},
				{Upstream: "corp", NameID: other, SessionIndex: "_t1"},
				{Upstream: "other", NameID: nid, SessionIndex: "_o1"},
				{Upstream: "corp", NameID: nid},
				{Upstream: "corp", NameID: nid, SessionIndex: "_s3"},
				{Upstream: "corp", NameID: nid, SessionIndex: "_s2"},
			}}, []string{"_s3", "_s2", "_s1"}},
	} {
		if got := sessionIndexes(tc.s); !slices.Equal(got, tc.want) {
			t.Errorf("%s: %v, want %v", tc.name, got, tc.want)
		}
	}
}

// TestLogoutTowardUpstreamAfterRelogin: the bridge's LogoutRequest for a
// session whose user logged in again under the same NameID names both
// upstream sessions.
func TestLogoutTowardUpstreamAfterRelogin(t *testing.T) {
	b := newBridge(t, bridgeOptions{upstreams: []UpstreamConfig{corpUpstream(t, map[string]string{saml.BindingRedirect: idpSLO})}})
	s := b.session("corp", "alice", "alice@example.com", "_s1")
	now := b.eng.Now()
	s, err := b.st.ReauthenticateSession(t.Context(), s.ID, store.SessionAuth{UserID: "alice", Upstream: "corp",
		NameID: s.NameID, SessionIndex: "_s2", AuthTime: now, ExpiresAt: now.Add(time.Hour)}, now)
	if err != nil {
		t.Fatal(err)
	}
	lo := b.userLogout(s, store.InitiatorUser)
	resp := b.get("/logout/continue/" + lo.ID)
	u, err := url.Parse(resp.Header.Get("Location"))
	if resp.StatusCode != http.StatusSeeOther || err != nil {
		t.Fatalf("continue answered %d %q", resp.StatusCode, resp.Header.Get("Location"))
	}
	m, err := saml.DecodeRedirect(u.RawQuery, saml.Limits{})
	if err != nil {
		t.Fatal(err)
	}
	req, err := (&saml.Validator{Store: b.st}).LogoutRequest(t.Context(), m, b.spTrust(), idpSLO)
	if err != nil {
		t.Fatalf("the bridge's LogoutRequest does not validate: %v", err)
	}
	if req.NameID.Value != "alice@example.com" || !slices.Equal(req.SessionIndexes, []string{"_s2", "_s1"}) {
		t.Fatalf("LogoutRequest names %+v %v, want both SessionIndexes", req.NameID, req.SessionIndexes)
	}
}
