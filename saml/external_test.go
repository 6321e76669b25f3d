package saml

import (
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"github.com/beevik/etree"

	"github.com/slobridge/slobridge/saml/internal/samltest"
)

func docBytes(t *testing.T, el *etree.Element) []byte {
	t.Helper()
	doc := etree.NewDocument()
	doc.SetRoot(el.Copy())
	b, err := doc.WriteToBytes()
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func TestXMLSecVerifiesOurSignatures(t *testing.T) {
	req := sampleRequest("_x1")
	for _, key := range []string{"sp", "idp-ec"} {
		t.Run(key, func(t *testing.T) {
			signed, err := testSigner(t, key).SignEnveloped(req.Element())
			if err != nil {
				t.Fatal(err)
			}
			samltest.XMLSecVerify(t, docBytes(t, signed), filepath.Join("testdata", key+".crt"), NSProtocol+":LogoutRequest")
		})
	}
	t.Run("response", func(t *testing.T) {
		resp := &LogoutResponse{ID: "_x2", InResponseTo: "_x1", IssueInstant: t0, Destination: spSLO, Issuer: spEntity,
			Status: StatusSuccess, SubStatus: StatusPartialLogout}
		signed, err := testSigner(t, "sp").SignEnveloped(resp.Element())
		if err != nil {
			t.Fatal(err)
		}
		samltest.XMLSecVerify(t, docBytes(t, signed), filepath.Join("testdata", "sp.crt"), NSProtocol+":LogoutResponse")
	})
}

// TestXMLSecSignedVerifiesHere checks the other direction: a signature
// made by xmlsec1 verifies with VerifyEnveloped.
func TestXMLSecSignedVerifiesHere(t *testing.T) {
	bin := samltest.RequireTool(t, "xmlsec1")
	el := sampleRequest("_x3").Element()
	tmpl := etree.NewElement("ds:Signature")
	tmpl.CreateAttr("xmlns:ds", NSDSig)
	si := tmpl.CreateElement("ds:SignedInfo")
	si.CreateElement("ds:CanonicalizationMethod").CreateAttr("Algorithm", "http://www.w3.org/2001/10/xml-exc-c14n#")
	si.CreateElement("ds:SignatureMethod").CreateAttr("Algorithm", SigAlgRSASHA256)
	ref := si.CreateElement("ds:Reference")
	ref.CreateAttr("URI", "#_x3")
	tr := ref.CreateElement("ds:Transforms")
	tr.CreateElement("ds:Transform").CreateAttr("Algorithm", "http://www.w3.org/2000/09/xmldsig#enveloped-signature")
	tr.CreateElement("ds:Transform").CreateAttr("Algorithm", "http://www.w3.org/2001/10/xml-exc-c14n#")
	ref.CreateElement("ds:DigestMethod").CreateAttr("Algorithm", digestSHA256)
	ref.CreateElement("ds:DigestValue")
	tmpl.CreateElement("ds:SignatureValue")
	el.InsertChildAt(1, tmpl)
	dir := t.TempDir()
	in, out := filepath.Join(dir, "tmpl.xml"), filepath.Join(dir, "signed.xml")
	if err := os.WriteFile(in, docBytes(t, el), 0o600); err != nil {
		t.Fatal(err)
	}
	msg, err := exec.Command(bin, "--sign", "--privkey-pem", filepath.Join("testdata", "idp.key"),
		"--id-attr:ID", NSProtocol+":LogoutRequest", "--output", out, in).CombinedOutput()
	if err != nil {
		t.Fatalf("xmlsec1 --sign: %v\n%s", err, msg)
	}
	data, err := os.ReadFile(out)
	if err != nil {
		t.Fatal(err)
	}
	signed, err := parseXML(data)
	if err != nil {
		t.Fatal(err)
	}
	got, err := VerifyEnveloped(signed.Root(), testTrust(t, idpEntity, "idp"))
	if err != nil {
		t.Fatalf("xmlsec1 signature not verified: %v", err)
	}
	if r, err := ParseLogoutRequest(got); err != nil || r.NameID.Value != "alice@example.com" {
		t.Fatalf("parse verified element: %v", err)
	}
}

func TestOpenSSLVerifiesRedirect(t *testing.T) {
	for _, key := range []string{"sp", "idp-ec"} {
		t.Run(key, func(t *testing.T) {
			u, err := RedirectURL(spSLO, ParamRequest, sampleRequest("_o1").Element(), "relay/state+1", testSigner(t, key))
			if err != nil {
				t.Fatal(err)
			}
			m, err := DecodeRedirect(queryOf(t, u), Limits{})
			if err != nil {
				t.Fatal(err)
			}
			samltest.OpenSSLVerify(t, m.SignedOctets, m.Signature, filepath.Join("testdata", key+".crt"))
		})
	}
}

// TestXMLSecSignedVariants: signatures that xmlsec1 (the reference
// implementation many IdPs and SPs build on) makes in the shapes deployed
// peers send verify here: an InclusiveNamespaces PrefixList on the
// Reference's canonicalization (Shibboleth) or on SignedInfo's as well
// (which goxmldsig alone does not verify), inclusive C14N, RSA-SHA512
// with a SHA-512 digest, a KeyInfo with the certificate. SHA-1 is still
// refused.
func TestXMLSecSignedVariants(t *testing.T) {
	bin := samltest.RequireTool(t, "xmlsec1")
	for _, tc := range []struct {
		name, c14n, prefixes, sigAlg, digest string
		keyInfo, signedInfoPrefixes          bool
		ok                                   bool
	}{
		// Some XML-DSig stacks put one on SignedInfo's canonicalization
		// too; "saml" and "samlp" are in scope there.
		{name: "PrefixList on SignedInfo too", c14n: excC14N, prefixes: "xs saml samlp", sigAlg: SigAlgRSASHA256, digest: digestSHA256,
			signedInfoPrefixes: true, ok: true},
		{name: "PrefixList on SignedInfo, rsa-sha512", c14n: excC14N, prefixes: "samlp", sigAlg: SigAlgRSASHA512, digest: digestSHA512,
			signedInfoPrefixes: true, ok: true},
		{name: "PrefixList on SignedInfo, sha1", c14n: excC14N, prefixes: "samlp", sigAlg: SigAlgRSASHA1, digest: digestSHA1,
			signedInfoPrefixes: true},
		// OpenSAML (Shibboleth) puts an InclusiveNamespaces PrefixList on
		// the Reference's transform.
		{name: "exclusive with PrefixList", c14n: excC14N, prefixes: "xs saml", sigAlg: SigAlgRSASHA256, digest: digestSHA256, ok: true},
		{name: "inclusive 1.0", c14n: "http://www.w3.org/TR/2001/REC-xml-c14n-20010315", sigAlg: SigAlgRSASHA256, digest: digestSHA256, ok: true},
		{name: "rsa-sha512", c14n: excC14N, sigAlg: SigAlgRSASHA512, digest: digestSHA512, ok: true},
		{name: "with KeyInfo", c14n: excC14N, sigAlg: SigAlgRSASHA256, digest: digestSHA256, keyInfo: true, ok: true},
		{name: "rsa-sha1", c14n: excC14N, sigAlg: SigAlgRSASHA1, digest: digestSHA1},
	} {
		t.Run(tc.name, func(t *testing.T) {
			data := xmlsecSign(t, bin, xmlsecVariant{c14n: tc.c14n, prefixes: tc.prefixes, sigAlg: tc.sigAlg, digest: tc.digest,
				keyInfo: tc.keyInfo, signedInfoPrefixes: tc.signedInfoPrefixes})
			signed, err := parseXML(data)
			if err != nil {
				t.Fatal(err)
			}
			got, err := VerifyEnveloped(signed.Root(), testTrust(t, idpEntity, "idp"))
			if !tc.ok {
				if !errors.Is(err, ErrSignature) {
					t.Fatalf("VerifyEnveloped = %v, want ErrSignature", err)
				}
				return
			}
			if err != nil {
				t.Fatalf("xmlsec1 signature not verified: %v\n%s", err, data)
			}
			if r, err := ParseLogoutRequest(got); err != nil || r.NameID.Value != "alice@example.com" {
				t.Fatalf("parse verified element: %v", err)
			}
		})
	}
}

const excC14N = "http://www.w3.org/2001/10/xml-exc-c14n#"

// xmlsecVariant is the shape of a signature xmlsecSign makes.
type xmlsecVariant struct {
	c14n, prefixes, sigAlg, digest string
	keyInfo, signedInfoPrefixes    bool
}

// xmlsecSign signs sampleRequest("_xv1") with testdata/idp.key by
// xmlsec1 from a template of shape v and returns the signed document.
func xmlsecSign(t *testing.T, bin string, v xmlsecVariant) []byte {
	t.Helper()
	el := sampleRequest("_xv1").Element()
	tmpl := etree.NewElement("ds:Signature")
	tmpl.CreateAttr("xmlns:ds", NSDSig)
	si := tmpl.CreateElement("ds:SignedInfo")
	c14n := func(parent *etree.Element, tag string) {
		m := parent.CreateElement(tag)
		m.CreateAttr("Algorithm", v.c14n)
		if v.prefixes != "" && (tag == "ds:Transform" || v.signedInfoPrefixes) {
			in := m.CreateElement("ec:InclusiveNamespaces")
			in.CreateAttr("xmlns:ec", excC14N)
			in.CreateAttr("PrefixList", v.prefixes)
		}
	}
	c14n(si, "ds:CanonicalizationMethod")
	si.CreateElement("ds:SignatureMethod").CreateAttr("Algorithm", v.sigAlg)
	ref := si.CreateElement("ds:Reference")
	ref.CreateAttr("URI", "#_xv1")
	tr := ref.CreateElement("ds:Transforms")
	tr.CreateElement("ds:Transform").CreateAttr("Algorithm", "http://www.w3.org/2000/09/xmldsig#enveloped-signature")
	c14n(tr, "ds:Transform")
	ref.CreateElement("ds:DigestMethod").CreateAttr("Algorithm", v.digest)
	ref.CreateElement("ds:DigestValue")
	tmpl.CreateElement("ds:SignatureValue")
	if v.keyInfo {
		tmpl.CreateElement("ds:KeyInfo").CreateElement("ds:X509Data").CreateElement("ds:X509Certificate")
	}
	el.InsertChildAt(1, tmpl)
	dir := t.TempDir()
	in, out := filepath.Join(dir, "tmpl.xml"), filepath.Join(dir, "signed.xml")
	if err := os.WriteFile(in, docBytes(t, el), 0o600); err != nil {
		t.Fatal(err)
	}
	args := []string{"--sign", "--privkey-pem", filepath.Join("testdata", "idp.key")}
	if v.keyInfo {
		args[2] += "," + filepath.Join("testdata", "idp.crt")
	}
	args = append(args, "--id-attr:ID", NSProtocol+":LogoutRequest", "--output", out, in)
	if msg, err := exec.Command(bin, args...).CombinedOutput(); err != nil {
		t.Fatalf("xmlsec1 --sign: %v\n%s", err, msg)
	}
	data, err := os.ReadFile(out)
	if err != nil {
		t.Fatal(err)
	}
	return data
}

// TestPrefixListSignatureTampering: the verification of signatures whose
// SignedInfo carries a PrefixList (done here, not by goxmldsig) refuses a
// changed message, a changed SignedInfo (digest or PrefixList) and another
// key, and hands back only what was signed.
func TestPrefixListSignatureTampering(t *testing.T) {
	bin := samltest.RequireTool(t, "xmlsec1")
	good := string(xmlsecSign(t, bin, xmlsecVariant{c14n: excC14N, prefixes: "saml samlp", sigAlg: SigAlgRSASHA256,
		digest: digestSHA256, signedInfoPrefixes: true}))
	digest := regexp.MustCompile(`<ds:DigestValue>[^<]*</ds:DigestValue>`)
	for _, tc := range []struct {
		name   string
		doc    string
		trust  string
		wantOK bool
	}{
		{"genuine", good, "idp", true},
		{"NameID changed", strings.Replace(good, "alice@example.com", "carol@example.com", 1), "idp", false},
		{"SessionIndex added", strings.Replace(good, "<samlp:SessionIndex>_s2", "<samlp:SessionIndex>_s9</samlp:SessionIndex><samlp:SessionIndex>_s2", 1), "idp", false},
		{"DigestValue changed", digest.ReplaceAllString(good, "<ds:DigestValue>AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=</ds:DigestValue>"), "idp", false},
		{"PrefixList changed", strings.Replace(good, `PrefixList="saml samlp"`, `PrefixList="saml"`, 1), "idp", false},
		{"another key", good, "other", false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			doc, err := parseXML([]byte(tc.doc))
			if err != nil {
				t.Fatal(err)
			}
			got, err := VerifyEnveloped(doc.Root(), testTrust(t, idpEntity, tc.trust))
			if !tc.wantOK {
				if !errors.Is(err, ErrSignature) {
					t.Fatalf("VerifyEnveloped = %v, want ErrSignature", err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			r, err := ParseLogoutRequest(got)
			if err != nil || r.NameID.Value != "alice@example.com" || len(r.SessionIndexes) != 2 {
				t.Fatalf("verified element parses as %+v (%v)", r, err)
			}
		})
	}
}
