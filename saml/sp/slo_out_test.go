package sp

import (
	"context"
	"encoding/base64"
	"fmt"
	"net/http"
	"net/http/httptest"
	"net/url"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/slobridge/slobridge"
	"github.com/slobridge/slobridge/saml"
	"github.com/slobridge/slobridge/saml/internal/samltest"
	"github.com/slobridge/slobridge/store"
)

// idpSide validates, as the upstream IdP would, a LogoutRequest the bridge
// sent, and checks it names the session's NameID and SessionIndex.
func (b *bridge) idpSide(m *saml.Message, dest string, s store.Session) *saml.LogoutRequest {
	b.t.Helper()
	v := &saml.Validator{Store: b.st}
	req, err := v.LogoutRequest(b.t.Context(), m, b.spTrust(), dest)
	if err != nil {
		b.t.Fatalf("the bridge's LogoutRequest does not validate: %v", err)
	}
	want := saml.NameID{Value: s.NameID.Value, Format: s.NameID.Format, NameQualifier: s.NameID.NameQualifier,
		SPNameQualifier: s.NameID.SPNameQualifier}
	if req.NameID != want || len(req.SessionIndexes) != 1 || req.SessionIndexes[0] != s.SessionIndex {
		b.t.Fatalf("LogoutRequest names %+v %v, want %+v %s", req.NameID, req.SessionIndexes, want, s.SessionIndex)
	}
	return req
}

// idpResponse is the upstream's signed LogoutResponse to the bridge.
func (b *bridge) idpResponse(t *testing.T, binding, inResponseTo, relay string, signed bool) *http.Response {
	t.Helper()
	id, _ := saml.NewID(nil)
	r := &saml.LogoutResponse{ID: id, InResponseTo: inResponseTo, IssueInstant: time.Now(), Destination: b.sp.url(PathSLO),
		Issuer: idpEntity, Status: saml.StatusSuccess}
	idp := loadSigner(t, "idp")
	if !signed {
		idp = nil
	}
	if binding == saml.BindingRedirect {
		u, err := saml.RedirectURL(b.sp.url(PathSLO), saml.ParamResponse, r.Element(), relay, idp)
		if err != nil {
			t.Fatal(err)
		}
		return b.get(u)
	}
	el := r.Element()
	if idp != nil {
		var err error
		if el, err = idp.SignEnveloped(el); err != nil {
			t.Fatal(err)
		}
	}
	v, _ := saml.POSTValue(el)
	return b.post(PathSLO, "application/x-www-form-urlencoded",
		[]byte(url.Values{saml.ParamResponse: {v}, saml.ParamRelayState: {relay}}.Encode()))
}

func (b *bridge) userLogout(s store.Session, kind store.InitiatorKind) store.Logout {
	b.t.Helper()
	lo, err := b.eng.Logout(b.t.Context(), slobridge.LogoutRequest{SessionIDs: []string{s.ID}, Initiator: store.Initiator{Kind: kind},
		Browser: !noBrowser(kind)})
	if err != nil {
		b.t.Fatal(err)
	}
	return lo
}

func TestLogoutTowardUpstream(t *testing.T) {
	spCert := filepath.Join("..", "testdata", "sp.crt")
	for _, binding := range []string{saml.BindingRedirect, saml.BindingPOST} {
		t.Run(binding[strings.LastIndex(binding, ":")+1:], func(t *testing.T) {
			b := newBridge(t, bridgeOptions{upstreams: []UpstreamConfig{corpUpstream(t, map[string]string{binding: idpSLO})}})
			s := b.session("corp", "alice", "alice@example.com", "_s1", newReceiver(t, http.StatusOK))
			lo := b.userLogout(s, store.InitiatorUser)

			resp := b.get("/logout/continue/" + lo.ID)
			// Bindings §3.4.5.1, §3.5.5.1: a SAML message is not to be cached.
			if cc, pr := resp.Header.Get("Cache-Control"), resp.Header.Get("Pragma"); cc != "no-cache, no-store" || pr != "no-cache" {
				t.Errorf("LogoutRequest answer has Cache-Control %q Pragma %q", cc, pr)
			}
			var m *saml.Message
			var err error
			if binding == saml.BindingRedirect {
				if resp.StatusCode != http.StatusSeeOther {
					t.Fatalf("continue answered %d", resp.StatusCode)
				}
				u, _ := url.Parse(resp.Header.Get("Location"))
				if u.Scheme+"://"+u.Host+u.Path != idpSLO {
					t.Fatalf("sent to %s", u)
				}
				m, err = saml.DecodeRedirect(u.RawQuery, saml.Limits{})
				if err != nil {
					t.Fatal(err)
				}
				octets, sig := specOctets(t, u.RawQuery)
				samltest.OpenSSLVerify(t, octets, sig, spCert)
			} else {
				action, form := parseForm(t, readBody(t, resp))
				if action != idpSLO {
					t.Fatalf("form posts to %s", action)
				}
				r := httptest.NewRequest(http.MethodPost, "/", strings.NewReader(form.Encode()))
				r.Header.Set("Content-Type", "application/x-www-form-urlencoded")
				if m, err = saml.DecodePOST(r, saml.Limits{}); err != nil {
					t.Fatal(err)
				}
				samltest.XMLSecVerify(t, m.XML, spCert, saml.NSProtocol+":LogoutRequest")
			}
			if m.RelayState == "" || len(m.RelayState) > saml.MaxRelayState {
				t.Fatalf("RelayState %q", m.RelayState)
			}
			req := b.idpSide(m, idpSLO, s)

			// Wrong InResponseTo, then unsigned: refused, the logout stays pending.
			if r := b.idpResponse(t, binding, "_not_our_request", m.RelayState, true); r.StatusCode != http.StatusBadRequest {
				t.Fatalf("wrong InResponseTo answered %d", r.StatusCode)
			}
			if r := b.idpResponse(t, binding, req.ID, m.RelayState, false); r.StatusCode != http.StatusBadRequest {
				t.Fatalf("unsigned response answered %d", r.StatusCode)
			}
			r := b.idpResponse(t, binding, req.ID, m.RelayState, true)
			if r.StatusCode != http.StatusSeeOther || r.Header.Get("Location") != "/logout/done/"+lo.ID {
				t.Fatalf("valid response answered %d %q", r.StatusCode, r.Header.Get("Location"))
			}
			if r := b.idpResponse(t, binding, req.ID, m.RelayState, true); r.StatusCode != http.StatusBadRequest {
				t.Fatalf("second response answered %d", r.StatusCode)
			}
		})
	}
}

// soapIdP is an upstream SOAP SLO endpoint: it checks the bridge's
// LogoutRequest with xmlsec1 and our validator and answers a signed
// LogoutResponse (or a SOAP fault).
type soapIdP struct {
	srv  *httptest.Server
	mu   sync.Mutex
	hits int
	// told holds the SessionIndexes of the valid LogoutRequests answered.
	told map[string]bool
	// delivery is the Slobridge-Delivery-Id of the last request.
	delivery string
}

// distinct counts the upstream sessions told (retries count once).
func (p *soapIdP) distinct() int {
	p.mu.Lock()
	defer p.mu.Unlock()
	return len(p.told)
}

func (p *soapIdP) lastDeliveryID() string {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.delivery
}

func newSOAPIdP(t *testing.T, b func() *bridge, fault bool) *soapIdP {
	p := &soapIdP{told: map[string]bool{}}
	p.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		// Counted once answered, so that a test waiting for the count
		// ends only after the handler is done.
		defer func() {
			p.mu.Lock()
			p.hits++
			p.delivery = r.Header.Get(slobridge.DeliveryIDHeader)
			p.mu.Unlock()
		}()
		if fault {
			saml.WriteSOAPFault(w, http.StatusInternalServerError, "Server", "down")
			return
		}
		m, err := saml.DecodeSOAP(r, saml.Limits{})
		if err != nil {
			t.Errorf("IdP: decode SOAP: %v", err)
			return
		}
		samltest.XMLSecVerify(t, m.XML, filepath.Join("..", "testdata", "sp.crt"), saml.NSProtocol+":LogoutRequest")
		br := b()
		v := &saml.Validator{Store: br.st}
		// Not the request's context: the bridge may give up on a slow
		// attempt (and retry), which must not fail this check.
		req, err := v.LogoutRequest(context.WithoutCancel(r.Context()), m, br.spTrust(), p.srv.URL)
		if err != nil {
			t.Errorf("IdP: the bridge's SOAP LogoutRequest does not validate: %v", err)
			return
		}
		if req.Reason != saml.ReasonAdmin {
			t.Errorf("Reason %q", req.Reason)
		}
		id, _ := saml.NewID(nil)
		resp := &saml.LogoutResponse{ID: id, InResponseTo: req.ID, IssueInstant: time.Now(), Issuer: idpEntity, Status: saml.StatusSuccess}
		signed, err := loadSigner(t, "idp").SignEnveloped(resp.Element())
		if err != nil {
			t.Error(err)
			return
		}
		p.mu.Lock()
		p.told[strings.Join(req.SessionIndexes, " ")] = true
		p.mu.Unlock()
		_ = saml.WriteSOAP(w, signed)
	}))
	t.Cleanup(p.srv.Close)
	return p
}

func (p *soapIdP) count() int {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.hits
}

// TestAdminLogoutUsesSOAP: an operator's logout reaches the upstream by
// SOAP as a delivery of the outbox, the leg's row says so, and the
// request carries the delivery's ID.
func TestAdminLogoutUsesSOAP(t *testing.T) {
	var b *bridge
	idp := newSOAPIdP(t, func() *bridge { return b }, false)
	b = newBridge(t, bridgeOptions{upstreams: []UpstreamConfig{corpUpstream(t, map[string]string{
		saml.BindingRedirect: idpSLO, saml.BindingSOAP: idp.srv.URL})}})
	s := b.session("corp", "alice", "alice@example.com", "_s1")
	lo := b.userLogout(s, store.InitiatorAdmin)
	d := waitDelivery(t, b, lo.ID, LegKey("corp"), store.DeliveryDelivered)
	if idp.count() != 1 || d.Participant.SessionID != s.ID || d.Participant.Kind != LegKind {
		t.Fatalf("IdP called %d times; delivery %+v", idp.count(), d)
	}
	if got := idp.lastDeliveryID(); got != d.ID {
		t.Fatalf("Slobridge-Delivery-Id %q, want %q", got, d.ID)
	}
	out, err := b.eng.Outcome(t.Context(), lo.ID, time.Second, false)
	if err != nil || !out.Complete {
		t.Fatalf("outcome %+v %v, want complete", out, err)
	}
}

// waitDelivery waits for the delivery of logout logoutID to participant
// key to reach state.
func waitDelivery(t *testing.T, b *bridge, logoutID, key string, state store.DeliveryState) store.Delivery {
	t.Helper()
	var last store.Delivery
	deadline := time.Now().Add(20 * time.Second)
	for time.Now().Before(deadline) {
		ds, err := b.st.ListDeliveries(t.Context(), logoutID)
		if err != nil {
			t.Fatal(err)
		}
		for _, d := range ds {
			if d.Participant.Key == key {
				last = d
				if d.State == state {
					return d
				}
			}
		}
		time.Sleep(20 * time.Millisecond)
	}
	t.Fatalf("delivery to %s: %+v, want %s", key, last, state)
	return last
}

// TestAdminLogoutSOAPFault: an upstream that answers a SOAP fault is
// retried (the leg is a delivery like any other), with the fault as its
// error.
func TestAdminLogoutSOAPFault(t *testing.T) {
	var b *bridge
	idp := newSOAPIdP(t, func() *bridge { return b }, true)
	b = newBridge(t, bridgeOptions{upstreams: []UpstreamConfig{corpUpstream(t, map[string]string{saml.BindingSOAP: idp.srv.URL})}})
	s := b.session("corp", "alice", "alice@example.com", "_s1")
	lo := b.userLogout(s, store.InitiatorAdmin)
	d := waitDelivery(t, b, lo.ID, LegKey("corp"), store.DeliveryRetrying)
	if !strings.Contains(d.LastError, "fault") {
		t.Fatalf("last error %q, want the SOAP fault", d.LastError)
	}
	out, err := b.eng.Outcome(t.Context(), lo.ID, 10*time.Millisecond, false)
	if err != nil || out.Complete || len(out.Failed) != 1 || out.Failed[0].Key != LegKey("corp") {
		t.Fatalf("outcome %+v %v, want the upstream leg failed", out, err)
	}
}

// specOctets builds, independently of the decoder, what Bindings §3.4.4.1
// says the Redirect signature covers: the raw (still URL-encoded)
// "SAMLRequest=…", "RelayState=…" and "SigAlg=…" parameters of the query,
// in that order, joined by '&'; and it decodes the Signature parameter.
func specOctets(t testing.TB, rawQuery string) ([]byte, []byte) {
	t.Helper()
	raw := map[string]string{}
	for _, kv := range strings.Split(rawQuery, "&") {
		k, _, _ := strings.Cut(kv, "=")
		raw[k] = kv
	}
	var parts []string
	for _, k := range []string{"SAMLRequest", "SAMLResponse", "RelayState", "SigAlg"} {
		if kv, ok := raw[k]; ok {
			parts = append(parts, kv)
		}
	}
	_, enc, _ := strings.Cut(raw["Signature"], "=")
	dec, err := url.QueryUnescape(enc)
	if err != nil {
		t.Fatal(err)
	}
	sig, err := base64.StdEncoding.DecodeString(dec)
	if err != nil {
		t.Fatal(err)
	}
	return []byte(strings.Join(parts, "&")), sig
}

// TestUpstreamLogoutResultRecorded: the upstream's LogoutResponse ends its
// browser leg, which the status page's upstream row and the outcome read:
// done on Success, failed with the IdP's status otherwise.
func TestUpstreamLogoutResultRecorded(t *testing.T) {
	for _, tc := range []struct {
		status  string
		done    bool
		errText string
	}{
		{saml.StatusSuccess, true, ""},
		{saml.StatusResponder, false, "the identity provider answered " + saml.StatusResponder},
	} {
		t.Run(tc.status, func(t *testing.T) {
			b := newBridge(t, bridgeOptions{upstreams: []UpstreamConfig{corpUpstream(t, map[string]string{saml.BindingRedirect: idpSLO})}})
			s := b.session("corp", "alice", "alice@example.com", "_s1", newReceiver(t, http.StatusOK))
			lo := b.userLogout(s, store.InitiatorUser)
			resp := b.get("/logout/continue/" + lo.ID)
			u, _ := url.Parse(resp.Header.Get("Location"))
			m, err := saml.DecodeRedirect(u.RawQuery, saml.Limits{})
			if err != nil {
				t.Fatal(err)
			}
			req := b.idpSide(m, idpSLO, s)
			id, _ := saml.NewID(nil)
			r := &saml.LogoutResponse{ID: id, InResponseTo: req.ID, IssueInstant: time.Now(), Destination: b.sp.url(PathSLO),
				Issuer: idpEntity, Status: tc.status}
			to, err := saml.RedirectURL(b.sp.url(PathSLO), saml.ParamResponse, r.Element(), m.RelayState, loadSigner(t, "idp"))
			if err != nil {
				t.Fatal(err)
			}
			if got := b.get(to); got.StatusCode != http.StatusSeeOther {
				t.Fatalf("LogoutResponse answered %d", got.StatusCode)
			}
			leg, err := b.eng.BrowserLegState(t.Context(), lo.ID, "", slobridge.UpstreamLeg)
			if err != nil || !leg.Begun || leg.Result == nil || leg.Result.Done != tc.done || leg.Result.Error != tc.errText {
				t.Fatalf("upstream leg %+v (%v), want done %v, error %q", leg, err, tc.done, tc.errText)
			}
			out, err := b.eng.Outcome(t.Context(), lo.ID, time.Second, true)
			if err != nil || out.Complete != tc.done {
				t.Fatalf("outcome %+v (%v), want complete %v", out, err, tc.done)
			}
		})
	}
}

// TestAdminLogoutBurstReachesUpstream: 300 operator logouts in a burst,
// while metadata refreshes are slow and Run is busy, each reach the
// upstream: the upstream leg is a delivery of the outbox, and depends on
// no event (the event hub used to drop events for a subscriber that fell
// behind, and lost 44 of them).
func TestAdminLogoutBurstReachesUpstream(t *testing.T) {
	var b *bridge
	idp := newSOAPIdP(t, func() *bridge { return b }, false)
	// The IdP's metadata comes from a slow URL, refreshed often: Run used
	// to refresh in its event loop, and lose the events that came meanwhile.
	md := idpMetadata(t, idpEntity, loadSigner(t, "idp").Cert, "https://idp.example.test/sso",
		map[string]string{saml.BindingRedirect: idpSLO, saml.BindingSOAP: idp.srv.URL})
	mdSrv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Query().Get("slow") != "" {
			time.Sleep(time.Second)
		}
		_, _ = w.Write(md)
	}))
	t.Cleanup(mdSrv.Close)
	b = newBridge(t, bridgeOptions{refresh: 50 * time.Millisecond,
		upstreams: []UpstreamConfig{{Name: "corp", MetadataURL: mdSrv.URL + "/md?slow=1"}}})
	rcv := newReceiver(t, http.StatusOK)
	const n = 300
	sessions := make([]store.Session, n)
	for i := range sessions {
		// Two participants each: their deliveries' events crowd the hub.
		sessions[i] = b.session("corp", "alice", "alice@example.com", fmt.Sprintf("_burst%d", i), rcv, rcv)
	}
	ctx, cancel := context.WithCancel(t.Context())
	done := make(chan struct{})
	go func() { defer close(done); _ = b.sp.Run(ctx) }()
	t.Cleanup(func() { cancel(); <-done })
	for _, s := range sessions {
		b.userLogout(s, store.InitiatorAdmin)
	}
	deadline := time.Now().Add(60 * time.Second)
	for idp.distinct() < n && time.Now().Before(deadline) {
		time.Sleep(20 * time.Millisecond)
	}
	if got := idp.distinct(); got != n {
		t.Fatalf("the upstream got %d of %d LogoutRequests", got, n)
	}
}
