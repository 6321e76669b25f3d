package idp

import (
	"context"
	"fmt"
	"html"
	"io"
	"net/http"
	"net/http/httptest"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/slobridge/slobridge"
	bsaml "github.com/slobridge/slobridge/saml"
	"github.com/slobridge/slobridge/store"
)

// browseForms GETs u with c (which follows redirects), then submits every
// auto-POST form the pages carry, as a browser without JavaScript whose
// person clicks the <noscript> button; it returns the last page.
func browseForms(t *testing.T, c *http.Client, u string) string {
	t.Helper()
	resp, err := c.Get(u)
	for i := 0; i < 10; i++ {
		if err != nil {
			t.Fatalf("browse %s: %v", u, err)
		}
		page, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		action, form, ferr := parseForm(string(page))
		if ferr != nil {
			return string(page)
		}
		resp, err = c.PostForm(action, form)
	}
	t.Fatalf("browse %s: too many forms", u)
	return ""
}

// rowOf returns the status page row of the participant named name.
func rowOf(t *testing.T, page, name string) string {
	t.Helper()
	for _, row := range strings.Split(page, "<tr ") {
		if strings.Contains(row, "<td>"+html.EscapeString(name)+"</td>") {
			return row
		}
	}
	t.Fatalf("no row for %q in %s", name, page)
	return ""
}

// TestTopLevelChainForOtherBrowserLogouts: a SAML SP configured for a
// top-level redirect chain is sent its LogoutRequest by the logout page's
// continue step for browser logouts that no SAML SP started (the bridge's
// /logout, an OIDC end-session, an upstream IdP-initiated front-channel
// logout): samlsp verifies the request, answers, the answer is recorded,
// and the browser reaches the logout's destination; the final page shows
// the SP's answer.
func TestTopLevelChainForOtherBrowserLogouts(t *testing.T) {
	rp := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		fmt.Fprint(w, "rp after logout")
	}))
	t.Cleanup(rp.Close)
	for _, tc := range []struct {
		name     string
		kind     store.InitiatorKind
		redirect string
		want     string
	}{
		{name: "bridge logout", kind: store.InitiatorUser, want: "answered Success"},
		{name: "oidc end-session", kind: store.InitiatorRP, redirect: rp.URL + "/after?state=s1", want: "rp after logout"},
		{name: "upstream front-channel", kind: store.InitiatorUpstream, redirect: rp.URL + "/complete", want: "rp after logout"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			w := newE2E(t, e2eOpts{cfg: func(c *Config) { c.ServiceProviders[0].FrontChannelTopLevel = true }})
			c := newBrowserlessClient()
			loginHTTP(t, c, w.sp1.url+"/app", "sp1 hello alice@example.com")
			s := w.activeSession(t)
			ctx := context.Background()
			lo, err := w.b.eng.Logout(ctx, slobridge.LogoutRequest{SessionIDs: []string{s.ID},
				Initiator: store.Initiator{Kind: tc.kind, ID: "test"}})
			if err != nil {
				t.Fatal(err)
			}
			if tc.redirect != "" {
				if err := w.b.eng.SetLogoutReturn(ctx, lo.ID, slobridge.LogoutReturn{RedirectURI: tc.redirect}, time.Hour); err != nil {
					t.Fatal(err)
				}
			}
			page := browseForms(t, c, w.b.url+"/logout/continue/"+lo.ID)
			if tc.redirect != "" && page != tc.want {
				t.Fatalf("final page %q, want the destination's %q", page, tc.want)
			}
			if tc.redirect == "" && !strings.Contains(rowOf(t, page, "SP one (samlsp)"), tc.want) {
				t.Fatalf("final page row of SP one does not say %q: %s", tc.want, page)
			}
			w.sp1.mu.Lock()
			got, subject, si := w.sp1.logouts, w.sp1.subject, w.sp1.sessionIndex
			w.sp1.mu.Unlock()
			if len(got) != 1 || got[0].Verified != nil || got[0].NameID != subject || got[0].SessionIndex != si ||
				got[0].Destination != w.sp1.url+"/saml/slo" {
				t.Fatalf("samlsp received %+v, want one verified LogoutRequest for %q/%q", got, subject, si)
			}
			res, err := w.b.idp.FrontResult(ctx, lo.ID, s.ID, ParticipantKey(w.sp1.entityID()))
			if err != nil || !res.Done {
				t.Errorf("samlsp's answer recorded as %+v (%v), want Success", res, err)
			}
			// The chain runs once: continuing again sends nothing more.
			browseForms(t, c, w.b.url+"/logout/continue/"+lo.ID)
			w.sp1.mu.Lock()
			n := len(w.sp1.logouts)
			w.sp1.mu.Unlock()
			if n != 1 {
				t.Errorf("samlsp received %d LogoutRequests after a second continue, want 1", n)
			}
		})
	}
}

var iframeSrc = regexp.MustCompile(`<iframe class="fc" data-row="[^"]*" title="Logout of ([^"]*)" src="([^"]*)"`)

// TestFrontResultsShownAndCounted: the LogoutResponse of a SAML SP
// notified in the logout page's iframe is validated, recorded, shown in
// its row of the status page (done, or failed with the SP's status) and
// counted in slobridge_saml_front_channel_responses_total.
func TestFrontResultsShownAndCounted(t *testing.T) {
	for _, tc := range []struct {
		name, status, state, text, label string
	}{
		{name: "success", status: bsaml.StatusSuccess, state: slobridge.RowDone, text: "answered Success", label: FrontSuccess},
		{name: "responder", status: bsaml.StatusResponder, state: slobridge.RowFailed, text: "status " + bsaml.StatusResponder, label: FrontStatus},
	} {
		t.Run(tc.name, func(t *testing.T) {
			w := newE2E(t, e2eOpts{sp2: func(g *gosamlSP) { g.sloStatus = tc.status }})
			c := newBrowserlessClient()
			loginHTTP(t, c, w.sp2.url+"/login", "sp2 logged in as alice@example.com")
			s := w.activeSession(t)
			ctx := context.Background()
			lo, err := w.b.eng.Logout(ctx, slobridge.LogoutRequest{SessionIDs: []string{s.ID},
				Initiator: store.Initiator{Kind: store.InitiatorUser, ID: "test"}})
			if err != nil {
				t.Fatal(err)
			}
			resp, err := c.Get(w.b.url + slobridge.LogoutPagePath(lo.ID))
			if err != nil {
				t.Fatal(err)
			}
			page, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			m := iframeSrc.FindStringSubmatch(string(page))
			if m == nil || html.UnescapeString(m[1]) != "SP two (gosaml2)" {
				t.Fatalf("no iframe for SP two on the logout page: %s", page)
			}
			framed := browseForms(t, c, w.b.url+html.UnescapeString(m[2])[len(w.b.url):])
			if !strings.Contains(framed, "Logged out of SP two") && tc.status == bsaml.StatusSuccess {
				t.Errorf("the bridge's page after SP two's answer: %s", framed)
			}
			counts := frontCounts(t, w.b.reg)
			if len(counts) != 5 || counts[tc.label] != 1 {
				t.Errorf("front-channel responses by result = %v, want 5 series with %s = 1", counts, tc.label)
			}
			resp, err = c.Get(w.b.url + "/logout/done/" + lo.ID)
			if err != nil {
				t.Fatal(err)
			}
			done, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			row := rowOf(t, string(done), "SP two (gosaml2)")
			if !strings.Contains(row, `data-state="`+tc.state+`"`) || !strings.Contains(row, html.EscapeString(tc.text)) {
				t.Errorf("row of SP two = %s, want state %q and %q", row, tc.state, tc.text)
			}
		})
	}
}

// frontCounts gathers slobridge_saml_front_channel_responses_total from
// reg, by result.
func frontCounts(t *testing.T, reg *prometheus.Registry) map[string]float64 {
	t.Helper()
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	out := map[string]float64{}
	for _, mf := range mfs {
		if mf.GetName() != "slobridge_saml_front_channel_responses_total" {
			continue
		}
		for _, m := range mf.GetMetric() {
			for _, l := range m.GetLabel() {
				if l.GetName() == "result" {
					out[l.GetValue()] = m.GetCounter().GetValue()
				}
			}
		}
	}
	return out
}

// TestTopLevelStepPastItsDeadline is the deadline acceptance test of issue
// 13, in Chromium: gosaml2 starts a browser logout; samlsp, notified by a
// top-level redirect step, keeps the browser and never answers. Once the
// step's deadline has passed, the step reads failed with the reason (the
// status page says so before the browser comes back); when the person
// comes back to the bridge's logout page and continues, the chain goes
// on and gosaml2 gets Success/PartialLogout; the upstream IdP, which
// offers SOAP only, is logged out meanwhile through the outbox. (Nothing can
// take a browser back from a page that keeps it; Chromium's back button
// skips the bridge's pages, which the browser reached without a click.)
func TestTopLevelStepPastItsDeadline(t *testing.T) {
	up := newUpstreamIdP(t, "ok")
	// The upstream offers only SOAP: its leg is a delivery of the outbox,
	// which the stuck browser does not hold up.
	up.soapOnly = true
	w := newE2E(t, e2eOpts{
		sp1: func(s *crewjamSP) { s.hang = true },
		cfg: func(c *Config) {
			c.ServiceProviders[0].FrontChannelTopLevel = true
			c.TopLevelStepTimeout = 2 * time.Second
		},
		upstream: up.bridgeSP(true), upstreamName: "corp",
	})
	ctx := newChromium(t)
	s := browserLogins(t, ctx, w)
	if got := browse(t, ctx, w.sp2.url+"/logout", w.sp1.url+"/saml/slo"); got != "sp1 is still thinking about your logout" {
		t.Fatalf("the top-level step shows %q", got)
	}
	bctx := context.Background()
	ended, err := w.b.st.GetSession(bctx, s.ID)
	if err != nil || ended.LogoutID == "" {
		t.Fatalf("session %+v (%v), want ended", ended, err)
	}
	key := ParticipantKey(w.sp1.entityID())
	leg, err := w.b.eng.BrowserLegState(bctx, ended.LogoutID, s.ID, key)
	if err != nil || !leg.Begun || leg.Result != nil {
		t.Fatalf("samlsp's step before its deadline: %+v (%v), want begun and pending", leg, err)
	}
	waitFor(t, "the step's deadline", 10*time.Second, func() bool {
		leg, err = w.b.eng.BrowserLegState(bctx, ended.LogoutID, s.ID, key)
		return err == nil && leg.Result != nil
	})
	if leg.Result.Done || !strings.Contains(leg.Result.Error, "deadline") {
		t.Fatalf("samlsp's step after its deadline: %+v, want failed for its deadline", leg.Result)
	}
	c := newBrowserlessClient()
	if row := rowOf(t, browseForms(t, c, w.b.url+slobridge.LogoutPagePath(ended.LogoutID)+"?step=final"), "SP one (samlsp)"); !strings.Contains(row, `data-state="failed"`) || !strings.Contains(row, "deadline") {
		t.Fatalf("status page row of samlsp after the deadline: %s", row)
	}

	// The person comes back to the logout page, which shows samlsp failed,
	// and continues: the chain goes on to the upstream and the answer to
	// gosaml2.
	if err := chromedp.Do(ctx, chromedp.Navigate(w.b.url+slobridge.LogoutPagePath(ended.LogoutID)),
		chromedp.WaitVisible(`#continue`), chromedp.Click(`#continue`)); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(30 * time.Second)
	for {
		w.sp2.mu.Lock()
		status, sub, n := w.sp2.logoutStatus, w.sp2.logoutSubStatus, w.sp2.logoutResponses
		w.sp2.mu.Unlock()
		if n > 0 {
			if status != bsaml.StatusSuccess || sub != bsaml.StatusPartialLogout {
				t.Fatalf("gosaml2 got %s / %s, want Success / PartialLogout", status, sub)
			}
			break
		}
		if time.Now().After(deadline) {
			loc, _ := chromedp.Run(ctx, chromedp.Location())
			t.Fatalf("gosaml2 never got its LogoutResponse after the browser came back (the browser is at %s)", loc)
		}
		time.Sleep(50 * time.Millisecond)
	}
	up.mu.Lock()
	told := len(up.got)
	up.mu.Unlock()
	if told != 1 {
		t.Fatalf("the upstream got %d LogoutRequests, want 1", told)
	}
	out, err := w.b.eng.Outcome(bctx, ended.LogoutID, time.Second, true)
	if err != nil || out.Complete || len(out.Failed) != 1 || out.Failed[0].Key != key {
		t.Fatalf("outcome %+v (%v), want samlsp failed", out, err)
	}
}
