package saml

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/rand"
	"crypto/rsa"
	"encoding/base64"
	"errors"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/beevik/etree"
	dsig "github.com/russellhaering/goxmldsig"
)

// The interop tests feed the validator what widely deployed IdPs and SPs
// (ADFS, Okta, Entra ID, Shibboleth, Keycloak) actually send where the
// specs leave room: Destination spellings, time formats, signature
// algorithms, status codes.

// expectation is what a validation must report.
type expectation string

const (
	expectOK     expectation = "ok"
	expectDenied expectation = "denied"    // Requester/RequestDenied
	expectReq    expectation = "requester" // Requester (any second level)
	expectSig    expectation = "signature"
)

func checkExpectation(t *testing.T, err error, want expectation) {
	t.Helper()
	var se *Error
	switch want {
	case expectOK:
		if err != nil {
			t.Fatalf("err = %v, want valid", err)
		}
	case expectDenied:
		if !errors.As(err, &se) || se.Status != StatusRequester || se.SubStatus != StatusRequestDenied {
			t.Fatalf("err = %v, want Requester/RequestDenied", err)
		}
	case expectReq:
		if !errors.As(err, &se) || se.Status != StatusRequester {
			t.Fatalf("err = %v, want Requester", err)
		}
	case expectSig:
		if !errors.Is(err, ErrSignature) {
			t.Fatalf("err = %v, want ErrSignature", err)
		}
	}
}

// postMessage signs el with the IdP's key and decodes it as an HTTP-POST
// message.
func postMessage(t *testing.T, el *etree.Element) *Message {
	t.Helper()
	signed, err := testSigner(t, "idp").SignEnveloped(el)
	if err != nil {
		t.Fatal(err)
	}
	return postOf(t, signed)
}

func postOf(t *testing.T, signed *etree.Element) *Message {
	t.Helper()
	v, err := POSTValue(signed)
	if err != nil {
		t.Fatal(err)
	}
	r := httptest.NewRequest(http.MethodPost, "/slo", strings.NewReader(url.Values{ParamRequest: {v}}.Encode()))
	r.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	m, err := ReadHTTP(r, Limits{})
	if err != nil {
		t.Fatal(err)
	}
	return m
}

// TestDestinationMatching: a Destination that names our endpoint with a
// different case of scheme or host, or with the default port, is ours
// (RFC 3986 §6.2.2-§6.2.3); any other path, scheme, port or host is
// refused with Requester/RequestDenied.
func TestDestinationMatching(t *testing.T) {
	for _, tc := range []struct {
		dest string
		want expectation
	}{
		{spSLO, expectOK},
		{"https://BRIDGE.Example.test/saml/sp/slo", expectOK},
		{"HTTPS://bridge.example.test:443/saml/sp/slo", expectOK},
		{"https://bridge.example.test/saml/sp/slo/", expectDenied},
		{"https://bridge.example.test/SAML/sp/slo", expectDenied},
		{"http://bridge.example.test/saml/sp/slo", expectDenied},
		{"https://bridge.example.test:8443/saml/sp/slo", expectDenied},
		{"https://bridge.example.test/saml/sp/slo?x=1", expectDenied},
		{"https://user@bridge.example.test/saml/sp/slo", expectDenied},
		{"https://evil.test/saml/sp/slo", expectDenied},
		{"/saml/sp/slo", expectDenied},
	} {
		t.Run(tc.dest, func(t *testing.T) {
			r := sampleRequest("_dest1")
			r.Destination = tc.dest
			_, err := testValidator(t).LogoutRequest(ctxT(t), postMessage(t, r.Element()), testTrust(t, idpEntity, "idp"), spSLO)
			checkExpectation(t, err, tc.want)
		})
	}
}

// TestTimeHandling: IssueInstant and NotOnOrAfter in the forms deployed
// IdPs send (UTC "Z", seven fraction digits as ADFS, a numeric offset, no
// zone at all), and the clock skew (3m) and message age (10m) at their
// edges.
func TestTimeHandling(t *testing.T) {
	for _, tc := range []struct {
		name, issueInstant, notOnOrAfter string
		want                             expectation
	}{
		{"utc", "2026-01-02T03:04:05Z", "", expectOK},
		{"adfs seven fraction digits", "2026-01-02T03:04:05.1234567Z", "", expectOK},
		{"numeric offset", "2026-01-02T04:04:05+01:00", "", expectOK},
		{"no time zone taken as UTC", "2026-01-02T03:04:05", "", expectOK},
		{"no time zone with fraction", "2026-01-02T03:04:05.123", "", expectOK},
		{"two minutes ahead within skew", t0.Add(2 * time.Minute).Format(time.RFC3339), "", expectOK},
		{"four minutes ahead", t0.Add(4 * time.Minute).Format(time.RFC3339), "", expectDenied},
		{"offset hides the future", "2026-01-02T05:04:05+01:00", "", expectDenied},
		{"twelve minutes old within age and skew", t0.Add(-12 * time.Minute).Format(time.RFC3339), "", expectOK},
		{"fourteen minutes old", t0.Add(-14 * time.Minute).Format(time.RFC3339), "", expectDenied},
		{"not a time", "yesterday", "", expectReq},
		{"NotOnOrAfter passed within skew", "2026-01-02T03:04:05Z", t0.Add(-2 * time.Minute).Format(time.RFC3339), expectOK},
		{"NotOnOrAfter passed", "2026-01-02T03:04:05Z", t0.Add(-4 * time.Minute).Format(time.RFC3339), expectDenied},
		{"NotOnOrAfter not a time", "2026-01-02T03:04:05Z", "soon", expectReq},
	} {
		t.Run(tc.name, func(t *testing.T) {
			el := sampleRequest("_time1").Element()
			el.CreateAttr("IssueInstant", tc.issueInstant)
			if tc.notOnOrAfter != "" {
				el.CreateAttr("NotOnOrAfter", tc.notOnOrAfter)
			}
			_, err := testValidator(t).LogoutRequest(ctxT(t), postMessage(t, el), testTrust(t, idpEntity, "idp"), spSLO)
			checkExpectation(t, err, tc.want)
		})
	}
}

// signAlg signs el with key under a goxmldsig signature method (and its
// digest), placing the signature after Issuer.
func signAlg(t *testing.T, key string, el *etree.Element, method string) *etree.Element {
	t.Helper()
	s := testSigner(t, key)
	ctx, err := dsig.NewSigningContext(s.Key, [][]byte{s.Cert.Raw})
	if err != nil {
		t.Fatal(err)
	}
	ctx.Canonicalizer = dsig.MakeC14N10ExclusiveCanonicalizerWithPrefixList("")
	if err := ctx.SetSignatureMethod(method); err != nil {
		t.Fatal(err)
	}
	sig, err := ctx.ConstructSignature(el, true)
	if err != nil {
		t.Fatal(err)
	}
	out := el.Copy()
	out.InsertChildAt(1, sig)
	return out
}

// TestEnvelopedAlgorithms: enveloped signatures with RSA-SHA256/384/512
// and their digests verify; RSA-SHA1 is refused unless the peer allows it.
func TestEnvelopedAlgorithms(t *testing.T) {
	for _, tc := range []struct {
		method string
		sha1   bool
		want   expectation
	}{
		{dsig.RSASHA256SignatureMethod, false, expectOK},
		{dsig.RSASHA384SignatureMethod, false, expectOK},
		{dsig.RSASHA512SignatureMethod, false, expectOK},
		{dsig.RSASHA1SignatureMethod, false, expectSig},
		{dsig.RSASHA1SignatureMethod, true, expectOK},
	} {
		t.Run(tc.method, func(t *testing.T) {
			m := postOf(t, signAlg(t, "idp", sampleRequest("_alg1").Element(), tc.method))
			tr := testTrust(t, idpEntity, "idp")
			tr.AllowSHA1 = tc.sha1
			_, err := testValidator(t).LogoutRequest(ctxT(t), m, tr, spSLO)
			checkExpectation(t, err, tc.want)
		})
	}
}

// TestRedirectAlgorithms: HTTP-Redirect query signatures with the RSA and
// ECDSA SHA-256/384/512 SigAlgs verify; SHA-1 and unknown SigAlgs are
// refused; a SigAlg that does not match the key type is refused.
func TestRedirectAlgorithms(t *testing.T) {
	for _, tc := range []struct {
		key, sigAlg string
		hash        crypto.Hash
		want        expectation
	}{
		{"idp", SigAlgRSASHA256, crypto.SHA256, expectOK},
		{"idp", SigAlgRSASHA384, crypto.SHA384, expectOK},
		{"idp", SigAlgRSASHA512, crypto.SHA512, expectOK},
		{"idp-ec", SigAlgECDSASHA256, crypto.SHA256, expectOK},
		{"idp-ec", SigAlgECDSASHA384, crypto.SHA384, expectOK},
		{"idp-ec", SigAlgECDSASHA512, crypto.SHA512, expectOK},
		{"idp", SigAlgRSASHA1, crypto.SHA1, expectSig},
		{"idp", "http://www.w3.org/2001/04/xmldsig-more#rsa-md5", crypto.SHA256, expectSig},
		{"idp", SigAlgECDSASHA256, crypto.SHA256, expectSig},
	} {
		t.Run(tc.key+" "+tc.sigAlg, func(t *testing.T) {
			u, err := RedirectURL(spSLO, ParamRequest, sampleRequest("_ralg1").Element(), "rs", nil)
			if err != nil {
				t.Fatal(err)
			}
			q := queryOf(t, u) + "&" + ParamSigAlg + "=" + url.QueryEscape(tc.sigAlg)
			s := testSigner(t, tc.key)
			h := tc.hash.New()
			h.Write([]byte(q))
			var sig []byte
			switch k := s.Key.(type) {
			case *rsa.PrivateKey:
				sig, err = rsa.SignPKCS1v15(rand.Reader, k, tc.hash, h.Sum(nil))
			case *ecdsa.PrivateKey:
				var der []byte
				if der, err = ecdsa.SignASN1(rand.Reader, k, h.Sum(nil)); err == nil {
					sig, err = derToRaw(der, &k.PublicKey)
				}
			}
			if err != nil {
				t.Fatal(err)
			}
			q += "&" + ParamSignature + "=" + url.QueryEscape(base64.StdEncoding.EncodeToString(sig))
			m, err := DecodeRedirect(q, Limits{})
			if err != nil {
				t.Fatal(err)
			}
			_, err = testValidator(t).LogoutRequest(ctxT(t), m, testTrust(t, idpEntity, tc.key), spSLO)
			checkExpectation(t, err, tc.want)
		})
	}
}

// TestLogoutResponseStatuses: the status codes deployed peers answer with
// (Core §3.2.2.2, §3.7.3.2): top-level Success, Success with the
// second-level PartialLogout (SimpleSAMLphp, Shibboleth), PartialLogout at
// the top (seen in the wild), Requester and Responder with second levels.
func TestLogoutResponseStatuses(t *testing.T) {
	for _, tc := range []struct {
		status, sub      string
		success, partial bool
	}{
		{StatusSuccess, "", true, false},
		{StatusSuccess, StatusPartialLogout, true, true},
		{StatusPartialLogout, "", false, true},
		{StatusRequester, StatusRequestDenied, false, false},
		{StatusRequester, StatusUnknownPrincipal, false, false},
		{StatusResponder, "", false, false},
		{StatusVersionMismatch, "", false, false},
	} {
		t.Run(tc.status+" "+tc.sub, func(t *testing.T) {
			r := &LogoutResponse{ID: "_st1", InResponseTo: "_req", IssueInstant: t0, Destination: spSLO,
				Issuer: idpEntity, Status: tc.status, SubStatus: tc.sub}
			signed, err := testSigner(t, "idp").SignEnveloped(r.Element())
			if err != nil {
				t.Fatal(err)
			}
			v, err := POSTValue(signed)
			if err != nil {
				t.Fatal(err)
			}
			req := httptest.NewRequest(http.MethodPost, "/slo", strings.NewReader(url.Values{ParamResponse: {v}}.Encode()))
			req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
			m, err := ReadHTTP(req, Limits{})
			if err != nil {
				t.Fatal(err)
			}
			got, err := testValidator(t).LogoutResponse(ctxT(t), m, testTrust(t, idpEntity, "idp"), spSLO, "_req")
			if err != nil {
				t.Fatal(err)
			}
			if got.Status != tc.status || got.SubStatus != tc.sub || got.Success() != tc.success || got.Partial() != tc.partial {
				t.Fatalf("parsed %s/%s success=%v partial=%v, want %s/%s %v %v", got.Status, got.SubStatus,
					got.Success(), got.Partial(), tc.status, tc.sub, tc.success, tc.partial)
			}
		})
	}
}

// TestResponseHeaders: every answer that carries a SAML message is marked
// not cacheable (Bindings §3.4.5.1, §3.5.5.1: Cache-Control "no-cache,
// no-store" and Pragma "no-cache") with the binding's Content-Type.
func TestResponseHeaders(t *testing.T) {
	signed, err := testSigner(t, "idp").SignEnveloped(sampleRequest("_hdr1").Element())
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name, contentType string
		status            int
		write             func(w http.ResponseWriter) error
	}{
		{"post form", "text/html; charset=utf-8", http.StatusOK, func(w http.ResponseWriter) error {
			return WritePOSTForm(w, spSLO, ParamRequest, signed, "rs")
		}},
		{"soap", "text/xml; charset=utf-8", http.StatusOK, func(w http.ResponseWriter) error { return WriteSOAP(w, signed) }},
		{"soap fault", "text/xml; charset=utf-8", http.StatusInternalServerError, func(w http.ResponseWriter) error {
			WriteSOAPFault(w, http.StatusInternalServerError, "Server", "down")
			return nil
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			rec := httptest.NewRecorder()
			if err := tc.write(rec); err != nil {
				t.Fatal(err)
			}
			h := rec.Result().Header
			if rec.Code != tc.status || h.Get("Content-Type") != tc.contentType || h.Get("Cache-Control") != "no-cache, no-store" ||
				h.Get("Pragma") != "no-cache" {
				t.Fatalf("HTTP %d headers %v, want %d, %q, no-cache, no-store and Pragma no-cache", rec.Code, h, tc.status, tc.contentType)
			}
		})
	}
}

// TestCanonicalizations: enveloped signatures made with each
// canonicalization XML Signature defines for SignedInfo and the reference
// (exclusive C14N as ADFS, Okta and Shibboleth use; inclusive C14N 1.0 and
// 1.1 as some Java stacks use) verify.
func TestCanonicalizations(t *testing.T) {
	for _, tc := range []struct {
		name string
		c14n dsig.Canonicalizer
	}{
		{"exclusive", dsig.MakeC14N10ExclusiveCanonicalizerWithPrefixList("")},
		{"exclusive with comments", dsig.MakeC14N10ExclusiveWithCommentsCanonicalizerWithPrefixList("")},
		{"inclusive 1.0", dsig.MakeC14N10RecCanonicalizer()},
		{"inclusive 1.1", dsig.MakeC14N11Canonicalizer()},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s := testSigner(t, "idp")
			ctx, err := dsig.NewSigningContext(s.Key, [][]byte{s.Cert.Raw})
			if err != nil {
				t.Fatal(err)
			}
			ctx.Canonicalizer = tc.c14n
			el := sampleRequest("_c14n1").Element()
			sig, err := ctx.ConstructSignature(el, true)
			if err != nil {
				t.Fatal(err)
			}
			out := el.Copy()
			out.InsertChildAt(1, sig)
			_, err = testValidator(t).LogoutRequest(ctxT(t), postOf(t, out), testTrust(t, idpEntity, "idp"), spSLO)
			checkExpectation(t, err, expectOK)
		})
	}
}

// TestSOAPContentType: the SOAP binding is SOAP 1.1 over text/xml
// (Bindings §3.2.2, SOAP 1.1 §6.1.1), with or without a charset; SOAP 1.2
// and form or missing types are refused before parsing.
func TestSOAPContentType(t *testing.T) {
	signed, err := testSigner(t, "idp").SignEnveloped(sampleRequest("_ct1").Element())
	if err != nil {
		t.Fatal(err)
	}
	env, err := SOAPEnvelope(signed)
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		contentType string
		ok          bool
	}{
		{"text/xml", true},
		{"text/xml; charset=utf-8", true},
		{"Text/XML; charset=\"UTF-8\"", true},
		{"application/soap+xml", false},
		{"application/x-www-form-urlencoded", false},
		{"", false},
	} {
		t.Run(tc.contentType, func(t *testing.T) {
			r := httptest.NewRequest(http.MethodPost, "/slo/soap", strings.NewReader(string(env)))
			if tc.contentType != "" {
				r.Header.Set("Content-Type", tc.contentType)
			}
			m, err := DecodeSOAP(r, Limits{})
			if tc.ok && (err != nil || m.Binding != BindingSOAP || !m.IsRequest()) {
				t.Fatalf("DecodeSOAP: %v", err)
			}
			if !tc.ok && !errors.Is(err, ErrMalformed) {
				t.Fatalf("DecodeSOAP err = %v, want ErrMalformed", err)
			}
		})
	}
}

// TestIssuerFormat: the Issuer of a logout message names an entity: its
// Format is omitted or entity (ADFS writes it out); any other Format is
// refused (Profiles §4.4.4.1).
func TestIssuerFormat(t *testing.T) {
	for _, tc := range []struct {
		format string
		want   expectation
	}{
		{"", expectOK},
		{"urn:oasis:names:tc:SAML:2.0:nameid-format:entity", expectOK},
		{"urn:oasis:names:tc:SAML:2.0:nameid-format:persistent", expectDenied},
	} {
		t.Run("format "+tc.format, func(t *testing.T) {
			el := sampleRequest("_iss1").Element()
			if tc.format != "" {
				el.SelectElement("saml:Issuer").CreateAttr("Format", tc.format)
			}
			_, err := testValidator(t).LogoutRequest(ctxT(t), postMessage(t, el), testTrust(t, idpEntity, "idp"), spSLO)
			checkExpectation(t, err, tc.want)
		})
	}
}

// TestBase64Forms: the base64 of HTTP-POST values as senders write it:
// with line breaks every 64 or 76 characters (OpenSAML, .NET), without
// padding, or with a '+' the form decoding turned into a space. Garbage
// is malformed.
func TestBase64Forms(t *testing.T) {
	std := base64.StdEncoding.EncodeToString([]byte("<samlp:LogoutRequest/>"))
	wrap := func(s string, n int) string {
		var b strings.Builder
		for i := 0; i < len(s); i += n {
			b.WriteString(s[i:min(i+n, len(s))])
			b.WriteString("\r\n")
		}
		return b.String()
	}
	for _, tc := range []struct {
		name, in string
		ok       bool
	}{
		{"standard", std, true},
		{"line breaks", wrap(std, 8), true},
		{"no padding", strings.TrimRight(std, "="), true},
		{"plus as space", strings.ReplaceAll(base64.StdEncoding.EncodeToString([]byte{0xfb, 0xef, 0xbe}), "+", " "), true},
		{"not base64", "%%%", false},
		{"padding in the middle", "AA==AA==", false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := decodeBase64(tc.in)
			if (err == nil) != tc.ok || (err != nil && !errors.Is(err, ErrMalformed)) {
				t.Fatalf("decodeBase64(%q) err = %v, want ok=%v", tc.in, err, tc.ok)
			}
		})
	}
}

// TestSOAPChannelAuthentication: a SOAP LogoutResponse may be unsigned
// when the channel authenticates the responder (Profiles §4.4.4.2): an
// answer over TLS whose server certificate verified is accepted unsigned;
// the same answer over plain HTTP is not; a signed answer is verified
// either way, and its Issuer must still be the peer.
func TestSOAPChannelAuthentication(t *testing.T) {
	resp := func(issuer string) *etree.Element {
		return (&LogoutResponse{ID: "_soapch", InResponseTo: "_req", IssueInstant: t0, Issuer: issuer, Status: StatusSuccess}).Element()
	}
	signedOther, err := testSigner(t, "other").SignEnveloped(resp(idpEntity))
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name string
		tls  bool
		el   *etree.Element
		want expectation
	}{
		{"unsigned over TLS", true, resp(idpEntity), expectOK},
		{"unsigned over HTTP", false, resp(idpEntity), expectSig},
		{"unsigned over TLS from another issuer", true, resp("https://evil.test"), expectSig},
		{"signed by another key over TLS", true, signedOther, expectSig},
	} {
		t.Run(tc.name, func(t *testing.T) {
			h := http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) { _ = WriteSOAP(w, tc.el) })
			srv := httptest.NewServer(h)
			if tc.tls {
				srv.Close()
				srv = httptest.NewTLSServer(h)
			}
			defer srv.Close()
			req, err := testSigner(t, "sp").SignEnveloped(sampleRequest("_req").Element())
			if err != nil {
				t.Fatal(err)
			}
			m, err := CallSOAP(ctxT(t), srv.Client(), srv.URL, req, Limits{}, nil)
			if err != nil {
				t.Fatal(err)
			}
			if m.ChannelAuthenticated != tc.tls {
				t.Fatalf("ChannelAuthenticated = %v, want %v", m.ChannelAuthenticated, tc.tls)
			}
			_, err = testValidator(t).LogoutResponse(ctxT(t), m, testTrust(t, idpEntity, "idp"), "", "_req")
			checkExpectation(t, err, tc.want)
		})
	}
}

// TestRedirectCarriesNoXMLSignature: HTTP-Redirect messages are signed in
// the query only (Bindings §3.4.4.1): the encoder refuses a message that
// holds a ds:Signature, and a received message signed only inside its XML
// (crewjam's old redirect encoding) is not authenticated by it.
func TestRedirectCarriesNoXMLSignature(t *testing.T) {
	signed, err := testSigner(t, "idp").SignEnveloped(sampleRequest("_rxs1").Element())
	if err != nil {
		t.Fatal(err)
	}
	if _, err := RedirectURL(spSLO, ParamRequest, signed, "", testSigner(t, "idp")); err == nil {
		t.Fatal("RedirectURL encoded a message holding an XML signature")
	}
	// Encode the enveloped-signed XML without a query signature, the way
	// a sender that embeds the signature would.
	u, err := RedirectURL(spSLO, ParamRequest, sampleRequest("_rxs2").Element(), "", nil)
	if err != nil {
		t.Fatal(err)
	}
	m, err := DecodeRedirect(queryOf(t, u), Limits{})
	if err != nil {
		t.Fatal(err)
	}
	doc := etree.NewDocument()
	doc.SetRoot(signed)
	m.doc = doc
	if _, err := Verify(m, testTrust(t, idpEntity, "idp")); !errors.Is(err, ErrSignature) {
		t.Fatalf("Verify of a Redirect message without query signature = %v, want ErrSignature", err)
	}
}

// TestPOSTFormShape: the HTTP-POST form (Bindings §3.5.4) posts the
// base64 message and the RelayState to the endpoint, submits itself with
// a nonce'd script, offers a <noscript> button, and its CSP allows only
// that script and a form post to the endpoint's origin.
func TestPOSTFormShape(t *testing.T) {
	signed, err := testSigner(t, "idp").SignEnveloped(sampleRequest("_form1").Element())
	if err != nil {
		t.Fatal(err)
	}
	rec := httptest.NewRecorder()
	if err := WritePOSTForm(rec, spSLO, ParamRequest, signed, "rs&<1>"); err != nil {
		t.Fatal(err)
	}
	body := rec.Body.String()
	csp := rec.Result().Header.Get("Content-Security-Policy")
	for _, want := range []string{`method="post" action="` + spSLO + `"`, `name="SAMLRequest" value="`,
		`name="RelayState" value="rs&amp;&lt;1&gt;"`, "<noscript>", `<button type="submit">`, `.submit();`} {
		if !strings.Contains(body, want) {
			t.Errorf("form lacks %q:\n%s", want, body)
		}
	}
	if !strings.Contains(csp, "form-action 'self' https://bridge.example.test;") || !strings.Contains(csp, "script-src 'nonce-") ||
		!strings.Contains(body, `<script nonce="`) {
		t.Errorf("CSP %q does not match the form", csp)
	}
	if err := WritePOSTForm(httptest.NewRecorder(), "javascript:alert(1)", ParamRequest, signed, ""); err == nil {
		t.Error("a javascript: endpoint was accepted")
	}
	if err := WritePOSTForm(httptest.NewRecorder(), spSLO, ParamRequest, signed, strings.Repeat("r", MaxRelayStateEcho+1)); err == nil {
		t.Error("an oversized RelayState was accepted")
	}
}

// TestSOAPEnvelopeShapes: SOAP 1.1 envelopes as SOAP stacks write them
// (Bindings §3.2, SOAP 1.1 §4): header entries the receiver need not
// understand are ignored, one it must understand is refused; SAML
// namespaces declared on the Envelope instead of the message still
// verify (exclusive C14N does not depend on where they are declared);
// SOAP 1.2, two Body entries or two Bodies are refused; a Fault is
// ErrSOAPFault.
func TestSOAPEnvelopeShapes(t *testing.T) {
	signed, err := testSigner(t, "idp").SignEnveloped(sampleRequest("_env_shape").Element())
	if err != nil {
		t.Fatal(err)
	}
	msg := string(xmlBytes(t, signed))
	// The message with its SAML namespace declarations moved to the
	// Envelope.
	bare := strings.ReplaceAll(strings.ReplaceAll(msg, ` xmlns:saml="`+NSAssertion+`"`, ""), ` xmlns:samlp="`+NSProtocol+`"`, "")
	if bare == msg {
		t.Fatalf("namespace declarations not found in %s", msg)
	}
	env := func(header, body string) string {
		return `<?xml version="1.0" encoding="UTF-8"?><S:Envelope xmlns:S="` + NSSOAP11 + `">` + header + `<S:Body>` + body + `</S:Body></S:Envelope>`
	}
	for _, tc := range []struct {
		name, doc string
		want      error
	}{
		{"plain", env("", msg), nil},
		{"header not to understand", env(`<S:Header><a:To xmlns:a="http://www.w3.org/2005/08/addressing">x</a:To></S:Header>`, msg), nil},
		{"mustUnderstand 0", env(`<S:Header><a:To xmlns:a="urn:x" S:mustUnderstand="0">x</a:To></S:Header>`, msg), nil},
		{"mustUnderstand 1", env(`<S:Header><a:To xmlns:a="urn:x" S:mustUnderstand="1">x</a:To></S:Header>`, msg), ErrMalformed},
		{"namespaces on the Envelope", `<S:Envelope xmlns:S="` + NSSOAP11 + `" xmlns:saml="` + NSAssertion + `" xmlns:samlp="` +
			NSProtocol + `"><S:Body>` + bare + `</S:Body></S:Envelope>`, nil},
		{"soap 1.2", `<S:Envelope xmlns:S="http://www.w3.org/2003/05/soap-envelope"><S:Body>` + msg + `</S:Body></S:Envelope>`, ErrMalformed},
		{"two messages", env("", msg+msg), ErrMalformed},
		{"two bodies", env(`<S:Body/>`, msg), ErrMalformed},
		{"fault", env("", `<S:Fault><faultcode>S:Server</faultcode><faultstring>down</faultstring></S:Fault>`), ErrSOAPFault},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := httptest.NewRequest(http.MethodPost, "/slo/soap", strings.NewReader(tc.doc))
			r.Header.Set("Content-Type", "text/xml; charset=utf-8")
			m, err := DecodeSOAP(r, Limits{})
			if tc.want != nil {
				if !errors.Is(err, tc.want) {
					t.Fatalf("DecodeSOAP err = %v, want %v", err, tc.want)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if _, err := testValidator(t).LogoutRequest(ctxT(t), m, testTrust(t, idpEntity, "idp"), spSLO); err != nil {
				t.Fatalf("validate: %v", err)
			}
		})
	}
}
