package sp

import (
	"encoding/base64"
	"fmt"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/beevik/etree"

	"github.com/slobridge/slobridge/saml"
	"github.com/slobridge/slobridge/saml/internal/samltest"
)

const craftIdP = "https://idp.craft.test/metadata"

// assertionParts are the pieces of a test assertion, each replaceable.
type assertionParts struct {
	IssueInstant, Issuer, Subject, Conditions, Authn string
}

// crafted is one login under test: the bridge, the login in progress and
// the Response parts to send.
type crafted struct {
	b        *bridge
	relay    string
	request  string
	now      time.Time
	idp      *saml.Signer
	resp     map[string]string // Response attributes
	status   string
	a        assertionParts
	signResp bool
	signA    bool
	encrypt  *samltest.Encryption
	// raw, when set, is sent instead of the assertion built from a.
	raw string
}

func ts(t time.Time) string { return t.UTC().Format("2006-01-02T15:04:05.000Z") }

// startCrafted starts a login at a bridge whose upstream is the test IdP
// (its metadata from a file, its key testdata/idp) and returns a valid
// Response for it, to be mutated.
func startCrafted(t *testing.T, skew time.Duration) *crafted {
	t.Helper()
	idp := loadSigner(t, "idp")
	md := writeFile(t, "idp.xml", idpMetadata(t, craftIdP, idp.Cert, "https://idp.craft.test/sso", nil))
	b := newBridge(t, bridgeOptions{skew: skew, upstreams: []UpstreamConfig{{Name: "craft", MetadataFile: md}}})
	resp := b.get("/test/login")
	if resp.StatusCode != http.StatusSeeOther {
		t.Fatalf("start login: %d %s", resp.StatusCode, readBody(t, resp))
	}
	loc, _ := url.Parse(resp.Header.Get("Location"))
	relay := loc.Query().Get("RelayState")
	var st loginState
	if err := b.sp.getState(t.Context(), nsLogin, relay, &st); err != nil {
		t.Fatal(err)
	}
	now := time.Now()
	acs := b.sp.url(PathACS)
	c := &crafted{b: b, relay: relay, request: st.RequestID, now: now, idp: idp, signA: true,
		status: saml.StatusSuccess,
		resp: map[string]string{"ID": "_r" + st.RequestID, "Version": "2.0", "IssueInstant": ts(now),
			"Destination": acs, "InResponseTo": st.RequestID}}
	c.a = assertionParts{
		IssueInstant: ts(now),
		Issuer:       `<saml:Issuer>` + craftIdP + `</saml:Issuer>`,
		Subject: `<saml:Subject><saml:NameID Format="urn:oasis:names:tc:SAML:2.0:nameid-format:persistent">alice</saml:NameID>` +
			`<saml:SubjectConfirmation Method="urn:oasis:names:tc:SAML:2.0:cm:bearer"><saml:SubjectConfirmationData Recipient="` + acs +
			`" InResponseTo="` + st.RequestID + `" NotOnOrAfter="` + ts(now.Add(5*time.Minute)) + `"/></saml:SubjectConfirmation></saml:Subject>`,
		Conditions: `<saml:Conditions NotBefore="` + ts(now.Add(-time.Minute)) + `" NotOnOrAfter="` + ts(now.Add(5*time.Minute)) +
			`"><saml:AudienceRestriction><saml:Audience>` + b.sp.EntityID() + `</saml:Audience></saml:AudienceRestriction></saml:Conditions>`,
		Authn: `<saml:AuthnStatement AuthnInstant="` + ts(now) + `" SessionIndex="_s1"><saml:AuthnContext><saml:AuthnContextClassRef>` +
			`urn:oasis:names:tc:SAML:2.0:ac:classes:Password</saml:AuthnContextClassRef></saml:AuthnContext></saml:AuthnStatement>`,
	}
	return c
}

// sign returns the enveloped-signed copy of the XML text doc.
func (c *crafted) sign(t *testing.T, doc string) string {
	t.Helper()
	d := etree.NewDocument()
	if err := d.ReadFromString(doc); err != nil {
		t.Fatalf("%v in %s", err, doc)
	}
	el, err := c.idp.SignEnveloped(d.Root())
	if err != nil {
		t.Fatal(err)
	}
	out := etree.NewDocument()
	out.SetRoot(el)
	s, err := out.WriteToString()
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// assertion renders (and signs) the assertion.
func (c *crafted) assertion(t *testing.T) string {
	a := `<saml:Assertion xmlns:saml="` + saml.NSAssertion + `" ID="_a` + c.request + `" Version="2.0" IssueInstant="` +
		c.a.IssueInstant + `">` + c.a.Issuer + c.a.Subject + c.a.Conditions + c.a.Authn + `</saml:Assertion>`
	if c.signA {
		a = c.sign(t, a)
	}
	return a
}

// document renders the whole Response.
func (c *crafted) document(t *testing.T) string {
	t.Helper()
	a := c.raw
	if a == "" {
		a = c.assertion(t)
		if c.encrypt != nil {
			a = `<saml:EncryptedAssertion>` + samltest.Encrypt(t, c.b.sp.opts.Signer.Cert, []byte(a), *c.encrypt) + `</saml:EncryptedAssertion>`
		}
	}
	var attrs strings.Builder
	for _, k := range []string{"ID", "Version", "IssueInstant", "Destination", "InResponseTo"} {
		if v, ok := c.resp[k]; ok {
			fmt.Fprintf(&attrs, ` %s="%s"`, k, v)
		}
	}
	doc := `<samlp:Response xmlns:samlp="` + saml.NSProtocol + `" xmlns:saml="` + saml.NSAssertion + `"` + attrs.String() + `>` +
		`<saml:Issuer>` + craftIdP + `</saml:Issuer><samlp:Status><samlp:StatusCode Value="` + c.status + `"/></samlp:Status>` +
		a + `</samlp:Response>`
	if c.signResp {
		doc = c.sign(t, doc)
	}
	return doc
}

// post sends doc to the real ACS over HTTP and returns the status code
// and whether a bridge session cookie was set.
func (c *crafted) post(t *testing.T, doc string) (int, string) {
	t.Helper()
	form := url.Values{"SAMLResponse": {base64.StdEncoding.EncodeToString([]byte(doc))}, "RelayState": {c.relay}}
	resp := c.b.post(PathACS, "application/x-www-form-urlencoded", []byte(form.Encode()))
	body := readBody(t, resp)
	return resp.StatusCode, body
}

// TestACSChecksEveryCondition posts Responses to the real ACS over HTTP,
// one per condition of Profiles §4.1.4 the ACS must check itself, and
// the encrypted assertions that made crewjam panic before any signature
// was checked. Each is refused with a 400 page and creates no session;
// the valid ones (signed, encrypted CBC and GCM) log in.
func TestACSChecksEveryCondition(t *testing.T) {
	year := 365 * 24 * time.Hour
	cases := []struct {
		name   string
		skew   time.Duration
		mutate func(t *testing.T, c *crafted)
		ok     bool
	}{
		{name: "valid", ok: true},
		{name: "valid, Response signed too", mutate: func(t *testing.T, c *crafted) { c.signResp = true }, ok: true},
		{name: "valid, encrypted AES-128-CBC", mutate: func(t *testing.T, c *crafted) { c.encrypt = &samltest.Encryption{} }, ok: true},
		{name: "valid, encrypted AES-128-GCM", mutate: func(t *testing.T, c *crafted) { c.encrypt = &samltest.Encryption{Alg: samltest.AES128GCM} }, ok: true},
		{name: "Response IssueInstant a year ahead", mutate: func(t *testing.T, c *crafted) { c.resp["IssueInstant"] = ts(c.now.Add(year)) }},
		{name: "assertion IssueInstant a year ahead", mutate: func(t *testing.T, c *crafted) { c.a.IssueInstant = ts(c.now.Add(year)) }},
		{name: "SubjectConfirmationData NotBefore ahead", mutate: func(t *testing.T, c *crafted) {
			c.a.Subject = strings.Replace(c.a.Subject, `Recipient=`, `NotBefore="`+ts(c.now.Add(10*time.Minute))+`" Recipient=`, 1)
		}},
		{name: "no AudienceRestriction", mutate: func(t *testing.T, c *crafted) {
			c.a.Conditions = `<saml:Conditions NotBefore="` + ts(c.now.Add(-time.Minute)) + `" NotOnOrAfter="` + ts(c.now.Add(5*time.Minute)) + `"/>`
		}},
		{name: "a second AudienceRestriction not naming us", mutate: func(t *testing.T, c *crafted) {
			c.a.Conditions = strings.Replace(c.a.Conditions, `</saml:Conditions>`,
				`<saml:AudienceRestriction><saml:Audience>https://other.test</saml:Audience></saml:AudienceRestriction></saml:Conditions>`, 1)
		}},
		{name: "no bearer SubjectConfirmation", mutate: func(t *testing.T, c *crafted) {
			c.a.Subject = strings.Replace(c.a.Subject, "cm:bearer", "cm:holder-of-key", 1)
		}},
		{name: "no SubjectConfirmation", mutate: func(t *testing.T, c *crafted) {
			c.a.Subject = `<saml:Subject><saml:NameID>alice</saml:NameID></saml:Subject>`
		}},
		{name: "bearer Recipient elsewhere", mutate: func(t *testing.T, c *crafted) {
			c.a.Subject = strings.Replace(c.a.Subject, `Recipient="`, `Recipient="https://evil.test/acs#`, 1)
		}},
		{name: "no Conditions", mutate: func(t *testing.T, c *crafted) { c.a.Conditions = "" }},
		{name: "no Subject", mutate: func(t *testing.T, c *crafted) { c.a.Subject = "" }},
		{name: "no AuthnStatement", mutate: func(t *testing.T, c *crafted) { c.a.Authn = "" }},
		{name: "assertion Issuer of another IdP", mutate: func(t *testing.T, c *crafted) {
			c.a.Issuer = `<saml:Issuer>https://evil.test</saml:Issuer>`
		}},
		{name: "unsigned assertion in a signed Response", mutate: func(t *testing.T, c *crafted) { c.signA, c.signResp = false, true }},
		{name: "signed Response without Destination", mutate: func(t *testing.T, c *crafted) {
			c.signResp = true
			delete(c.resp, "Destination")
		}},
		{name: "Response not Success", mutate: func(t *testing.T, c *crafted) { c.status = saml.StatusResponder }},
		{name: "Conditions NotOnOrAfter passed beyond clock_skew 10s", skew: 10 * time.Second, mutate: func(t *testing.T, c *crafted) {
			c.a.Conditions = strings.Replace(c.a.Conditions, `NotOnOrAfter="`+ts(c.now.Add(5*time.Minute)), `NotOnOrAfter="`+ts(c.now.Add(-60*time.Second)), 1)
		}},
		{name: "Conditions NotBefore beyond clock_skew 10s", skew: 10 * time.Second, mutate: func(t *testing.T, c *crafted) {
			c.a.Conditions = strings.Replace(c.a.Conditions, `NotBefore="`+ts(c.now.Add(-time.Minute)), `NotBefore="`+ts(c.now.Add(60*time.Second)), 1)
		}},
		{name: "Conditions NotBefore within clock_skew 10s", skew: 10 * time.Second, ok: true, mutate: func(t *testing.T, c *crafted) {
			c.a.Conditions = strings.Replace(c.a.Conditions, `NotBefore="`+ts(c.now.Add(-time.Minute)), `NotBefore="`+ts(c.now.Add(5*time.Second)), 1)
		}},
	}
	for name, enc := range samltest.Crafted() {
		cases = append(cases, struct {
			name   string
			skew   time.Duration
			mutate func(t *testing.T, c *crafted)
			ok     bool
		}{name: "unsigned Response, EncryptedAssertion " + name, mutate: func(t *testing.T, c *crafted) {
			c.signA = false
			c.encrypt = &enc
		}})
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			c := startCrafted(t, tc.skew)
			if tc.mutate != nil {
				tc.mutate(t, c)
			}
			code, body := c.post(t, c.document(t))
			if tc.ok {
				if code != http.StatusSeeOther {
					t.Fatalf("valid Response answered %d, want 303: %s", code, body)
				}
				return
			}
			if code != http.StatusBadRequest {
				t.Fatalf("answered %d, want 400: %s", code, body)
			}
			if n := c.b.sessions(); n != 0 {
				t.Fatalf("%d sessions created by a refused Response", n)
			}
		})
	}
}

// TestACSDecryptsXMLSecAssertion: an IdP that encrypts with xmlsec1
// (pysaml2's default) writes <ns0:EncryptedData xmlns:ns0="…xmlenc#">
// inside a Response whose root binds ns0 to the SAML protocol namespace;
// legal XML (Namespaces in XML §6.1) that crewjam misread. The assertion
// is encrypted by the real xmlsec1 with AES-128-CBC and RSA-OAEP, as our
// metadata advertises, and the login succeeds.
func TestACSDecryptsXMLSecAssertion(t *testing.T) {
	xmlsec := samltest.RequireTool(t, "xmlsec1")
	c := startCrafted(t, 0)
	dir := t.TempDir()
	plain := filepath.Join(dir, "assertion.xml")
	if err := os.WriteFile(plain, []byte(c.assertion(t)), 0o600); err != nil {
		t.Fatal(err)
	}
	tmpl := filepath.Join(dir, "template.xml")
	if err := os.WriteFile(tmpl, []byte(`<ns0:EncryptedData xmlns:ns0="http://www.w3.org/2001/04/xmlenc#" `+
		`Type="http://www.w3.org/2001/04/xmlenc#Element"><ns0:EncryptionMethod Algorithm="http://www.w3.org/2001/04/xmlenc#aes128-cbc"/>`+
		`<ns1:KeyInfo xmlns:ns1="http://www.w3.org/2000/09/xmldsig#"><ns0:EncryptedKey><ns0:EncryptionMethod `+
		`Algorithm="http://www.w3.org/2001/04/xmlenc#rsa-oaep-mgf1p"/><ns0:CipherData><ns0:CipherValue/></ns0:CipherData>`+
		`</ns0:EncryptedKey></ns1:KeyInfo><ns0:CipherData><ns0:CipherValue/></ns0:CipherData></ns0:EncryptedData>`), 0o600); err != nil {
		t.Fatal(err)
	}
	out, err := exec.Command(xmlsec, "--encrypt", "--pubkey-cert-pem", filepath.Join("..", "testdata", "sp.crt"),
		"--session-key", "aes-128", "--xml-data", plain, tmpl).Output()
	if err != nil {
		t.Fatalf("xmlsec1 --encrypt: %v", err)
	}
	enc := string(out)
	if i := strings.Index(enc, "?>"); strings.HasPrefix(enc, "<?xml") && i > 0 {
		enc = enc[i+2:]
	}
	var attrs strings.Builder
	for _, k := range []string{"ID", "Version", "IssueInstant", "Destination", "InResponseTo"} {
		fmt.Fprintf(&attrs, ` %s="%s"`, k, c.resp[k])
	}
	doc := `<ns0:Response xmlns:ns0="` + saml.NSProtocol + `" xmlns:ns1="` + saml.NSAssertion + `"` + attrs.String() + `>` +
		`<ns1:Issuer>` + craftIdP + `</ns1:Issuer><ns0:Status><ns0:StatusCode Value="` + saml.StatusSuccess + `"/></ns0:Status>` +
		`<ns1:EncryptedAssertion>` + strings.TrimSpace(enc) + `</ns1:EncryptedAssertion></ns0:Response>`
	if code, body := c.post(t, doc); code != http.StatusSeeOther {
		t.Fatalf("xmlsec1-encrypted assertion answered %d, want 303: %s", code, body)
	}
	if n := c.b.sessions(); n != 1 {
		t.Fatalf("%d sessions after the login, want 1", n)
	}
}

// sessions counts the bridge's active sessions.
func (b *bridge) sessions() int {
	b.t.Helper()
	n, err := b.st.CountActiveSessions(b.t.Context(), time.Now())
	if err != nil {
		b.t.Fatal(err)
	}
	return n
}
