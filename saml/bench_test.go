package saml

import (
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"
)

// BenchmarkRedirectDecodeVerify measures decoding and verifying one signed
// HTTP-Redirect LogoutRequest (RSA-2048): inflate, XML checks, query
// signature.
func BenchmarkRedirectDecodeVerify(b *testing.B) {
	u, err := RedirectURL(spSLO, ParamRequest, sampleRequest("_bench").Element(), "rs", testSigner(b, "idp"))
	if err != nil {
		b.Fatal(err)
	}
	p, _ := url.Parse(u)
	trust := testTrust(b, idpEntity, "idp")
	b.ReportAllocs()
	for b.Loop() {
		m, err := DecodeRedirect(p.RawQuery, Limits{})
		if err != nil {
			b.Fatal(err)
		}
		if _, err := Verify(m, trust); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkPOSTDecodeVerify measures decoding and verifying one HTTP-POST
// LogoutRequest with an enveloped RSA-SHA256 signature, wrapping checks
// included.
func BenchmarkPOSTDecodeVerify(b *testing.B) {
	signed, err := testSigner(b, "idp").SignEnveloped(sampleRequest("_bench").Element())
	if err != nil {
		b.Fatal(err)
	}
	v, _ := POSTValue(signed)
	body := url.Values{ParamRequest: {v}}.Encode()
	trust := testTrust(b, idpEntity, "idp")
	b.ReportAllocs()
	for b.Loop() {
		r := httptest.NewRequest(http.MethodPost, "/slo", strings.NewReader(body))
		r.Header.Set("Content-Type", "application/x-www-form-urlencoded")
		m, err := ReadHTTP(r, Limits{})
		if err != nil {
			b.Fatal(err)
		}
		if _, err := Verify(m, trust); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkSignEnveloped measures signing one LogoutRequest (RSA-2048).
func BenchmarkSignEnveloped(b *testing.B) {
	s := testSigner(b, "sp")
	el := sampleRequest("_bench").Element()
	b.ReportAllocs()
	for b.Loop() {
		if _, err := s.SignEnveloped(el); err != nil {
			b.Fatal(err)
		}
	}
}
