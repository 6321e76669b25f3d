package idp

import (
	"context"
	"strconv"
	"testing"
	"time"

	bsaml "github.com/slobridge/slobridge/saml"
	"github.com/slobridge/slobridge/store"
)

// benchWorld is a bridge with one SP and one session joined to it.
func benchWorld(b *testing.B) (*bridge, *SP, store.Session, issued) {
	b.Helper()
	entity, f := ssoSP(b, b.TempDir(), "bench")
	br := newBridge(b, bridgeOpts{cfg: Config{ServiceProviders: []SPConfig{{MetadataFile: f}}}})
	ctx := context.Background()
	sp, err := br.idp.ServiceProvider(ctx, entity)
	if err != nil {
		b.Fatal(err)
	}
	s, err := br.eng.CreateSession(ctx, store.Session{UserID: "alice", ExpiresAt: time.Now().Add(time.Hour),
		Attributes: map[string][]string{"email": {"alice@example.com"}}})
	if err != nil {
		b.Fatal(err)
	}
	iss, err := br.idp.join(ctx, sp, "", s)
	if err != nil {
		b.Fatal(err)
	}
	return br, sp, s, iss
}

// BenchmarkBuildResponse measures one SSO answer: the assertion built and
// signed (RSA-2048, SHA-256, exclusive C14N) inside its Response.
func BenchmarkBuildResponse(b *testing.B) {
	br, sp, s, iss := benchWorld(b)
	req := AuthnRequest{SP: sp.EntityID, ID: "_bench", ACS: "https://bench.slobridge.test/acs"}
	b.ReportAllocs()
	for b.Loop() {
		if _, err := br.idp.BuildResponse(Assertion{SP: sp, Request: req, Session: s, Issued: iss}); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkValidateAuthnRequest measures the SSO endpoint's check of a
// signed HTTP-Redirect AuthnRequest: decode (inflate, parse), verify the
// query signature, validate, and record the ID for replay (bbolt).
func BenchmarkValidateAuthnRequest(b *testing.B) {
	br, sp, _, _ := benchWorld(b)
	signer := testSigner(b, "sp2")
	ctx := context.Background()
	n := 0
	b.ReportAllocs()
	for b.Loop() {
		b.StopTimer()
		n++
		u, err := bsaml.RedirectURL(br.idp.endpoint(PathSSO), bsaml.ParamRequest,
			authnReq{sp: sp.EntityID}.element("_bench-"+strconv.Itoa(n), br.idp.endpoint(PathSSO)), "", signer)
		if err != nil {
			b.Fatal(err)
		}
		q := u[len(br.idp.endpoint(PathSSO))+1:]
		b.StartTimer()
		m, err := bsaml.DecodeRedirect(q, limits)
		if err != nil {
			b.Fatal(err)
		}
		if _, _, err := br.idp.ValidateAuthnRequest(ctx, m); err != nil {
			b.Fatal(err)
		}
	}
}
