package sp

import (
	"bytes"
	"net/http"
	"strings"
	"testing"

	"github.com/slobridge/slobridge/saml"
)

// TestAuthnRequestNotCached checks that the answers carrying an
// AuthnRequest, by either binding, forbid caching (Bindings §3.4.5.1,
// §3.5.5.1): Cache-Control "no-cache, no-store" and Pragma "no-cache".
func TestAuthnRequestNotCached(t *testing.T) {
	for _, tc := range []struct {
		binding string
		status  int
		marker  string
	}{
		{saml.BindingRedirect, http.StatusSeeOther, "SAMLRequest="},
		{saml.BindingPOST, http.StatusOK, `name="SAMLRequest"`},
	} {
		t.Run(tc.binding[strings.LastIndex(tc.binding, ":")+1:], func(t *testing.T) {
			md := idpMetadata(t, idpEntity, loadSigner(t, "idp").Cert, "https://idp.example.test/sso",
				map[string]string{saml.BindingSOAP: idpSLOSOAP})
			md = bytes.ReplaceAll(md, []byte(`Binding="`+saml.BindingRedirect+`"`), []byte(`Binding="`+tc.binding+`"`))
			b := newBridge(t, bridgeOptions{upstreams: []UpstreamConfig{{Name: "corp", MetadataFile: writeFile(t, "idp.xml", md)}}})
			resp := b.get("/test/login")
			body := readBody(t, resp)
			if resp.StatusCode != tc.status || !strings.Contains(resp.Header.Get("Location")+body, tc.marker) {
				t.Fatalf("login answered %d without an AuthnRequest: %s %.300s", resp.StatusCode, resp.Header.Get("Location"), body)
			}
			if cc, pr := resp.Header.Get("Cache-Control"), resp.Header.Get("Pragma"); cc != "no-cache, no-store" || pr != "no-cache" {
				t.Errorf("AuthnRequest answer has Cache-Control %q, Pragma %q; want \"no-cache, no-store\", \"no-cache\"", cc, pr)
			}
		})
	}
}
