package demo

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"

	"github.com/slobridge/slobridge/cmd/internal/browsertest"
	"github.com/slobridge/slobridge/oidc/upstream"
)

// oidcProviderDir holds the pinned third-party OpenID Provider (panva's
// oidc-provider, see its package.json and server.mjs); `npm ci --prefix
// testdata/oidc-provider` installs it.
var oidcProviderDir = filepath.Join("..", "..", "..", "testdata", "oidc-provider")

// needOIDCProvider returns node's path, or skips (fails under CI=true)
// when node or the installed oidc-provider is missing.
func needOIDCProvider(t *testing.T) string {
	t.Helper()
	node, err := exec.LookPath("node")
	if err == nil {
		_, err = os.Stat(filepath.Join(oidcProviderDir, "node_modules", "oidc-provider", "package.json"))
	}
	if err != nil {
		msg := fmt.Sprintf("third-party OpenID Provider unavailable (%v): install Node.js and run `npm ci --prefix testdata/oidc-provider`", err)
		if os.Getenv("CI") == "true" {
			t.Fatal(msg)
		}
		t.Skip(msg)
	}
	return node
}

// freePort returns a loopback port nothing listens on right now.
func freePort(t *testing.T) int {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().(*net.TCPAddr).Port
}

// startOIDCProvider runs oidc-provider with node on port, with the bridge
// registered as client (its URIs from upstream.RegistrationFor), and
// stops it at the end of the test. Its output goes to the test log.
func startOIDCProvider(t *testing.T, node, issuer string, port int, clientID, secret, bridgeURL string) {
	t.Helper()
	reg := upstream.RegistrationFor(bridgeURL, UpstreamOIDCName)
	client, err := json.Marshal(map[string]any{
		"client_id": clientID, "client_secret": secret,
		"redirect_uris": []string{reg.RedirectURI}, "post_logout_redirect_uris": []string{reg.PostLogoutRedirectURI},
		"backchannel_logout_uri": reg.BackchannelLogoutURI, "backchannel_logout_session_required": true,
		"token_endpoint_auth_method": "client_secret_basic",
		"grant_types":                []string{"authorization_code"}, "response_types": []string{"code"},
	})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	cmd := exec.CommandContext(ctx, node, "server.mjs")
	cmd.Dir = oidcProviderDir
	cmd.Env = append(os.Environ(), "ISSUER="+issuer, "PORT="+strconv.Itoa(port), "CLIENT="+string(client))
	cmd.Stderr = testWriter{t}
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatalf("start oidc-provider: %v", err)
	}
	t.Cleanup(func() { cancel(); _ = cmd.Wait() })
	ready := make(chan struct{})
	go func() {
		sc := bufio.NewScanner(out)
		for sc.Scan() {
			if strings.HasPrefix(sc.Text(), "listening ") {
				close(ready)
			}
			t.Logf("oidc-provider: %s", sc.Text())
		}
	}()
	select {
	case <-ready:
	case <-time.After(waitTimeout):
		t.Fatal("oidc-provider did not start")
	}
}

// testWriter sends a process's output to the test log.
type testWriter struct{ t *testing.T }

func (w testWriter) Write(p []byte) (int, error) {
	w.t.Logf("oidc-provider: %s", strings.TrimRight(string(p), "\n"))
	return len(p), nil
}

// signInAtOP fills oidc-provider's login form (its development form takes
// any login and password) and waits until the browser is back at app.
func signInAtOP(t *testing.T, ctx context.Context, issuer string, app AppInfo, login string) {
	t.Helper()
	browsertest.WaitJS(t, ctx, "the OpenID Provider's login form, asking for a password",
		fmt.Sprintf(`location.href.indexOf(%q) === 0 && !!document.querySelector("input[name=login]") && !!document.querySelector("input[type=password]")`, issuer))
	fill := fmt.Sprintf(`(function(){var u=document.querySelector("input[name=login]"),p=document.querySelector("input[name=password]");u.value=%q;p.value="any password";u.form.submit();return true})()`, login)
	if _, err := chromedp.Run(ctx, chromedp.Evaluate[bool](fill)); err != nil {
		t.Fatalf("fill the OP's login form: %v", err)
	}
	browsertest.WaitJS(t, ctx, app.Name+" logged in", fmt.Sprintf(`location.href.indexOf(%q) === 0 && !!document.getElementById("state") && document.getElementById("state").textContent.indexOf("Logged in") === 0`, app.URL))
}

// confirmOPLogout answers oidc-provider's "sign out?" question with yes.
func confirmOPLogout(t *testing.T, ctx context.Context, issuer string) {
	t.Helper()
	browsertest.WaitJS(t, ctx, "the OpenID Provider's logout question", fmt.Sprintf(`location.href.indexOf(%q) === 0 && !!document.querySelector("button[name=logout]")`, issuer))
	browsertest.Click(t, ctx, "button[name=logout]")
}

// TestThirdPartyOpenIDProvider runs the demo with panva's oidc-provider
// (an OpenID Certified OP no one here wrote) as its upstream: a login
// there reaches a downstream OIDC app and the SAML app; the OP's
// back-channel logout ends both; a logout in the app ends the session at
// the OP (RP-Initiated Logout), so the next login asks for the password.
func TestThirdPartyOpenIDProvider(t *testing.T) {
	node := needOIDCProvider(t)
	ctx := browsertest.New(t)
	port := freePort(t)
	issuer := "http://localhost:" + strconv.Itoa(port)
	clientID, secret := "slobridge-demo", "client-secret-"+secret()
	d := startDemo(t, Options{UpstreamOIDC: &UpstreamOIDC{Issuer: issuer, ClientID: clientID, ClientSecret: secret}})
	// The OP is not there yet: the admin API says so, and what to
	// register there.
	reg := upstream.RegistrationFor(d.BridgeURL, UpstreamOIDCName)
	expectUpstream(t, d, UpstreamOIDCName, "oidc", false, map[string]string{"redirect_uri": reg.RedirectURI,
		"backchannel_logout_uri": reg.BackchannelLogoutURI, "frontchannel_logout_uri": reg.FrontchannelLogoutURI,
		"post_logout_redirect_uri": reg.PostLogoutRedirectURI})
	startOIDCProvider(t, node, issuer, port, clientID, secret, d.BridgeURL)

	// Login at the OP into the OIDC app, then SSO into the SAML app.
	browsertest.Navigate(t, ctx, d.BackApp.URL+"/login")
	signInAtOP(t, ctx, issuer, d.BackApp, "alice")
	login(t, ctx, d, d.SAMLApp, nil)
	expectAPIAccepted(t, ctx, d.BackApp)
	expectUpstream(t, d, UpstreamOIDCName, "oidc", true, nil)
	if n := activeSessions(t, d, "alice"); n != 1 {
		t.Fatalf("alice has %d active bridge sessions after login at the OP, want 1", n)
	}

	// The user logs out at the OP: its back-channel logout token reaches
	// the bridge, which ends the session in both apps.
	browsertest.Navigate(t, ctx, issuer+"/session/end")
	confirmOPLogout(t, ctx, issuer)
	browsertest.WaitJS(t, ctx, "the OP's signed-out page", fmt.Sprintf(`location.href.indexOf(%q) === 0`, issuer+"/session/end/success"))
	expectLoggedOut(t, ctx, d.BackApp, EndedByBackChannel)
	expectSAMLNotified(t, ctx, d.SAMLApp, "", []string{EndedBySAMLSOAP}, []string{EndedBySAMLRequest})
	if n := activeSessions(t, d, "alice"); n != 0 {
		t.Fatalf("alice has %d active bridge sessions after the OP's back-channel logout", n)
	}

	// The OP session is gone too: the next login asks for the password.
	browsertest.Navigate(t, ctx, d.BackApp.URL+"/login")
	signInAtOP(t, ctx, issuer, d.BackApp, "alice")

	// A logout in the app: the bridge's logout page, then RP-Initiated
	// Logout at the OP as its last browser step, then back to the app.
	browsertest.Navigate(t, ctx, d.BackApp.URL+"/")
	browsertest.Click(t, ctx, "#logout")
	confirmOPLogout(t, ctx, issuer)
	browsertest.WaitJS(t, ctx, "back at the app, logged out", fmt.Sprintf(`location.href === %q`, d.BackApp.URL+"/?logged_out=1"))
	expectLoggedOut(t, ctx, d.BackApp, EndedByRP)

	// Every party is told the same: the logout is complete, the OP's
	// session included.
	if out := lastLogoutOutcome(t, d, "alice"); !out.Complete {
		t.Errorf("the app's logout is not complete: %+v", out.Failed)
	}
	browsertest.Navigate(t, ctx, d.BackApp.URL+"/login")
	browsertest.WaitJS(t, ctx, "the OP's login form again (the OP session ended)",
		fmt.Sprintf(`location.href.indexOf(%q) === 0 && !!document.querySelector("input[type=password]")`, issuer))
}
