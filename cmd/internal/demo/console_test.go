package demo

import (
	"bytes"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
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
// (Calendar is down), fix it, press Retry and see it delivered. Alice
// herself is refused (not an operator); every action leaves an audit line.
func TestOperatorConsole(t *testing.T) {
	logs := &syncBuffer{}
	d := startDemo(t, Options{BackoffBase: 100 * time.Millisecond, GiveUpAfter: 2 * time.Second,
		Logger: slog.New(slog.NewJSONHandler(logs, &slog.HandlerOptions{Level: slog.LevelInfo}))})
	alice := newBrowser(t)
	loginEverywhere(t, alice, d, &d.Users[0])

	// Alice is signed in but no operator.
	navigate(t, alice, d.BridgeURL+"/admin/")
	waitJS(t, alice, "the refusal", `!!document.getElementById("message")`)
	if got := text(t, alice, "h1"); got != "Not an operator" {
		t.Fatalf("alice at the console sees %q", got)
	}

	// Bob signs in through the upstream login and lands on his search.
	ops := newBrowser(t)
	navigate(t, ops, d.BridgeURL+"/admin/?q="+d.Users[0].Email)
	fillUpstreamLogin(t, ops, &d.Users[1])
	waitJS(t, ops, "alice's sessions", `!!document.getElementById("user")`)
	if got := text(t, ops, "#user"); got != "alice" {
		t.Fatalf("the search for %s found %q", d.Users[0].Email, got)
	}
	if got := text(t, ops, "#operator"); got != DemoOperator {
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

	// Calendar is down when the operator logs alice out everywhere.
	if err := d.StopPart(d.BackApp.Name); err != nil {
		t.Fatal(err)
	}
	click(t, ops, "#logout-user")
	waitJS(t, ops, "the confirmation", `!!document.getElementById("confirm")`)
	if _, err := chromedp.Run(ops, chromedp.Evaluate[bool](`(function(){document.querySelector("textarea[name=reason]").value="laptop stolen";return true})()`)); err != nil {
		t.Fatal(err)
	}
	click(t, ops, "#confirm")
	waitJS(t, ops, "the logout's status page", `!!document.getElementById("logout-id")`)
	row := func(name string) string {
		return fmt.Sprintf(`(function(){var r=document.querySelectorAll("#participants tr[data-state]");for(var i=0;i<r.length;i++){if(r[i].querySelector(".name").textContent===%q)return r[i].getAttribute("data-state")}return ""})()`, name)
	}
	waitJS(t, ops, "Calendar failed, the logout partial", fmt.Sprintf(`%s === "failed" && document.getElementById("summary").className === "bad"`, row(d.BackApp.Name)))
	if got := text(t, ops, "#participants tr[data-state=failed] .error"); !strings.Contains(got, "connect") {
		t.Errorf("the failed row says %q, want the connection error", got)
	}
	screenshot(t, ops, "console-logout-failed.png")
	expectSAMLNotified(t, alice, d.SAMLApp, EndedBySAMLSOAP, []string{EndedBySAMLSOAP}, nil)

	// The receiver is fixed; Retry sends its delivery again.
	if err := d.RestartPart(d.BackApp.Name); err != nil {
		t.Fatal(err)
	}
	navigate(t, ops, d.BridgeURL+"/admin/logouts/"+text(t, ops, "#logout-id"))
	click(t, ops, "#retry")
	waitJS(t, ops, "Calendar delivered", fmt.Sprintf(`%s === "delivered"`, row(d.BackApp.Name)))
	expectLoggedOut(t, alice, d.BackApp, EndedByBackChannel)

	// The Logouts page lists it; the audit log has every action.
	navigate(t, ops, d.BridgeURL+"/admin/logouts")
	waitJS(t, ops, "the logouts list", `document.querySelectorAll("#logouts tr[data-logout]").length >= 1`)
	screenshot(t, ops, "console-logouts.png")
	navigate(t, ops, d.BridgeURL+"/admin/apps")
	waitJS(t, ops, "the apps", `document.querySelectorAll("#apps tr[data-app]").length >= 3`)
	channels, err := chromedp.Run(ops, chromedp.Evaluate[map[string]string](`(function(){var o={};document.querySelectorAll("#apps tr[data-app]").forEach(function(r){o[r.querySelector(".name").textContent]=r.querySelector(".channels").textContent});return o})()`))
	if err != nil {
		t.Fatal(err)
	}
	if channels[d.BackApp.Name] != "back" || channels[d.FrontApp.Name] != "front" || channels[d.SAMLApp.Name] != "back+front" {
		t.Errorf("the Apps page lists %v", channels)
	}
	screenshot(t, ops, "console-apps.png")
	navigate(t, ops, d.BridgeURL+"/admin/upstreams")
	waitJS(t, ops, "the upstream available", `(function(){var r=document.querySelector("#upstreams tr[data-upstream=demo-idp] .state");return !!r && r.textContent.indexOf("available")===0})()`)
	screenshot(t, ops, "console-upstreams.png")
	audit := logs.String()
	for _, want := range []string{`"action":"access","target":"","reason":"","result":"refused: not an operator"`,
		`"operator":"bob"`, `"action":"logout","target":"user alice","reason":"laptop stolen","result":"started logout `,
		`"action":"retry"`} {
		if !strings.Contains(audit, want) {
			t.Errorf("the audit log lacks %s", want)
		}
	}
}
