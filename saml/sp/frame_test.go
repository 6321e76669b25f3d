package sp

import (
	"context"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"

	"github.com/slobridge/slobridge"
	"github.com/slobridge/slobridge/saml"
	"github.com/slobridge/slobridge/store"
)

// frameAncestors returns the frame-ancestors source list of an answer's
// Content-Security-Policy ("" when it has none).
func frameAncestors(resp *http.Response) string {
	for d := range strings.SplitSeq(resp.Header.Get("Content-Security-Policy"), ";") {
		if v, ok := strings.CutPrefix(strings.TrimSpace(d), "frame-ancestors "); ok {
			return v
		}
	}
	return ""
}

// TestLogoutFrameAncestors checks who may frame the pages of a logout: an
// upstream IdP that sent its LogoutRequest over the front channel (and may
// do so in an iframe of its logout page, as Shibboleth IdP does) may frame
// the logout page, its no-script final state and the LogoutResponse form
// that answers it — its own SLO origin and nobody else; the logout page of
// a logout started otherwise keeps frame-ancestors 'none', whatever is
// recorded for it.
func TestLogoutFrameAncestors(t *testing.T) {
	const idpOrigin = "https://idp.example.test"
	b := newBridge(t, bridgeOptions{upstreams: []UpstreamConfig{corpUpstream(t, map[string]string{saml.BindingPOST: idpSLO})}})

	t.Run("upstream-initiated", func(t *testing.T) {
		s := b.session("corp", "alice", "alice@example.com", "_s1", newReceiver(t, http.StatusOK))
		req := newRequest(t, b.sp.url(PathSLO), "alice@example.com", "_s1")
		resp := b.sendLogoutRequest(saml.BindingPOST, req)
		page := resp.Header.Get("Location")
		if resp.StatusCode != http.StatusSeeOther || !strings.Contains(page, "/logout/page/") {
			t.Fatalf("LogoutRequest answered %d to %q, want 303 to the logout page", resp.StatusCode, page)
		}
		for _, u := range []string{page, page + "?step=final"} {
			r := b.get(u)
			readBody(t, r)
			if got := frameAncestors(r); r.StatusCode != http.StatusOK || got != idpOrigin {
				t.Errorf("%s: HTTP %d, frame-ancestors %q; want 200 and %q", u, r.StatusCode, got, idpOrigin)
			}
		}
		final := b.followLogoutPage(resp)
		if got := frameAncestors(final); final.StatusCode != http.StatusOK || got != idpOrigin {
			t.Errorf("LogoutResponse form: HTTP %d, frame-ancestors %q; want 200 and %q", final.StatusCode, got, idpOrigin)
		}
		if lr := b.logoutResponseFrom(final, saml.BindingPOST, req.ID); !lr.Success() || !b.ended(s.ID) {
			t.Fatalf("status %s/%s, session ended %v", lr.Status, lr.SubStatus, b.ended(s.ID))
		}
	})

	t.Run("not upstream-initiated", func(t *testing.T) {
		for _, kind := range []store.InitiatorKind{store.InitiatorUser, store.InitiatorSP, store.InitiatorRP} {
			s := b.session("corp", "bob", "bob@example.com", "_s9", newReceiver(t, http.StatusOK))
			lo, err := b.eng.Logout(t.Context(), slobridge.LogoutRequest{SessionIDs: []string{s.ID},
				Initiator: store.Initiator{Kind: kind, ID: "corp"}, Browser: true})
			if err != nil {
				t.Fatal(err)
			}
			// Even a recorded origin does not widen the page of a logout
			// that the upstream did not start.
			if err := b.eng.SetFrameAncestors(t.Context(), lo.ID, []string{idpOrigin}, time.Hour); err != nil {
				t.Fatal(err)
			}
			r := b.get(slobridge.LogoutPagePath(lo.ID))
			readBody(t, r)
			if got := frameAncestors(r); r.StatusCode != http.StatusOK || got != "'none'" {
				t.Errorf("%s-initiated logout page: HTTP %d, frame-ancestors %q; want 200 and 'none'", kind, r.StatusCode, got)
			}
		}
	})
}

// TestBrowserIdPLogoutInIframe runs the front-channel logout propagation
// of Shibboleth IdP in a real browser: the IdP's page holds an iframe that
// posts the LogoutRequest to the bridge; the bridge's logout page and its
// auto-submitted LogoutResponse render inside that iframe (frame-ancestors
// allows the IdP's origin, another port of 127.0.0.1 here), and the
// LogoutResponse reaches the IdP and validates. With frame-ancestors
// 'none' the browser blocks the logout page and no answer ever arrives.
func TestBrowserIdPLogoutInIframe(t *testing.T) {
	ctx := chromium(t)
	idp := newBrowserIdP(t)
	b := newBridge(t, bridgeOptions{upstreams: []UpstreamConfig{{Name: "corp", MetadataFile: idp.metadataFile(t)}}})
	registerSP(t, idp.srv, b)
	s := browserLogin(t, ctx, b, idp)
	recv := newReceiver(t, http.StatusOK)
	if _, err := b.eng.AddParticipant(t.Context(), store.Participant{SessionID: s.ID, Kind: "http", AppID: "app",
		Channels: store.ChannelBack, BackChannelURL: recv.srv.URL}); err != nil {
		t.Fatal(err)
	}
	inner, reqID := idp.startLogoutPage(t, b, s)
	outer := writePage(t, idp, `<!doctype html><p>Logging you out of your applications…</p><iframe src="`+inner+`"></iframe>`)
	if err := chromedp.Do(ctx, chromedp.Navigate(outer)); err != nil {
		t.Fatal(err)
	}
	var m *saml.Message
	select {
	case m = <-idp.responses:
	case <-time.After(30 * time.Second):
		t.Fatal("no LogoutResponse reached the IdP from the iframe: the bridge's pages were not allowed to render framed by the IdP")
	}
	v := &saml.Validator{Store: b.st}
	lr, err := v.LogoutResponse(t.Context(), m, b.spTrust(), idp.srv.URL+"/slo", reqID)
	if err != nil {
		t.Fatalf("LogoutResponse: %v", err)
	}
	if !lr.Success() || lr.Partial() || m.RelayState != "idp-state" || !b.ended(s.ID) || recv.count() != 1 {
		t.Fatalf("status %s/%s relay %q ended %v notified %d", lr.Status, lr.SubStatus, m.RelayState, b.ended(s.ID), recv.count())
	}
	lctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	if loc, err := chromedp.Run(lctx, chromedp.Location()); err != nil || loc != outer {
		t.Fatalf("the top-level page is %q (%v), want the IdP's page %q still", loc, err, outer)
	}
}
