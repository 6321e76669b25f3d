package idp

import (
	"bytes"
	"context"
	"io"
	"net/http"
	"net/http/cookiejar"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/beevik/etree"

	"github.com/slobridge/slobridge"
	bsaml "github.com/slobridge/slobridge/saml"
	"github.com/slobridge/slobridge/saml/internal/samltest"
	"github.com/slobridge/slobridge/store"
)

// newBrowserlessClient is an HTTP client with a cookie jar that does not
// run JavaScript: loginHTTP submits the auto-POST forms itself.
func newBrowserlessClient() *http.Client {
	jar, _ := cookiejar.New(nil)
	return &http.Client{Jar: jar, Timeout: 10 * time.Second}
}

// loginHTTP starts a login at start, follows redirects and submits every
// auto-POST form until a page without one, and checks it shows want.
func loginHTTP(t *testing.T, c *http.Client, start, want string) {
	t.Helper()
	resp, err := c.Get(start)
	for i := 0; err == nil && i < 5; i++ {
		page, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		action, form, ferr := parseForm(string(page))
		if ferr != nil {
			if resp.StatusCode != http.StatusOK || !strings.Contains(string(page), want) {
				t.Fatalf("login at %s ended with HTTP %d %q, want %q", start, resp.StatusCode, page, want)
			}
			return
		}
		resp, err = c.PostForm(action, form)
	}
	t.Fatalf("login at %s: %v", start, err)
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
			w := newE2E(t, e2eOpts{engine: func(o *slobridge.Options) { o.AttemptTimeout = 1500 * time.Millisecond }})
			loginHTTP(t, newBrowserlessClient(), w.sp3.url+"/login", "sp3 logged in as alice@example.com")
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
				// Every attempt carries the delivery's one stable ID.
				if g.DeliveryID == "" || g.DeliveryID != w.sp3.soap.got[0].DeliveryID {
					t.Errorf("request %d: Slobridge-Delivery-Id %q, want the first attempt's %q", i, g.DeliveryID, w.sp3.soap.got[0].DeliveryID)
				}
			}
		})
	}
}

// sendSOAPLogout has SP2 (gosaml2) send a signed LogoutRequest with its
// NameID and SessionIndex to the bridge's SOAP endpoint. It returns the
// request ID and the raw SOAP answer.
func sendSOAPLogout(t *testing.T, w *e2e) (string, []byte) {
	t.Helper()
	sp := w.sp2.sp
	sp.IdentityProviderSLOURL = w.b.url + PathSLOSOAP
	doc, err := sp.BuildLogoutRequestDocument(w.sp2.nameID, w.sp2.sessionIndex)
	if err != nil {
		t.Fatal(err)
	}
	env, err := bsaml.SOAPEnvelope(doc.Root())
	if err != nil {
		t.Fatal(err)
	}
	resp, err := http.Post(w.b.url+PathSLOSOAP, "text/xml; charset=utf-8", bytes.NewReader(env))
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("SOAP logout answered HTTP %d: %s", resp.StatusCode, body)
	}
	return doc.Root().SelectAttrValue("ID", ""), body
}

// TestSOAPInitiatedLogout: an SP's back-channel LogoutRequest ends the
// session and is answered, after the back-channel deliveries, with a
// LogoutResponse whose signature xmlsec1 verifies: Success when every
// other participant was logged out, Success/PartialLogout when one could
// not be (a front-channel SP, unreachable without a browser, or a SOAP SP
// that keeps failing).
func TestSOAPInitiatedLogout(t *testing.T) {
	xmlsec := samltest.RequireTool(t, "xmlsec1")
	for _, tc := range []struct {
		name      string
		withSP1   bool
		sp3Mode   string
		wantSub   string
		wantSP3OK bool
	}{
		{name: "all reached", sp3Mode: "ok", wantSP3OK: true},
		{name: "front-channel participant", withSP1: true, sp3Mode: "ok", wantSub: bsaml.StatusPartialLogout, wantSP3OK: true},
		{name: "failing SOAP participant", sp3Mode: "fail", wantSub: bsaml.StatusPartialLogout},
	} {
		t.Run(tc.name, func(t *testing.T) {
			w := newE2E(t, e2eOpts{
				engine: func(o *slobridge.Options) { o.BackoffBase = time.Second },
				cfg:    func(c *Config) { c.SOAPLogoutWait = 2 * time.Second },
			})
			c := newBrowserlessClient()
			if tc.withSP1 {
				loginHTTP(t, c, w.sp1.url+"/app", "sp1 hello alice@example.com")
			}
			loginHTTP(t, c, w.sp2.url+"/login", "sp2 logged in as alice@example.com")
			loginHTTP(t, c, w.sp3.url+"/login", "sp3 logged in as alice@example.com")
			w.sp3.soap.mode.Store(tc.sp3Mode)
			s := w.activeSession(t)

			reqID, answer := sendSOAPLogout(t, w)
			f := filepath.Join(t.TempDir(), "answer.xml")
			if err := os.WriteFile(f, answer, 0o600); err != nil {
				t.Fatal(err)
			}
			out, err := exec.Command(xmlsec, "--verify", "--pubkey-cert-pem", filepath.Join("testdata", "idp.crt"),
				"--id-attr:ID", "urn:oasis:names:tc:SAML:2.0:protocol:LogoutResponse", f).CombinedOutput()
			if err != nil {
				t.Fatalf("xmlsec1 --verify of the LogoutResponse: %v: %s", err, out)
			}
			doc := etree.NewDocument()
			if err := doc.ReadFromBytes(answer); err != nil {
				t.Fatal(err)
			}
			lr := doc.FindElement("//LogoutResponse")
			top := doc.FindElement("//Status/StatusCode")
			if lr == nil || top == nil {
				t.Fatalf("answer is not a LogoutResponse: %s", answer)
			}
			sub := ""
			if e := top.FindElement("StatusCode"); e != nil {
				sub = e.SelectAttrValue("Value", "")
			}
			if lr.SelectAttrValue("InResponseTo", "") != reqID || top.SelectAttrValue("Value", "") != bsaml.StatusSuccess || sub != tc.wantSub {
				t.Fatalf("LogoutResponse InResponseTo %q status %q/%q, want %q Success/%q",
					lr.SelectAttrValue("InResponseTo", ""), top.SelectAttrValue("Value", ""), sub, reqID, tc.wantSub)
			}
			got, err := w.b.st.GetSession(context.Background(), s.ID)
			if err != nil || got.EndedAt.IsZero() {
				t.Fatalf("session %+v (%v), want ended", got, err)
			}
			w.sp3.soap.mu.Lock()
			n := len(w.sp3.soap.got)
			w.sp3.soap.mu.Unlock()
			if n == 0 {
				t.Fatalf("the SOAP participant got no LogoutRequest")
			}
			st, err := w.b.eng.Status(context.Background(), got.LogoutID)
			if err != nil {
				t.Fatal(err)
			}
			for _, row := range st.Participants {
				if row.Key == ParticipantKey(w.sp3.entityID()) && (row.State == string(store.DeliveryDelivered)) != tc.wantSP3OK {
					t.Errorf("SOAP participant state %q, want delivered=%v", row.State, tc.wantSP3OK)
				}
			}

			// A second request for the ended session has nothing left to do:
			// plain Success, and no new logout.
			_, again := sendSOAPLogout(t, w)
			if !strings.Contains(string(again), bsaml.StatusSuccess) || strings.Contains(string(again), bsaml.StatusPartialLogout) {
				t.Errorf("second SOAP logout answered %s, want plain Success", again)
			}
			if los, _ := w.b.st.ListLogoutsByUser(context.Background(), "alice"); len(los) != 1 {
				t.Errorf("%d logouts after the second request, want 1", len(los))
			}
		})
	}
}
