package demo

import (
	"fmt"
	"net"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/slobridge/slobridge/cmd/internal/app"
	"github.com/slobridge/slobridge/cmd/internal/browsertest"
	"github.com/slobridge/slobridge/oidc"
	"github.com/slobridge/slobridge/oidc/upstream"
)

// freeBlock returns the first of n consecutive loopback ports that
// nothing listens on right now.
func freeBlock(t *testing.T, n int) int {
	t.Helper()
	for range 50 {
		first := freePort(t)
		var lns []net.Listener
		for i := range n {
			ln, err := net.Listen("tcp", "127.0.0.1:"+strconv.Itoa(first+i))
			if err != nil {
				break
			}
			lns = append(lns, ln)
		}
		for _, ln := range lns {
			_ = ln.Close()
		}
		if len(lns) == n {
			return first
		}
	}
	t.Fatalf("no %d free consecutive ports", n)
	return 0
}

// chainedDemos runs two demos, each a bridge with its own apps: the lower
// bridge's upstream is the upper bridge, as an OpenID Provider, where it
// is registered as a confidential client with back-channel logout. The
// lower demo's URLs name localhost, the upper's 127.0.0.1, so that the
// browser keeps their cookies apart.
func chainedDemos(t *testing.T) (upper, lower *Demo) {
	t.Helper()
	port := freeBlock(t, parts)
	lowerURL := "http://localhost:" + strconv.Itoa(port)
	reg := upstream.RegistrationFor(lowerURL, UpstreamOIDCName)
	sec := secret()
	upper = startDemo(t, Options{Clients: []app.OIDCClientConfig{{ClientSecret: app.LiteralSecret(sec),
		ClientMetadata: oidc.ClientMetadata{ClientID: "lower-bridge", ClientName: "Lower bridge",
			RedirectURIs: []string{reg.RedirectURI}, PostLogoutRedirectURIs: []string{reg.PostLogoutRedirectURI},
			BackchannelLogoutURI: reg.BackchannelLogoutURI, BackchannelLogoutSessionRequired: true,
			TokenEndpointAuthMethod: "client_secret_basic"}}}})
	lower = startDemo(t, Options{Listen: "127.0.0.1:" + strconv.Itoa(port), PublicHost: "localhost",
		UpstreamOIDC: &UpstreamOIDC{Issuer: upper.BridgeURL, ClientID: "lower-bridge", ClientSecret: sec}})
	if lower.BridgeURL != lowerURL {
		t.Fatalf("the lower bridge is at %s, registered at the upper one as %s", lower.BridgeURL, lowerURL)
	}
	return upper, lower
}

// TestChainedBridges: two bridges, the lower one a relying party of the
// upper one, with apps on both. Alice signs in at the upper's SAML IdP
// through an app of the lower bridge, then by single sign-on into apps of
// both.
//   - A logout at the upper bridge (an operator's, no browser) reaches the
//     lower bridge by its back-channel logout token, and through it the
//     lower's apps.
//   - A logout in an app of the lower bridge ends the lower session and
//     its apps, then the upper session (RP-Initiated Logout as the last
//     browser step) and the upper's apps and upstream IdP; both logouts
//     are complete.
func TestChainedBridges(t *testing.T) {
	ctx := browsertest.New(t)
	upper, lower := chainedDemos(t)
	alice := &upper.Users[0]

	signInBoth := func(password bool) {
		t.Helper()
		user := alice
		if !password {
			user = nil
		}
		login(t, ctx, lower, lower.BackApp, user) // lower → upper → upper's SAML IdP
		login(t, ctx, lower, lower.SAMLApp, nil)
		login(t, ctx, upper, upper.BackApp, nil)
		login(t, ctx, upper, upper.SAMLApp, nil)
		if n := activeSessions(t, lower, "alice"); n != 1 {
			t.Fatalf("alice has %d active sessions at the lower bridge, want 1", n)
		}
		if n := activeSessions(t, upper, "alice"); n != 1 {
			t.Fatalf("alice has %d active sessions at the upper bridge, want 1", n)
		}
	}

	// Upper → lower: an operator logs alice out at the upper bridge.
	signInBoth(true)
	admin(t, upper, http.MethodPost, "/logouts", `{"user_id":"alice"}`, http.StatusCreated, nil)
	expectLoggedOut(t, ctx, upper.BackApp, EndedByBackChannel)
	expectLoggedOut(t, ctx, lower.BackApp, EndedByBackChannel)
	expectSAMLNotified(t, ctx, lower.SAMLApp, EndedBySAMLSOAP, []string{EndedBySAMLSOAP}, []string{EndedBySAMLRequest})
	expectSAMLNotified(t, ctx, upper.SAMLApp, EndedBySAMLSOAP, []string{EndedBySAMLSOAP}, []string{EndedBySAMLRequest})
	waitNoSessions(t, lower, "alice")
	expectUpstreamEnded(t, ctx, upper)

	// Lower → upper: alice logs out in the lower bridge's OIDC app.
	signInBoth(true)
	browsertest.Navigate(t, ctx, lower.BackApp.URL+"/")
	browsertest.Click(t, ctx, "#logout")
	// The upper OP asks whether to log out there too (the lower bridge
	// sends client_id, not an ID token).
	browsertest.WaitJS(t, ctx, "the upper bridge's logout question", fmt.Sprintf(`location.href.indexOf(%q) === 0 && !!document.querySelector("form button[type=submit]")`, upper.BridgeURL+oidc.PathEndSession))
	browsertest.Click(t, ctx, "form button[type=submit]")
	browsertest.WaitJS(t, ctx, "back at the lower app, logged out", fmt.Sprintf(`location.href === %q`, lower.BackApp.URL+"/?logged_out=1"))
	expectLoggedOut(t, ctx, lower.BackApp, EndedByRP)
	expectSAMLNotified(t, ctx, lower.SAMLApp, "", []string{EndedBySAMLRequest}, nil)
	expectLoggedOut(t, ctx, upper.BackApp, EndedByBackChannel)
	expectSAMLNotified(t, ctx, upper.SAMLApp, "", []string{EndedBySAMLRequest}, nil)
	waitNoSessions(t, upper, "alice")
	waitNoSessions(t, lower, "alice")
	expectUpstreamEnded(t, ctx, upper)
	for _, d := range []*Demo{lower, upper} {
		if out := lastLogoutOutcome(t, d, "alice"); !out.Complete {
			t.Errorf("the logout at %s is not complete: %+v", d.BridgeURL, out.Failed)
		}
	}
}

// waitNoSessions waits until the user has no active session at the
// bridge (a back-channel logout lands asynchronously).
func waitNoSessions(t *testing.T, d *Demo, user string) {
	t.Helper()
	deadline := time.Now().Add(waitTimeout)
	for activeSessions(t, d, user) != 0 {
		if time.Now().After(deadline) {
			t.Fatalf("%s still has an active session at %s", user, d.BridgeURL)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// outcome is the admin API's answer on how a logout went.
type outcome struct {
	Complete bool `json:"complete"`
	Failed   []struct {
		Key string `json:"key"`
		Why string `json:"why"`
	} `json:"failed"`
}

// lastLogoutOutcome is the outcome of the logout that ended the user's
// most recently ended session at the bridge.
func lastLogoutOutcome(t *testing.T, d *Demo, user string) outcome {
	t.Helper()
	var sessions struct {
		Sessions []struct {
			LogoutID string    `json:"logout_id"`
			EndedAt  time.Time `json:"ended_at"`
		} `json:"sessions"`
	}
	admin(t, d, http.MethodGet, "/users/"+user+"/sessions", "", http.StatusOK, &sessions)
	var last string
	var lastEnd time.Time
	for _, s := range sessions.Sessions {
		if s.EndedAt.After(lastEnd) {
			last, lastEnd = s.LogoutID, s.EndedAt
		}
	}
	if last == "" {
		t.Fatalf("no ended session of %s at %s", user, d.BridgeURL)
	}
	var status struct {
		Outcome outcome `json:"outcome"`
	}
	admin(t, d, http.MethodGet, "/logouts/"+last, "", http.StatusOK, &status)
	return status.Outcome
}

// TestSAMLAndOIDCUpstreamsTogether: a bridge with a SAML IdP and an
// OpenID Provider (another bridge) as upstreams (upstream.type
// saml+oidc). A login without a hint shows one chooser with both; the
// person picks the OP and signs in there; idp_hint sends a login straight
// to either.
func TestSAMLAndOIDCUpstreamsTogether(t *testing.T) {
	ctx := browsertest.New(t)
	port := freeBlock(t, parts)
	lowerURL := "http://localhost:" + strconv.Itoa(port)
	reg := upstream.RegistrationFor(lowerURL, UpstreamOIDCName)
	sec := secret()
	upper := startDemo(t, Options{Clients: []app.OIDCClientConfig{{ClientSecret: app.LiteralSecret(sec),
		ClientMetadata: oidc.ClientMetadata{ClientID: "lower-bridge", RedirectURIs: []string{reg.RedirectURI},
			PostLogoutRedirectURIs: []string{reg.PostLogoutRedirectURI}, BackchannelLogoutURI: reg.BackchannelLogoutURI,
			BackchannelLogoutSessionRequired: true, TokenEndpointAuthMethod: "client_secret_basic"}}}})
	lower := startDemo(t, Options{Listen: "127.0.0.1:" + strconv.Itoa(port), PublicHost: "localhost",
		UpstreamOIDC: &UpstreamOIDC{Issuer: upper.BridgeURL, ClientID: "lower-bridge", ClientSecret: sec,
			DisplayName: "Upper <bridge>", AlongsideSAML: true}})

	// idp_hint picks the upstream without the chooser.
	authorize := func(hint string) string {
		t.Helper()
		q := url.Values{"client_id": {"chat"}, "redirect_uri": {lower.FrontApp.URL + "/callback"}, "response_type": {"code"},
			"scope": {"openid"}, "state": {"s"}, "nonce": {"n"}}
		if hint != "" {
			q.Set("idp_hint", hint)
		}
		c := &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
		resp, err := c.Get(lower.BridgeURL + oidc.PathAuthorize + "?" + q.Encode())
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		return resp.Header.Get("Location")
	}
	for hint, want := range map[string]string{UpstreamOIDCName: upper.BridgeURL + oidc.PathAuthorize + "?", "demo-idp": lower.UpstreamURL + "/",
		"": app.PathChooseUpstream + "?state="} {
		if got := authorize(hint); !strings.HasPrefix(got, want) && !strings.HasPrefix(got, lower.BridgeURL+want) {
			t.Errorf("idp_hint %q: the login went to %q, want %q", hint, got, want)
		}
	}

	// No hint: the chooser lists both (names escaped); pick the OP.
	browsertest.Navigate(t, ctx, lower.BackApp.URL+"/login")
	browsertest.WaitJS(t, ctx, "the chooser with both upstreams", `!!document.querySelector("#upstreams") && document.querySelectorAll("#upstreams a").length === 2`)
	names := browsertest.Text(t, ctx, "#upstreams")
	if !strings.Contains(names, "Demo upstream IdP") || !strings.Contains(names, "Upper <bridge>") {
		t.Fatalf("chooser lists %q", names)
	}
	browsertest.Click(t, ctx, `#upstreams a[href*="upstream=`+UpstreamOIDCName+`"]`)
	fillUpstreamLogin(t, ctx, &upper.Users[0])
	waitLoggedIn(t, ctx, lower.BackApp)
	var out struct {
		Sessions []struct {
			Upstream string `json:"upstream"`
		} `json:"sessions"`
	}
	admin(t, lower, http.MethodGet, "/users/alice/sessions", "", http.StatusOK, &out)
	if len(out.Sessions) != 1 || out.Sessions[0].Upstream != UpstreamOIDCName {
		t.Fatalf("the lower bridge's sessions of alice: %+v, want one through %s", out.Sessions, UpstreamOIDCName)
	}
}
