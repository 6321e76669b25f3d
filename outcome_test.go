package slobridge

import (
	"context"
	"net/http"
	"path/filepath"
	"testing"
	"time"

	"github.com/slobridge/slobridge/store"
)

// fakeFront is a FrontChannel with no top-level chain: registering it
// makes its kind's front-channel legs answered ones.
type fakeFront struct{}

func (fakeFront) NextTopLevel(http.ResponseWriter, *http.Request, store.Logout, string) (bool, error) {
	return false, nil
}

// TestOutcome: the one decision on how a logout went, for every
// combination that made the SAML answers disagree before: delivered and
// failing back-channel legs, front-channel legs whose kind reports an
// answer (Success, an error, none), front-channel legs of a kind that
// gives none (an OIDC iframe), with and without a browser, and the
// upstream IdP's answer to the bridge.
func TestOutcome(t *testing.T) {
	ok := newReceiver(t, nil)
	failing := newReceiver(t, func(int, *http.Request) int { return http.StatusServiceUnavailable })
	e, _ := runEngine(t, testOptions(openStore(t, filepath.Join(t.TempDir(), "o.db"))))
	e.SetFrontChannel("samlish", fakeFront{})
	answers := map[string]LegResult{"sp-ok": {Done: true}, "sp-error": {Error: "status Responder"}}
	front := func(kind, app string) store.Participant {
		return store.Participant{Kind: kind, AppID: app, Key: kind + ":" + app, Channels: store.ChannelFront, FrontChannelURL: "https://" + app + "/fc"}
	}
	ctx := context.Background()
	for _, tc := range []struct {
		name         string
		ps           []store.Participant
		browser      bool
		upstreamFail bool
		complete     bool
		failedKey    string
	}{
		{name: "back delivered", ps: []store.Participant{backParticipant("a", ok.srv.URL)}, complete: true},
		{name: "back failing", ps: []store.Participant{backParticipant("a", failing.srv.URL)}, failedKey: "http:a"},
		{name: "SAML SP answered Success", ps: []store.Participant{front("samlish", "sp-ok")}, browser: true, complete: true},
		{name: "SAML SP answered an error", ps: []store.Participant{front("samlish", "sp-error")}, browser: true, failedKey: "samlish:sp-error"},
		{name: "SAML SP never answered", ps: []store.Participant{front("samlish", "sp-silent")}, browser: true, failedKey: "samlish:sp-silent"},
		{name: "OIDC iframe, browser", ps: []store.Participant{front("oidcish", "rp")}, browser: true, complete: true},
		{name: "OIDC iframe, no browser", ps: []store.Participant{front("oidcish", "rp")}, failedKey: "oidcish:rp"},
		{name: "upstream failed", ps: []store.Participant{backParticipant("a", ok.srv.URL)}, upstreamFail: true, failedKey: "upstream"},
		{name: "SAML SP past its deadline", ps: []store.Participant{front("samlish", "sp-late")}, browser: true, failedKey: "samlish:sp-late"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s := newSession(t, e, "alice", tc.ps...)
			lo, err := e.Logout(ctx, LogoutRequest{SessionIDs: []string{s.ID}, Initiator: store.Initiator{Kind: store.InitiatorUser}})
			if err != nil {
				t.Fatal(err)
			}
			for _, p := range lo.Participants {
				if p.AppID == "sp-late" {
					// Begun with a deadline already passed: no answer came.
					if _, err := e.BeginBrowserLeg(ctx, lo.ID, p.SessionID, p.Key, -time.Second); err != nil {
						t.Fatal(err)
					}
				}
				if res, ok := answers[p.AppID]; ok {
					if err := e.EndBrowserLeg(ctx, lo.ID, p.SessionID, p.Key, res); err != nil {
						t.Fatal(err)
					}
				}
			}
			if tc.upstreamFail {
				if _, err := e.BeginBrowserLeg(ctx, lo.ID, "", UpstreamLeg, time.Minute); err != nil {
					t.Fatal(err)
				}
				if err := e.EndBrowserLeg(ctx, lo.ID, "", UpstreamLeg, LegResult{Error: "answered Responder"}); err != nil {
					t.Fatal(err)
				}
			}
			wait := time.Minute
			if tc.failedKey == "http:a" {
				wait = 300 * time.Millisecond
			}
			out, err := e.Outcome(ctx, lo.ID, wait, tc.browser)
			if err != nil {
				t.Fatal(err)
			}
			if out.Complete != tc.complete {
				t.Fatalf("complete = %v (%+v), want %v", out.Complete, out.Failed, tc.complete)
			}
			if tc.failedKey != "" && (len(out.Failed) != 1 || out.Failed[0].Key != tc.failedKey || out.Failed[0].Why == "") {
				t.Fatalf("failed legs %+v, want %s with a reason", out.Failed, tc.failedKey)
			}
		})
	}
}
