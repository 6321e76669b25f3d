package samltest

import (
	"bytes"
	"compress/flate"
	"crypto"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"net/url"
	"strings"
	"testing"
)

// DTD is an internal DTD subset with an entity expansion ("billion
// laughs" in small), put before a message's root element to check that a
// receiver refuses any DOCTYPE — even one the message does not use.
const DTD = `<!DOCTYPE lolz [<!ENTITY lol "lol"><!ENTITY lol2 "&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;">]>`

// WithDTD returns xmlDoc with DTD inserted after its XML declaration, if
// any, and before the root element. The root and any signature in it are
// unchanged, so without the DTD the message is as valid as before.
func WithDTD(xmlDoc []byte) []byte {
	s := string(xmlDoc)
	if strings.HasPrefix(s, "<?xml") {
		if i := strings.Index(s, "?>"); i >= 0 {
			return []byte(s[:i+2] + DTD + s[i+2:])
		}
	}
	return []byte(DTD + s)
}

// Deflate returns the raw DEFLATE (RFC 1951) of b, base64-encoded: the
// HTTP-Redirect encoding of a message before URL encoding.
func Deflate(t testing.TB, b []byte) string {
	t.Helper()
	var buf bytes.Buffer
	fw, err := flate.NewWriter(&buf, flate.BestCompression)
	if err == nil {
		_, err = fw.Write(b)
	}
	if err == nil {
		err = fw.Close()
	}
	if err != nil {
		t.Fatal(err)
	}
	return base64.StdEncoding.EncodeToString(buf.Bytes())
}

// RedirectQuery returns an HTTP-Redirect binding query carrying xmlDoc as
// param, signed (RSA-SHA256 over the octets of Bindings §3.4.4.1) with key
// when key is not nil.
func RedirectQuery(t testing.TB, param string, xmlDoc []byte, key crypto.Signer) string {
	t.Helper()
	q := param + "=" + url.QueryEscape(Deflate(t, xmlDoc))
	if key == nil {
		return q
	}
	q += "&SigAlg=" + url.QueryEscape("http://www.w3.org/2001/04/xmldsig-more#rsa-sha256")
	h := sha256.Sum256([]byte(q))
	sig, err := key.Sign(rand.Reader, h[:], crypto.SHA256)
	if err != nil {
		t.Fatal(err)
	}
	return q + "&Signature=" + url.QueryEscape(base64.StdEncoding.EncodeToString(sig))
}

// InflationBomb returns an HTTP-Redirect query whose param inflates to
// more than n bytes (a LogoutRequest padded with whitespace) while its
// query stays a few kilobytes: it checks the cap on inflated size,
// separately from the cap on the query.
func InflationBomb(t testing.TB, param string, n int) string {
	t.Helper()
	doc := `<samlp:LogoutRequest xmlns:samlp="urn:oasis:names:tc:SAML:2.0:protocol" ID="_bomb" Version="2.0" IssueInstant="2026-01-01T00:00:00Z">` +
		strings.Repeat(" ", n+1) + `</samlp:LogoutRequest>`
	return param + "=" + url.QueryEscape(Deflate(t, []byte(doc)))
}

// Oversized returns a value of n bytes of base64 alphabet, to pad a
// query or form beyond a size cap.
func Oversized(n int) string { return strings.Repeat("A", n) }
