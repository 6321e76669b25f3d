package idp

import (
	"context"
	"io"
	"net/http"
	"net/http/cookiejar"
	"strings"
	"testing"
	"time"

	"github.com/slobridge/slobridge"
	"github.com/slobridge/slobridge/store"
)

// loginHTTP logs alice in at a gosaml2 SP without a browser: it follows
// the redirects and submits the bridge's auto-POST form itself.
func loginHTTP(t *testing.T, sp *gosamlSP) {
	t.Helper()
	jar, _ := cookiejar.New(nil)
	c := &http.Client{Jar: jar, Timeout: 10 * time.Second}
	resp, err := c.Get(sp.url + "/login")
	if err != nil {
		t.Fatal(err)
	}
	page, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	action, form, err := parseForm(string(page))
	if err != nil {
		t.Fatalf("SSO answer: %v", err)
	}
	resp, err = c.PostForm(action, form)
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK || !strings.Contains(string(body), "logged in as alice@example.com") {
		t.Fatalf("ACS answered %d %q (login error %v)", resp.StatusCode, body, sp.loginErr)
	}
}

// TestSOAPBackChannelRetries: a SOAP SP that answers a non-Success status
// or does not answer in time has a failed attempt; the engine retries, the
// logout status shows the attempts and the error, and once the SP answers
// Success the delivery is delivered. Every LogoutRequest carries the SP's
// NameID and SessionIndex and verifies with xmlsec1.
func TestSOAPBackChannelRetries(t *testing.T) {
	for _, tc := range []struct {
		name, mode, wantErr string
	}{
		{"non-success status", "fail", "status urn:oasis:names:tc:SAML:2.0:status:Responder"},
		{"timeout", "hang", "deadline exceeded"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			w := newE2E(t, func(o *slobridge.Options) { o.AttemptTimeout = 400 * time.Millisecond })
			loginHTTP(t, w.sp3)
			w.sp3.soap.mode.Store(tc.mode)
			s := w.activeSession(t)
			ctx := context.Background()
			lo, err := w.b.eng.Logout(ctx, slobridge.LogoutRequest{SessionIDs: []string{s.ID},
				Initiator: store.Initiator{Kind: store.InitiatorAdmin, ID: "test"}})
			if err != nil {
				t.Fatal(err)
			}
			key := ParticipantKey(w.sp3.entityID())
			row := func() slobridge.ParticipantStatus {
				st, err := w.b.eng.Status(ctx, lo.ID)
				if err != nil {
					t.Fatal(err)
				}
				for _, r := range st.Participants {
					if r.Key == key {
						return r
					}
				}
				t.Fatalf("no status row for %s", key)
				return slobridge.ParticipantStatus{}
			}
			waitFor(t, "two failed attempts", 15*time.Second, func() bool {
				r := row()
				return r.Attempts >= 2 && r.State == string(store.DeliveryRetrying)
			})
			if r := row(); !strings.Contains(r.LastError, tc.wantErr) {
				t.Errorf("status LastError = %q, want it to say %q", r.LastError, tc.wantErr)
			}
			w.sp3.soap.mode.Store("ok")
			waitFor(t, "delivery after the SP recovers", 15*time.Second, func() bool {
				return row().State == string(store.DeliveryDelivered)
			})
			w.sp3.soap.mu.Lock()
			defer w.sp3.soap.mu.Unlock()
			if len(w.sp3.soap.got) < 3 {
				t.Fatalf("SOAP SP got %d requests, want at least 3", len(w.sp3.soap.got))
			}
			for i, g := range w.sp3.soap.got {
				if g.Verified != nil || g.NameID != w.sp3.nameID || g.SessionIndex != w.sp3.sessionIndex || g.Destination != w.sp3.url+"/soap" {
					t.Errorf("request %d: %+v, want verified, NameID %q, SI %q", i, g, w.sp3.nameID, w.sp3.sessionIndex)
				}
			}
		})
	}
}
