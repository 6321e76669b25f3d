package idp

import (
	"context"
	"crypto/x509"
	"encoding/base64"
	"encoding/xml"
	"io"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"testing"
	"time"

	"github.com/beevik/etree"
	"github.com/crewjam/saml"
	saml2 "github.com/russellhaering/gosaml2"
	dsig "github.com/russellhaering/goxmldsig"

	bsaml "github.com/slobridge/slobridge/saml"
	"github.com/slobridge/slobridge/saml/internal/samltest"
)

// ssoSP writes the metadata of an SP with a fixed entity ID, signed
// AuthnRequests and two HTTP-POST ACS endpoints (index 1 default, 2).
func ssoSP(t testing.TB, dir, name string, nameIDFormats ...string) (string, string) {
	t.Helper()
	var formats []saml.NameIDFormat
	for _, f := range nameIDFormats {
		formats = append(formats, saml.NameIDFormat(f))
	}
	yes := true
	entity := "https://" + name + ".slobridge.test/metadata"
	cert := testSigner(t, "sp2").Cert
	ed := saml.EntityDescriptor{
		EntityID: entity,
		SPSSODescriptors: []saml.SPSSODescriptor{{
			SSODescriptor: saml.SSODescriptor{RoleDescriptor: saml.RoleDescriptor{
				ProtocolSupportEnumeration: bsaml.NSProtocol,
				KeyDescriptors: []saml.KeyDescriptor{{Use: "signing", KeyInfo: saml.KeyInfo{X509Data: saml.X509Data{
					X509Certificates: []saml.X509Certificate{{Data: base64.StdEncoding.EncodeToString(cert.Raw)}}}}}},
			}, NameIDFormats: formats},
			AuthnRequestsSigned: &yes,
			AssertionConsumerServices: []saml.IndexedEndpoint{
				{Binding: URIPOST, Location: "https://" + name + ".slobridge.test/acs", Index: 1, IsDefault: &yes},
				{Binding: URIPOST, Location: "https://" + name + ".slobridge.test/acs2", Index: 2},
			},
		}},
	}
	b, err := xml.Marshal(ed)
	if err != nil {
		t.Fatal(err)
	}
	f := filepath.Join(dir, name+".xml")
	if err := os.WriteFile(f, b, 0o600); err != nil {
		t.Fatal(err)
	}
	return entity, f
}

// authnReq describes an AuthnRequest the test sends.
type authnReq struct {
	sp, acs, acsIndex, nameIDFormat string
	forceAuthn, isPassive           bool
	// post sends it by HTTP-POST with an enveloped signature instead of
	// HTTP-Redirect with a query signature.
	post bool
}

func (a authnReq) element(id, dest string) *etree.Element {
	el := etree.NewElement("samlp:AuthnRequest")
	el.CreateAttr("xmlns:samlp", bsaml.NSProtocol)
	el.CreateAttr("xmlns:saml", bsaml.NSAssertion)
	el.CreateAttr("ID", id)
	el.CreateAttr("Version", "2.0")
	el.CreateAttr("IssueInstant", time.Now().UTC().Format(time.RFC3339))
	el.CreateAttr("Destination", dest)
	if a.acs != "" {
		el.CreateAttr("AssertionConsumerServiceURL", a.acs)
		el.CreateAttr("ProtocolBinding", URIPOST)
	}
	if a.acsIndex != "" {
		el.CreateAttr("AssertionConsumerServiceIndex", a.acsIndex)
	}
	if a.forceAuthn {
		el.CreateAttr("ForceAuthn", "true")
	}
	if a.isPassive {
		el.CreateAttr("IsPassive", "true")
	}
	el.CreateElement("saml:Issuer").SetText(a.sp)
	if a.nameIDFormat != "" {
		el.CreateElement("samlp:NameIDPolicy").CreateAttr("Format", a.nameIDFormat)
	}
	return el
}

// ssoAnswer is the bridge's answer to one AuthnRequest.
type ssoAnswer struct {
	acs, relayState, status, sub string
	info                         *saml2.AssertionInfo
	infoErr                      error
	// xml is the Response document.
	xml []byte
}

// sso sends a signed HTTP-Redirect AuthnRequest with client c, follows the
// login, and reads the auto-POST answer; a Success response is validated
// by gosaml2 as the SP would.
func sso(t *testing.T, b *bridge, c *http.Client, a authnReq, n int) ssoAnswer {
	t.Helper()
	el := a.element("_sso-"+strconv.Itoa(n), b.idp.endpoint(PathSSO))
	relay := "relay-" + strconv.Itoa(n)
	var resp *http.Response
	var err error
	if a.post {
		signed, serr := testSigner(t, "sp2").SignEnveloped(el)
		if serr != nil {
			t.Fatal(serr)
		}
		v, _ := bsaml.POSTValue(signed)
		resp, err = c.PostForm(b.srv.URL+PathSSO, url.Values{"SAMLRequest": {v}, "RelayState": {relay}})
	} else {
		var u string
		if u, err = bsaml.RedirectURL(b.srv.URL+PathSSO, bsaml.ParamRequest, el, relay, testSigner(t, "sp2")); err != nil {
			t.Fatal(err)
		}
		resp, err = c.Get(u)
	}
	if err != nil {
		t.Fatal(err)
	}
	page, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	action, form, err := parseForm(string(page))
	if err != nil {
		t.Fatalf("HTTP %d: %v", resp.StatusCode, err)
	}
	ans := ssoAnswer{acs: action, relayState: form.Get("RelayState")}
	raw, err := base64.StdEncoding.DecodeString(form.Get("SAMLResponse"))
	if err != nil {
		t.Fatal(err)
	}
	ans.xml = raw
	doc := etree.NewDocument()
	if err := doc.ReadFromBytes(raw); err != nil {
		t.Fatal(err)
	}
	top := doc.FindElement("//Status/StatusCode")
	ans.status = top.SelectAttrValue("Value", "")
	if s := top.FindElement("StatusCode"); s != nil {
		ans.sub = s.SelectAttrValue("Value", "")
	}
	if ans.status == bsaml.StatusSuccess {
		sp := &saml2.SAMLServiceProvider{
			IdentityProviderIssuer:      b.idp.EntityID(),
			AssertionConsumerServiceURL: action,
			ServiceProviderIssuer:       a.sp,
			AudienceURI:                 a.sp,
			IDPCertificateStore:         &dsig.MemoryX509CertificateStore{Roots: []*x509.Certificate{testSigner(t, "idp").Cert}},
		}
		ans.info, ans.infoErr = sp.RetrieveAssertionInfo(form.Get("SAMLResponse"))
	}
	return ans
}

// TestSSO covers both request bindings, the AuthnRequest options and NameID policies, each answer
// checked by gosaml2: pairwise persistent, email and transient NameIDs; a
// second login of the same SP in the same session gets the same NameID and
// SessionIndex; ACS by URL, by index and by default; ForceAuthn logs in
// again; IsPassive without a session and a NameIDPolicy the SP is not
// configured for get SAML error responses.
func TestSSO(t *testing.T) {
	dir := t.TempDir()
	pers, pf := ssoSP(t, dir, "persistent")
	mail, mf := ssoSP(t, dir, "email")
	trans, tf := ssoSP(t, dir, "transient")
	b := newBridge(t, bridgeOpts{cfg: Config{ServiceProviders: []SPConfig{
		{MetadataFile: pf}, {MetadataFile: mf, NameID: NameIDEmail}, {MetadataFile: tf, NameID: NameIDTransient},
	}}})
	c := newBrowserlessClient()

	passive := sso(t, b, c, authnReq{sp: pers, isPassive: true}, 0)
	if passive.status != bsaml.StatusResponder || passive.sub != statusNoPassive || passive.acs != "https://persistent.slobridge.test/acs" {
		t.Fatalf("IsPassive without a session: %+v, want Responder/NoPassive at the default ACS", passive)
	}
	if n := b.auth.logins.Load(); n != 0 {
		t.Fatalf("IsPassive caused %d logins", n)
	}

	first := sso(t, b, c, authnReq{sp: pers, acs: "https://persistent.slobridge.test/acs2"}, 1)
	if first.infoErr != nil || first.acs != "https://persistent.slobridge.test/acs2" || first.relayState != "relay-1" {
		t.Fatalf("first login: %+v", first)
	}
	s := first.info
	if s.NameIDFormat != FormatPersistent || s.NameID != b.idp.pairwise("alice", pers) || s.SessionIndex == "" ||
		s.SessionNotOnOrAfter == nil || s.Values.Get("email") != "alice@example.com" {
		t.Fatalf("persistent assertion: NameID %q (%s) SI %q SessionNotOnOrAfter %v", s.NameID, s.NameIDFormat, s.SessionIndex, s.SessionNotOnOrAfter)
	}
	checkAssertionSignature(t, first.xml)
	sess := sessionOf(t, b)
	if !s.SessionNotOnOrAfter.Equal(sess.ExpiresAt.UTC().Truncate(time.Millisecond)) {
		t.Errorf("SessionNotOnOrAfter %v, want the session expiry %v", s.SessionNotOnOrAfter, sess.ExpiresAt)
	}

	again := sso(t, b, c, authnReq{sp: pers, acsIndex: "1"}, 2)
	if again.infoErr != nil || again.acs != "https://persistent.slobridge.test/acs" ||
		again.info.NameID != s.NameID || again.info.SessionIndex != s.SessionIndex {
		t.Fatalf("second login of the same SP: %+v, want the same NameID and SessionIndex at ACS index 1", again)
	}

	em := sso(t, b, c, authnReq{sp: mail, nameIDFormat: FormatEmail, post: true}, 3)
	if em.infoErr != nil || em.relayState != "relay-3" || em.info.NameID != "alice@example.com" || em.info.NameIDFormat != FormatEmail ||
		em.info.SessionIndex == s.SessionIndex {
		t.Fatalf("email login: %+v (%v)", em.info, em.infoErr)
	}
	tr := sso(t, b, c, authnReq{sp: trans}, 4)
	if tr.infoErr != nil || tr.info.NameIDFormat != FormatTransient || tr.info.NameID == "" || tr.info.NameID == s.NameID {
		t.Fatalf("transient login: %+v (%v)", tr.info, tr.infoErr)
	}
	if n := b.auth.logins.Load(); n != 1 {
		t.Fatalf("upstream logins = %d, want 1", n)
	}

	policy := sso(t, b, c, authnReq{sp: mail, nameIDFormat: FormatPersistent}, 5)
	if policy.status != bsaml.StatusRequester || policy.sub != statusInvalidNameIDPolicy {
		t.Fatalf("NameIDPolicy mismatch: %+v, want Requester/InvalidNameIDPolicy", policy)
	}

	forced := sso(t, b, c, authnReq{sp: pers, forceAuthn: true}, 6)
	if forced.infoErr != nil || b.auth.logins.Load() != 2 {
		t.Fatalf("ForceAuthn: %v, %d logins, want a second upstream login", forced.infoErr, b.auth.logins.Load())
	}
}

// sessionOf returns alice's first session.
func sessionOf(t *testing.T, b *bridge) sessionView {
	t.Helper()
	ss, err := b.st.ListSessionsByUser(context.Background(), "alice")
	if err != nil || len(ss) == 0 {
		t.Fatalf("sessions: %v %v", ss, err)
	}
	return sessionView{ExpiresAt: ss[0].ExpiresAt}
}

type sessionView struct{ ExpiresAt time.Time }

// checkAssertionSignature: the assertion is signed with RSA-SHA256 (not
// crewjam's RSA-SHA1 default), and xmlsec1 verifies it with the bridge's
// certificate.
func checkAssertionSignature(t *testing.T, response []byte) {
	t.Helper()
	doc := etree.NewDocument()
	if err := doc.ReadFromBytes(response); err != nil {
		t.Fatal(err)
	}
	sm := doc.FindElement("//Assertion/Signature/SignedInfo/SignatureMethod")
	if sm == nil || sm.SelectAttrValue("Algorithm", "") != bsaml.SigAlgRSASHA256 {
		t.Fatalf("assertion SignatureMethod %v, want RSA-SHA256", sm)
	}
	xmlsec := samltest.RequireTool(t, "xmlsec1")
	f := filepath.Join(t.TempDir(), "response.xml")
	if err := os.WriteFile(f, response, 0o600); err != nil {
		t.Fatal(err)
	}
	out, err := exec.Command(xmlsec, "--verify", "--pubkey-cert-pem", filepath.Join("testdata", "idp.crt"),
		"--id-attr:ID", "urn:oasis:names:tc:SAML:2.0:assertion:Assertion", f).CombinedOutput()
	if err != nil {
		t.Fatalf("xmlsec1 --verify of the assertion: %v: %s", err, out)
	}
}

// TestSSONameIDFromSP: an SP registered without name_id gets the NameID
// format it asks for, as Apache mod_auth_mellon does (its metadata lists
// transient first and its AuthnRequests ask for it): its metadata sets the
// default (transient here), an AuthnRequest may ask for another format the
// bridge issues, and one it does not issue is refused. An SP registered
// with an explicit name_id keeps it strictly.
func TestSSONameIDFromSP(t *testing.T) {
	dir := t.TempDir()
	mellon, mf := ssoSP(t, dir, "mellon", FormatTransient, FormatPersistent)
	strict, sf := ssoSP(t, dir, "strict", FormatTransient)
	b := newBridge(t, bridgeOpts{cfg: Config{ServiceProviders: []SPConfig{
		{MetadataFile: mf}, {MetadataFile: sf, NameID: NameIDPersistent},
	}}})
	sp, err := b.idp.ServiceProvider(context.Background(), mellon)
	if err != nil || sp.NameIDPolicy != NameIDTransient {
		t.Fatalf("policy of the mellon-like SP: %+v (%v), want transient from its metadata", sp, err)
	}
	c := newBrowserlessClient()
	tr := sso(t, b, c, authnReq{sp: mellon, nameIDFormat: FormatTransient}, 1)
	if tr.infoErr != nil || tr.info.NameIDFormat != FormatTransient || tr.info.NameID == "" {
		t.Fatalf("transient asked, default registration: %+v (%v)", tr, tr.infoErr)
	}
	unspecified := sso(t, b, c, authnReq{sp: mellon}, 2)
	if unspecified.infoErr != nil || unspecified.info.NameIDFormat != FormatTransient {
		t.Fatalf("no format asked: %+v (%v), want the metadata's transient", unspecified, unspecified.infoErr)
	}
	unknown := sso(t, b, c, authnReq{sp: mellon, nameIDFormat: "urn:oasis:names:tc:SAML:1.1:nameid-format:X509SubjectName"}, 3)
	if unknown.status != bsaml.StatusRequester || unknown.sub != statusInvalidNameIDPolicy {
		t.Fatalf("a format the bridge does not issue: %+v, want Requester/InvalidNameIDPolicy", unknown)
	}
	pinned := sso(t, b, c, authnReq{sp: strict, nameIDFormat: FormatTransient}, 4)
	if pinned.status != bsaml.StatusRequester || pinned.sub != statusInvalidNameIDPolicy {
		t.Fatalf("explicit name_id persistent, transient asked: %+v, want Requester/InvalidNameIDPolicy", pinned)
	}
}
