package idp

// Service providers used by the tests. SP1 is crewjam/saml's samlsp
// middleware and SP2 is russellhaering/gosaml2: neither is written here.
// Their logout endpoints are test code around those libraries (samlsp has
// no SLO handler; gosaml2 validates and builds the messages). SP3 is a
// back-channel SP whose SOAP endpoint checks our signature with xmlsec1.

import (
	"bytes"
	"compress/flate"
	"context"
	"crypto/x509"
	"encoding/base64"
	"encoding/xml"
	"errors"
	"fmt"
	"html"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"sync"
	"testing"

	"github.com/beevik/etree"
	"github.com/crewjam/saml"
	"github.com/crewjam/saml/samlsp"
	saml2 "github.com/russellhaering/gosaml2"
	dsig "github.com/russellhaering/goxmldsig"

	bsaml "github.com/slobridge/slobridge/saml"
)

// gotLogout is a LogoutRequest an SP received and verified.
type gotLogout struct {
	ID, NameID, Format, SessionIndex, Destination, Issuer string
	// DeliveryID is the Slobridge-Delivery-Id header of the request.
	DeliveryID string
	Verified   error
}

// listen returns a listener on 127.0.0.1 and its URL.
func listen(t *testing.T) (net.Listener, string) {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	return ln, "http://" + ln.Addr().String()
}

func serve(t *testing.T, ln net.Listener, h http.Handler) {
	t.Helper()
	srv := &httptest.Server{Listener: ln, Config: &http.Server{Handler: h}}
	srv.Start()
	t.Cleanup(srv.Close)
}

// crewjamSP is SP1: crewjam/saml's samlsp middleware.
type crewjamSP struct {
	url     string
	m       *samlsp.Middleware
	idpCert *x509.Certificate

	mu                    sync.Mutex
	subject, sessionIndex string
	logouts               []gotLogout
	// logoutResult is crewjam's verdict on the bridge's LogoutResponse,
	// logoutRelay the RelayState that came with it.
	logoutResult  error
	logoutChecked int
	logoutRelay   string
	// hang keeps the browser after a LogoutRequest: it shows a page and
	// never answers (an SP that never sends the browser back).
	hang bool
}

func newCrewjamSP(t *testing.T) *crewjamSP {
	t.Helper()
	ln, u := listen(t)
	key, cert := rsaKey(t, "sp1")
	root, _ := url.Parse(u)
	m, err := samlsp.New(samlsp.Options{URL: *root, Key: key, Certificate: cert, SignRequest: true})
	if err != nil {
		t.Fatal(err)
	}
	// samlsp signs with RSA-SHA1 unless told otherwise; the bridge refuses
	// SHA-1.
	m.ServiceProvider.SignatureMethod = dsig.RSASHA256SignatureMethod
	s := &crewjamSP{url: u, m: m, idpCert: testSigner(t, "idp").Cert}
	mux := http.NewServeMux()
	mux.HandleFunc("/saml/slo", s.handleSLO)
	mux.HandleFunc("/logout", s.handleLogout)
	mux.Handle("/saml/", m)
	mux.Handle("/app", m.RequireAccount(http.HandlerFunc(s.handleApp)))
	serve(t, ln, mux)
	return s
}

func (s *crewjamSP) entityID() string { return s.m.ServiceProvider.Metadata().EntityID }

func (s *crewjamSP) metadata(t *testing.T) []byte {
	t.Helper()
	b, err := xml.Marshal(s.m.ServiceProvider.Metadata())
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// setIDP fetches the bridge's metadata the way a deployment does.
func (s *crewjamSP) setIDP(t *testing.T, bridgeURL string) {
	t.Helper()
	mdURL, _ := url.Parse(bridgeURL + PathMetadata)
	md, err := samlsp.FetchMetadata(context.Background(), http.DefaultClient, *mdURL)
	if err != nil {
		t.Fatalf("sp1: fetch bridge metadata: %v", err)
	}
	s.m.ServiceProvider.IDPMetadata = md
}

func (s *crewjamSP) handleApp(w http.ResponseWriter, r *http.Request) {
	sess, _ := samlsp.SessionFromContext(r.Context()).(samlsp.JWTSessionClaims)
	s.mu.Lock()
	s.subject, s.sessionIndex = sess.Subject, sess.Attributes.Get("SessionIndex")
	s.mu.Unlock()
	fmt.Fprintf(w, `<p id="result">sp1 hello %s</p>`, html.EscapeString(sess.Attributes.Get("email")))
}

// handleSLO receives the bridge's front-channel LogoutRequest (HTTP-POST):
// the enveloped signature is checked with goxmldsig against the bridge's
// certificate, and the answer is crewjam's signed POST LogoutResponse.
func (s *crewjamSP) handleSLO(w http.ResponseWriter, r *http.Request) {
	if err := r.ParseForm(); err != nil {
		http.Error(w, err.Error(), http.StatusBadRequest)
		return
	}
	if v := r.PostForm.Get("SAMLResponse"); v != "" {
		// The answer to our own LogoutRequest: crewjam validates it
		// (signature, Issuer, Destination, Success).
		err := s.m.ServiceProvider.ValidateLogoutResponseForm(v)
		s.mu.Lock()
		s.logoutResult, s.logoutChecked, s.logoutRelay = err, s.logoutChecked+1, r.PostForm.Get("RelayState")
		s.mu.Unlock()
		if err != nil {
			http.Error(w, err.Error(), http.StatusForbidden)
			return
		}
		fmt.Fprint(w, `<p id="result">sp1 logged out</p>`)
		return
	}
	raw, err := base64.StdEncoding.DecodeString(r.PostForm.Get("SAMLRequest"))
	if err != nil {
		http.Error(w, err.Error(), http.StatusBadRequest)
		return
	}
	got := gotLogout{}
	doc := etree.NewDocument()
	if err := doc.ReadFromBytes(raw); err != nil {
		http.Error(w, err.Error(), http.StatusBadRequest)
		return
	}
	vc := dsig.NewDefaultValidationContext(&dsig.MemoryX509CertificateStore{Roots: []*x509.Certificate{s.idpCert}})
	el, verr := vc.Validate(doc.Root())
	got.Verified = verr
	if verr == nil {
		d := etree.NewDocument()
		d.SetRoot(el)
		b, _ := d.WriteToBytes()
		var lr saml.LogoutRequest
		if err := xml.Unmarshal(b, &lr); err == nil {
			got.ID, got.Destination = lr.ID, lr.Destination
			if lr.Issuer != nil {
				got.Issuer = lr.Issuer.Value
			}
			if lr.NameID != nil {
				got.NameID, got.Format = lr.NameID.Value, lr.NameID.Format
			}
			if lr.SessionIndex != nil {
				got.SessionIndex = lr.SessionIndex.Value
			}
		}
	}
	s.mu.Lock()
	s.logouts = append(s.logouts, got)
	s.mu.Unlock()
	if verr != nil {
		http.Error(w, "bad signature", http.StatusBadRequest)
		return
	}
	if s.hang {
		fmt.Fprint(w, `<p id="result">sp1 is still thinking about your logout</p>`)
		return
	}
	body, err := s.m.ServiceProvider.MakePostLogoutResponse(got.ID, r.PostForm.Get("RelayState"))
	if err != nil {
		http.Error(w, err.Error(), http.StatusInternalServerError)
		return
	}
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	_, _ = w.Write(body)
}

// handleLogout starts an SP-initiated logout with crewjam's signed
// HTTP-POST LogoutRequest: the NameID only, without SessionIndex, so the
// bridge must find every session in which it issued that NameID.
func (s *crewjamSP) handleLogout(w http.ResponseWriter, _ *http.Request) {
	s.mu.Lock()
	subject := s.subject
	s.mu.Unlock()
	body, err := s.m.ServiceProvider.MakePostLogoutRequest(subject, "sp1-relay")
	if err != nil {
		http.Error(w, err.Error(), http.StatusInternalServerError)
		return
	}
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	_, _ = w.Write(body)
}

// gosamlSP is SP2 (and the login side of SP3): russellhaering/gosaml2.
type gosamlSP struct {
	t    *testing.T
	name string
	ln   net.Listener
	url  string
	sp   *saml2.SAMLServiceProvider
	// soap, when set, serves /soap and replaces the SLO of the metadata
	// with a SOAP SingleLogoutService.
	soap *soapSP
	// openssl, when set, adds an HTTP-Redirect SingleLogoutService whose
	// LogoutResponses are verified with `openssl dgst -verify`.
	openssl string
	// sloStatus, when set, is the status of its LogoutResponses to the
	// bridge's LogoutRequests (default Success).
	sloStatus string
	// answerRedirect answers a POSTed LogoutRequest with an HTTP-Redirect
	// LogoutResponse (query signed), as many SP libraries do: POST in,
	// Redirect out.
	answerRedirect bool

	mu                   sync.Mutex
	nameID, sessionIndex string
	logoutRequestID      string
	logoutStatus         string
	logoutSubStatus      string
	logoutInResponseTo   string
	logoutErr            error
	logoutResponses      int
	redirectResponses    int
	loginErr             error
	slo                  []gotLogout
}

func newGosamlSP(t *testing.T, name string) *gosamlSP {
	t.Helper()
	ln, u := listen(t)
	return &gosamlSP{t: t, name: name, ln: ln, url: u}
}

func (g *gosamlSP) entityID() string { return g.url + "/metadata" }

// start configures the SP for the bridge at bridgeURL and serves it.
func (g *gosamlSP) start(bridgeURL string) {
	t := g.t
	key, cert := rsaKey(t, g.name)
	g.sp = &saml2.SAMLServiceProvider{
		IdentityProviderSSOURL:      bridgeURL + PathSSO,
		IdentityProviderSSOBinding:  saml2.BindingHttpRedirect,
		IdentityProviderSLOURL:      bridgeURL + PathSLO,
		IdentityProviderSLOBinding:  saml2.BindingHttpPost,
		IdentityProviderIssuer:      bridgeURL + PathMetadata,
		AssertionConsumerServiceURL: g.url + "/acs",
		ServiceProviderSLOURL:       g.url + "/slo",
		ServiceProviderIssuer:       g.entityID(),
		AudienceURI:                 g.entityID(),
		SignAuthnRequests:           true,
		SignAuthnRequestsAlgorithm:  dsig.RSASHA256SignatureMethod,
		// Exclusive C14N (SAML Core §5.4.3): gosaml2 defaults to inclusive
		// C14N 1.1, whose signatures break once a message is put in a SOAP
		// envelope.
		SignAuthnRequestsCanonicalizer: dsig.MakeC14N10ExclusiveCanonicalizerWithPrefixList(""),
		IDPCertificateStore:            &dsig.MemoryX509CertificateStore{Roots: []*x509.Certificate{testSigner(t, "idp").Cert}},
		NameIdFormat:                   FormatPersistent,
	}
	if err := g.sp.SetSPKeyStore(&saml2.KeyStore{Signer: key, Cert: cert.Raw}); err != nil {
		t.Fatal(err)
	}
	mux := http.NewServeMux()
	mux.HandleFunc("/metadata", g.handleMetadata)
	mux.HandleFunc("/login", g.handleLogin)
	mux.HandleFunc("/acs", g.handleACS)
	mux.HandleFunc("/logout", g.handleLogout)
	mux.HandleFunc("/slo", g.handleSLO)
	if g.soap != nil {
		mux.Handle("/soap", g.soap)
	}
	serve(t, g.ln, mux)
}

func (g *gosamlSP) metadata() ([]byte, error) {
	if g.soap == nil && g.openssl == "" {
		md, err := g.sp.MetadataWithSLO(24)
		if err != nil {
			return nil, err
		}
		return xml.Marshal(md)
	}
	yes := true
	_, cert := rsaKey(g.t, g.name)
	ed := saml.EntityDescriptor{
		EntityID: g.entityID(),
		SPSSODescriptors: []saml.SPSSODescriptor{{
			SSODescriptor: saml.SSODescriptor{
				RoleDescriptor: saml.RoleDescriptor{
					ProtocolSupportEnumeration: bsaml.NSProtocol,
					KeyDescriptors: []saml.KeyDescriptor{{Use: "signing", KeyInfo: saml.KeyInfo{X509Data: saml.X509Data{
						X509Certificates: []saml.X509Certificate{{Data: base64.StdEncoding.EncodeToString(cert.Raw)}}}}}},
				},
				SingleLogoutServices: g.sloServices(),
				NameIDFormats:        []saml.NameIDFormat{FormatPersistent},
			},
			AuthnRequestsSigned:       &yes,
			AssertionConsumerServices: []saml.IndexedEndpoint{{Binding: URIPOST, Location: g.url + "/acs", Index: 1}},
		}},
	}
	return xml.Marshal(ed)
}

func (g *gosamlSP) sloServices() []saml.Endpoint {
	if g.soap != nil {
		return []saml.Endpoint{{Binding: URISOAP, Location: g.url + "/soap"}}
	}
	return []saml.Endpoint{{Binding: URIRedirect, Location: g.url + "/slo"}, {Binding: URIPOST, Location: g.url + "/slo"}}
}

func (g *gosamlSP) handleMetadata(w http.ResponseWriter, _ *http.Request) {
	b, err := g.metadata()
	if err != nil {
		http.Error(w, err.Error(), http.StatusInternalServerError)
		return
	}
	w.Header().Set("Content-Type", "application/samlmetadata+xml")
	_, _ = w.Write(b)
}

func (g *gosamlSP) handleLogin(w http.ResponseWriter, r *http.Request) {
	doc, err := g.sp.BuildAuthRequestDocumentNoSig()
	if err == nil {
		var u string
		if u, err = g.sp.BuildAuthURLRedirect("", doc); err == nil {
			http.Redirect(w, r, u, http.StatusFound)
			return
		}
	}
	http.Error(w, err.Error(), http.StatusInternalServerError)
}

func (g *gosamlSP) handleACS(w http.ResponseWriter, r *http.Request) {
	if err := r.ParseForm(); err != nil {
		http.Error(w, err.Error(), http.StatusBadRequest)
		return
	}
	info, err := g.sp.RetrieveAssertionInfo(r.PostForm.Get("SAMLResponse"))
	g.mu.Lock()
	defer g.mu.Unlock()
	g.loginErr = err
	if err != nil {
		http.Error(w, err.Error(), http.StatusForbidden)
		return
	}
	g.nameID, g.sessionIndex = info.NameID, info.SessionIndex
	fmt.Fprintf(w, `<p id="result">%s logged in as %s</p>`, g.name, html.EscapeString(info.Values.Get("email")))
}

// handleLogout starts an SP-initiated logout: a signed HTTP-POST
// LogoutRequest with the NameID and SessionIndex of the login.
func (g *gosamlSP) handleLogout(w http.ResponseWriter, r *http.Request) {
	g.mu.Lock()
	nameID, si := g.nameID, g.sessionIndex
	g.mu.Unlock()
	if r.URL.Query().Get("binding") == "redirect" {
		doc, err := g.sp.BuildLogoutRequestDocumentNoSig(nameID, si)
		if err != nil {
			http.Error(w, err.Error(), http.StatusInternalServerError)
			return
		}
		g.mu.Lock()
		g.logoutRequestID = doc.Root().SelectAttrValue("ID", "")
		g.mu.Unlock()
		u, err := g.sp.BuildLogoutURLRedirect("sp2-relay", doc)
		if err != nil {
			http.Error(w, err.Error(), http.StatusInternalServerError)
			return
		}
		http.Redirect(w, r, u, http.StatusFound)
		return
	}
	doc, err := g.sp.BuildLogoutRequestDocument(nameID, si)
	if err != nil {
		http.Error(w, err.Error(), http.StatusInternalServerError)
		return
	}
	g.mu.Lock()
	g.logoutRequestID = doc.Root().SelectAttrValue("ID", "")
	g.mu.Unlock()
	body, err := g.sp.BuildLogoutBodyPostFromDocument("sp2-relay", doc)
	if err != nil {
		http.Error(w, err.Error(), http.StatusInternalServerError)
		return
	}
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	_, _ = w.Write(body)
}

// handleSLO receives the bridge's LogoutResponse to our request and
// validates it with gosaml2 (signature, Issuer, Destination, Success).
func (g *gosamlSP) handleSLO(w http.ResponseWriter, r *http.Request) {
	if r.Method == http.MethodGet {
		g.handleRedirectSLO(w, r)
		return
	}
	if err := r.ParseForm(); err != nil {
		http.Error(w, err.Error(), http.StatusBadRequest)
		return
	}
	if v := r.PostForm.Get("SAMLRequest"); v != "" {
		g.handleLogoutRequest(w, v, r.PostForm.Get("RelayState"))
		return
	}
	enc := r.PostForm.Get("SAMLResponse")
	resp, err := g.sp.ValidateEncodedLogoutResponsePOST(enc)
	g.mu.Lock()
	defer g.mu.Unlock()
	g.logoutResponses++
	g.logoutErr = err
	if err != nil {
		http.Error(w, err.Error(), http.StatusForbidden)
		return
	}
	g.logoutInResponseTo = resp.InResponseTo
	if resp.Status != nil && resp.Status.StatusCode != nil {
		g.logoutStatus = resp.Status.StatusCode.Value
	}
	raw, _ := base64.StdEncoding.DecodeString(enc)
	doc := etree.NewDocument()
	if doc.ReadFromBytes(raw) == nil {
		if sub := doc.FindElement("//StatusCode/StatusCode"); sub != nil {
			g.logoutSubStatus = sub.SelectAttrValue("Value", "")
		}
	}
	fmt.Fprintf(w, `<p id="result">%s logged out: %s %s</p>`, g.name, html.EscapeString(g.logoutStatus), html.EscapeString(g.logoutSubStatus))
}

// handleLogoutRequest receives the bridge's front-channel LogoutRequest
// by HTTP-POST: gosaml2 validates it (signature, Issuer, Destination) and
// answers with its signed HTTP-POST LogoutResponse.
func (g *gosamlSP) handleLogoutRequest(w http.ResponseWriter, enc, relayState string) {
	lr, err := g.sp.ValidateEncodedLogoutRequestPOST(enc)
	got := gotLogout{Verified: err}
	if err == nil {
		got.ID, got.Destination = lr.ID, lr.Destination
		if lr.Issuer != nil {
			got.Issuer = lr.Issuer.Value
		}
		if lr.NameID != nil {
			got.NameID, got.Format = lr.NameID.Value, lr.NameID.Format
		}
		// gosaml2's type has no SessionIndex: read it from the (validated)
		// document.
		raw, _ := base64.StdEncoding.DecodeString(enc)
		doc := etree.NewDocument()
		if doc.ReadFromBytes(raw) == nil {
			if si := doc.FindElement("//SessionIndex"); si != nil {
				got.SessionIndex = si.Text()
			}
		}
	}
	g.mu.Lock()
	g.slo = append(g.slo, got)
	g.mu.Unlock()
	if err != nil {
		http.Error(w, err.Error(), http.StatusBadRequest)
		return
	}
	status := saml2.StatusCodeSuccess
	if g.sloStatus != "" {
		status = g.sloStatus
	}
	if g.answerRedirect {
		doc, err := g.sp.BuildLogoutResponseDocumentNoSig(status, lr.ID)
		if err != nil {
			http.Error(w, err.Error(), http.StatusInternalServerError)
			return
		}
		u, err := bsaml.RedirectURL(g.sp.IdentityProviderSLOURL, bsaml.ParamResponse, doc.Root(), relayState, testSigner(g.t, g.name))
		if err != nil {
			http.Error(w, err.Error(), http.StatusInternalServerError)
			return
		}
		w.Header().Set("Location", u)
		w.WriteHeader(http.StatusFound)
		return
	}
	doc, err := g.sp.BuildLogoutResponseDocument(status, lr.ID)
	if err != nil {
		http.Error(w, err.Error(), http.StatusInternalServerError)
		return
	}
	body, err := g.sp.BuildLogoutResponseBodyPostFromDocument(relayState, doc)
	if err != nil {
		http.Error(w, err.Error(), http.StatusInternalServerError)
		return
	}
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	_, _ = w.Write(body)
}

// handleRedirectSLO receives a LogoutResponse by HTTP-Redirect: the query
// signature is checked with `openssl dgst -sha256 -verify` over the octets
// of Bindings §3.4.4.1 taken from the raw query, then the XML is read.
func (g *gosamlSP) handleRedirectSLO(w http.ResponseWriter, r *http.Request) {
	raw := map[string]string{}
	for _, part := range strings.Split(r.URL.RawQuery, "&") {
		k, v, _ := strings.Cut(part, "=")
		raw[k] = v
	}
	octets := "SAMLResponse=" + raw["SAMLResponse"]
	if rs, ok := raw["RelayState"]; ok {
		octets += "&RelayState=" + rs
	}
	octets += "&SigAlg=" + raw["SigAlg"]
	sigB64, _ := url.QueryUnescape(raw["Signature"])
	sig, err := base64.StdEncoding.DecodeString(sigB64)
	verr := err
	if err == nil {
		verr = opensslVerify(g.t, g.openssl, []byte(octets), sig)
	}
	enc, _ := url.QueryUnescape(raw["SAMLResponse"])
	deflated, _ := base64.StdEncoding.DecodeString(enc)
	x, _ := io.ReadAll(flate.NewReader(bytes.NewReader(deflated)))
	doc := etree.NewDocument()
	perr := doc.ReadFromBytes(x)
	g.mu.Lock()
	defer g.mu.Unlock()
	g.logoutResponses++
	g.redirectResponses++
	g.logoutErr = errors.Join(verr, perr)
	if g.logoutErr != nil {
		http.Error(w, g.logoutErr.Error(), http.StatusForbidden)
		return
	}
	root := doc.Root()
	g.logoutInResponseTo = root.SelectAttrValue("InResponseTo", "")
	if root.SelectAttrValue("Destination", "") != g.url+"/slo" {
		g.logoutErr = fmt.Errorf("Destination %q", root.SelectAttrValue("Destination", ""))
	}
	if top := doc.FindElement("//Status/StatusCode"); top != nil {
		g.logoutStatus = top.SelectAttrValue("Value", "")
		if sub := top.FindElement("StatusCode"); sub != nil {
			g.logoutSubStatus = sub.SelectAttrValue("Value", "")
		}
	}
	fmt.Fprintf(w, `<p id="result">%s logged out: %s %s</p>`, g.name, html.EscapeString(g.logoutStatus), html.EscapeString(g.logoutSubStatus))
}
