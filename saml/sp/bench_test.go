package sp

import (
	"net/http"
	"strings"
	"testing"

	"github.com/slobridge/slobridge/saml"
)

// BenchmarkSOAPLogoutRequest measures one IdP-initiated SOAP logout end
// to end over HTTP on 127.0.0.1: decode, verify and validate the signed
// LogoutRequest, find and end the session in bbolt (no participants),
// sign and send the LogoutResponse.
func BenchmarkSOAPLogoutRequest(b *testing.B) {
	br := newBridge(b, bridgeOptions{upstreams: []UpstreamConfig{{Name: "corp",
		MetadataFile: writeFile(b, "idp.xml", idpMetadata(b, idpEntity, loadSigner(b, "idp").Cert, "https://idp.example.test/sso", allSLO()))}}})
	idp := loadSigner(b, "idp")
	b.ReportAllocs()
	for b.Loop() {
		b.StopTimer()
		br.session("corp", "alice", "alice@example.com", "_s1")
		req := newRequest(b, br.sp.url(PathSLOSOAP), "alice@example.com", "_s1")
		signed, err := idp.SignEnveloped(req.Element())
		if err != nil {
			b.Fatal(err)
		}
		env, _ := saml.SOAPEnvelope(signed)
		b.StartTimer()
		resp := br.post(PathSLOSOAP, "text/xml", env)
		body := readBody(b, resp)
		if resp.StatusCode != http.StatusOK || !strings.Contains(body, saml.StatusSuccess) {
			b.Fatalf("answered %d", resp.StatusCode)
		}
	}
}
