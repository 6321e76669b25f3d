package sp

import (
	"net/http"
	"net/url"
	"testing"

	"github.com/beevik/etree"

	"github.com/slobridge/slobridge/saml"
	"github.com/slobridge/slobridge/saml/internal/samltest"
)

// TestCraftedEncryptedIDAtSLO sends the upstream's signed LogoutRequests
// whose <EncryptedID> holds the encryptions that made crewjam's xmlenc
// panic, over HTTP-POST and SOAP: each is answered a signed LogoutResponse
// with a Requester status (SOAP: in a 200 envelope, never a JSON 500), and
// the session stays.
func TestCraftedEncryptedIDAtSLO(t *testing.T) {
	for name, enc := range samltest.Crafted() {
		for _, binding := range []string{saml.BindingPOST, saml.BindingSOAP} {
			t.Run(name+" "+binding, func(t *testing.T) {
				b := newBridge(t, bridgeOptions{baseURL: "https://bridge.example.test", upstreams: []UpstreamConfig{corpUpstream(t, allSLO())}})
				alice := b.session("corp", "alice", "alice@example.com", "_s1")
				dest := b.sp.url(PathSLO)
				if binding == saml.BindingSOAP {
					dest = b.sp.url(PathSLOSOAP)
				}
				req := newRequest(t, dest, "alice@example.com", "_s1")
				el := req.Element()
				nameID := el.SelectElement("saml:NameID")
				d := etree.NewDocument()
				if err := d.ReadFromString(`<saml:EncryptedID xmlns:saml="` + saml.NSAssertion + `">` +
					samltest.Encrypt(t, b.sp.opts.Signer.Cert, []byte(`<saml:NameID xmlns:saml="`+saml.NSAssertion+`">alice@example.com</saml:NameID>`), enc) +
					`</saml:EncryptedID>`); err != nil {
					t.Fatal(err)
				}
				el.InsertChildAt(nameID.Index(), d.Root())
				el.RemoveChild(nameID)
				signed, err := loadSigner(t, "idp").SignEnveloped(el)
				if err != nil {
					t.Fatal(err)
				}
				var resp *http.Response
				if binding == saml.BindingPOST {
					v, _ := saml.POSTValue(signed)
					resp = b.post(PathSLO, "application/x-www-form-urlencoded",
						[]byte(url.Values{saml.ParamRequest: {v}, saml.ParamRelayState: {"idp-relay"}}.Encode()))
				} else {
					env, err := saml.SOAPEnvelope(signed)
					if err != nil {
						t.Fatal(err)
					}
					resp = b.post(PathSLOSOAP, "text/xml; charset=utf-8", env)
				}
				if resp.StatusCode >= 500 {
					t.Fatalf("answered %d: %s", resp.StatusCode, readBody(t, resp))
				}
				lr := b.corpusAnswer(t, resp, binding, req.ID, b.sp.opts.Now())
				if lr.Status != saml.StatusRequester {
					t.Fatalf("status %s/%s, want Requester", lr.Status, lr.SubStatus)
				}
				if b.ended(alice.ID) {
					t.Fatal("a LogoutRequest whose EncryptedID cannot be decrypted ended the session")
				}
			})
		}
	}
}
