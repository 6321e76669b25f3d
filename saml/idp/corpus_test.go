package idp

import (
	"bytes"
	"compress/flate"
	"context"
	"crypto"
	"crypto/rsa"
	"crypto/sha1"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"encoding/xml"
	"errors"
	"io"
	mrand "math/rand/v2"
	"mime"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/beevik/etree"
	"github.com/crewjam/saml"

	bsaml "github.com/slobridge/slobridge/saml"
	"github.com/slobridge/slobridge/store"
)

// The negative corpus: attack and mistake messages from an SP, stored in
// testdata/corpus (regenerate with go test -run TestNegativeCorpus
// -update). The bridge runs on a fixed clock and a fixed external URL so
// the signed files are stable.
var (
	corpusNow  = time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
	corpusBase = "https://bridge.slobridge.test"
	corpusSP   = "https://sp.slobridge.test/metadata"
	// corpusSessionIndex is the SessionIndex the IdP issues first with its
	// random source seeded with zeros.
	corpusSessionIndex = "2Yd-zm02iqwab0GexifHaw"
)

// corpusCase is one message and what the bridge must answer.
type corpusCase struct {
	name string
	// kind is how it is sent: "redirect" (GET, query), "post" (form),
	// "soap" (text/xml), "sso" (GET to the SSO endpoint).
	kind string
	// build makes the payload: a raw query, a form body or a SOAP body.
	build func(c *corpusWorld) []byte
	// file, when set, reuses another case's payload (a replay).
	file string
	// status is the expected SAML top-level and second-level status; when
	// empty the answer must be HTTP 400 without a SAML response, or, for
	// "soap", a SOAP fault with HTTP 500 (SOAP 1.1 §6.2).
	status, sub string
}

// corpusWorld holds what the builders need.
type corpusWorld struct {
	t      *testing.T
	sp     *bsaml.Signer
	other  *bsaml.Signer
	nameID bsaml.NameID
	si     string
}

func corpusSPMetadata(t *testing.T) []byte {
	t.Helper()
	yes := true
	cert := testSigner(t, "sp2").Cert
	slo := "https://sp.slobridge.test/slo"
	ed := saml.EntityDescriptor{
		EntityID: corpusSP,
		SPSSODescriptors: []saml.SPSSODescriptor{{
			SSODescriptor: saml.SSODescriptor{
				RoleDescriptor: saml.RoleDescriptor{
					ProtocolSupportEnumeration: bsaml.NSProtocol,
					KeyDescriptors: []saml.KeyDescriptor{{Use: "signing", KeyInfo: saml.KeyInfo{X509Data: saml.X509Data{
						X509Certificates: []saml.X509Certificate{{Data: base64.StdEncoding.EncodeToString(cert.Raw)}}}}}},
				},
				SingleLogoutServices: []saml.Endpoint{
					{Binding: URIRedirect, Location: slo}, {Binding: URIPOST, Location: slo},
				},
			},
			AuthnRequestsSigned:       &yes,
			AssertionConsumerServices: []saml.IndexedEndpoint{{Binding: URIPOST, Location: "https://sp.slobridge.test/acs", Index: 1}},
		}},
	}
	b, err := xml.Marshal(ed)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func (c *corpusWorld) logoutRequest(id string, mod func(*bsaml.LogoutRequest)) *etree.Element {
	r := &bsaml.LogoutRequest{ID: id, IssueInstant: corpusNow, Destination: corpusBase + PathSLO, Issuer: corpusSP,
		NameID: c.nameID, SessionIndexes: []string{c.si}}
	if mod != nil {
		mod(r)
	}
	return r.Element()
}

func (c *corpusWorld) sign(s *bsaml.Signer, el *etree.Element) *etree.Element {
	out, err := s.SignEnveloped(el)
	if err != nil {
		c.t.Fatal(err)
	}
	return out
}

func postBody(el *etree.Element) []byte {
	v, _ := bsaml.POSTValue(el)
	return []byte(url.Values{"SAMLRequest": {v}}.Encode())
}

func postResponseBody(el *etree.Element) []byte {
	v, _ := bsaml.POSTValue(el)
	return []byte(url.Values{"SAMLResponse": {v}}.Encode())
}

func (c *corpusWorld) redirectQuery(endpoint string, el *etree.Element, s *bsaml.Signer) []byte {
	u, err := bsaml.RedirectURL(endpoint, bsaml.ParamRequest, el, "", s)
	if err != nil {
		c.t.Fatal(err)
	}
	_, q, _ := strings.Cut(u, "?")
	return []byte(q)
}

func deflateB64(b []byte) string {
	var buf bytes.Buffer
	fw, _ := flate.NewWriter(&buf, flate.BestCompression)
	fw.Write(b)
	fw.Close()
	return base64.StdEncoding.EncodeToString(buf.Bytes())
}

func xmlBytes(el *etree.Element) []byte {
	d := etree.NewDocument()
	d.SetRoot(el.Copy())
	b, _ := d.WriteToBytes()
	return b
}

func soapOf(els ...*etree.Element) []byte {
	d := etree.NewDocument()
	env := d.CreateElement("SOAP-ENV:Envelope")
	env.CreateAttr("xmlns:SOAP-ENV", bsaml.NSSOAP11)
	body := env.CreateElement("SOAP-ENV:Body")
	for _, el := range els {
		body.AddChild(el.Copy())
	}
	b, _ := d.WriteToBytes()
	return b
}

func (c *corpusWorld) authnRequest(issuer, acs string) *etree.Element {
	el := etree.NewElement("samlp:AuthnRequest")
	el.CreateAttr("xmlns:samlp", bsaml.NSProtocol)
	el.CreateAttr("xmlns:saml", bsaml.NSAssertion)
	el.CreateAttr("ID", "_authn-"+strings.ReplaceAll(acs, "/", ""))
	el.CreateAttr("Version", "2.0")
	el.CreateAttr("IssueInstant", corpusNow.Format(time.RFC3339))
	el.CreateAttr("Destination", corpusBase+PathSSO)
	el.CreateAttr("AssertionConsumerServiceURL", acs)
	el.CreateAttr("ProtocolBinding", URIPOST)
	el.CreateElement("saml:Issuer").SetText(issuer)
	return el
}

func corpusCases() []corpusCase {
	unknownNameID := func(r *bsaml.LogoutRequest) { r.NameID.Value = "nobody"; r.SessionIndexes = nil }
	return []corpusCase{
		{name: "redirect-unsigned", kind: "redirect", build: func(c *corpusWorld) []byte {
			return c.redirectQuery(corpusBase+PathSLO, c.logoutRequest("_r-unsigned", nil), nil)
		}},
		{name: "redirect-other-key", kind: "redirect", build: func(c *corpusWorld) []byte {
			return c.redirectQuery(corpusBase+PathSLO, c.logoutRequest("_r-other", nil), c.other)
		}},
		{name: "redirect-sha1", kind: "redirect", build: func(c *corpusWorld) []byte {
			q := "SAMLRequest=" + url.QueryEscape(deflateB64(xmlBytes(c.logoutRequest("_r-sha1", nil)))) +
				"&SigAlg=" + url.QueryEscape(bsaml.SigAlgRSASHA1)
			h := sha1.Sum([]byte(q))
			sig, err := rsa.SignPKCS1v15(nil, c.sp.Key.(*rsa.PrivateKey), crypto.SHA1, h[:])
			if err != nil {
				c.t.Fatal(err)
			}
			return []byte(q + "&Signature=" + url.QueryEscape(base64.StdEncoding.EncodeToString(sig)))
		}},
		{name: "redirect-bad-base64", kind: "redirect", build: func(*corpusWorld) []byte {
			return []byte("SAMLRequest=%25%25not*base64&SigAlg=x&Signature=AAAA")
		}},
		{name: "redirect-bad-deflate", kind: "redirect", build: func(*corpusWorld) []byte {
			return []byte("SAMLRequest=" + url.QueryEscape(base64.StdEncoding.EncodeToString([]byte("this is not DEFLATE data at all"))))
		}},
		{name: "post-unsigned", kind: "post", build: func(c *corpusWorld) []byte {
			return postBody(c.logoutRequest("_p-unsigned", nil))
		}},
		{name: "post-other-key", kind: "post", build: func(c *corpusWorld) []byte {
			return postBody(c.sign(c.other, c.logoutRequest("_p-other", nil)))
		}},
		{name: "post-wrap-moved", kind: "post", build: func(c *corpusWorld) []byte {
			// The signed request is moved inside an unsigned one that names
			// someone else; the signature still verifies over its element.
			signed := c.sign(c.sp, c.logoutRequest("_p-moved-inner", nil))
			outer := c.logoutRequest("_p-moved-outer", unknownNameID)
			var sig *etree.Element
			for _, ch := range signed.ChildElements() {
				if ch.Tag == "Signature" {
					sig = ch
				}
			}
			outer.InsertChildAt(1, sig.Copy())
			ext := outer.CreateElement("samlp:Extensions")
			ext.AddChild(signed)
			return postBody(outer)
		}},
		{name: "post-wrap-duplicate", kind: "post", build: func(c *corpusWorld) []byte {
			signed := c.sign(c.sp, c.logoutRequest("_p-dup", nil))
			evil := c.logoutRequest("_p-dup", unknownNameID)
			signed.CreateElement("samlp:Extensions").AddChild(evil)
			return postBody(signed)
		}},
		{name: "soap-wrap-sibling", kind: "soap", build: func(c *corpusWorld) []byte {
			signed := c.sign(c.sp, c.logoutRequest("_s-sib", func(r *bsaml.LogoutRequest) { r.Destination = corpusBase + PathSLOSOAP }))
			return soapOf(signed, c.logoutRequest("_s-sib-evil", unknownNameID))
		}},
		{name: "post-dtd", kind: "post", build: func(c *corpusWorld) []byte {
			x := `<?xml version="1.0"?><!DOCTYPE lolz [<!ENTITY lol "lol"><!ENTITY lol2 "&lol;&lol;&lol;&lol;">]>` +
				string(xmlBytes(c.sign(c.sp, c.logoutRequest("_p-dtd", nil))))
			return []byte(url.Values{"SAMLRequest": {base64.StdEncoding.EncodeToString([]byte(x))}}.Encode())
		}},
		{name: "post-oversized", kind: "post", build: func(c *corpusWorld) []byte {
			el := c.logoutRequest("_p-big", nil)
			el.CreateElement("samlp:Extensions").SetText(strings.Repeat("A", 300<<10))
			return postBody(c.sign(c.sp, el))
		}},
		{name: "post-wrong-destination", kind: "post", status: bsaml.StatusRequester, sub: bsaml.StatusRequestDenied,
			build: func(c *corpusWorld) []byte {
				return postBody(c.sign(c.sp, c.logoutRequest("_p-dest", func(r *bsaml.LogoutRequest) {
					r.Destination = "https://evil.example/saml/idp/slo"
				})))
			}},
		{name: "post-destination-other-port", kind: "post", status: bsaml.StatusRequester, sub: bsaml.StatusRequestDenied,
			build: func(c *corpusWorld) []byte {
				return postBody(c.sign(c.sp, c.logoutRequest("_p-dest-port", func(r *bsaml.LogoutRequest) {
					r.Destination = corpusBase + ":8443" + PathSLO
				})))
			}},
		{name: "redirect-destination-sso-endpoint", kind: "redirect", status: bsaml.StatusRequester, sub: bsaml.StatusRequestDenied,
			build: func(c *corpusWorld) []byte {
				return c.redirectQuery(corpusBase+PathSLO, c.logoutRequest("_r-dest-sso", func(r *bsaml.LogoutRequest) {
					r.Destination = corpusBase + PathSSO
				}), c.sp)
			}},
		{name: "post-issuer-format-not-entity", kind: "post", status: bsaml.StatusRequester, sub: bsaml.StatusRequestDenied,
			build: func(c *corpusWorld) []byte {
				el := c.logoutRequest("_p-issuer-format", nil)
				el.SelectElement("saml:Issuer").CreateAttr("Format", FormatPersistent)
				return postBody(c.sign(c.sp, el))
			}},
		{name: "post-expired", kind: "post", status: bsaml.StatusRequester, sub: bsaml.StatusRequestDenied,
			build: func(c *corpusWorld) []byte {
				return postBody(c.sign(c.sp, c.logoutRequest("_p-old", func(r *bsaml.LogoutRequest) {
					r.IssueInstant = corpusNow.Add(-time.Hour)
				})))
			}},
		{name: "post-future", kind: "post", status: bsaml.StatusRequester, sub: bsaml.StatusRequestDenied,
			build: func(c *corpusWorld) []byte {
				return postBody(c.sign(c.sp, c.logoutRequest("_p-future", func(r *bsaml.LogoutRequest) {
					r.IssueInstant = corpusNow.Add(time.Hour)
				})))
			}},
		{name: "post-not-on-or-after-passed", kind: "post", status: bsaml.StatusRequester, sub: bsaml.StatusRequestDenied,
			build: func(c *corpusWorld) []byte {
				return postBody(c.sign(c.sp, c.logoutRequest("_p-noa", func(r *bsaml.LogoutRequest) {
					r.NotOnOrAfter = corpusNow.Add(-10 * time.Minute)
				})))
			}},
		{name: "post-unknown-nameid", kind: "post", status: bsaml.StatusRequester, sub: bsaml.StatusUnknownPrincipal,
			build: func(c *corpusWorld) []byte {
				return postBody(c.sign(c.sp, c.logoutRequest("_p-unknown", unknownNameID)))
			}},
		{name: "post-replayed", kind: "post", file: "post-unknown-nameid", status: bsaml.StatusRequester, sub: bsaml.StatusRequestDenied},
		{name: "post-foreign-session-index", kind: "post", status: bsaml.StatusRequester, sub: bsaml.StatusUnknownPrincipal,
			build: func(c *corpusWorld) []byte {
				return postBody(c.sign(c.sp, c.logoutRequest("_p-si", func(r *bsaml.LogoutRequest) {
					r.SessionIndexes = []string{"not-a-session-index-of-ours"}
				})))
			}},
		// An unsigned SOAP request from a registered SP with an ID is
		// answered in SAML (Bindings §3.2.3.1), not with a fault.
		{name: "soap-unsigned", kind: "soap", status: bsaml.StatusRequester, sub: bsaml.StatusRequestDenied, build: func(c *corpusWorld) []byte {
			return soapOf(c.logoutRequest("_s-unsigned", func(r *bsaml.LogoutRequest) { r.Destination = corpusBase + PathSLOSOAP }))
		}},
		{name: "response-wrong-inresponseto", kind: "post", build: func(c *corpusWorld) []byte {
			r := &bsaml.LogoutResponse{ID: "_resp-irt", InResponseTo: "_never-sent", IssueInstant: corpusNow,
				Destination: corpusBase + PathSLO, Issuer: corpusSP, Status: bsaml.StatusSuccess}
			return postResponseBody(c.sign(c.sp, r.Element()))
		}},
		{name: "response-no-issuer", kind: "post", build: func(c *corpusWorld) []byte {
			r := &bsaml.LogoutResponse{ID: "_resp-noissuer", InResponseTo: "_pending-corpus", IssueInstant: corpusNow,
				Destination: corpusBase + PathSLO, Status: bsaml.StatusSuccess}
			el := r.Element()
			for _, ch := range el.ChildElements() {
				if ch.Tag == "Issuer" {
					el.RemoveChild(ch)
				}
			}
			return postResponseBody(c.sign(c.sp, el))
		}},
		{name: "authn-unknown-sp", kind: "sso", build: func(c *corpusWorld) []byte {
			return c.redirectQuery(corpusBase+PathSSO, c.authnRequest("https://unknown.example/sp", "https://unknown.example/acs"), c.other)
		}},
		{name: "authn-acs-not-in-metadata", kind: "sso", build: func(c *corpusWorld) []byte {
			return c.redirectQuery(corpusBase+PathSSO, c.authnRequest(corpusSP, "https://evil.example/acs"), c.sp)
		}},
		{name: "authn-unsigned-required", kind: "sso", build: func(c *corpusWorld) []byte {
			return c.redirectQuery(corpusBase+PathSSO, c.authnRequest(corpusSP, "https://sp.slobridge.test/acs"), nil)
		}},
	}
}

// corpusPayload returns a case's stored payload, writing it first with
// -update.
func corpusPayload(t *testing.T, w *corpusWorld, tc corpusCase) []byte {
	t.Helper()
	name := tc.name
	if tc.file != "" {
		name = tc.file
	}
	path := filepath.Join("testdata", "corpus", name+".txt")
	if *update && tc.build != nil {
		if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(path, tc.build(w), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("corpus file %s: %v (run with -update to generate)", path, err)
	}
	return b
}

// send delivers a payload the way its kind says.
func send(t *testing.T, base string, kind string, payload []byte) *http.Response {
	t.Helper()
	c := &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	var resp *http.Response
	var err error
	switch kind {
	case "redirect":
		resp, err = c.Get(base + PathSLO + "?" + string(payload))
	case "sso":
		resp, err = c.Get(base + PathSSO + "?" + string(payload))
	case "post":
		resp, err = c.Post(base+PathSLO, "application/x-www-form-urlencoded", bytes.NewReader(payload))
	case "soap":
		resp, err = c.Post(base+PathSLOSOAP, "text/xml; charset=utf-8", bytes.NewReader(payload))
	}
	if err != nil {
		t.Fatal(err)
	}
	return resp
}

// samlStatus reads the status codes of the LogoutResponse in an answer.
func samlStatus(t *testing.T, resp *http.Response, body []byte) (string, string) {
	t.Helper()
	// Bindings §3.4.5.1, §3.5.5.1: a SAML message is not to be cached.
	if cc, pr := resp.Header.Get("Cache-Control"), resp.Header.Get("Pragma"); cc != "no-cache, no-store" || pr != "no-cache" {
		t.Errorf("LogoutResponse answer has Cache-Control %q Pragma %q, want \"no-cache, no-store\" and no-cache", cc, pr)
	}
	var x []byte
	switch {
	case resp.StatusCode == http.StatusSeeOther: // the one front-channel sender (saml.SendFront) redirects with 303
		_, q, _ := strings.Cut(resp.Header.Get("Location"), "?")
		m, err := bsaml.DecodeRedirect(q, bsaml.Limits{})
		if err != nil {
			t.Fatalf("decode redirect answer: %v", err)
		}
		x = m.XML
	case resp.StatusCode == http.StatusOK && strings.HasPrefix(resp.Header.Get("Content-Type"), "text/xml"):
		r := httptest.NewRequest(http.MethodPost, "/", bytes.NewReader(body))
		r.Header.Set("Content-Type", "text/xml")
		m, err := bsaml.DecodeSOAP(r, bsaml.Limits{})
		if err != nil {
			t.Fatalf("decode SOAP answer: %v", err)
		}
		if _, err := bsaml.Verify(m, bsaml.Trust{Certs: []*x509.Certificate{testSigner(t, "idp").Cert}}); err != nil {
			t.Fatalf("SOAP LogoutResponse signature: %v", err)
		}
		x = m.XML
	case resp.StatusCode == http.StatusOK:
		_, form, err := parseForm(string(body))
		if err != nil {
			t.Fatalf("answer: %v", err)
		}
		x, err = base64.StdEncoding.DecodeString(form.Get("SAMLResponse"))
		if err != nil {
			t.Fatal(err)
		}
	default:
		t.Fatalf("answer HTTP %d %s, want a LogoutResponse", resp.StatusCode, body)
	}
	doc := etree.NewDocument()
	if err := doc.ReadFromBytes(x); err != nil {
		t.Fatal(err)
	}
	top := doc.FindElement("//Status/StatusCode")
	if top == nil {
		t.Fatalf("no StatusCode in %s", x)
	}
	sub := ""
	if s := top.FindElement("StatusCode"); s != nil {
		sub = s.SelectAttrValue("Value", "")
	}
	return top.SelectAttrValue("Value", ""), sub
}

// TestNegativeCorpus sends every corpus message to the bridge: each is
// refused with HTTP 400 (or a SOAP fault) when the sender is not
// authenticated, or with the right SAML status when it is, and no session,
// participant or logout changes. A last, valid request (the control) does
// log out, so the refusals are due to the defect each case carries.
func TestNegativeCorpus(t *testing.T) {
	dir := t.TempDir()
	spFile := filepath.Join(dir, "sp.xml")
	if err := os.WriteFile(spFile, corpusSPMetadata(t), 0o600); err != nil {
		t.Fatal(err)
	}
	b := newBridge(t, bridgeOpts{
		cfg:     Config{ServiceProviders: []SPConfig{{MetadataFile: spFile}}},
		baseURL: corpusBase, now: func() time.Time { return corpusNow },
		rand: mrand.NewChaCha8([32]byte{}),
	})
	ctx := context.Background()
	s, err := b.eng.CreateSession(ctx, store.Session{UserID: "alice", ExpiresAt: corpusNow.Add(8 * time.Hour)})
	if err != nil {
		t.Fatal(err)
	}
	sp, err := b.idp.ServiceProvider(ctx, corpusSP)
	if err != nil {
		t.Fatal(err)
	}
	iss, err := b.idp.join(ctx, sp, "", s)
	if err != nil {
		t.Fatal(err)
	}
	pend, _ := json.Marshal(pendingLogout{LogoutID: "lo-corpus", SessionID: s.ID, Key: ParticipantKey(corpusSP), SP: corpusSP})
	if err := b.st.PutRecord(ctx, store.Record{Namespace: nsPendingLogout, Key: "_pending-corpus", Value: pend,
		ExpiresAt: corpusNow.Add(time.Hour)}); err != nil {
		t.Fatal(err)
	}
	w := &corpusWorld{t: t, sp: testSigner(t, "sp2"), other: testSigner(t, "other"),
		nameID: bsaml.NameID{Value: iss.NameID.Value, Format: iss.NameID.Format,
			NameQualifier: iss.NameID.NameQualifier, SPNameQualifier: iss.NameID.SPNameQualifier},
		si: iss.SessionIndex}
	if iss.SessionIndex != corpusSessionIndex {
		t.Fatalf("SessionIndex %q, want the deterministic %q the corpus was made with", iss.SessionIndex, corpusSessionIndex)
	}

	for _, tc := range corpusCases() {
		t.Run(tc.name, func(t *testing.T) {
			resp := send(t, b.srv.URL, tc.kind, corpusPayload(t, w, tc))
			body, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			switch {
			case tc.status == "" && tc.kind == "soap":
				if mt, _, _ := mime.ParseMediaType(resp.Header.Get("Content-Type")); resp.StatusCode != http.StatusInternalServerError || mt != "text/xml" {
					t.Fatalf("HTTP %d %q, want a SOAP fault with 500 text/xml; body %.300s", resp.StatusCode, resp.Header.Get("Content-Type"), body)
				}
				r := httptest.NewRequest(http.MethodPost, "/", bytes.NewReader(body))
				r.Header.Set("Content-Type", "text/xml")
				if _, err := bsaml.DecodeSOAP(r, bsaml.Limits{}); !errors.Is(err, bsaml.ErrSOAPFault) {
					t.Fatalf("not a SOAP fault (%v): %.300s", err, body)
				}
			case tc.status == "":
				if resp.StatusCode != http.StatusBadRequest {
					t.Fatalf("HTTP %d, want 400; body %.300s", resp.StatusCode, body)
				}
				if strings.Contains(string(body), "SAMLResponse") {
					t.Fatalf("a SAML response was sent to an unauthenticated sender")
				}
			default:
				if st, sub := samlStatus(t, resp, body); st != tc.status || sub != tc.sub {
					t.Fatalf("status %s / %s, want %s / %s", st, sub, tc.status, tc.sub)
				}
			}
			checkUnchanged(t, b, s.ID)
		})
	}
	res, err := b.idp.FrontResult(ctx, "lo-corpus", s.ID, ParticipantKey(corpusSP))
	if !errors.Is(err, store.ErrNotFound) {
		t.Errorf("front-channel result after unauthenticated responses = %+v (%v), want nothing recorded", res, err)
	}

	t.Run("control", func(t *testing.T) {
		resp := send(t, b.srv.URL, "post", postBody(w.sign(w.sp, w.logoutRequest("_p-control", nil))))
		resp.Body.Close()
		if resp.StatusCode != http.StatusSeeOther {
			t.Fatalf("valid LogoutRequest answered HTTP %d, want 303 to the logout page", resp.StatusCode)
		}
		got, err := b.st.GetSession(ctx, s.ID)
		if err != nil || got.EndedAt.IsZero() {
			t.Fatalf("session after the valid request: %+v (%v), want ended", got, err)
		}
	})
}

// checkUnchanged: the session is active with its one participant, and no
// logout exists for alice.
func checkUnchanged(t *testing.T, b *bridge, sid string) {
	t.Helper()
	ctx := context.Background()
	s, err := b.st.GetSession(ctx, sid)
	if err != nil || !s.EndedAt.IsZero() {
		t.Fatalf("session %+v (%v), want active", s, err)
	}
	ps, err := b.st.ListParticipants(ctx, sid)
	if err != nil || len(ps) != 1 {
		t.Fatalf("participants %+v (%v), want 1", ps, err)
	}
	los, err := b.st.ListLogoutsByUser(ctx, "alice")
	if err != nil && !errors.Is(err, store.ErrNotFound) {
		t.Fatal(err)
	}
	if len(los) != 0 {
		t.Fatalf("logouts %+v, want none", los)
	}
}
