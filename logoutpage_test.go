package slobridge

import (
	"bufio"
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/chromedp/cdproto/emulation"
	"github.com/chromedp/cdproto/page"
	"github.com/chromedp/chromedp"
	"github.com/gin-gonic/gin"

	"github.com/slobridge/slobridge/store"
)

var updateScreenshots = flag.Bool("screenshots", false, "write screenshots of the logout status page to testdata/screenshots")

// pageHarness is a bridge that serves only the logout page, an engine with
// real workers on a bbolt file, a front-channel app, and a fake upstream
// IdP that sends the browser back like a SAML IdP would.
type pageHarness struct {
	eng    *Engine
	bridge *httptest.Server
	app    *httptest.Server

	mu       sync.Mutex
	appHits  []string
	upstream int
}

func newPageHarness(t *testing.T, withUpstream bool, opts LogoutPageOptions) *pageHarness {
	t.Helper()
	gin.SetMode(gin.ReleaseMode)
	h := &pageHarness{}
	eng, _ := runEngine(t, testOptions(openStore(t, filepath.Join(t.TempDir(), "bridge.db"))))
	h.eng = eng
	h.app = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		h.mu.Lock()
		h.appHits = append(h.appHits, r.URL.Path)
		h.mu.Unlock()
		w.Header().Set("Content-Type", "text/html; charset=utf-8")
		_, _ = io.WriteString(w, "<!doctype html><title>app</title><p>app page "+r.URL.Path+"</p>")
	}))
	t.Cleanup(h.app.Close)

	r := gin.New()
	h.bridge = httptest.NewServer(r)
	t.Cleanup(h.bridge.Close)
	opts.Engine = eng
	opts.Logger = slog.New(slog.NewTextHandler(io.Discard, nil))
	if withUpstream {
		up := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			h.mu.Lock()
			h.upstream++
			h.mu.Unlock()
			// The "upstream IdP" ends its session and sends the browser
			// back to the bridge's SLO return endpoint.
			http.Redirect(w, r, h.bridge.URL+"/test-upstream-return?id="+url.QueryEscape(r.URL.Query().Get("id")), http.StatusFound)
		}))
		t.Cleanup(up.Close)
		opts.Upstream = fakeUpstream{url: up.URL}
		r.GET("/test-upstream-return", func(c *gin.Context) {
			id := c.Query("id")
			if _, err := eng.BeginBrowserLeg(c, id, "", UpstreamLeg, time.Hour); err != nil {
				c.String(http.StatusInternalServerError, err.Error())
				return
			}
			if err := eng.EndBrowserLeg(c, id, "", UpstreamLeg, LegResult{Done: true}); err != nil {
				c.String(http.StatusInternalServerError, err.Error())
				return
			}
			c.Redirect(http.StatusSeeOther, "/logout/done/"+url.PathEscape(id))
		})
	}
	lp, err := NewLogoutPage(opts)
	if err != nil {
		t.Fatalf("NewLogoutPage: %v", err)
	}
	lp.Mount(r)
	return h
}

// fakeUpstream hands the browser to a test upstream IdP.
type fakeUpstream struct{ url string }

func (f fakeUpstream) StartLogout(w http.ResponseWriter, r *http.Request, lo store.Logout, returnTo string) (bool, error) {
	http.Redirect(w, r, f.url+"/slo?id="+url.QueryEscape(lo.ID), http.StatusFound)
	return true, nil
}

// participant kinds of the harness: "http" has a notifier, "disabled"
// has none, so its deliveries are retried for ever.
func (h *pageHarness) back(t *testing.T, name string, status int) store.Participant {
	rc := newReceiver(t, func(int, *http.Request) int { return status })
	return store.Participant{Kind: "http", AppID: name, Key: "http:" + name, Name: name,
		Channels: store.ChannelBack, BackChannelURL: rc.srv.URL + "/logout"}
}

func (h *pageHarness) disabled(name string) store.Participant {
	return store.Participant{Kind: "disabled", AppID: name, Key: "disabled:" + name, Name: name,
		Channels: store.ChannelBack, BackChannelURL: h.app.URL + "/never"}
}

func (h *pageHarness) front(name string) store.Participant {
	return store.Participant{Kind: "oidc", AppID: name, Key: "oidc:" + name, Name: name,
		Channels: store.ChannelFront, FrontChannelURL: h.app.URL + "/fc/" + name}
}

// logout creates a session with ps and logs it out.
func (h *pageHarness) logout(t *testing.T, ps ...store.Participant) store.Logout {
	t.Helper()
	s := newSession(t, h.eng, "alice", ps...)
	lo, err := h.eng.Logout(context.Background(), LogoutRequest{SessionIDs: []string{s.ID}, Initiator: store.Initiator{Kind: store.InitiatorUser}})
	if err != nil {
		t.Fatalf("Logout: %v", err)
	}
	return lo
}

func (h *pageHarness) hits() []string {
	h.mu.Lock()
	defer h.mu.Unlock()
	return append([]string(nil), h.appHits...)
}

// cspWatch records Content-Security-Policy violations of every page the
// tab loads, so a test can prove the page works under its own policy.
const cspWatch = `window.__csp = []; document.addEventListener("securitypolicyviolation", function (e) { window.__csp.push(e.violatedDirective + " " + e.blockedURI); });`

func watchCSP(t *testing.T, ctx context.Context) {
	t.Helper()
	_, err := chromedp.Call(ctx, page.AddScriptToEvaluateOnNewDocument, page.AddScriptToEvaluateOnNewDocumentParams{Source: cspWatch})
	if err != nil {
		t.Fatalf("install CSP watch: %v", err)
	}
}

func checkCSP(t *testing.T, ctx context.Context) {
	t.Helper()
	v, err := chromedp.Run(ctx, chromedp.Evaluate[[]string](`window.__csp || []`))
	if err != nil {
		t.Fatalf("read CSP violations: %v", err)
	}
	if len(v) > 0 {
		t.Errorf("the page violated its CSP: %v", v)
	}
}

// rowStates returns the data-state of every row of the status page.
func rowStates(t *testing.T, ctx context.Context) map[string]string {
	t.Helper()
	m, err := chromedp.Run(ctx, chromedp.Evaluate[map[string]string](`(function(){var m={};document.querySelectorAll("tr[data-state]").forEach(function(tr){m[tr.id.replace("row-","")]=tr.getAttribute("data-state")});return m})()`))
	if err != nil {
		t.Fatalf("read row states: %v", err)
	}
	return m
}

func rowText(t *testing.T, ctx context.Context, id string) string {
	t.Helper()
	s, err := chromedp.Run(ctx, chromedp.Text(chromedp.CSS("#row-"+id)))
	if err != nil {
		t.Fatalf("read row %s: %v", id, err)
	}
	return s
}

// statesExpr is a JavaScript condition: every row has the wanted state.
func statesExpr(want map[string]string) string {
	var conds []string
	for id, st := range want {
		conds = append(conds, fmt.Sprintf(`(document.getElementById(%q)||{getAttribute:function(){return ""}}).getAttribute("data-state")===%q`, "row-"+id, st))
	}
	return strings.Join(conds, " && ")
}

func screenshot(t *testing.T, ctx context.Context, name string) {
	t.Helper()
	if !*updateScreenshots {
		return
	}
	png, err := chromedp.Run(ctx, chromedp.FullScreenshot(100))
	if err != nil {
		t.Fatalf("screenshot: %v", err)
	}
	if err := os.MkdirAll(filepath.Join("testdata", "screenshots"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join("testdata", "screenshots", name), png, 0o644); err != nil {
		t.Fatal(err)
	}
}

// TestStatusPageShowsFailingParticipants logs out a session with a healthy
// back-channel app, one that rejects the logout token, one whose notifier
// is disabled (no notifier for its kind) and one front-channel app. The
// page must show them done, failed, retrying and done, with the errors,
// and must not continue on its own; Continue then ends the upstream
// session and lands on the final page.
func TestStatusPageShowsFailingParticipants(t *testing.T) {
	h := newPageHarness(t, true, LogoutPageOptions{BackChannelWait: 3 * time.Second})
	ctx := newBrowser(t)
	watchCSP(t, ctx)
	lo := h.logout(t, h.back(t, "Payroll", http.StatusOK), h.back(t, "Wiki", http.StatusBadRequest),
		h.disabled("CRM"), h.front("Mail"))
	if err := chromedp.Do(ctx, chromedp.Navigate(h.bridge.URL+LogoutPagePath(lo.ID))); err != nil {
		t.Fatalf("open page: %v", err)
	}
	want := map[string]string{"p0": RowDone, "p1": RowFailed, "p2": RowRetrying, "p3": RowDone, "upstream": RowPending}
	waitJS(t, ctx, "live row states", statesExpr(want))
	if got := rowText(t, ctx, "p1"); !strings.Contains(got, "HTTP 400") {
		t.Errorf("failed row does not show the receiver's answer: %q", got)
	}
	if got := rowText(t, ctx, "p2"); !strings.Contains(got, `no notifier for participant kind "disabled"`) {
		t.Errorf("retrying row does not show why: %q", got)
	}
	// The fan-out has a failure: after the back-channel wait the page
	// says so and stays.
	waitJS(t, ctx, "problem summary", `document.getElementById("summary").className.indexOf("bad") >= 0 && document.getElementById("summary").textContent.indexOf("could not be told") >= 0`)
	screenshot(t, ctx, "logout-status-failed.png")
	if loc, err := chromedp.Run(ctx, chromedp.Location()); err != nil || !strings.Contains(loc, LogoutPagePath(lo.ID)) {
		t.Fatalf("page left with failing participants: at %s (%v)", loc, err)
	}
	checkCSP(t, ctx)
	if err := chromedp.Do(ctx, chromedp.Click(chromedp.CSS("#continue"))); err != nil {
		t.Fatalf("click continue: %v", err)
	}
	waitJS(t, ctx, "final page", `document.title === "Logged out"`)
	if got := rowStates(t, ctx); got["upstream"] != RowDone || got["p1"] != RowFailed || got["p3"] != RowSent {
		t.Errorf("final page states = %v, want upstream done, p1 failed, p3 sent", got)
	}
	if hits := h.hits(); !containsString(hits, "/fc/Mail") {
		t.Errorf("front-channel app was not loaded: %v", hits)
	}
}

func containsString(ss []string, s string) bool {
	for _, x := range ss {
		if x == s {
			return true
		}
	}
	return false
}

// TestStatusPageContinuesWhenAllDone: with every participant notified the
// page continues by itself through the upstream IdP to the stored
// destination.
func TestStatusPageContinuesWhenAllDone(t *testing.T) {
	h := newPageHarness(t, true, LogoutPageOptions{})
	ctx := newBrowser(t)
	watchCSP(t, ctx)
	lo := h.logout(t, h.back(t, "Payroll", http.StatusOK), h.back(t, "Wiki", http.StatusNoContent), h.front("Mail"))
	dest := h.app.URL + "/logged-out?state=xyz"
	if err := h.eng.SetLogoutReturn(context.Background(), lo.ID, LogoutReturn{RedirectURI: dest}, time.Hour); err != nil {
		t.Fatal(err)
	}
	if err := chromedp.Do(ctx, chromedp.Navigate(h.bridge.URL+LogoutPagePath(lo.ID))); err != nil {
		t.Fatalf("open page: %v", err)
	}
	waitJS(t, ctx, "all rows done", `location.pathname.indexOf("/logout/page/") < 0 || (`+
		statesExpr(map[string]string{"p0": RowDone, "p1": RowDone, "p2": RowDone})+`)`)
	screenshot(t, ctx, "logout-status-done.png")
	checkCSP(t, ctx)
	waitJS(t, ctx, "arrival at the destination", fmt.Sprintf(`location.href === %q`, dest))
	h.mu.Lock()
	ups := h.upstream
	h.mu.Unlock()
	if ups != 1 {
		t.Errorf("upstream IdP visited %d times, want 1", ups)
	}
	st, err := h.eng.Status(context.Background(), lo.ID)
	if err != nil || !st.Done {
		t.Errorf("status after the page continued: done=%v err=%v", st.Done, err)
	}
}

// TestStatusPageWithoutJavaScript: a browser without scripts loads the
// iframes, is refreshed to the final step where the server waited for the
// fan-out, and continues only when everything was done.
func TestStatusPageWithoutJavaScript(t *testing.T) {
	tests := []struct {
		name     string
		failing  bool
		want     map[string]string
		wantPath string
	}{
		{name: "all done", want: map[string]string{"p0": RowDone, "p1": RowSent, "upstream": RowDone}, wantPath: "/logout/done/"},
		{name: "one failed", failing: true, want: map[string]string{"p0": RowDone, "p1": RowSent, "p2": RowFailed, "upstream": RowPending}, wantPath: "/logout/page/"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			h := newPageHarness(t, true, LogoutPageOptions{FrontChannelWait: time.Second, BackChannelWait: 5 * time.Second})
			ctx := newBrowser(t)
			if _, err := chromedp.Call(ctx, emulation.SetScriptExecutionDisabled, emulation.SetScriptExecutionDisabledParams{Value: true}); err != nil {
				t.Fatalf("disable scripts: %v", err)
			}
			ps := []store.Participant{h.back(t, "Payroll", http.StatusOK), h.front("Mail")}
			if tc.failing {
				ps = append(ps, h.back(t, "Wiki", http.StatusBadRequest))
			}
			lo := h.logout(t, ps...)
			if err := chromedp.Do(ctx, chromedp.Navigate(h.bridge.URL+LogoutPagePath(lo.ID))); err != nil {
				t.Fatalf("open page: %v", err)
			}
			cond := `location.search === "?step=final"`
			if !tc.failing {
				cond = `document.title === "Logged out"`
			}
			waitJS(t, ctx, "the final state", cond)
			path, err := chromedp.Run(ctx, chromedp.Evaluate[string](`location.pathname`))
			if err != nil {
				t.Fatal(err)
			}
			if !strings.HasPrefix(path, tc.wantPath) {
				t.Errorf("ended at %s, want %s…", path, tc.wantPath)
			}
			got := rowStates(t, ctx)
			for id, st := range tc.want {
				if got[id] != st {
					t.Errorf("row %s = %q, want %q (all: %v)", id, got[id], st, got)
				}
			}
			if !containsString(h.hits(), "/fc/Mail") {
				t.Errorf("front-channel iframe was not loaded without scripts: %v", h.hits())
			}
		})
	}
}

// TestLogoutEventsStream reads the server-sent events of a logout until
// the fan-out is final.
func TestLogoutEventsStream(t *testing.T) {
	h := newPageHarness(t, false, LogoutPageOptions{StreamMax: waitTimeout})
	lo := h.logout(t, h.back(t, "Payroll", http.StatusOK), h.back(t, "Wiki", http.StatusBadRequest), h.front("Mail"))
	resp, err := http.Get(h.bridge.URL + "/logout/events/" + lo.ID)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if ct := resp.Header.Get("Content-Type"); ct != "text/event-stream" {
		t.Fatalf("Content-Type = %q", ct)
	}
	var last statusView
	n := 0
	sc := bufio.NewScanner(resp.Body)
	for sc.Scan() {
		data, ok := strings.CutPrefix(sc.Text(), "data: ")
		if !ok {
			continue
		}
		n++
		if err := json.Unmarshal([]byte(data), &last); err != nil {
			t.Fatalf("event %d: %v", n, err)
		}
	}
	if err := sc.Err(); err != nil {
		t.Fatalf("read stream: %v", err)
	}
	if !last.Done || last.Problems != 1 || last.Upstream != nil {
		t.Fatalf("last event = %+v, want done with one problem and no upstream row", last)
	}
	want := []string{RowDone, RowFailed, RowPending}
	for i, r := range last.Rows {
		if r.State != want[i] {
			t.Errorf("row %d (%s) = %s, want %s", i, r.Name, r.State, want[i])
		}
	}
	if !last.Rows[2].Frame || last.Rows[1].Error == "" || last.Rows[0].Protocol != "HTTP" {
		t.Errorf("rows = %+v", last.Rows)
	}
}

// TestLogoutPageHTTP checks the page's headers and its answers to unknown
// logouts without a browser.
func TestLogoutPageHTTP(t *testing.T) {
	h := newPageHarness(t, false, LogoutPageOptions{})
	lo := h.logout(t, h.front("Mail"))
	resp, err := http.Get(h.bridge.URL + LogoutPagePath(lo.ID))
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	csp := resp.Header.Get("Content-Security-Policy")
	m := regexp.MustCompile(`script-src 'nonce-([^']+)'`).FindStringSubmatch(csp)
	if m == nil {
		t.Fatalf("CSP without a script nonce: %q", csp)
	}
	for _, want := range []string{`<script nonce="` + m[1] + `">`, `<style nonce="` + m[1] + `">`, `src="` + h.app.URL + `/fc/Mail"`, `<noscript><meta http-equiv="refresh"`} {
		if !strings.Contains(string(body), want) {
			t.Errorf("page lacks %s", want)
		}
	}
	if !strings.Contains(csp, "frame-src "+h.app.URL+";") || !strings.Contains(csp, "default-src 'none'") {
		t.Errorf("CSP = %q", csp)
	}
	if strings.Contains(string(body), "http://cdn") || strings.Contains(string(body), "https://") {
		t.Errorf("page loads something from elsewhere")
	}
	for _, path := range []string{LogoutPagePath("nope"), "/logout/events/nope", "/logout/continue/nope", LogoutPagePath(strings.Repeat("x", 200))} {
		resp, err := http.Get(h.bridge.URL + path)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusNotFound {
			t.Errorf("GET %s = %d, want 404", path, resp.StatusCode)
		}
	}
}

// TestFrameOrigins: a participant's extra frame origins reach frame-src
// only when they are bare http(s) origins.
func TestFrameOrigins(t *testing.T) {
	lo := store.Logout{Participants: []store.Participant{
		{Key: "saml:a", Channels: store.ChannelFront, FrontChannelURL: "https://bridge.example/saml/idp/front/x",
			Data: map[string]string{DataFrameOrigins: "https://sp.example:8443 * 'unsafe-inline' https://sp.example/path javascript:alert(1) http://127.0.0.1:8083"}},
		{Key: "oidc:b", Channels: store.ChannelFront, FrontChannelURL: "javascript:alert(1)"},
		{Key: "oidc:c", Channels: store.ChannelBack, FrontChannelURL: "https://c.example/fc"},
	}}
	fs, origins := frames(lo)
	if len(fs) != 1 || fs[0].Row != "p0" {
		t.Errorf("frames = %+v, want only p0", fs)
	}
	want := []string{"https://bridge.example", "https://sp.example:8443", "http://127.0.0.1:8083"}
	if strings.Join(origins, " ") != strings.Join(want, " ") {
		t.Errorf("origins = %q, want %q", origins, want)
	}
}

// TestPublicError: the page shows why a delivery failed without the
// receiver's URL or address.
func TestPublicError(t *testing.T) {
	tests := []struct{ in, want string }{
		{`oidc: back-channel POST to calendar: Post "http://10.1.2.3:8082/backchannel-logout": dial tcp 10.1.2.3:8082: connect: connection refused`,
			`oidc: back-channel POST to calendar: Post "<logout endpoint>": dial tcp: connect: connection refused`},
		{`Post "https://app.internal.example/logout?x=1": read tcp 10.0.0.1:5555->10.0.0.2:443: read: connection reset by peer`,
			`Post "<logout endpoint>": read tcp: read: connection reset by peer`},
		{`receiver answered HTTP 400: Bad Request`, `receiver answered HTTP 400: Bad Request`},
		{`dial tcp: lookup app.internal.example: no such host`, `dial tcp: lookup: no such host`},
		{strings.Repeat("x", 400), strings.Repeat("x", maxErrorText) + "…"},
	}
	for _, tc := range tests {
		if got := publicError(tc.in); got != tc.want {
			t.Errorf("publicError(%q)\n got %q\nwant %q", tc.in, got, tc.want)
		}
	}
}

// TestFillRowState maps every engine state onto a page state.
func TestFillRowState(t *testing.T) {
	tests := []struct {
		state         string
		framed, final bool
		want          string
		frame         bool
	}{
		{state: "delivered", want: RowDone},
		{state: "pending", want: RowPending},
		{state: "retrying", want: RowRetrying},
		{state: "failed", want: RowFailed},
		{state: StateInitiator, want: RowDone},
		{state: StateFrontChannel, framed: true, want: RowPending, frame: true},
		{state: StateFrontChannel, framed: true, final: true, want: RowSent},
		{state: StateFrontChannel, want: RowFailed},
		{state: StateNone, want: RowFailed},
		{state: StateUnknown, want: RowFailed},
	}
	for _, tc := range tests {
		var r statusRow
		fillRowState(&r, ParticipantStatus{State: tc.state}, tc.framed, tc.final)
		if r.State != tc.want || r.Frame != tc.frame || r.Detail == "" {
			t.Errorf("%s framed=%v final=%v: got %+v, want %s frame=%v", tc.state, tc.framed, tc.final, r, tc.want, tc.frame)
		}
	}
}
