package saml

import (
	"bytes"
	"errors"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/beevik/etree"

	"github.com/slobridge/slobridge/saml/internal/samltest"
)

var writeSeeds = flag.Bool("write-seeds", false, "rewrite the seed corpora of FuzzReadSSOResponse, FuzzDecryptElement, FuzzDecodeSOAP and FuzzParseLogoutResponse in testdata/fuzz")

const (
	seedACS = "https://bridge.example.test/saml/sp/acs"
	seedReq = "_req-seed"
)

// seedExpect is what the SSO fuzzer's ReadSSOResponse expects: the seeds
// are valid against it at t0.
func seedExpect(t testing.TB) SSOExpect {
	return SSOExpect{Trust: testTrust(t, idpEntity, "idp"), Audience: "https://bridge.example.test/saml/sp/metadata",
		ACS: seedACS, RequestID: seedReq, Now: t0, DecryptionKey: testSigner(t, "sp").Key}
}

// seedAssertion returns a signed assertion valid at t0.
func seedAssertion(t testing.TB) string {
	ts := func(d time.Duration) string { return t0.Add(d).Format("2006-01-02T15:04:05Z") }
	a := `<saml:Assertion xmlns:saml="` + NSAssertion + `" ID="_a-seed" Version="2.0" IssueInstant="` + ts(0) + `">` +
		`<saml:Issuer>` + idpEntity + `</saml:Issuer><saml:Subject><saml:NameID>alice</saml:NameID>` +
		`<saml:SubjectConfirmation Method="urn:oasis:names:tc:SAML:2.0:cm:bearer"><saml:SubjectConfirmationData Recipient="` + seedACS +
		`" InResponseTo="` + seedReq + `" NotOnOrAfter="` + ts(5*time.Minute) + `"/></saml:SubjectConfirmation></saml:Subject>` +
		`<saml:Conditions NotBefore="` + ts(-time.Minute) + `" NotOnOrAfter="` + ts(5*time.Minute) + `"><saml:AudienceRestriction>` +
		`<saml:Audience>https://bridge.example.test/saml/sp/metadata</saml:Audience></saml:AudienceRestriction></saml:Conditions>` +
		`<saml:AuthnStatement AuthnInstant="` + ts(0) + `" SessionIndex="_s"/></saml:Assertion>`
	d := etree.NewDocument()
	if err := d.ReadFromString(a); err != nil {
		t.Fatal(err)
	}
	el, err := testSigner(t, "idp").SignEnveloped(d.Root())
	if err != nil {
		t.Fatal(err)
	}
	return string(xmlBytes(t, el))
}

// seedResponse wraps an assertion (or EncryptedAssertion) in a Response.
func seedResponse(inner string) string {
	return `<samlp:Response xmlns:samlp="` + NSProtocol + `" xmlns:saml="` + NSAssertion + `" ID="_r-seed" Version="2.0" IssueInstant="` +
		t0.Format(time.RFC3339) + `" Destination="` + seedACS + `" InResponseTo="` + seedReq + `"><saml:Issuer>` + idpEntity +
		`</saml:Issuer><samlp:Status><samlp:StatusCode Value="` + StatusSuccess + `"/></samlp:Status>` + inner + `</samlp:Response>`
}

// ssoSeeds are the fuzz seeds of the ACS: a valid Response, the same
// encrypted (CBC and GCM), the encryptions that made crewjam panic, and
// assertions without Conditions or Subject.
func ssoSeeds(t testing.TB) map[string][]byte {
	sp := testSigner(t, "sp").Cert
	a := seedAssertion(t)
	enc := func(e samltest.Encryption) string {
		return `<saml:EncryptedAssertion>` + samltest.Encrypt(t, sp, []byte(a), e) + `</saml:EncryptedAssertion>`
	}
	seeds := map[string][]byte{
		"valid":                   []byte(seedResponse(a)),
		"valid-encrypted-cbc":     []byte(seedResponse(enc(samltest.Encryption{}))),
		"valid-encrypted-gcm":     []byte(seedResponse(enc(samltest.Encryption{Alg: samltest.AES128GCM}))),
		"assertion-no-conditions": []byte(seedResponse(strings.Replace(a, "<saml:Conditions", "<saml:Unknown", 1))),
		"assertion-no-subject":    []byte(seedResponse(strings.Replace(a, "<saml:Subject>", "<saml:Subjekt>", 1))),
	}
	for name, e := range samltest.Crafted() {
		seeds["crafted-"+strings.ReplaceAll(name, " ", "-")] = []byte(seedResponse(enc(e)))
	}
	return seeds
}

// TestWriteFuzzSeeds rewrites the seed corpora under -write-seeds; without
// it, it checks that every seed named by ssoSeeds is on disk.
func TestWriteFuzzSeeds(t *testing.T) {
	dirs := map[string]map[string][]byte{
		"FuzzReadSSOResponse": ssoSeeds(t),
		"FuzzDecryptElement":  map[string][]byte{},
		"FuzzDecodeSOAP": {
			"logout-request": []byte(`<s:Envelope xmlns:s="` + NSSOAP11 + `"><s:Body>` + string(xmlBytes(t, corpusRequest("_soap", "alice@example.com").Element())) + `</s:Body></s:Envelope>`),
			"fault":          SOAPFault("s:Client", "bad"),
			"empty-body":     []byte(`<s:Envelope xmlns:s="` + NSSOAP11 + `"><s:Body/></s:Envelope>`),
			"header":         []byte(`<s:Envelope xmlns:s="` + NSSOAP11 + `"><s:Header/><s:Body><x/></s:Body></s:Envelope>`),
		},
		"FuzzParseLogoutResponse": {
			"success": xmlBytes(t, (&LogoutResponse{ID: "_lr", IssueInstant: t0, Destination: spSLO, Issuer: idpEntity, InResponseTo: "_q",
				Status: StatusSuccess}).Element()),
			"partial": xmlBytes(t, (&LogoutResponse{ID: "_lr2", IssueInstant: t0, Issuer: idpEntity, InResponseTo: "_q",
				Status: StatusResponder, SubStatus: StatusPartialLogout, StatusMessage: "some failed"}).Element()),
		},
	}
	for name, seed := range ssoSeeds(t) {
		if strings.HasPrefix(name, "crafted-") || strings.HasPrefix(name, "valid-encrypted") {
			d := etree.NewDocument()
			if err := d.ReadFromBytes(seed); err != nil {
				t.Fatal(err)
			}
			dirs["FuzzDecryptElement"][name] = xmlBytes(t, d.FindElement("//EncryptedAssertion"))
		}
	}
	for _, name := range []string{"valid", "valid-encrypted-cbc", "valid-encrypted-gcm"} {
		if _, err := ReadSSOResponse(dirs["FuzzReadSSOResponse"][name], seedExpect(t)); err != nil {
			t.Errorf("seed %s is refused: %v", name, err)
		}
	}
	for dir, seeds := range dirs {
		path := filepath.Join("testdata", "fuzz", dir)
		names := make([]string, 0, len(seeds))
		for n := range seeds {
			names = append(names, n)
		}
		sort.Strings(names)
		for _, n := range names {
			file := filepath.Join(path, n)
			if *writeSeeds {
				if err := os.MkdirAll(path, 0o755); err != nil {
					t.Fatal(err)
				}
				if err := os.WriteFile(file, fmt.Appendf(nil, "go test fuzz v1\n[]byte(%q)\n", seeds[n]), 0o644); err != nil {
					t.Fatal(err)
				}
				continue
			}
			if _, err := os.Stat(file); err != nil {
				t.Errorf("seed %s missing (go test ./saml -run TestWriteFuzzSeeds -write-seeds): %v", file, err)
			}
		}
	}
}

// FuzzReadSSOResponse feeds Responses to the ACS validation with the SP's
// decryption key: it must never panic, and whatever it accepts must hold a
// signed assertion for the expected request.
func FuzzReadSSOResponse(f *testing.F) {
	for _, s := range ssoSeeds(f) {
		f.Add(s)
	}
	e := seedExpect(f)
	f.Fuzz(func(t *testing.T, data []byte) {
		r, err := ReadSSOResponse(data, e)
		if err != nil {
			return
		}
		if r.Assertion == nil || r.Assertion.Subject == nil || r.Assertion.Subject.NameID == nil ||
			r.Assertion.Conditions == nil || len(r.Assertion.AuthnStatements) == 0 {
			t.Fatalf("accepted an incomplete assertion: %+v", r.Assertion)
		}
	})
}

// FuzzDecryptElement feeds EncryptedAssertion elements to the decryption:
// no panic, and every failure is the one decryption error.
func FuzzDecryptElement(f *testing.F) {
	key := testSigner(f, "sp").Key
	for name, s := range ssoSeeds(f) {
		if strings.HasPrefix(name, "crafted-") {
			d := etree.NewDocument()
			if err := d.ReadFromBytes(s); err == nil {
				if el := d.FindElement("//EncryptedAssertion"); el != nil {
					f.Add(xmlBytes(f, el))
				}
			}
		}
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		doc, err := parseXML(data)
		if err != nil {
			return
		}
		if _, err := DecryptElement(doc.Root(), key); err != nil && !errors.Is(err, errDecrypt) {
			t.Fatalf("decryption failure is not errDecrypt: %v", err)
		}
	})
}

// FuzzDecodeSOAP feeds request bodies to the SOAP binding decoder: no
// panic, and every failure is ErrMalformed.
func FuzzDecodeSOAP(f *testing.F) {
	f.Add(SOAPFault("s:Client", "x"))
	f.Fuzz(func(t *testing.T, data []byte) {
		m, err := decodeSOAPBody(bytes.NewReader(data), Limits{MaxBody: 64 << 10, MaxXML: 64 << 10})
		if err != nil {
			if !errors.Is(err, ErrMalformed) && !errors.Is(err, ErrSOAPFault) {
				t.Fatalf("SOAP decode error is neither ErrMalformed nor a fault: %v", err)
			}
			return
		}
		if m.Root() == nil {
			t.Fatal("decoded message without root")
		}
		_ = m.UnverifiedIssuer()
		_ = m.UnverifiedLogoutRequestID()
	})
}

// FuzzParseLogoutResponse feeds XML to the LogoutResponse parser: no
// panic, errors are SAML status errors, a parsed response round-trips.
func FuzzParseLogoutResponse(f *testing.F) {
	f.Add([]byte(`<samlp:LogoutResponse xmlns:samlp="urn:oasis:names:tc:SAML:2.0:protocol" ID="_r" Version="2.0" IssueInstant="2026-01-02T03:04:05Z"><samlp:Status><samlp:StatusCode Value="urn:oasis:names:tc:SAML:2.0:status:Success"/></samlp:Status></samlp:LogoutResponse>`))
	f.Fuzz(func(t *testing.T, data []byte) {
		doc, err := parseXML(data)
		if err != nil {
			return
		}
		r, err := ParseLogoutResponse(doc.Root())
		if err != nil {
			var se *Error
			if !errors.As(err, &se) {
				t.Fatalf("parse error is not a SAML status error: %v", err)
			}
			return
		}
		again, err := ParseLogoutResponse(r.Element())
		if err != nil {
			t.Fatalf("re-parse of rendered response: %v", err)
		}
		if again.ID != r.ID || again.Status != r.Status || again.SubStatus != r.SubStatus || again.InResponseTo != r.InResponseTo {
			t.Fatalf("round trip changed the response:\n%+v\n%+v", r, again)
		}
	})
}

// FuzzDecryptData feeds algorithm, content key and cipher text straight to
// the data decryption (the part crewjam panicked in, without the RSA step
// that makes FuzzDecryptElement slow): no panic, every failure the one
// decryption error, and what decrypts is no longer than the cipher text.
func FuzzDecryptData(f *testing.F) {
	for _, alg := range []string{EncAES128CBC, EncAES192CBC, EncAES256CBC, EncAES128GCM, EncAES256GCM, samltest.TripleDES, ""} {
		for _, n := range []int{0, 5, 16, 28, 31, 32, 48} {
			f.Add(alg, bytes.Repeat([]byte{7}, 16), bytes.Repeat([]byte{1}, n))
			f.Add(alg, bytes.Repeat([]byte{7}, 32), bytes.Repeat([]byte{16}, n))
		}
	}
	f.Fuzz(func(t *testing.T, alg string, cek, ct []byte) {
		plain, err := decryptData(alg, cek, ct)
		if err != nil {
			if !errors.Is(err, errDecrypt) {
				t.Fatalf("failure is not errDecrypt: %v", err)
			}
			return
		}
		if len(plain) > len(ct) {
			t.Fatalf("%d bytes of plaintext from %d of cipher text", len(plain), len(ct))
		}
	})
}
