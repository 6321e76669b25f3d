package demo

import (
	"context"
	"crypto/x509"
	"errors"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	crewjam "github.com/crewjam/saml"
	"github.com/crewjam/saml/samlsp"

	bsaml "github.com/slobridge/slobridge/saml"
	"github.com/slobridge/slobridge/store"
	"github.com/slobridge/slobridge/store/bolt"
)

// soapKeys are the keys of one SOAP endpoint test: the bridge (the
// sender), the receiver, and a stranger whose signature must not count.
type soapKeys struct {
	bridge, receiver, stranger *keyPair
	replay                     store.Store
}

func newSOAPKeys(t *testing.T) soapKeys {
	t.Helper()
	dir := t.TempDir()
	var k soapKeys
	for _, p := range []struct {
		kp   **keyPair
		name string
	}{{&k.bridge, "bridge"}, {&k.receiver, "receiver"}, {&k.stranger, "stranger"}} {
		kp, err := newKeyPair(dir, p.name, "test "+p.name)
		if err != nil {
			t.Fatal(err)
		}
		*p.kp = kp
	}
	db, err := bolt.Open(filepath.Join(dir, "replay.db"), bolt.Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = db.Close() })
	k.replay = db
	return k
}

// soapTarget is one receiver of SOAP LogoutRequests under test: the demo
// SAML app or the demo upstream IdP, with one login to end.
type soapTarget struct {
	// endpoint is the SOAP SLO URL; receiver the receiver's entity ID
	// and certificate (to validate its answers).
	endpoint string
	receiver bsaml.Trust
	// request is a valid LogoutRequest for the login, unsigned.
	request func() *bsaml.LogoutRequest
	// notices says how the login was reported ended (nil: it lasts).
	notices func() []string
}

const testBridgeEntity = "http://bridge.test/saml/metadata"

// startSOAPServer serves h (set once the URL is known) on 127.0.0.1.
func startSOAPServer(t *testing.T, h func(base string) http.Handler) string {
	t.Helper()
	srv := httptest.NewUnstartedServer(nil)
	base := "http://" + srv.Listener.Addr().String()
	srv.Config.Handler = h(base)
	srv.Start()
	t.Cleanup(srv.Close)
	return base
}

// newSAMLAppTarget is the demo SAML app trusting the bridge's key, with
// bob logged in (SessionIndex idx-1).
func newSAMLAppTarget(t *testing.T, k soapKeys) soapTarget {
	t.Helper()
	var app *SAMLApp
	base := startSOAPServer(t, func(base string) http.Handler {
		var err error
		if app, err = NewSAMLApp("Wiki", base, k.receiver.signer, k.replay, slog.New(slog.DiscardHandler)); err != nil {
			t.Fatal(err)
		}
		app.idp = bsaml.Trust{EntityID: testBridgeEntity, Certs: []*x509.Certificate{k.bridge.signer.Cert}}
		return app.Handler()
	})
	entity := base + "/saml/metadata"
	claims := samlsp.JWTSessionClaims{Attributes: samlsp.Attributes{
		attrNameIDFormat: {string(crewjam.EmailAddressNameIDFormat)}, attrNameQualifier: {testBridgeEntity},
		attrSPNameQualifier: {entity}, attrSessionIndex: {"idx-1"}}}
	claims.Subject = "bob@example.org"
	return soapTarget{
		endpoint: base + samlAppPathSLOSOAP,
		receiver: bsaml.Trust{EntityID: entity, Certs: []*x509.Certificate{k.receiver.signer.Cert}},
		request: func() *bsaml.LogoutRequest {
			return &bsaml.LogoutRequest{Issuer: testBridgeEntity, Destination: base + samlAppPathSLOSOAP,
				Reason: bsaml.ReasonAdmin, SessionIndexes: []string{"idx-1"},
				NameID: bsaml.NameID{Value: "bob@example.org", Format: string(crewjam.EmailAddressNameIDFormat),
					NameQualifier: testBridgeEntity, SPNameQualifier: entity}}
		},
		notices: func() []string { return app.endedBy(claims) },
	}
}

// newUpstreamTarget is the demo upstream IdP with the bridge registered
// (its key) and one samlidp session (NameID nid-1, SessionIndex idx-1).
func newUpstreamTarget(t *testing.T, k soapKeys) soapTarget {
	t.Helper()
	var up *UpstreamIdP
	base := startSOAPServer(t, func(base string) http.Handler {
		var err error
		// No users: the session is put in samlidp's store directly.
		if up, err = NewUpstreamIdP(base, k.receiver.signer, nil, k.replay, slog.New(slog.DiscardHandler)); err != nil {
			t.Fatal(err)
		}
		up.bridge = bsaml.Trust{EntityID: testBridgeEntity, Certs: []*x509.Certificate{k.bridge.signer.Cert}}
		return up.Handler()
	})
	if err := up.srv.Store.Put("/sessions/s1", crewjam.Session{ID: "s1", NameID: "nid-1", Index: "idx-1",
		UserName: "alice", CreateTime: time.Now(), ExpireTime: time.Now().Add(time.Hour)}); err != nil {
		t.Fatal(err)
	}
	return soapTarget{
		endpoint: base + upstreamPathSLOSOAP,
		receiver: bsaml.Trust{EntityID: up.entityID, Certs: []*x509.Certificate{k.receiver.signer.Cert}},
		request: func() *bsaml.LogoutRequest {
			return &bsaml.LogoutRequest{Issuer: testBridgeEntity, Destination: base + upstreamPathSLOSOAP,
				Reason: bsaml.ReasonAdmin, SessionIndexes: []string{"idx-1"},
				NameID: bsaml.NameID{Value: "nid-1", Format: nameIDTransient, NameQualifier: up.entityID,
					SPNameQualifier: testBridgeEntity}}
		},
		notices: func() []string {
			var s crewjam.Session
			if err := up.srv.Store.Get("/sessions/s1", &s); err != nil {
				return []string{"samlidp session s1 deleted"}
			}
			return nil
		},
	}
}

// soapCase is one SOAP LogoutRequest and what the receiver must do.
type soapCase struct {
	name string
	// edit changes the valid request; unsigned sends it without a
	// signature; stranger signs it with a key the receiver does not trust.
	edit               func(r *bsaml.LogoutRequest)
	unsigned, stranger bool
	// wantFault: a SOAP fault, no SAML answer. Else a signed
	// LogoutResponse in response to the request with wantStatus/wantSub.
	wantFault           bool
	wantStatus, wantSub string
	// wantEnded: the login is over afterwards.
	wantEnded bool
}

// sendLogoutRequest completes r (ID, times unless set), signs it with
// signer (nil: unsigned) and calls the SOAP endpoint.
func sendLogoutRequest(t *testing.T, endpoint string, r *bsaml.LogoutRequest, signer *bsaml.Signer) (*bsaml.Message, error) {
	t.Helper()
	el := r.Element()
	if signer != nil {
		var err error
		if el, err = signer.SignEnveloped(el); err != nil {
			t.Fatal(err)
		}
	}
	ctx, cancel := context.WithTimeout(context.Background(), waitTimeout)
	defer cancel()
	return bsaml.CallSOAP(ctx, http.DefaultClient, endpoint, el, bsaml.Limits{}, nil)
}

func newRequestID(t *testing.T) string {
	t.Helper()
	id, err := bsaml.NewID(nil)
	if err != nil {
		t.Fatal(err)
	}
	return id
}

// runSOAPCases sends each case to a fresh target and checks the answer
// (signature, InResponseTo, status) and the login's state.
func runSOAPCases(t *testing.T, newTarget func(*testing.T, soapKeys) soapTarget, extra []soapCase) {
	k := newSOAPKeys(t)
	cases := append([]soapCase{
		{name: "valid", wantStatus: bsaml.StatusSuccess, wantEnded: true},
		{name: "no Destination (optional on SOAP)", edit: func(r *bsaml.LogoutRequest) { r.Destination = "" },
			wantStatus: bsaml.StatusSuccess, wantEnded: true},
		{name: "no SessionIndex: every session of the NameID", edit: func(r *bsaml.LogoutRequest) { r.SessionIndexes = nil },
			wantStatus: bsaml.StatusSuccess, wantEnded: true},
		{name: "another SessionIndex", edit: func(r *bsaml.LogoutRequest) { r.SessionIndexes = []string{"idx-other"} },
			wantStatus: bsaml.StatusSuccess},
		{name: "Destination of the front-channel endpoint",
			edit:       func(r *bsaml.LogoutRequest) { r.Destination = strings.TrimSuffix(r.Destination, "/soap") },
			wantStatus: bsaml.StatusRequester, wantSub: bsaml.StatusRequestDenied},
		{name: "expired", edit: func(r *bsaml.LogoutRequest) {
			r.IssueInstant, r.NotOnOrAfter = time.Now().Add(-9*time.Minute), time.Now().Add(-5*time.Minute)
		}, wantStatus: bsaml.StatusRequester, wantSub: bsaml.StatusRequestDenied},
		{name: "IssueInstant too old", edit: func(r *bsaml.LogoutRequest) {
			r.IssueInstant, r.NotOnOrAfter = time.Now().Add(-time.Hour), time.Time{}
		}, wantStatus: bsaml.StatusRequester, wantSub: bsaml.StatusRequestDenied},
		{name: "IssueInstant in the future", edit: func(r *bsaml.LogoutRequest) { r.IssueInstant = time.Now().Add(time.Hour) },
			wantStatus: bsaml.StatusRequester, wantSub: bsaml.StatusRequestDenied},
		{name: "unsigned", unsigned: true, wantFault: true},
		{name: "signed by an untrusted key", stranger: true, wantFault: true},
		{name: "another Issuer", edit: func(r *bsaml.LogoutRequest) { r.Issuer = "http://other.test/metadata" }, wantFault: true},
	}, extra...)
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			tg := newTarget(t, k)
			r := tg.request()
			r.ID, r.IssueInstant, r.NotOnOrAfter = newRequestID(t), time.Now(), time.Now().Add(5*time.Minute)
			if tc.edit != nil {
				tc.edit(r)
			}
			signer := k.bridge.signer
			switch {
			case tc.unsigned:
				signer = nil
			case tc.stranger:
				signer = k.stranger.signer
			}
			m, err := sendLogoutRequest(t, tg.endpoint, r, signer)
			if tc.wantFault {
				if !errors.Is(err, bsaml.ErrSOAPFault) {
					t.Errorf("answer %v, want a SOAP fault", err)
				}
			} else {
				checkLogoutResponse(t, k, tg, m, err, r.ID, tc.wantStatus, tc.wantSub)
			}
			if ended := len(tg.notices()) > 0; ended != tc.wantEnded {
				t.Errorf("login ended = %v (%q), want %v", ended, tg.notices(), tc.wantEnded)
			}
		})
	}
}

// checkLogoutResponse validates a SOAP answer as the bridge does: signed
// by the receiver, in response to id, with the wanted status.
func checkLogoutResponse(t *testing.T, k soapKeys, tg soapTarget, m *bsaml.Message, err error, id, status, sub string) {
	t.Helper()
	if err != nil {
		t.Fatalf("SOAP call: %v", err)
	}
	v := &bsaml.Validator{Store: k.replay}
	resp, err := v.LogoutResponse(context.Background(), m, tg.receiver, testBridgeEntity+"/soap", id)
	if err != nil {
		t.Fatalf("LogoutResponse not valid: %v", err)
	}
	if resp.Status != status || resp.SubStatus != sub {
		t.Errorf("status %q/%q, want %q/%q", resp.Status, resp.SubStatus, status, sub)
	}
}

// TestSAMLAppSOAPLogout: the demo SAML app's SOAP SingleLogoutService ends
// the login named by a valid LogoutRequest from the bridge, answers every
// authenticated request with a signed LogoutResponse, and changes nothing
// for a request it cannot authenticate or that fails a check.
func TestSAMLAppSOAPLogout(t *testing.T) {
	runSOAPCases(t, newSAMLAppTarget, []soapCase{
		{name: "another NameID", edit: func(r *bsaml.LogoutRequest) { r.NameID.Value = "alice@example.org" },
			wantStatus: bsaml.StatusSuccess},
		{name: "same NameID value in another Format", edit: func(r *bsaml.LogoutRequest) { r.NameID.Format = nameIDTransient },
			wantStatus: bsaml.StatusSuccess},
	})
}

// TestUpstreamSOAPLogout: the demo upstream IdP's SOAP SingleLogoutService
// ends the samlidp session named by a valid LogoutRequest from the bridge
// and refuses NameIDs it cannot have issued to the bridge.
func TestUpstreamSOAPLogout(t *testing.T) {
	runSOAPCases(t, newUpstreamTarget, []soapCase{
		{name: "another NameID", edit: func(r *bsaml.LogoutRequest) { r.NameID.Value = "nid-2" },
			wantStatus: bsaml.StatusSuccess},
		{name: "NameID Format not issued here", edit: func(r *bsaml.LogoutRequest) { r.NameID.Format = string(crewjam.EmailAddressNameIDFormat) },
			wantStatus: bsaml.StatusRequester, wantSub: bsaml.StatusUnknownPrincipal},
		{name: "NameID qualified by another IdP", edit: func(r *bsaml.LogoutRequest) { r.NameID.NameQualifier = "http://other.test/idp" },
			wantStatus: bsaml.StatusRequester, wantSub: bsaml.StatusUnknownPrincipal},
	})
}

// TestSOAPLogoutTwice: being told twice is harmless. A replayed request is
// refused without effect; a second, new request for a login already ended
// (the bridge tells the SAML app by both channels) is answered Success and
// does not add a second notice of the same kind.
func TestSOAPLogoutTwice(t *testing.T) {
	for _, tt := range []struct {
		name      string
		newTarget func(*testing.T, soapKeys) soapTarget
	}{{"SAML app", newSAMLAppTarget}, {"upstream IdP", newUpstreamTarget}} {
		t.Run(tt.name, func(t *testing.T) {
			k := newSOAPKeys(t)
			tg := tt.newTarget(t, k)
			first := tg.request()
			first.ID, first.IssueInstant, first.NotOnOrAfter = newRequestID(t), time.Now(), time.Now().Add(5*time.Minute)
			m, err := sendLogoutRequest(t, tg.endpoint, first, k.bridge.signer)
			checkLogoutResponse(t, k, tg, m, err, first.ID, bsaml.StatusSuccess, "")
			after := tg.notices()
			if len(after) != 1 {
				t.Fatalf("after the first request the notices are %q, want one", after)
			}

			m, err = sendLogoutRequest(t, tg.endpoint, first, k.bridge.signer)
			checkLogoutResponse(t, k, tg, m, err, first.ID, bsaml.StatusRequester, bsaml.StatusRequestDenied)

			second := tg.request()
			second.ID, second.IssueInstant, second.NotOnOrAfter = newRequestID(t), time.Now(), time.Now().Add(5*time.Minute)
			m, err = sendLogoutRequest(t, tg.endpoint, second, k.bridge.signer)
			checkLogoutResponse(t, k, tg, m, err, second.ID, bsaml.StatusSuccess, "")
			if got := tg.notices(); !slices.Equal(got, after) {
				t.Errorf("after a second request the notices are %q, want %q", got, after)
			}
		})
	}
}

// TestSOAPEndpointsRefuseNonRequests: a LogoutResponse, a non-SOAP body
// and a GET get no SAML processing.
func TestSOAPEndpointsRefuseNonRequests(t *testing.T) {
	k := newSOAPKeys(t)
	for _, tt := range []struct {
		name      string
		newTarget func(*testing.T, soapKeys) soapTarget
	}{{"SAML app", newSAMLAppTarget}, {"upstream IdP", newUpstreamTarget}} {
		t.Run(tt.name, func(t *testing.T) {
			tg := tt.newTarget(t, k)
			resp := &bsaml.LogoutResponse{ID: newRequestID(t), InResponseTo: newRequestID(t), IssueInstant: time.Now(),
				Issuer: testBridgeEntity, Status: bsaml.StatusSuccess}
			signed, err := k.bridge.signer.SignEnveloped(resp.Element())
			if err != nil {
				t.Fatal(err)
			}
			if _, err := bsaml.CallSOAP(context.Background(), http.DefaultClient, tg.endpoint, signed, bsaml.Limits{}, nil); !errors.Is(err, bsaml.ErrSOAPFault) {
				t.Errorf("a LogoutResponse got %v, want a SOAP fault", err)
			}
			for _, req := range []struct{ method, ctype string }{
				{http.MethodPost, "application/x-www-form-urlencoded"}, {http.MethodGet, ""},
			} {
				hr, err := http.NewRequest(req.method, tg.endpoint, strings.NewReader("SAMLRequest=x"))
				if err != nil {
					t.Fatal(err)
				}
				if req.ctype != "" {
					hr.Header.Set("Content-Type", req.ctype)
				}
				res, err := http.DefaultClient.Do(hr)
				if err != nil {
					t.Fatal(err)
				}
				res.Body.Close()
				if res.StatusCode/100 != 4 {
					t.Errorf("%s %s: HTTP %d, want a 4xx", req.method, req.ctype, res.StatusCode)
				}
			}
			if n := tg.notices(); len(n) != 0 {
				t.Errorf("the login ended: %q", n)
			}
		})
	}
}

// TestMetadataOffersSOAP: the metadata the bridge is configured with
// offers the SOAP SingleLogoutService next to the HTTP-Redirect one, at
// the endpoint the handlers serve, for both demo parts.
func TestMetadataOffersSOAP(t *testing.T) {
	k := newSOAPKeys(t)
	log := slog.New(slog.DiscardHandler)
	app, err := NewSAMLApp("Wiki", "http://127.0.0.1:1", k.receiver.signer, k.replay, log)
	if err != nil {
		t.Fatal(err)
	}
	up, err := NewUpstreamIdP("http://127.0.0.1:2", k.receiver.signer, nil, k.replay, log)
	if err != nil {
		t.Fatal(err)
	}
	for _, tt := range []struct {
		name string
		gen  func() ([]byte, error)
		slo  func(crewjam.EntityDescriptor) []crewjam.Endpoint
		want []crewjam.Endpoint
	}{
		{"SAML app", app.MetadataXML,
			func(ed crewjam.EntityDescriptor) []crewjam.Endpoint {
				return ed.SPSSODescriptors[0].SingleLogoutServices
			},
			[]crewjam.Endpoint{
				{Binding: crewjam.HTTPRedirectBinding, Location: "http://127.0.0.1:1/saml/slo", ResponseLocation: "http://127.0.0.1:1/saml/slo"},
				{Binding: crewjam.SOAPBinding, Location: "http://127.0.0.1:1" + samlAppPathSLOSOAP}}},
		{"upstream IdP", up.MetadataXML,
			func(ed crewjam.EntityDescriptor) []crewjam.Endpoint {
				return ed.IDPSSODescriptors[0].SingleLogoutServices
			},
			[]crewjam.Endpoint{
				{Binding: crewjam.HTTPRedirectBinding, Location: "http://127.0.0.1:2/slo"},
				{Binding: crewjam.SOAPBinding, Location: "http://127.0.0.1:2" + upstreamPathSLOSOAP}}},
	} {
		t.Run(tt.name, func(t *testing.T) {
			raw, err := tt.gen()
			if err != nil {
				t.Fatal(err)
			}
			ed, err := samlsp.ParseMetadata(raw)
			if err != nil {
				t.Fatal(err)
			}
			if got := tt.slo(*ed); !slices.Equal(got, tt.want) {
				t.Errorf("SingleLogoutServices %+v, want %+v", got, tt.want)
			}
		})
	}
}
