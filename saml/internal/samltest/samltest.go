// Package samltest holds test helpers shared by the SAML packages: checks
// of our signatures by independent tools (openssl, xmlsec1). It does not
// import package saml, so saml's own tests can use it.
package samltest

import (
	"crypto/ecdsa"
	"crypto/x509"
	"encoding/asn1"
	"encoding/pem"
	"math/big"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
)

// RequireTool returns the path of an external program, skipping the test
// when it is missing — except under CI=true, where a missing tool fails.
func RequireTool(t testing.TB, name string) string {
	t.Helper()
	p, err := exec.LookPath(name)
	if err != nil {
		if os.Getenv("CI") == "true" {
			t.Fatalf("%s is required under CI=true: install the Debian package %s", name, name)
		}
		t.Skipf("%s not installed; install the Debian package %s to run this test (required when CI=true)", name, name)
	}
	return p
}

// OpenSSLVerify checks sig over octets with `openssl dgst -sha256 -verify`
// and the public key of the PEM certificate certFile. An ECDSA signature in
// the XML Signature form (r||s) is converted to the DER openssl expects.
func OpenSSLVerify(t testing.TB, octets, sig []byte, certFile string) {
	t.Helper()
	bin := RequireTool(t, "openssl")
	dir := t.TempDir()
	pub, data, sigFile := filepath.Join(dir, "pub.pem"), filepath.Join(dir, "octets"), filepath.Join(dir, "sig")
	if out, err := exec.Command(bin, "x509", "-in", certFile, "-pubkey", "-noout", "-out", pub).CombinedOutput(); err != nil {
		t.Fatalf("openssl x509: %v\n%s", err, out)
	}
	if ec, ok := certKey(t, certFile).(*ecdsa.PublicKey); ok {
		n := (ec.Curve.Params().BitSize + 7) / 8
		if len(sig) == 2*n {
			der, err := asn1.Marshal(struct{ R, S *big.Int }{new(big.Int).SetBytes(sig[:n]), new(big.Int).SetBytes(sig[n:])})
			if err != nil {
				t.Fatal(err)
			}
			sig = der
		}
	}
	if err := os.WriteFile(data, octets, 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(sigFile, sig, 0o600); err != nil {
		t.Fatal(err)
	}
	out, err := exec.Command(bin, "dgst", "-sha256", "-verify", pub, "-signature", sigFile, data).CombinedOutput()
	if err != nil {
		t.Fatalf("openssl dgst -sha256 -verify refused the signature: %v\n%s", err, out)
	}
}

// XMLSecVerify checks the enveloped signature of the XML document doc with
// `xmlsec1 --verify`, trusting only the PEM certificate certFile. idNode
// is the namespace-qualified element whose ID attribute the Reference
// names, e.g. "urn:oasis:names:tc:SAML:2.0:protocol:LogoutRequest".
func XMLSecVerify(t testing.TB, doc []byte, certFile, idNode string) {
	t.Helper()
	bin := RequireTool(t, "xmlsec1")
	f := filepath.Join(t.TempDir(), "signed.xml")
	if err := os.WriteFile(f, doc, 0o600); err != nil {
		t.Fatal(err)
	}
	out, err := exec.Command(bin, "--verify", "--pubkey-cert-pem", certFile, "--id-attr:ID", idNode, f).CombinedOutput()
	if err != nil {
		t.Fatalf("xmlsec1 --verify refused the signature: %v\n%s", err, out)
	}
}

func certKey(t testing.TB, file string) any {
	t.Helper()
	data, err := os.ReadFile(file)
	if err != nil {
		t.Fatal(err)
	}
	b, _ := pem.Decode(data)
	if b == nil {
		t.Fatalf("%s is not PEM", file)
	}
	c, err := x509.ParseCertificate(b.Bytes)
	if err != nil {
		t.Fatal(err)
	}
	return c.PublicKey
}
