package saml

import (
	"crypto"
	"crypto/sha1"
	"encoding/base64"
	"errors"
	"fmt"
	"net/url"
	"os"
	"path/filepath"
	"testing"
)

const cryptoSHA1 = crypto.SHA1

func sha1Sum(b []byte) []byte {
	h := sha1.Sum(b)
	return h[:]
}

// writeFuzzSeeds writes the corpus messages as seeds of the fuzz tests in
// testdata/fuzz (the Go fuzzing corpus format), so that plain `go test`
// runs them.
func writeFuzzSeeds(t *testing.T, g *corpusGen) {
	t.Helper()
	redir := filepath.Join("testdata", "fuzz", "FuzzDecodeRedirect")
	xmlDir := filepath.Join("testdata", "fuzz", "FuzzParseLogoutRequest")
	for _, d := range []string{redir, xmlDir} {
		if err := os.RemoveAll(d); err != nil {
			t.Fatal(err)
		}
		if err := os.MkdirAll(d, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	write := func(dir, name, val string) {
		if err := os.WriteFile(filepath.Join(dir, name), fmt.Appendf(nil, "go test fuzz v1\n%s(%q)\n", typeOf(dir), val), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	valid, err := RedirectURL(spSLO, ParamRequest, corpusRequest("_seed", "alice@example.com").Element(), "rs", testSigner(t, "idp"))
	if err != nil {
		t.Fatal(err)
	}
	write(redir, "valid", valid[len(spSLO)+1:])
	write(xmlDir, "valid", string(xmlBytes(t, g.sign(corpusRequest("_seed", "alice@example.com").Element(), "idp"))))
	for _, c := range g.cases {
		if c.Binding == BindingRedirect && len(g.files[c.File]) < 64<<10 {
			write(redir, c.Name, string(g.files[c.File]))
		}
		if c.Binding == BindingPOST && len(g.files[c.File]) < 64<<10 {
			form, err := url.ParseQuery(string(g.files[c.File]))
			if err != nil {
				continue
			}
			if x, err := base64.StdEncoding.DecodeString(form.Get(ParamRequest)); err == nil && len(x) > 0 {
				write(xmlDir, c.Name, string(x))
			}
		}
	}
}

func typeOf(dir string) string {
	if filepath.Base(dir) == "FuzzDecodeRedirect" {
		return "string"
	}
	return "[]byte"
}

// FuzzDecodeRedirect feeds raw query strings to the HTTP-Redirect decoder
// and the signature check: they must never panic, must fail only with
// ErrMalformed/ErrSignature, and must never accept an unsigned or
// wrongly signed message.
func FuzzDecodeRedirect(f *testing.F) {
	f.Add("SAMLRequest=fZBBa4MwGIb%2FSsg9JlGrLUEhUCgULfTgodD0Oa1HMPWlQbIbRXmJJjJsiZDeh%2FvxzcyzuWMC6Ra2Bjk8w0Y3GaUpI5dJq3dM8X0ygQZsoE%2FNJmvIgUBAD7&SigAlg=x")
	trust := testTrust(f, idpEntity, "idp")
	f.Fuzz(func(t *testing.T, q string) {
		m, err := DecodeRedirect(q, Limits{MaxBody: 64 << 10, MaxXML: 64 << 10})
		if err != nil {
			if !errors.Is(err, ErrMalformed) {
				t.Fatalf("decode error not ErrMalformed: %v", err)
			}
			return
		}
		if m.Root() == nil || (m.Param != ParamRequest && m.Param != ParamResponse) {
			t.Fatalf("decoded message without root or param: %+v", m)
		}
		_ = m.UnverifiedIssuer()
		if _, err := Verify(m, trust); err != nil && !errors.Is(err, ErrSignature) {
			t.Fatalf("verify error not ErrSignature: %v", err)
		} else if err == nil && len(m.Signature) == 0 {
			t.Fatal("unsigned message verified")
		}
	})
}

// FuzzParseLogoutRequest feeds XML to the safe parser, the LogoutRequest
// parser and the enveloped-signature check: no panic, and a parsed request
// survives Element → parse unchanged.
func FuzzParseLogoutRequest(f *testing.F) {
	f.Add([]byte(`<samlp:LogoutRequest xmlns:samlp="urn:oasis:names:tc:SAML:2.0:protocol" xmlns:saml="urn:oasis:names:tc:SAML:2.0:assertion" ID="_a" Version="2.0" IssueInstant="2026-01-02T03:04:05Z"><saml:Issuer>x</saml:Issuer><saml:NameID>n</saml:NameID></samlp:LogoutRequest>`))
	trust := testTrust(f, idpEntity, "idp")
	f.Fuzz(func(t *testing.T, data []byte) {
		doc, err := parseXML(data)
		if err != nil {
			if !errors.Is(err, ErrMalformed) {
				t.Fatalf("parse error not ErrMalformed: %v", err)
			}
			return
		}
		_, _ = VerifyEnveloped(doc.Root(), trust)
		r, err := ParseLogoutRequest(doc.Root())
		if err != nil {
			var se *Error
			if !errors.As(err, &se) {
				t.Fatalf("parse error is not a SAML status error: %v", err)
			}
			return
		}
		again, err := ParseLogoutRequest(r.Element())
		if err != nil {
			t.Fatalf("re-parse of rendered request: %v", err)
		}
		if again.ID != r.ID || again.NameID != r.NameID || len(again.SessionIndexes) != len(r.SessionIndexes) ||
			!again.IssueInstant.Truncate(1e6).Equal(r.IssueInstant.Truncate(1e6)) {
			t.Fatalf("round trip changed the request:\n%+v\n%+v", r, again)
		}
	})
}
