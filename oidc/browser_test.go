package oidc

import (
	"context"
	"net/url"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
)

// chromiumPath is where the tests look for Chromium; SLOBRIDGE_CHROMIUM
// overrides it.
func chromiumPath() string {
	if p := os.Getenv("SLOBRIDGE_CHROMIUM"); p != "" {
		return p
	}
	return "/usr/bin/chromium"
}

// newChromium starts a headless Chromium with a fresh profile. Without a
// Chromium binary the test is skipped, or fails when CI=true.
func newChromium(t *testing.T) context.Context {
	t.Helper()
	path := chromiumPath()
	if _, err := os.Stat(path); err != nil {
		msg := "headless Chromium not found at " + path + ": install the chromium package or set SLOBRIDGE_CHROMIUM"
		if os.Getenv("CI") == "true" {
			t.Fatal(msg)
		}
		t.Skip(msg)
	}
	opts := []chromedp.ExecAllocatorOption{
		chromedp.ExecPath(path), chromedp.Headless, chromedp.NoSandbox, chromedp.DisableGPU,
		chromedp.NoFirstRun, chromedp.NoDefaultBrowserCheck, chromedp.UserDataDir(t.TempDir()),
		chromedp.Flag("disable-quic", true), chromedp.Flag("disable-background-networking", true),
		chromedp.Flag("disable-component-update", true), chromedp.Flag("disable-sync", true),
	}
	actx, cancelAlloc := chromedp.NewExecAllocator(context.Background(), opts...)
	ctx, cancel := chromedp.NewContext(actx)
	t.Cleanup(func() { cancel(); cancelAlloc() })
	// The first run starts the browser and must not carry a timeout: the
	// browser lives as long as its context.
	if err := chromedp.Do(ctx); err != nil {
		t.Fatalf("start Chromium: %v", err)
	}
	return ctx
}

// navigateUntil loads u and waits until the browser's location starts with
// want (it may pass through several redirects and pages on the way).
func navigateUntil(t *testing.T, ctx context.Context, u, want string) string {
	t.Helper()
	nctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	if err := chromedp.Do(nctx, chromedp.Navigate(u)); err != nil {
		t.Fatalf("navigate %s: %v", u, err)
	}
	return waitLocation(t, ctx, want)
}

func waitLocation(t *testing.T, ctx context.Context, want string) string {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	var loc string
	for time.Now().Before(deadline) {
		lctx, cancel := context.WithTimeout(ctx, 5*time.Second)
		l, err := chromedp.Run(lctx, chromedp.Location())
		if err == nil {
			loc = l
		}
		if err == nil && strings.HasPrefix(loc, want) {
			ready, err := chromedp.Run(lctx, chromedp.Evaluate[string](`document.readyState`))
			if err == nil && ready == "complete" {
				cancel()
				return loc
			}
		}
		cancel()
		time.Sleep(50 * time.Millisecond)
	}
	t.Fatalf("the browser is at %q, want %q…", loc, want)
	return ""
}

// browserSSO signs Chromium in at the back-channel app and then at the
// front-channel app; the second needs no upstream login.
func browserSSO(t *testing.T, ctx context.Context, b *bridge, back, front *testRP) string {
	t.Helper()
	navigateUntil(t, ctx, back.url("/login"), back.url("/callback"))
	first := receive(t, "back-channel app login", back.logins)
	navigateUntil(t, ctx, front.url("/login"), front.url("/callback"))
	second := receive(t, "front-channel app login", front.logins)
	if n := b.auth.calls.Load(); n != 1 {
		t.Fatalf("upstream logins = %d, want 1 (SSO)", n)
	}
	if first.SID == "" || first.SID != second.SID {
		t.Fatalf("sids %q and %q, want one bridge session", first.SID, second.SID)
	}
	parts, err := b.st.ListParticipants(t.Context(), first.SID)
	if err != nil || len(parts) != 2 || parts[0].AppID != back.clientID || parts[1].AppID != front.clientID {
		t.Fatalf("participants = %+v (%v), want both apps", parts, err)
	}
	return first.SID
}

// checkLoggedOutEverywhere: the front-channel app's iframe was loaded with
// the bridge's iss and the session's sid, the back-channel app accepted a
// logout token for the session, and the session has ended.
func checkLoggedOutEverywhere(t *testing.T, b *bridge, back, front *testRP, sid string) {
	t.Helper()
	hit := receive(t, "front-channel iframe load", front.frontHits)
	if hit.Get("iss") != b.p.Issuer() || hit.Get("sid") != sid {
		t.Fatalf("frontchannel_logout_uri loaded with iss=%q sid=%q, want %q %q", hit.Get("iss"), hit.Get("sid"), b.p.Issuer(), sid)
	}
	lt := receive(t, "back-channel logout token", back.backLogouts)
	if lt.Typ != "logout+jwt" || lt.Token.SessionID != sid || lt.Token.Issuer != b.p.Issuer() {
		t.Fatalf("logout token: typ %q sid %q iss %q", lt.Typ, lt.Token.SessionID, lt.Token.Issuer)
	}
	select {
	case err := <-back.backErrors:
		t.Fatalf("the back-channel app refused a logout token: %v", err)
	default:
	}
	s, err := b.st.GetSession(t.Context(), sid)
	if err != nil || s.EndedAt.IsZero() {
		t.Fatalf("session %s not ended (%v)", sid, err)
	}
}

// starterApp signs Chromium in at a third app, with no logout channel, in
// the session sid: the app that starts the logout, which is answered at
// its post_logout_redirect_uri and not notified (slobridge.InitiatorKey).
func starterApp(t *testing.T, ctx context.Context, b *bridge, sid string) *testRP {
	t.Helper()
	starter := newRP(t, b, rpConfig{Name: "starter-app", AuthMethod: AuthSecretBasic})
	navigateUntil(t, ctx, starter.url("/login"), starter.url("/callback"))
	if l := receive(t, "starter app login", starter.logins); l.SID != sid {
		t.Fatalf("the starter app joined session %q, want %q", l.SID, sid)
	}
	return starter
}

// TestFrontChannelLogoutChromium runs single logout in headless Chromium:
// three apps signed in through one upstream login; the third starts
// RP-Initiated Logout with id_token_hint; the logout page loads the
// front-channel app's frontchannel_logout_uri with iss and sid in an
// iframe, the back-channel app accepts its logout token, and the browser
// ends at the starter's registered post_logout_redirect_uri carrying
// state.
func TestFrontChannelLogoutChromium(t *testing.T) {
	ctx := newChromium(t)
	b := newBridge(t)
	back := newRP(t, b, rpConfig{Name: "back-app", AuthMethod: AuthSecretBasic, BackChannel: true})
	front := newRP(t, b, rpConfig{Name: "front-app", AuthMethod: AuthSecretPost, FrontChannel: true})
	sid := browserSSO(t, ctx, b, back, front)
	starter := starterApp(t, ctx, b, sid)

	end := navigateUntil(t, ctx, starter.url("/logout?state=chromium-state"), starter.url("/after-logout"))
	after := receive(t, "post-logout redirect", starter.afterLogout)
	if after.Get("state") != "chromium-state" {
		t.Fatalf("post_logout_redirect_uri reached as %s, want state=chromium-state", end)
	}
	checkLoggedOutEverywhere(t, b, back, front, sid)
}

// TestLogoutConfirmationChromium: without id_token_hint the bridge asks the
// person; after the confirmation (a form carrying its CSRF token) the
// logout runs as with a hint and the browser reaches the client's
// post_logout_redirect_uri with state.
func TestLogoutConfirmationChromium(t *testing.T) {
	ctx := newChromium(t)
	b := newBridge(t)
	back := newRP(t, b, rpConfig{Name: "back-app", AuthMethod: AuthSecretBasic, BackChannel: true})
	front := newRP(t, b, rpConfig{Name: "front-app", AuthMethod: AuthSecretPost, FrontChannel: true})
	sid := browserSSO(t, ctx, b, back, front)
	starter := starterApp(t, ctx, b, sid)

	q := url.Values{"client_id": {starter.clientID}, "post_logout_redirect_uri": {starter.url("/after-logout")}, "state": {"confirm-state"}}
	navigateUntil(t, ctx, b.p.Issuer()+PathEndSession+"?"+q.Encode(), b.p.Issuer()+PathEndSession)
	if s, _ := b.st.GetSession(t.Context(), sid); !s.EndedAt.IsZero() {
		t.Fatal("the session ended before the person confirmed")
	}
	cctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	if err := chromedp.Do(cctx, chromedp.Click(chromedp.CSS(`button[type="submit"]`))); err != nil {
		t.Fatalf("confirm: %v", err)
	}
	waitLocation(t, ctx, starter.url("/after-logout"))
	after := receive(t, "post-logout redirect", starter.afterLogout)
	if after.Get("state") != "confirm-state" {
		t.Fatalf("post_logout_redirect_uri reached with %v, want state=confirm-state", after)
	}
	checkLoggedOutEverywhere(t, b, back, front, sid)
}
