package console

import (
	"context"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/cdproto/network"
	"github.com/chromedp/chromedp"

	"github.com/slobridge/slobridge"
	"github.com/slobridge/slobridge/cmd/internal/browsertest"
	"github.com/slobridge/slobridge/store"
)

// xss are the attacks: each would change the page's title or add an
// element if it reached the DOM as markup.
var xss = map[string]string{
	"attribute":  `<img src=x onerror="document.title='xss-attr'">`,
	"nameid":     `"><script>document.title='xss-nameid'</script>`,
	"app name":   `<svg onload="document.title='xss-app'">`,
	"entity ID":  `https://sp.example/"><img src=x onerror="document.title='xss-entity'">`,
	"error text": `<img src=x onerror="document.title='xss-error'"><b>bold</b>`,
}

// operatorBrowser is a Chromium tab signed in as bob.
func (h *harness) operatorBrowser(t *testing.T) context.Context {
	t.Helper()
	b := browsertest.New(t)
	u, _ := url.Parse(h.srv.URL)
	if _, err := chromedp.Call(b, network.SetCookie, network.SetCookieParams{Name: slobridge.SessionCookieName,
		Value: h.cookie(h.bob).Value, Domain: u.Hostname(), Path: "/"}); err != nil {
		t.Fatal(err)
	}
	return b
}

// TestConsoleXSSInChromium: user attributes, NameIDs, client names, SP
// entity IDs and delivery error texts reach every console page as text:
// Chromium's DOM holds no element they would have made, the title is the
// console's, and the text shows them as they are.
func TestConsoleXSSInChromium(t *testing.T) {
	h := newHarness(t, []string{"bob"}, nil)
	ctx := context.Background()
	st := h.eng.Store()
	var sessions []store.Session
	for range 2 {
		s, err := h.eng.CreateSession(ctx, store.Session{UserID: "alice", Upstream: "corp", ExpiresAt: time.Now().Add(time.Hour),
			NameID:     store.NameID{Value: xss["nameid"]},
			Attributes: map[string][]string{"email": {"alice@example.com"}, "name": {xss["attribute"]}}})
		if err != nil {
			t.Fatal(err)
		}
		if _, err := st.AddParticipant(ctx, store.Participant{SessionID: s.ID, Key: "saml:x", Kind: "saml", AppID: xss["entity ID"],
			Name: xss["app name"], Channels: store.ChannelBack, BackChannelURL: "https://payroll.example/slo", JoinedAt: time.Now()}); err != nil {
			t.Fatal(err)
		}
		sessions = append(sessions, s)
	}
	lo, err := h.eng.Logout(ctx, slobridge.LogoutRequest{SessionIDs: []string{sessions[0].ID}, Initiator: store.Initiator{Kind: store.InitiatorAdmin}})
	if err != nil {
		t.Fatal(err)
	}
	// The engine's workers do not run here: fail the delivery by hand
	// with an error text that carries markup.
	ds, err := st.ClaimDueDeliveries(ctx, "test", time.Now().Add(time.Minute), time.Minute, 10)
	if err != nil || len(ds) != 1 {
		t.Fatalf("claim: %d, %v", len(ds), err)
	}
	if _, err := st.CompleteAttempt(ctx, ds[0].ID, "test", store.Attempt{At: time.Now(), StatusCode: 500, Error: xss["error text"]},
		store.DeliveryFailed, time.Time{}); err != nil {
		t.Fatal(err)
	}

	b := h.operatorBrowser(t)
	pages := []struct {
		path string
		show []string // attacks the page shows as text
	}{
		{"/admin/?q=alice%40example.com", []string{"attribute", "nameid", "app name"}},
		{"/admin/logout?user=alice", []string{"app name"}},
		{"/admin/apps", nil},
		{"/admin/logouts/" + lo.ID, []string{"app name", "error text"}},
		{"/admin/deliveries", []string{"app name", "error text"}},
		{"/admin/deliveries/" + ds[0].ID, []string{"app name", "entity ID", "error text"}},
	}
	for _, p := range pages {
		browsertest.Navigate(t, b, h.srv.URL+p.path)
		browsertest.WaitJS(t, b, p.path+" loaded", `document.readyState === "complete" && !!document.querySelector("main")`)
		got, err := chromedp.Run(b, chromedp.Evaluate[string](`(function(){
			var bad = document.querySelectorAll("main script, main img, main svg, main iframe, main b, [onerror], [onload]");
			return document.title + "|" + bad.length;
		})()`))
		if err != nil {
			t.Fatal(err)
		}
		if got != "slobridge console|0" {
			t.Errorf("%s: title|injected elements = %q; an attack reached the DOM", p.path, got)
		}
		body := browsertest.Text(t, b, "main")
		for _, name := range p.show {
			if !strings.Contains(body, xss[name]) {
				t.Errorf("%s does not show the %s as text %q:\n%s", p.path, name, xss[name], body)
			}
		}
	}
	// The Apps page's own hostile app (the harness's) shows as text too.
	browsertest.Navigate(t, b, h.srv.URL+"/admin/apps")
	if body := browsertest.Text(t, b, "#apps"); !strings.Contains(body, `<iframe src=javascript:alert(5)>`) || !strings.Contains(body, `https://sp.example/"><b>x</b>`) {
		t.Errorf("the Apps page does not show the app's name and entity ID as text:\n%s", body)
	}
}

// TestConsoleLiveInChromium: a delivery's page, while the delivery is
// retrying, follows its logout's event stream (the page's script, allowed
// by the CSP nonce) and shows the delivery delivered when it is.
func TestConsoleLiveInChromium(t *testing.T) {
	h := newHarness(t, []string{"bob"}, nil)
	ctx := context.Background()
	st := h.eng.Store()
	s, err := h.eng.CreateSession(ctx, store.Session{UserID: "alice", ExpiresAt: time.Now().Add(time.Hour)})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := st.AddParticipant(ctx, store.Participant{SessionID: s.ID, Key: "oidc:app", Kind: "oidc", AppID: "app", Name: "Payroll",
		Channels: store.ChannelBack, BackChannelURL: "https://payroll.example/bc", JoinedAt: time.Now()}); err != nil {
		t.Fatal(err)
	}
	if _, err := h.eng.Logout(ctx, slobridge.LogoutRequest{SessionIDs: []string{s.ID}, Initiator: store.Initiator{Kind: store.InitiatorAdmin}}); err != nil {
		t.Fatal(err)
	}
	ds, err := st.ClaimDueDeliveries(ctx, "test", time.Now().Add(time.Minute), time.Minute, 1)
	if err != nil || len(ds) != 1 {
		t.Fatalf("claim: %v", err)
	}
	id := ds[0].ID
	if _, err := st.CompleteAttempt(ctx, id, "test", store.Attempt{At: time.Now(), StatusCode: 503, Error: "HTTP 503"}, store.DeliveryRetrying, time.Now()); err != nil {
		t.Fatal(err)
	}

	b := h.operatorBrowser(t)
	browsertest.Navigate(t, b, h.srv.URL+"/admin/deliveries/"+id)
	browsertest.WaitJS(t, b, "the retrying delivery", `document.getElementById("state").textContent === "retrying"`)
	deadline := time.Now().Add(browsertest.WaitTimeout)
	for h.streams.Load() == 0 {
		if time.Now().After(deadline) {
			t.Fatal("the page never opened its logout's event stream")
		}
		time.Sleep(20 * time.Millisecond)
	}
	// A worker claims it again and delivers it.
	if _, err := st.ClaimDueDeliveries(ctx, "test2", time.Now().Add(time.Minute), time.Minute, 1); err != nil {
		t.Fatal(err)
	}
	if _, err := st.CompleteAttempt(ctx, id, "test2", store.Attempt{At: time.Now(), OK: true, StatusCode: 200}, store.DeliveryDelivered, time.Time{}); err != nil {
		t.Fatal(err)
	}
	browsertest.WaitJS(t, b, "the delivery delivered", `document.getElementById("state").textContent === "delivered"`)
}
