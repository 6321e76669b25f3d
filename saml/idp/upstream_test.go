package idp

import (
	"context"
	"crypto/x509"
	"encoding/base64"
	"encoding/xml"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	crewjam "github.com/crewjam/saml"

	"github.com/slobridge/slobridge"
	bsaml "github.com/slobridge/slobridge/saml"
	"github.com/slobridge/slobridge/saml/sp"
	"github.com/slobridge/slobridge/store"
	"github.com/slobridge/slobridge/store/bolt"
)

// upstreamEntity is the entity ID of the upstream IdP of these tests.
const upstreamEntity = "https://idp.corp.test/metadata"

// upstreamIdP is the SOAP SLO endpoint of the upstream IdP in the tests
// that wire the bridge's real SAML SP (saml/sp) to the IdP. It validates
// the bridge's signed SOAP LogoutRequest with the codec against the
// bridge SP's certificate (in its own store, for its own replay check) and
// answers, by mode, a signed Success, a signed Responder status, or a SOAP
// fault.
type upstreamIdP struct {
	srv      *httptest.Server
	mode     string
	trust    bsaml.Trust
	signer   *bsaml.Signer
	validate *bsaml.Validator
	// soapOnly leaves the HTTP-Redirect SingleLogoutService out of the
	// metadata: the bridge can tell this upstream only by SOAP.
	soapOnly bool

	mu   sync.Mutex
	got  []*bsaml.LogoutRequest
	errs []error
}

func newUpstreamIdP(t testing.TB, mode string) *upstreamIdP {
	t.Helper()
	st, err := bolt.Open(filepath.Join(t.TempDir(), "upstream.db"), bolt.Options{NoSync: true})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	u := &upstreamIdP{mode: mode, signer: testSigner(t, "upstream"), validate: &bsaml.Validator{Store: st}}
	u.srv = httptest.NewServer(http.HandlerFunc(u.handle))
	t.Cleanup(u.srv.Close)
	return u
}

func (u *upstreamIdP) handle(w http.ResponseWriter, r *http.Request) {
	if u.mode == "fault" {
		bsaml.WriteSOAPFault(w, http.StatusInternalServerError, "Server", "the IdP is down")
		return
	}
	m, err := bsaml.DecodeSOAP(r, bsaml.Limits{})
	var req *bsaml.LogoutRequest
	if err == nil {
		req, err = u.validate.LogoutRequest(r.Context(), m, u.trust, u.srv.URL)
	}
	u.mu.Lock()
	u.got, u.errs = append(u.got, req), append(u.errs, err)
	u.mu.Unlock()
	if err != nil {
		bsaml.WriteSOAPFault(w, http.StatusBadRequest, "Client", "bad LogoutRequest")
		return
	}
	status := bsaml.StatusSuccess
	if u.mode == "responder" {
		status = bsaml.StatusResponder
	}
	id, _ := bsaml.NewID(nil)
	resp := &bsaml.LogoutResponse{ID: id, InResponseTo: req.ID, IssueInstant: time.Now(), Issuer: upstreamEntity, Status: status}
	signed, err := u.signer.SignEnveloped(resp.Element())
	if err != nil {
		bsaml.WriteSOAPFault(w, http.StatusInternalServerError, "Server", "sign")
		return
	}
	_ = bsaml.WriteSOAP(w, signed)
}

// metadata is the upstream's IdP metadata: SSO by Redirect, SLO by
// Redirect and (with soap) SOAP.
func (u *upstreamIdP) metadata(t testing.TB, soap bool) []byte {
	t.Helper()
	ki := crewjam.KeyInfo{X509Data: crewjam.X509Data{X509Certificates: []crewjam.X509Certificate{
		{Data: base64.StdEncoding.EncodeToString(u.signer.Cert.Raw)}}}}
	var slos []crewjam.Endpoint
	if !u.soapOnly {
		slos = append(slos, crewjam.Endpoint{Binding: bsaml.BindingRedirect, Location: u.srv.URL + "/slo"})
	}
	if soap {
		slos = append(slos, crewjam.Endpoint{Binding: bsaml.BindingSOAP, Location: u.srv.URL})
	}
	ed := crewjam.EntityDescriptor{EntityID: upstreamEntity, IDPSSODescriptors: []crewjam.IDPSSODescriptor{{
		SSODescriptor: crewjam.SSODescriptor{
			RoleDescriptor: crewjam.RoleDescriptor{ProtocolSupportEnumeration: bsaml.NSProtocol,
				KeyDescriptors: []crewjam.KeyDescriptor{{Use: "signing", KeyInfo: ki}}},
			SingleLogoutServices: slos,
		},
		SingleSignOnServices: []crewjam.Endpoint{{Binding: bsaml.BindingRedirect, Location: u.srv.URL + "/sso"}},
	}}}
	b, err := xml.Marshal(ed)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// bridgeSP returns the bridge's real SAML SP toward u, built on the
// bridge's engine, registered as the wiring does: the notifier of its
// upstream legs and their planner.
func (u *upstreamIdP) bridgeSP(soap bool) func(t testing.TB, eng *slobridge.Engine, url string) {
	return func(t testing.TB, eng *slobridge.Engine, url string) {
		t.Helper()
		f := filepath.Join(t.TempDir(), "upstream.xml")
		if err := os.WriteFile(f, u.metadata(t, soap), 0o600); err != nil {
			t.Fatal(err)
		}
		signer := testSigner(t, "bridgesp")
		s, err := sp.New(context.Background(), sp.Options{
			Engine: eng, Cookies: slobridge.SessionCookies{Secret: []byte("0123456789abcdef0123456789abcdef")},
			BaseURL: url, Signer: signer, Upstreams: []sp.UpstreamConfig{{Name: "corp", MetadataFile: f}},
			BackChannelClient: slobridge.NewBackChannelClient(slobridge.ClientOptions{AllowLoopback: true}),
			Logger:            quietLogger(),
		})
		if err != nil {
			t.Fatalf("new bridge SP: %v", err)
		}
		u.trust = bsaml.Trust{EntityID: s.EntityID(), Certs: []*x509.Certificate{signer.Cert}}
		eng.SetNotifier(sp.LegKind, s)
		eng.AddUpstreamLegs(s.UpstreamLegs)
	}
}

// TestSOAPLogoutReachesUpstream: a logout that a SAML SP starts over SOAP
// (no browser) reaches the upstream IdP by a SOAP LogoutRequest with the
// upstream's own NameID and SessionIndex, after the back-channel
// deliveries and before the SP's answer. The SP gets Success when the
// upstream confirms, Success/PartialLogout when it answers an error, a
// SOAP fault, or offers no SOAP endpoint; the logout's outcome (its
// upstream leg) says which.
func TestSOAPLogoutReachesUpstream(t *testing.T) {
	for _, tc := range []struct {
		name, mode string
		soap       bool
		wantSub    string
		wantState  string
		wantCalls  int
	}{
		{name: "upstream confirms", mode: "ok", soap: true, wantState: slobridge.RowDone, wantCalls: 1},
		{name: "upstream answers Responder", mode: "responder", soap: true, wantSub: bsaml.StatusPartialLogout, wantState: slobridge.RowFailed, wantCalls: 1},
		{name: "upstream SOAP fault", mode: "fault", soap: true, wantSub: bsaml.StatusPartialLogout, wantState: slobridge.RowFailed},
		{name: "upstream without SOAP endpoint", mode: "ok", wantSub: bsaml.StatusPartialLogout, wantState: slobridge.RowFailed},
	} {
		t.Run(tc.name, func(t *testing.T) {
			up := newUpstreamIdP(t, tc.mode)
			w := newE2E(t, e2eOpts{upstream: up.bridgeSP(tc.soap), upstreamName: "corp",
				cfg: func(c *Config) { c.SOAPLogoutWait = 3 * time.Second }})
			c := newBrowserlessClient()
			loginHTTP(t, c, w.sp2.url+"/login", "sp2 logged in as alice@example.com")
			loginHTTP(t, c, w.sp3.url+"/login", "sp3 logged in as alice@example.com")
			w.sp3.soap.mode.Store("ok")
			s := w.activeSession(t)

			reqID, answer := sendSOAPLogout(t, w)
			if !strings.Contains(string(answer), `InResponseTo="`+reqID+`"`) {
				t.Fatalf("answer does not answer %s: %s", reqID, answer)
			}
			gotPartial := strings.Contains(string(answer), bsaml.StatusPartialLogout)
			if !strings.Contains(string(answer), bsaml.StatusSuccess) || gotPartial != (tc.wantSub != "") {
				t.Errorf("answer %s, want Success with sub-status %q", answer, tc.wantSub)
			}

			up.mu.Lock()
			calls, got, errs := len(up.got), up.got, up.errs
			up.mu.Unlock()
			if tc.mode != "fault" && calls != tc.wantCalls {
				t.Fatalf("upstream got %d LogoutRequests, want %d", calls, tc.wantCalls)
			}
			for i := range got {
				if errs[i] != nil {
					t.Fatalf("upstream refused the bridge's LogoutRequest: %v", errs[i])
				}
				r := got[i]
				if r.NameID.Value != upstreamNameID || len(r.SessionIndexes) != 1 || r.SessionIndexes[0] != upstreamSessionIndex ||
					r.Reason != bsaml.ReasonUser {
					t.Errorf("upstream LogoutRequest NameID %q SessionIndexes %v Reason %q, want %q [%q] user",
						r.NameID.Value, r.SessionIndexes, r.Reason, upstreamNameID, upstreamSessionIndex)
				}
			}

			ended, err := w.b.st.GetSession(context.Background(), s.ID)
			if err != nil || ended.EndedAt.IsZero() {
				t.Fatalf("session %+v (%v), want ended", ended, err)
			}
			// The upstream leg is a participant of the logout: the one
			// outcome says whether it was reached.
			out, err := w.b.eng.Outcome(context.Background(), ended.LogoutID, 10*time.Millisecond, false)
			if err != nil {
				t.Fatal(err)
			}
			legFailed := slices.ContainsFunc(out.Failed, func(f slobridge.FailedLeg) bool { return f.Key == sp.LegKey("corp") })
			if legFailed != (tc.wantState == slobridge.RowFailed) || out.Complete != (tc.wantState == slobridge.RowDone) {
				t.Errorf("outcome %+v, want the upstream leg %s", out, tc.wantState)
			}
			if lo, err := w.b.st.GetLogout(context.Background(), ended.LogoutID); err != nil || lo.Initiator.Kind != store.InitiatorSP {
				t.Errorf("logout %+v (%v), want initiated by the SP", lo, err)
			}
		})
	}
}
