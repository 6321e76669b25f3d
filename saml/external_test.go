package saml

import (
	"crypto/ecdsa"
	"crypto/x509"
	"os"
	"os/exec"
	"path/filepath"
	"testing"

	"github.com/beevik/etree"
)

// requireTool returns the path of an external verifier, skipping the test
// when it is missing — except under CI=true, where a missing tool fails.
func requireTool(t *testing.T, name string) string {
	t.Helper()
	p, err := exec.LookPath(name)
	if err != nil {
		if os.Getenv("CI") == "true" {
			t.Fatalf("%s is required under CI (apt-get install %s)", name, name)
		}
		t.Skipf("%s not installed; install the Debian package %s to run this test", name, name)
	}
	return p
}

// XMLSecVerify checks an enveloped signature with xmlsec1, an
// implementation independent of ours. idAttrNode is the element whose ID
// attribute the Reference points at, e.g. "LogoutRequest".
func xmlsecVerify(t *testing.T, el *etree.Element, certFile, idAttrNode string) {
	t.Helper()
	bin := requireTool(t, "xmlsec1")
	doc := etree.NewDocument()
	doc.SetRoot(el.Copy())
	f := filepath.Join(t.TempDir(), "signed.xml")
	if err := doc.WriteToFile(f); err != nil {
		t.Fatal(err)
	}
	out, err := exec.Command(bin, "--verify", "--pubkey-cert-pem", certFile,
		"--id-attr:ID", NSProtocol+":"+idAttrNode, f).CombinedOutput()
	if err != nil {
		t.Fatalf("xmlsec1 --verify: %v\n%s", err, out)
	}
}

func TestXMLSecVerifiesOurSignatures(t *testing.T) {
	req := sampleRequest("_x1")
	for _, key := range []string{"sp", "idp-ec"} {
		t.Run(key, func(t *testing.T) {
			signed, err := testSigner(t, key).SignEnveloped(req.Element())
			if err != nil {
				t.Fatal(err)
			}
			xmlsecVerify(t, signed, filepath.Join("testdata", key+".crt"), "LogoutRequest")
		})
	}
	t.Run("response", func(t *testing.T) {
		resp := &LogoutResponse{ID: "_x2", InResponseTo: "_x1", IssueInstant: t0, Destination: spSLO, Issuer: spEntity,
			Status: StatusSuccess, SubStatus: StatusPartialLogout}
		signed, err := testSigner(t, "sp").SignEnveloped(resp.Element())
		if err != nil {
			t.Fatal(err)
		}
		xmlsecVerify(t, signed, filepath.Join("testdata", "sp.crt"), "LogoutResponse")
	})
}

// TestXMLSecSignedVerifiesHere checks the other direction: a signature
// made by xmlsec1 verifies with VerifyEnveloped.
func TestXMLSecSignedVerifiesHere(t *testing.T) {
	bin := requireTool(t, "xmlsec1")
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
	doc := etree.NewDocument()
	doc.SetRoot(el)
	dir := t.TempDir()
	in, out := filepath.Join(dir, "tmpl.xml"), filepath.Join(dir, "signed.xml")
	if err := doc.WriteToFile(in); err != nil {
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

// OpenSSLVerifyRedirect checks a Redirect-binding query signature with
// `openssl dgst -sha256 -verify` over the octets Bindings §3.4.4.1
// defines, taken from the raw query string.
func OpenSSLVerifyRedirect(t *testing.T, rawQuery, certFile string) {
	t.Helper()
	bin := requireTool(t, "openssl")
	m, err := DecodeRedirect(rawQuery, Limits{})
	if err != nil {
		t.Fatal(err)
	}
	if len(m.Signature) == 0 {
		t.Fatal("query has no Signature")
	}
	dir := t.TempDir()
	pub, octets, sig := filepath.Join(dir, "pub.pem"), filepath.Join(dir, "octets"), filepath.Join(dir, "sig")
	if out, err := exec.Command(bin, "x509", "-in", certFile, "-pubkey", "-noout", "-out", pub).CombinedOutput(); err != nil {
		t.Fatalf("openssl x509: %v\n%s", err, out)
	}
	raw := m.Signature
	if m.SigAlg == SigAlgECDSASHA256 {
		raw = rawToDER(raw, mustCert(t, certFile).PublicKey.(*ecdsa.PublicKey))
	}
	if err := os.WriteFile(octets, m.SignedOctets, 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(sig, raw, 0o600); err != nil {
		t.Fatal(err)
	}
	out, err := exec.Command(bin, "dgst", "-sha256", "-verify", pub, "-signature", sig, octets).CombinedOutput()
	if err != nil {
		t.Fatalf("openssl dgst -verify: %v\n%s", err, out)
	}
}

func mustCert(t *testing.T, file string) *x509.Certificate {
	t.Helper()
	data, err := os.ReadFile(file)
	if err != nil {
		t.Fatal(err)
	}
	cs, err := ParseCertificatesPEM(data)
	if err != nil {
		t.Fatal(err)
	}
	return cs[0]
}

func TestOpenSSLVerifiesRedirect(t *testing.T) {
	for _, key := range []string{"sp", "idp-ec"} {
		t.Run(key, func(t *testing.T) {
			u, err := RedirectURL(spSLO, ParamRequest, sampleRequest("_o1").Element(), "relay/state+1", testSigner(t, key))
			if err != nil {
				t.Fatal(err)
			}
			OpenSSLVerifyRedirect(t, queryOf(t, u), filepath.Join("testdata", key+".crt"))
		})
	}
}
