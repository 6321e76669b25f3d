package idp

import (
	"context"
	"errors"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	dsig "github.com/russellhaering/goxmldsig"

	bsaml "github.com/slobridge/slobridge/saml"
)

// TestAllowSHA1PerSP: an SP's RSA-SHA1 signed LogoutRequest is refused
// (HTTP 400, unauthenticated) unless its registration says allow_sha1.
func TestAllowSHA1PerSP(t *testing.T) {
	for _, allow := range []bool{false, true} {
		t.Run(map[bool]string{false: "refused by default", true: "allowed"}[allow], func(t *testing.T) {
			spFile := filepath.Join(t.TempDir(), "sp.xml")
			if err := os.WriteFile(spFile, corpusSPMetadata(t), 0o600); err != nil {
				t.Fatal(err)
			}
			b := newBridge(t, bridgeOpts{baseURL: corpusBase,
				cfg: Config{ServiceProviders: []SPConfig{{MetadataFile: spFile, AllowSHA1: allow}}}})
			s := testSigner(t, "sp2")
			ctx, err := dsig.NewSigningContext(s.Key, [][]byte{s.Cert.Raw})
			if err != nil {
				t.Fatal(err)
			}
			ctx.Canonicalizer = dsig.MakeC14N10ExclusiveCanonicalizerWithPrefixList("")
			if err := ctx.SetSignatureMethod(dsig.RSASHA1SignatureMethod); err != nil {
				t.Fatal(err)
			}
			el := (&bsaml.LogoutRequest{ID: "_sha1", IssueInstant: time.Now(), Destination: corpusBase + PathSLO, Issuer: corpusSP,
				NameID: bsaml.NameID{Value: "someone"}}).Element()
			sig, err := ctx.ConstructSignature(el, true)
			if err != nil {
				t.Fatal(err)
			}
			signed := el.Copy()
			signed.InsertChildAt(1, sig)
			r := httptest.NewRequest(http.MethodPost, PathSLO, strings.NewReader(string(postBody(signed))))
			r.Header.Set("Content-Type", "application/x-www-form-urlencoded")
			m, err := bsaml.DecodePOST(r, bsaml.Limits{})
			if err != nil {
				t.Fatal(err)
			}
			_, _, err = b.idp.ValidateLogoutRequest(context.Background(), m, corpusBase+PathSLO)
			if allow && err != nil {
				t.Fatalf("SHA-1 request from an SP allowed to use it: %v", err)
			}
			if !allow && !errors.Is(err, bsaml.ErrSignature) {
				t.Fatalf("SHA-1 request err = %v, want ErrSignature", err)
			}
		})
	}
}
