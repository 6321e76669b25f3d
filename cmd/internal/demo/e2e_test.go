package demo

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/url"
	"os"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
	"github.com/gin-gonic/gin"

	"github.com/slobridge/slobridge"
	adminapi "github.com/slobridge/slobridge/cmd/internal/admin"
	"github.com/slobridge/slobridge/cmd/internal/browsertest"
)

func TestMain(m *testing.M) {
	gin.SetMode(gin.ReleaseMode)
	os.Exit(m.Run())
}

// startDemo runs the whole demo in-process on free ports. Set
// SLOBRIDGE_DEMO_LOG=1 to see every part's logs.
func startDemo(t *testing.T, opts Options) *Demo {
	t.Helper()
	if opts.Listen == "" {
		opts.Listen = "127.0.0.1:0"
	}
	if os.Getenv("SLOBRIDGE_DEMO_LOG") != "" {
		opts.Logger = slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelDebug}))
	}
	ctx, cancel := context.WithTimeout(context.Background(), waitTimeout)
	defer cancel()
	d, err := Start(ctx, opts)
	if err != nil {
		t.Fatalf("start demo: %v", err)
	}
	t.Cleanup(func() {
		if err := d.Close(); err != nil {
			t.Errorf("close demo: %v", err)
		}
	})
	return d
}

// login opens the app's login; with a user it fills the upstream login
// form, without one it expects single sign-on. It ends on the app's page,
// logged in.
func login(t *testing.T, ctx context.Context, d *Demo, app AppInfo, user *User) {
	t.Helper()
	browsertest.Navigate(t, ctx, app.URL+"/login")
	if user != nil {
		fillUpstreamLogin(t, ctx, user)
	}
	waitLoggedIn(t, ctx, app)
}

// fillUpstreamLogin waits for the demo SAML IdP's login form and signs
// the user in.
func fillUpstreamLogin(t *testing.T, ctx context.Context, user *User) {
	t.Helper()
	browsertest.WaitJS(t, ctx, "the upstream login form", `!!document.querySelector("input[name=user]")`)
	fill := fmt.Sprintf(`(function(){var u=document.querySelector("input[name=user]"),p=document.querySelector("input[name=password]");u.value=%q;p.value=%q;u.form.requestSubmit();return true})()`, user.Username, user.Password)
	if _, err := chromedp.Run(ctx, chromedp.Evaluate[bool](fill)); err != nil {
		t.Fatalf("fill the login form: %v", err)
	}
}

// waitLoggedIn waits until the browser is on the app's page, logged in.
func waitLoggedIn(t *testing.T, ctx context.Context, app AppInfo) {
	t.Helper()
	browsertest.WaitJS(t, ctx, app.Name+" logged in", fmt.Sprintf(`location.href.indexOf(%q) === 0 && !!document.getElementById("state") && document.getElementById("state").textContent.indexOf("Logged in") === 0`, app.URL))
}

// appState reloads the app's page and returns its login state, how it
// learned of a logout and what the API says of its token.
func appState(t *testing.T, ctx context.Context, app AppInfo) (state, endedBy, api string) {
	t.Helper()
	browsertest.Navigate(t, ctx, app.URL+"/")
	return browsertest.Text(t, ctx, "#state"), browsertest.Text(t, ctx, "#ended-by"), browsertest.Text(t, ctx, "#api")
}

// expectLoggedOut reloads the app until it shows logged out (back-channel
// deliveries are asynchronous) and checks how it learned it and that the
// API rejects the token it held.
func expectLoggedOut(t *testing.T, ctx context.Context, app AppInfo, wantEndedBy string) {
	t.Helper()
	deadline := time.Now().Add(waitTimeout)
	for {
		state, endedBy, api := appState(t, ctx, app)
		// The API hears of the logout by its own SSF delivery, which may
		// land a moment after the app's: poll until both show it.
		apiDone := app.Protocol != "OpenID Connect" || strings.HasPrefix(api, "rejected")
		if strings.HasPrefix(state, "Logged out") && apiDone {
			if endedBy != wantEndedBy {
				t.Errorf("%s learned of the logout by %q, want %q", app.Name, endedBy, wantEndedBy)
			}
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s still shows %q (api %q)", app.Name, state, api)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// samlNotices reloads the SAML app's page and returns its state and every
// logout notice it lists, first one first.
func samlNotices(t *testing.T, ctx context.Context, app AppInfo) (string, []string) {
	t.Helper()
	browsertest.Navigate(t, ctx, app.URL+"/")
	js := `(function(){var l=document.querySelectorAll("#notices li");if(l.length===0){var e=document.getElementById("ended-by");return e?[e.textContent]:[]}return Array.prototype.map.call(l,function(x){return x.textContent})})()`
	notices, err := chromedp.Run(ctx, chromedp.Evaluate[[]string](js))
	if err != nil {
		t.Fatalf("%s: read the logout notices: %v", app.Name, err)
	}
	return browsertest.Text(t, ctx, "#state"), notices
}

// expectSAMLNotified reloads the SAML app until it shows logged out and
// lists every wanted notice (a browser logout tells it by the front
// channel and by SOAP, in either order), first among them first when
// first is set; then no notice of unwanted may be listed.
func expectSAMLNotified(t *testing.T, ctx context.Context, app AppInfo, first string, want, unwanted []string) {
	t.Helper()
	deadline := time.Now().Add(waitTimeout)
	for {
		state, notices := samlNotices(t, ctx, app)
		all := strings.HasPrefix(state, "Logged out")
		for _, w := range want {
			all = all && slices.Contains(notices, w)
		}
		if all {
			if first != "" && notices[0] != first {
				t.Errorf("%s first learned of the logout by %q, want %q (notices %q)", app.Name, notices[0], first, notices)
			}
			for _, u := range unwanted {
				if slices.Contains(notices, u) {
					t.Errorf("%s was also told by %q, which should not happen here (notices %q)", app.Name, u, notices)
				}
			}
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s shows %q with notices %q, want logged out and told by %q", app.Name, state, notices, want)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// bothSAMLChannels are the notices the SAML app gets in a browser logout
// it did not start: the logout page's iframe and the SOAP delivery.
var bothSAMLChannels = []string{EndedBySAMLRequest, EndedBySAMLSOAP}

func expectAPIAccepted(t *testing.T, ctx context.Context, app AppInfo) {
	t.Helper()
	state, _, api := appState(t, ctx, app)
	if !strings.HasPrefix(state, "Logged in") || api != "accepted" {
		t.Fatalf("%s: state %q, API %q; want logged in and accepted", app.Name, state, api)
	}
}

// activeSessions asks the bridge's admin API how many of the user's
// sessions are still active.
func activeSessions(t *testing.T, d *Demo, user string) int {
	t.Helper()
	var out struct {
		Sessions []struct {
			EndedAt time.Time `json:"ended_at"`
		} `json:"sessions"`
	}
	admin(t, d, http.MethodGet, "/users/"+url.PathEscape(user)+"/sessions", "", http.StatusOK, &out)
	n := 0
	for _, s := range out.Sessions {
		if s.EndedAt.IsZero() {
			n++
		}
	}
	return n
}

func admin(t *testing.T, d *Demo, method, path, body string, want int, out any) {
	t.Helper()
	req, err := http.NewRequest(method, d.BridgeURL+adminapi.Prefix+path, strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Authorization", "Bearer "+d.AdminToken)
	if body != "" {
		req.Header.Set("Content-Type", "application/json")
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatalf("admin %s %s: %v", method, path, err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != want {
		t.Fatalf("admin %s %s = %d %s, want %d", method, path, resp.StatusCode, b, want)
	}
	if out != nil {
		if err := json.Unmarshal(b, out); err != nil {
			t.Fatalf("admin %s %s: %v in %s", method, path, err, b)
		}
	}
}

// rowStateJS is the status page state of the row of the named app.
func rowStateJS(name string) string {
	return fmt.Sprintf(`(function(){var rows=document.querySelectorAll("tr[data-state]");for(var i=0;i<rows.length;i++){if(rows[i].cells[0].textContent===%q)return rows[i].getAttribute("data-state")}return ""})()`, name)
}

// TestSingleLogoutFromOIDCApp: one upstream login, SSO into both OIDC
// apps, logout from the back-channel app; every app then shows logged
// out, the bridge session is ended and the API rejects the tokens.
func TestSingleLogoutFromOIDCApp(t *testing.T) {
	ctx := browsertest.New(t)
	d := startDemo(t, Options{})
	loginEverywhere(t, ctx, d, &d.Users[0])
	if n := activeSessions(t, d, "alice"); n != 1 {
		t.Fatalf("alice has %d active bridge sessions after SSO, want 1", n)
	}

	browsertest.Navigate(t, ctx, d.BackApp.URL+"/")
	browsertest.Click(t, ctx, "#logout")
	// The logout page shows every participant done, then continues back
	// to the app.
	browsertest.WaitJS(t, ctx, "the logout status page", `location.pathname.indexOf("/logout/page/") === 0`)
	browsertest.WaitJS(t, ctx, "the status page all done, or the way back", fmt.Sprintf(`location.href.indexOf(%q) === 0 || (%s === "done" && %s === "done" && %s === "done" && document.getElementById("summary").className.indexOf("ok") >= 0)`,
		d.BackApp.URL, rowStateJS(d.FrontApp.Name), rowStateJS("Reports API"), rowStateJS(d.SAMLApp.Name)))
	if loc, _ := chromedp.Run(ctx, chromedp.Location()); strings.Contains(loc, "/logout/page/") {
		screenshot(t, ctx, "logout-status-done.png")
	}
	browsertest.WaitJS(t, ctx, "back at the app, logged out", fmt.Sprintf(`location.href === %q`, d.BackApp.URL+"/?logged_out=1"))

	expectLoggedOut(t, ctx, d.BackApp, EndedByRP)
	expectLoggedOut(t, ctx, d.FrontApp, EndedByFrontChannel)
	expectSAMLNotified(t, ctx, d.SAMLApp, "", bothSAMLChannels, nil)
	expectUpstreamEnded(t, ctx, d)
	if n := activeSessions(t, d, "alice"); n != 0 {
		t.Errorf("alice has %d active bridge sessions after logout", n)
	}
}

// loginEverywhere logs in once at the upstream IdP (through the
// back-channel app), then by SSO into the front-channel app and the SAML
// app, and checks that the API accepts both OIDC apps' tokens.
func loginEverywhere(t *testing.T, ctx context.Context, d *Demo, user *User) {
	t.Helper()
	login(t, ctx, d, d.BackApp, user)
	login(t, ctx, d, d.FrontApp, nil)
	login(t, ctx, d, d.SAMLApp, nil)
	expectAPIAccepted(t, ctx, d.BackApp)
	expectAPIAccepted(t, ctx, d.FrontApp)
	browsertest.Navigate(t, ctx, d.UpstreamURL+"/")
	if got := browsertest.Text(t, ctx, "#state"); !strings.HasPrefix(got, "Logged in as "+user.Username) {
		t.Fatalf("upstream IdP shows %q after login", got)
	}
}

// expectUpstreamEnded checks that the upstream IdP session is gone: its
// page says so (it is reloaded until then: after a logout without a
// browser the bridge tells the upstream over SOAP, asynchronously), and a
// new login at an app asks for the password again.
func expectUpstreamEnded(t *testing.T, ctx context.Context, d *Demo) {
	t.Helper()
	deadline := time.Now().Add(waitTimeout)
	for {
		browsertest.Navigate(t, ctx, d.UpstreamURL+"/")
		got := browsertest.Text(t, ctx, "#state")
		if got == "No session at the upstream IdP" {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("upstream IdP still shows %q", got)
		}
		time.Sleep(100 * time.Millisecond)
	}
	browsertest.Navigate(t, ctx, d.FrontApp.URL+"/login")
	browsertest.WaitJS(t, ctx, "the upstream login form again", `!!document.querySelector("input[name=user]")`)
}

// TestSingleLogoutFromSAMLApp: SP-initiated SAML logout at the SAML app
// ends the session everywhere and the app gets its LogoutResponse.
func TestSingleLogoutFromSAMLApp(t *testing.T) {
	ctx := browsertest.New(t)
	d := startDemo(t, Options{})
	loginEverywhere(t, ctx, d, &d.Users[1])
	browsertest.Navigate(t, ctx, d.SAMLApp.URL+"/")
	// The SAML app names what it holds for what it is: a SessionIndex.
	if got := browsertest.Text(t, ctx, "#status"); !strings.Contains(got, "SessionIndex") || strings.Contains(got, "OIDC sid") {
		t.Fatalf("the SAML app's page: %q", got)
	}
	browsertest.Click(t, ctx, "#logout")
	browsertest.WaitJS(t, ctx, "back at the SAML app after its LogoutResponse", fmt.Sprintf(`location.href === %q`, d.SAMLApp.URL+"/?logged_out=1"))
	// The initiator is told by neither channel: it ended its login itself.
	expectSAMLNotified(t, ctx, d.SAMLApp, EndedBySAMLHere, []string{EndedBySAMLHere}, bothSAMLChannels)
	expectLoggedOut(t, ctx, d.BackApp, EndedByBackChannel)
	expectLoggedOut(t, ctx, d.FrontApp, EndedByFrontChannel)
	expectUpstreamEnded(t, ctx, d)
	if n := activeSessions(t, d, "bob"); n != 0 {
		t.Errorf("bob has %d active bridge sessions after logout", n)
	}
}

// TestSingleLogoutFromUpstream: IdP-initiated logout at the upstream IdP
// reaches every app through the bridge, and the upstream gets a
// LogoutResponse.
func TestSingleLogoutFromUpstream(t *testing.T) {
	ctx := browsertest.New(t)
	d := startDemo(t, Options{})
	loginEverywhere(t, ctx, d, &d.Users[0])
	browsertest.Navigate(t, ctx, d.UpstreamURL+"/")
	browsertest.Click(t, ctx, "#logout")
	browsertest.WaitJS(t, ctx, "back at the upstream IdP with the bridge's answer", fmt.Sprintf(`location.href.indexOf(%q) === 0 && !!document.getElementById("message")`, d.UpstreamURL+"/?msg="))
	if got := browsertest.Text(t, ctx, "#message"); !strings.Contains(got, "logged you out of every app") {
		t.Errorf("upstream IdP says %q", got)
	}
	expectLoggedOut(t, ctx, d.BackApp, EndedByBackChannel)
	expectLoggedOut(t, ctx, d.FrontApp, EndedByFrontChannel)
	expectSAMLNotified(t, ctx, d.SAMLApp, "", bothSAMLChannels, nil)
	expectUpstreamEnded(t, ctx, d)
	if n := activeSessions(t, d, "alice"); n != 0 {
		t.Errorf("alice has %d active bridge sessions after logout", n)
	}
}

// TestSingleLogoutFromAdmin: an operator logs the user out everywhere and
// no browser takes part. The back-channel app gets a logout token, the
// SAML app a SOAP LogoutRequest (and no front-channel one: nobody runs the
// logout page), the front-channel app finds out at its next session check,
// the bridge ends the upstream IdP session over SOAP, and the API rejects
// both OIDC apps' tokens.
func TestSingleLogoutFromAdmin(t *testing.T) {
	ctx := browsertest.New(t)
	d := startDemo(t, Options{})
	loginEverywhere(t, ctx, d, &d.Users[1])

	var lo adminapi.LogoutResponse
	admin(t, d, http.MethodPost, "/logouts", `{"user_id":"bob"}`, http.StatusCreated, &lo)
	// expectLoggedOut also waits for the API to reject the app's token.
	expectLoggedOut(t, ctx, d.BackApp, EndedByBackChannel)
	expectSAMLNotified(t, ctx, d.SAMLApp, EndedBySAMLSOAP, []string{EndedBySAMLSOAP}, []string{EndedBySAMLRequest})
	expectLoggedOut(t, ctx, d.FrontApp, EndedBySessionCheck)
	expectUpstreamEnded(t, ctx, d)
	if n := activeSessions(t, d, "bob"); n != 0 {
		t.Errorf("bob has %d active bridge sessions after the admin logout", n)
	}
	// The SAML app's row: both channels registered, the SOAP delivery
	// confirmed by its signed LogoutResponse.
	// The bridge records the delivery after the app's answer: poll.
	deadline := time.Now().Add(waitTimeout)
	for {
		var st slobridge.LogoutStatus
		admin(t, d, http.MethodGet, strings.TrimPrefix(lo.StatusURL, adminapi.Prefix), "", http.StatusOK, &st)
		i := slices.IndexFunc(st.Participants, func(p slobridge.ParticipantStatus) bool { return p.Name == d.SAMLApp.Name })
		if i < 0 {
			t.Fatalf("the admin logout's status has no row for %s: %+v", d.SAMLApp.Name, st.Participants)
		}
		p := st.Participants[i]
		if p.State == "delivered" || p.State == "failed" || time.Now().After(deadline) {
			if p.Channel != "back+front" || p.State != "delivered" {
				t.Errorf("SAML app row: channel %q state %q (%s), want back+front delivered", p.Channel, p.State, p.LastError)
			}
			break
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// TestParticipantDown: the back-channel app is down during a logout; the
// status page shows it retrying and then failed while the others are
// done, and does not pretend the logout was complete.
func TestParticipantDown(t *testing.T) {
	ctx := browsertest.New(t)
	d := startDemo(t, Options{BackoffBase: 100 * time.Millisecond, GiveUpAfter: 3 * time.Second})
	loginEverywhere(t, ctx, d, &d.Users[0])
	if err := d.StopPart(d.BackApp.Name); err != nil {
		t.Fatal(err)
	}
	browsertest.Navigate(t, ctx, d.FrontApp.URL+"/")
	browsertest.Click(t, ctx, "#logout")
	browsertest.WaitJS(t, ctx, "the down app retrying", fmt.Sprintf(`%s === "retrying" || %s === "failed"`, rowStateJS(d.BackApp.Name), rowStateJS(d.BackApp.Name)))
	browsertest.WaitJS(t, ctx, "the down app failed, the others done", fmt.Sprintf(`%s === "failed" && %s === "done" && %s === "done" && %s === "done"`,
		rowStateJS(d.BackApp.Name), rowStateJS(d.FrontApp.Name), rowStateJS("Reports API"), rowStateJS(d.SAMLApp.Name)))
	browsertest.WaitJS(t, ctx, "the problem summary", `document.getElementById("summary").className.indexOf("bad") >= 0`)
	screenshot(t, ctx, "logout-status-failed.png")
	if loc, err := chromedp.Run(ctx, chromedp.Location()); err != nil || !strings.Contains(loc, "/logout/page/") {
		t.Fatalf("the status page did not stay with a failed participant: at %s (%v)", loc, err)
	}
	errText := browsertest.Text(t, ctx, "tr[data-state=failed] .error")
	if !strings.Contains(errText, "connection refused") && !strings.Contains(errText, "connect") {
		t.Errorf("the failed row does not say why: %q", errText)
	}
	browsertest.Click(t, ctx, "#continue")
	browsertest.WaitJS(t, ctx, "back at the app", fmt.Sprintf(`location.href === %q`, d.FrontApp.URL+"/?logged_out=1"))
	expectLoggedOut(t, ctx, d.FrontApp, EndedByRP)
	expectSAMLNotified(t, ctx, d.SAMLApp, "", bothSAMLChannels, nil)
	expectUpstreamEnded(t, ctx, d)
}

// TestBridgeStartsBeforeItsUpstream (issue 17): the bridge starts while
// its upstream IdP's metadata URL refuses connections; /readyz names the
// upstream ("degraded") and a login answers 503; once the IdP is up, the
// bridge picks its metadata up and a person logs in through it in
// Chromium, with no restart.
func TestBridgeStartsBeforeItsUpstream(t *testing.T) {
	ctx := browsertest.New(t)
	d := startDemo(t, Options{UpstreamLate: 3 * time.Second})
	var ready struct {
		Status    string            `json:"status"`
		Upstreams map[string]string `json:"upstreams"`
	}
	readyz := func() int {
		resp, err := http.Get(d.BridgeURL + "/readyz")
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		ready.Upstreams = nil
		if err := json.NewDecoder(resp.Body).Decode(&ready); err != nil {
			t.Fatal(err)
		}
		return resp.StatusCode
	}
	if code := readyz(); code != http.StatusOK || ready.Status != "degraded" || ready.Upstreams["demo-idp"] == "" {
		t.Fatalf("/readyz before the upstream started: %d %+v", code, ready)
	}
	expectUpstream(t, d, "demo-idp", "saml", false, map[string]string{"sp_metadata_url": d.BridgeURL + "/saml/sp/metadata"})
	resp, err := http.Get(d.BackApp.URL + "/login")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusServiceUnavailable {
		t.Fatalf("a login before the upstream started answered %d, want 503", resp.StatusCode)
	}
	deadline := time.Now().Add(waitTimeout)
	for readyz(); ready.Status != "ready"; readyz() {
		if time.Now().After(deadline) {
			t.Fatalf("/readyz after the upstream started: %+v", ready)
		}
		time.Sleep(100 * time.Millisecond)
	}
	loginEverywhere(t, ctx, d, &d.Users[0])
	expectUpstream(t, d, "demo-idp", "saml", true, nil)
}

// expectUpstream checks the admin API's view of the named upstream:
// its type, whether it is available (with an error when not), and, when
// register is set, what to register at it.
func expectUpstream(t *testing.T, d *Demo, name, typ string, available bool, register map[string]string) {
	t.Helper()
	var out adminapi.Upstreams
	admin(t, d, http.MethodGet, "/upstreams", "", http.StatusOK, &out)
	i := slices.IndexFunc(out.Upstreams, func(u adminapi.Upstream) bool { return u.Name == name })
	if i < 0 {
		t.Fatalf("admin upstreams lists no %q: %+v", name, out)
	}
	u := out.Upstreams[i]
	if u.Type != typ || u.Available != available || (u.Error == "") != available {
		t.Fatalf("admin upstreams: %+v; want type %s, available %v, an error exactly when unavailable", u, typ, available)
	}
	for k, v := range register {
		if u.Register[k] != v {
			t.Errorf("admin upstreams: register %s = %q, want %q", k, u.Register[k], v)
		}
	}
}
