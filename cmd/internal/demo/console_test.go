package demo

import (
	"bytes"
	"context"
	"fmt"
	"log/slog"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/chromedp/chromedp"

	"github.com/slobridge/slobridge/cmd/internal/browsertest"
)

// syncBuffer is a log sink the test reads while the demo writes.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// TestOperatorConsole drives the console as an operator in Chromium:
// find alice by email and see her participants, log her out everywhere
// with a reason, watch the logout finish with one participant failing
// (Calendar is down), see it on the Deliveries page, open that delivery's
// attempt history, fix the receiver, press Retry now and see it delivered. Alice
// herself is refused (not an operator); every action leaves an audit line.
func TestOperatorConsole(t *testing.T) {
	logs := &syncBuffer{}
	d := startDemo(t, Options{BackoffBase: 100 * time.Millisecond, GiveUpAfter: 2 * time.Second,
		Logger: slog.New(slog.NewJSONHandler(logs, &slog.HandlerOptions{Level: slog.LevelInfo}))})
	alice := browsertest.New(t)
	loginEverywhere(t, alice, d, &d.Users[0])

	// Alice is signed in but no operator.
	browsertest.Navigate(t, alice, d.BridgeURL+"/admin/")
	browsertest.WaitJS(t, alice, "the refusal", `!!document.getElementById("message")`)
	if got := browsertest.Text(t, alice, "h1"); got != "Not an operator" {
		t.Fatalf("alice at the console sees %q", got)
	}

	// Bob signs in through the upstream login and lands on his search.
	ops := browsertest.New(t)
	browsertest.Navigate(t, ops, d.BridgeURL+"/admin/?q="+d.Users[0].Email)
	fillUpstreamLogin(t, ops, &d.Users[1])
	browsertest.WaitJS(t, ops, "alice's sessions", `!!document.getElementById("user")`)
	if got := browsertest.Text(t, ops, "#user"); got != "alice" {
		t.Fatalf("the search for %s found %q", d.Users[0].Email, got)
	}
	if got := browsertest.Text(t, ops, "#operator"); got != DemoOperator {
		t.Fatalf("the console names the operator %q", got)
	}
	apps, err := chromedp.Run(ops, chromedp.Evaluate[[]string](`Array.prototype.map.call(document.querySelectorAll(".session[data-state=active] .participants td.app"), function(e){return e.textContent})`))
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{d.BackApp.Name, d.FrontApp.Name, d.SAMLApp.Name} {
		if !strings.Contains(strings.Join(apps, ","), want) {
			t.Errorf("alice's participants %q lack %s", apps, want)
		}
	}
	screenshot(t, ops, "console-sessions.png")

	// The sessions Calendar joined, and those at the demo's upstream,
	// list alice's.
	for _, q := range []string{"by=app&q=calendar", "by=upstream&q=demo-idp"} {
		browsertest.Navigate(t, ops, d.BridgeURL+"/admin/?"+q)
		browsertest.WaitJS(t, ops, "the sessions listed ("+q+")", `!!document.getElementById("listed")`)
		users, err := chromedp.Run(ops, chromedp.Evaluate[[]string](`Array.prototype.map.call(document.querySelectorAll(".session .session-user"), function(e){return e.textContent})`))
		if err != nil || !slices.Contains(users, "alice") {
			t.Errorf("the sessions listed %s are of %q (%v), want alice's among them", q, users, err)
		}
	}
	browsertest.Navigate(t, ops, d.BridgeURL+"/admin/?q="+d.Users[0].Email)
	browsertest.WaitJS(t, ops, "alice's sessions again", `!!document.getElementById("logout-user")`)

	// Calendar is down when the operator logs alice out everywhere.
	if err := d.StopPart(d.BackApp.Name); err != nil {
		t.Fatal(err)
	}
	browsertest.Click(t, ops, "#logout-user")
	browsertest.WaitJS(t, ops, "the confirmation", `!!document.getElementById("confirm")`)
	if _, err := chromedp.Run(ops, chromedp.Evaluate[bool](`(function(){document.querySelector("textarea[name=reason]").value="laptop stolen";return true})()`)); err != nil {
		t.Fatal(err)
	}
	browsertest.Click(t, ops, "#confirm")
	browsertest.WaitJS(t, ops, "the logout's status page", `!!document.getElementById("logout-id")`)
	row := func(name string) string {
		return fmt.Sprintf(`(function(){var r=document.querySelectorAll("#participants tr[data-state]");for(var i=0;i<r.length;i++){if(r[i].querySelector(".name").textContent===%q)return r[i].getAttribute("data-state")}return ""})()`, name)
	}
	browsertest.WaitJS(t, ops, "Calendar failed, the logout partial", fmt.Sprintf(`%s === "failed" && document.getElementById("summary").className === "bad"`, row(d.BackApp.Name)))
	if got := browsertest.Text(t, ops, "#participants tr[data-state=failed] .error"); !strings.Contains(got, "connect") {
		t.Errorf("the failed row says %q, want the connection error", got)
	}
	screenshot(t, ops, "console-logout-failed.png")
	expectSAMLNotified(t, alice, d.SAMLApp, EndedBySAMLSOAP, []string{EndedBySAMLSOAP}, nil)

	logoutID := browsertest.Text(t, ops, "#logout-id")

	// The Deliveries page shows Calendar's host failing; its delivery's
	// history lists the failed attempts with their error.
	browsertest.Navigate(t, ops, d.BridgeURL+"/admin/deliveries")
	browsertest.WaitJS(t, ops, "the failing hosts", `document.querySelectorAll("#hosts tr[data-host]").length === 1`)
	if got := browsertest.Text(t, ops, "#hosts tr[data-host] .failed"); got != "1" {
		t.Errorf("the Deliveries page counts %q given up", got)
	}
	screenshot(t, ops, "console-deliveries.png")
	browsertest.Click(t, ops, "#hosts a.delivery")
	browsertest.WaitJS(t, ops, "the delivery's history", `!!document.getElementById("delivery-id") && document.querySelectorAll("#attempts tr.attempt[data-ok=false]").length >= 2`)
	if got := browsertest.Text(t, ops, "#attempts tr.attempt .error"); !strings.Contains(got, "connect") {
		t.Errorf("the first attempt says %q, want the connection error", got)
	}
	if got := browsertest.Text(t, ops, ".name"); got != d.BackApp.Name {
		t.Errorf("the delivery's page is of %q, want %s", got, d.BackApp.Name)
	}
	screenshot(t, ops, "console-delivery.png")

	// The receiver is fixed; Retry now sends that delivery again.
	if err := d.RestartPart(d.BackApp.Name); err != nil {
		t.Fatal(err)
	}
	browsertest.Click(t, ops, "#retry-delivery")
	browsertest.WaitJS(t, ops, "the delivery delivered", `document.getElementById("state").textContent === "delivered" && document.querySelectorAll("#attempts tr.attempt[data-ok=true]").length === 1`)
	expectLoggedOut(t, alice, d.BackApp, EndedByBackChannel)
	browsertest.Navigate(t, ops, d.BridgeURL+"/admin/logouts/"+logoutID)
	browsertest.WaitJS(t, ops, "Calendar delivered in the logout", fmt.Sprintf(`%s === "delivered"`, row(d.BackApp.Name)))
	browsertest.Navigate(t, ops, d.BridgeURL+"/admin/deliveries")
	browsertest.WaitJS(t, ops, "nothing failing", `!!document.getElementById("none")`)

	// The Logouts page lists it; the audit log has every action.
	browsertest.Navigate(t, ops, d.BridgeURL+"/admin/logouts")
	browsertest.WaitJS(t, ops, "the logouts list", `document.querySelectorAll("#logouts tr[data-logout]").length >= 1`)
	screenshot(t, ops, "console-logouts.png")
	browsertest.Navigate(t, ops, d.BridgeURL+"/admin/apps")
	browsertest.WaitJS(t, ops, "the apps", `document.querySelectorAll("#apps tr[data-app]").length >= 3`)
	channels, err := chromedp.Run(ops, chromedp.Evaluate[map[string]string](`(function(){var o={};document.querySelectorAll("#apps tr[data-app]").forEach(function(r){o[r.querySelector(".name").textContent]=r.querySelector(".channels").textContent});return o})()`))
	if err != nil {
		t.Fatal(err)
	}
	if channels[d.BackApp.Name] != "back" || channels[d.FrontApp.Name] != "front" || channels[d.SAMLApp.Name] != "back+front" {
		t.Errorf("the Apps page lists %v", channels)
	}
	screenshot(t, ops, "console-apps.png")

	// Register an OIDC client by form and a SAML SP by pasted metadata,
	// then disable the SP and enable it again.
	fill := func(form string, values map[string]string) {
		t.Helper()
		for name, v := range values {
			js := fmt.Sprintf(`(function(){var e=document.querySelector(%q).elements[%q];e.value=%q;return true})()`, form, name, v)
			if _, err := chromedp.Run(ops, chromedp.Evaluate[bool](js)); err != nil {
				t.Fatal(err)
			}
		}
	}
	fill("#register-oidc", map[string]string{"name": "Payroll", "redirect_uris": "http://127.0.0.1:9/payroll/cb",
		"backchannel_logout_uri": "http://127.0.0.1:9/payroll/bc"})
	browsertest.Click(t, ops, "#register-oidc button")
	browsertest.WaitJS(t, ops, "the new client", `!!document.getElementById("registered-id")`)
	if id, secret := browsertest.Text(t, ops, "#registered-id"), browsertest.Text(t, ops, "#secret"); id == "" || len(secret) < 32 {
		t.Fatalf("registered client %q with secret %q", id, secret)
	}
	browsertest.Navigate(t, ops, d.BridgeURL+"/admin/apps")
	const spID = "https://expenses.example.com/saml"
	fill("#register-saml", map[string]string{"name": "Expenses", "metadata": `<md:EntityDescriptor xmlns:md="urn:oasis:names:tc:SAML:2.0:metadata" entityID="` + spID + `">
<md:SPSSODescriptor protocolSupportEnumeration="urn:oasis:names:tc:SAML:2.0:protocol">
<md:SingleLogoutService Binding="urn:oasis:names:tc:SAML:2.0:bindings:SOAP" Location="https://expenses.example.com/saml/slo"/>
<md:AssertionConsumerService Binding="urn:oasis:names:tc:SAML:2.0:bindings:HTTP-POST" Location="https://expenses.example.com/saml/acs" index="0"/>
</md:SPSSODescriptor></md:EntityDescriptor>`})
	browsertest.Click(t, ops, "#register-saml button")
	browsertest.WaitJS(t, ops, "the new SP", `!!document.getElementById("registered-id")`)
	if got := browsertest.Text(t, ops, "#registered-id"); got != spID {
		t.Fatalf("registered SP %q, want %s", got, spID)
	}
	browsertest.Navigate(t, ops, d.BridgeURL+"/admin/apps")
	appState := fmt.Sprintf(`(function(){var r=document.querySelector('#apps tr[data-app=%q] .state');return r?r.textContent.trim().split(/\s/)[0]:""})()`, spID)
	browsertest.WaitJS(t, ops, "the SP listed, enabled", appState+` === "enabled"`)
	browsertest.Click(t, ops, fmt.Sprintf(`#apps tr[data-app=%q] button.toggle`, spID))
	browsertest.WaitJS(t, ops, "the SP disabled", appState+` === "disabled"`)
	if sp, err := d.bridge.SAMLIdP().ServiceProvider(context.Background(), spID); err != nil || !sp.Disabled {
		t.Fatalf("the SP after Disable: %+v, %v", sp, err)
	}
	screenshot(t, ops, "console-apps-actions.png")
	browsertest.Click(t, ops, fmt.Sprintf(`#apps tr[data-app=%q] button.toggle`, spID))
	browsertest.WaitJS(t, ops, "the SP enabled again", appState+` === "enabled"`)
	browsertest.Navigate(t, ops, d.BridgeURL+"/admin/upstreams")
	browsertest.WaitJS(t, ops, "the upstream available", `(function(){var r=document.querySelector("#upstreams tr[data-upstream=demo-idp] .state");return !!r && r.textContent.indexOf("available")===0})()`)
	screenshot(t, ops, "console-upstreams.png")
	audit := logs.String()
	for _, want := range []string{`"action":"access","target":"","reason":"","result":"refused: not an operator"`,
		`"operator":"bob"`, `"action":"logout","target":"user alice","reason":"laptop stolen","result":"started logout `,
		`"action":"retry","target":"delivery `, `"action":"register oidc client"`, `"action":"register saml sp","target":"sp ` + spID + `"`,
		`"action":"disable app","target":"saml ` + spID + `"`, `"action":"enable app"`} {
		if !strings.Contains(audit, want) {
			t.Errorf("the audit log lacks %s", want)
		}
	}
}
