package sp

import (
	"crypto/x509"
	"net/http"
	"net/http/httptest"
	"net/url"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/beevik/etree"

	"github.com/slobridge/slobridge/saml"
	"github.com/slobridge/slobridge/saml/internal/samltest"
	"github.com/slobridge/slobridge/store"
)

const (
	idpEntity  = "https://idp.example.test/metadata"
	idpSLO     = "https://idp.example.test/slo"
	idpSLOSOAP = "https://idp.example.test/slo/soap"
	emailFmt   = "urn:oasis:names:tc:SAML:1.1:nameid-format:emailAddress"
)

// corpUpstream is an upstream IdP described by a metadata file, with SLO
// endpoints for the given bindings.
func corpUpstream(t *testing.T, slo map[string]string) UpstreamConfig {
	t.Helper()
	md := idpMetadata(t, idpEntity, loadSigner(t, "idp").Cert, "https://idp.example.test/sso", slo)
	return UpstreamConfig{Name: "corp", MetadataFile: writeFile(t, "idp-metadata.xml", md)}
}

func allSLO() map[string]string {
	return map[string]string{saml.BindingRedirect: idpSLO, saml.BindingPOST: idpSLO, saml.BindingSOAP: idpSLOSOAP}
}

func (b *bridge) spTrust() saml.Trust {
	return saml.Trust{EntityID: b.sp.EntityID(), Certs: []*x509.Certificate{b.sp.opts.Signer.Cert}}
}

func elementBytes(t testing.TB, el *etree.Element) []byte {
	t.Helper()
	doc := etree.NewDocument()
	doc.SetRoot(el.Copy())
	out, err := doc.WriteToBytes()
	if err != nil {
		t.Fatal(err)
	}
	return out
}

// sendLogoutRequest delivers an upstream LogoutRequest to the bridge by
// binding, signed with the IdP key.
func (b *bridge) sendLogoutRequest(binding string, req *saml.LogoutRequest) *http.Response {
	b.t.Helper()
	idp := loadSigner(b.t, "idp")
	switch binding {
	case saml.BindingRedirect:
		u, err := saml.RedirectURL(b.sp.url(PathSLO), saml.ParamRequest, req.Element(), "idp-relay", idp)
		if err != nil {
			b.t.Fatal(err)
		}
		return b.get(u)
	case saml.BindingPOST:
		signed, err := idp.SignEnveloped(req.Element())
		if err != nil {
			b.t.Fatal(err)
		}
		v, _ := saml.POSTValue(signed)
		return b.post(PathSLO, "application/x-www-form-urlencoded",
			[]byte(url.Values{saml.ParamRequest: {v}, saml.ParamRelayState: {"idp-relay"}}.Encode()))
	default:
		signed, err := idp.SignEnveloped(req.Element())
		if err != nil {
			b.t.Fatal(err)
		}
		env, err := saml.SOAPEnvelope(signed)
		if err != nil {
			b.t.Fatal(err)
		}
		return b.post(PathSLOSOAP, "text/xml; charset=utf-8", env)
	}
}

// followLogoutPage walks the browser through the root logout page (page →
// continue → done → the SP's completion step) and returns the bridge's
// final answer to the IdP.
func (b *bridge) followLogoutPage(resp *http.Response) *http.Response {
	b.t.Helper()
	if resp.StatusCode != http.StatusSeeOther {
		b.t.Fatalf("front-channel LogoutRequest answered %d, want 303 to the logout page: %s", resp.StatusCode, readBody(b.t, resp))
	}
	page := resp.Header.Get("Location")
	if !strings.Contains(page, "/logout/page/") {
		b.t.Fatalf("redirected to %q, not the logout page", page)
	}
	if r := b.get(page); r.StatusCode != http.StatusOK {
		b.t.Fatalf("logout page: %d", r.StatusCode)
	}
	next := strings.Replace(page, "/logout/page/", "/logout/continue/", 1)
	for range 4 {
		resp = b.get(next)
		loc := resp.Header.Get("Location")
		if resp.StatusCode != http.StatusSeeOther || strings.HasPrefix(loc, "https://idp.example.test/") {
			return resp
		}
		next = loc
	}
	b.t.Fatalf("too many redirects after the logout page")
	return nil
}

// logoutResponseFrom extracts the bridge's LogoutResponse to the IdP from
// a redirect, an auto-submitting form or a SOAP answer, checks its
// signature with an independent tool and validates it as the IdP would.
func (b *bridge) logoutResponseFrom(resp *http.Response, binding, inResponseTo string) *saml.LogoutResponse {
	b.t.Helper()
	spCert := filepath.Join("..", "testdata", "sp.crt")
	var m *saml.Message
	var err error
	dest := idpSLO
	switch {
	case binding == saml.BindingSOAP:
		body := readBody(b.t, resp)
		r := httptest.NewRequest(http.MethodPost, "/", strings.NewReader(body))
		r.Header.Set("Content-Type", "text/xml")
		m, err = saml.DecodeSOAP(r, saml.Limits{})
		if err == nil {
			samltest.XMLSecVerify(b.t, m.XML, spCert, saml.NSProtocol+":LogoutResponse")
		}
		dest = ""
	case resp.StatusCode == http.StatusSeeOther:
		u, perr := url.Parse(resp.Header.Get("Location"))
		if perr != nil || u.Host != "idp.example.test" {
			b.t.Fatalf("LogoutResponse redirect to %q", resp.Header.Get("Location"))
		}
		m, err = saml.DecodeRedirect(u.RawQuery, saml.Limits{})
		if err == nil {
			octets, sig := specOctets(b.t, u.RawQuery)
			samltest.OpenSSLVerify(b.t, octets, sig, spCert)
		}
	default:
		action, form := parseForm(b.t, readBody(b.t, resp))
		if action != idpSLO {
			b.t.Fatalf("LogoutResponse form posts to %q", action)
		}
		r := httptest.NewRequest(http.MethodPost, "/", strings.NewReader(form.Encode()))
		r.Header.Set("Content-Type", "application/x-www-form-urlencoded")
		m, err = saml.DecodePOST(r, saml.Limits{})
		if err == nil {
			samltest.XMLSecVerify(b.t, m.XML, spCert, saml.NSProtocol+":LogoutResponse")
		}
	}
	if err != nil {
		b.t.Fatalf("decode LogoutResponse: %v", err)
	}
	if m.RelayState != "" && m.RelayState != "idp-relay" {
		b.t.Errorf("RelayState %q not echoed", m.RelayState)
	}
	v := &saml.Validator{Store: b.st}
	if dest == "" {
		dest = "unused-for-soap"
	}
	lr, err := v.LogoutResponse(b.t.Context(), m, b.spTrust(), dest, inResponseTo)
	if err != nil {
		b.t.Fatalf("bridge's LogoutResponse does not validate: %v", err)
	}
	return lr
}

func newRequest(t testing.TB, dest, nameID string, indexes ...string) *saml.LogoutRequest {
	t.Helper()
	id, err := saml.NewID(nil)
	if err != nil {
		t.Fatal(err)
	}
	return &saml.LogoutRequest{ID: id, IssueInstant: time.Now(), Destination: dest, Issuer: idpEntity,
		NameID: saml.NameID{Value: nameID, Format: emailFmt, NameQualifier: idpEntity,
			SPNameQualifier: "https://bridge.example.test/saml/sp/metadata"},
		SessionIndexes: indexes}
}

// waitFor polls cond until it holds or 10s pass.
func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func TestIdPInitiatedLogout(t *testing.T) {
	for _, tc := range []struct {
		name     string
		binding  string
		failing  bool // a participant of the ended session cannot be reached
		indexes  []string
		endsBoth bool // every session of alice ends
	}{
		{"redirect", saml.BindingRedirect, false, []string{"_s1"}, false},
		{"post", saml.BindingPOST, false, []string{"_s1"}, false},
		{"soap", saml.BindingSOAP, false, []string{"_s1"}, false},
		{"redirect partial", saml.BindingRedirect, true, []string{"_s1"}, false},
		{"post partial", saml.BindingPOST, true, []string{"_s1"}, false},
		{"soap partial", saml.BindingSOAP, true, []string{"_s1"}, false},
		{"soap without SessionIndex", saml.BindingSOAP, false, nil, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			b := newBridge(t, bridgeOptions{upstreams: []UpstreamConfig{corpUpstream(t, allSLO())}, soapWait: 5 * time.Second})
			ok1, ok2, okBob, bad := newReceiver(t, http.StatusOK), newReceiver(t, http.StatusOK), newReceiver(t, http.StatusOK), newReceiver(t, http.StatusBadRequest)
			recv := []*receiver{ok1}
			if tc.failing {
				recv = append(recv, bad)
			}
			s1 := b.session("corp", "alice", "alice@example.com", "_s1", recv...)
			s2 := b.session("corp", "alice", "alice@example.com", "_s2", ok2)
			bob := b.session("corp", "bob", "bob@example.com", "_s1", okBob)

			dest := b.sp.url(PathSLO)
			if tc.binding == saml.BindingSOAP {
				dest = b.sp.url(PathSLOSOAP)
			}
			req := newRequest(t, dest, "alice@example.com", tc.indexes...)
			resp := b.sendLogoutRequest(tc.binding, req)
			if tc.binding != saml.BindingSOAP {
				resp = b.followLogoutPage(resp)
			}
			lr := b.logoutResponseFrom(resp, tc.binding, req.ID)
			if !lr.Success() {
				t.Fatalf("status %s/%s, want Success", lr.Status, lr.SubStatus)
			}
			if lr.Partial() != tc.failing {
				t.Fatalf("PartialLogout = %v, want %v (sub-status %q)", lr.Partial(), tc.failing, lr.SubStatus)
			}
			if !b.ended(s1.ID) || b.ended(s2.ID) != tc.endsBoth || b.ended(bob.ID) {
				t.Fatalf("ended: s1=%v s2=%v bob=%v", b.ended(s1.ID), b.ended(s2.ID), b.ended(bob.ID))
			}
			waitFor(t, "participant notified", func() bool { return ok1.count() == 1 })
			if tc.endsBoth {
				waitFor(t, "second session's participant notified", func() bool { return ok2.count() == 1 })
			} else if ok2.count() != 0 {
				t.Error("participant of the other session notified")
			}
			if okBob.count() != 0 {
				t.Error("bob's participant notified")
			}
		})
	}
}

// TestIdPInitiatedLogoutAlreadyEnded checks that a LogoutRequest for a
// known principal whose sessions have ended is answered Success at once.
func TestIdPInitiatedLogoutAlreadyEnded(t *testing.T) {
	b := newBridge(t, bridgeOptions{upstreams: []UpstreamConfig{corpUpstream(t, allSLO())}})
	b.session("corp", "alice", "alice@example.com", "_s1")
	first := newRequest(t, b.sp.url(PathSLOSOAP), "alice@example.com")
	if lr := b.logoutResponseFrom(b.sendLogoutRequest(saml.BindingSOAP, first), saml.BindingSOAP, first.ID); !lr.Success() {
		t.Fatalf("first: %s", lr.Status)
	}
	again := newRequest(t, b.sp.url(PathSLO), "alice@example.com")
	lr := b.logoutResponseFrom(b.sendLogoutRequest(saml.BindingRedirect, again), saml.BindingRedirect, again.ID)
	if !lr.Success() || lr.Partial() {
		t.Fatalf("second: %s/%s", lr.Status, lr.SubStatus)
	}
}

func TestSameName(t *testing.T) {
	s := store.NameID{Value: "alice", Format: emailFmt, NameQualifier: "idp", SPNameQualifier: "sp"}
	for _, tc := range []struct {
		n    saml.NameID
		want bool
	}{
		{saml.NameID{Value: "alice", Format: emailFmt, NameQualifier: "idp", SPNameQualifier: "sp"}, true},
		{saml.NameID{Value: "alice"}, true},
		{saml.NameID{Value: "alice", Format: "urn:oasis:names:tc:SAML:1.1:nameid-format:unspecified"}, true},
		{saml.NameID{Value: "Alice"}, false},
		{saml.NameID{Value: "alice", Format: "urn:oasis:names:tc:SAML:2.0:nameid-format:persistent"}, false},
		{saml.NameID{Value: "alice", NameQualifier: "other-idp"}, false},
		{saml.NameID{Value: "alice", SPNameQualifier: "other-sp"}, false},
	} {
		if got := sameName(s, tc.n); got != tc.want {
			t.Errorf("sameName(%+v) = %v, want %v", tc.n, got, tc.want)
		}
	}
}
