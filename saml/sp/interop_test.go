package sp

import (
	"net/http"
	"net/url"
	"testing"
	"time"

	"github.com/beevik/etree"
	"github.com/crewjam/saml/xmlenc"

	"github.com/slobridge/slobridge/saml"
)

// encryptNameID replaces the NameID of a LogoutRequest element with an
// <EncryptedID> encrypted to the bridge SP's certificate, the key its
// metadata offers for encryption (AES-128-CBC, RSA-OAEP).
func (b *bridge) encryptNameID(el *etree.Element) {
	b.t.Helper()
	old := el.SelectElement("saml:NameID")
	doc := etree.NewDocument()
	nid := old.Copy()
	nid.CreateAttr("xmlns:saml", saml.NSAssertion)
	doc.SetRoot(nid)
	plain, err := doc.WriteToBytes()
	if err != nil {
		b.t.Fatal(err)
	}
	e := xmlenc.OAEP()
	e.BlockCipher = xmlenc.AES128CBC
	data, err := e.Encrypt(b.sp.opts.Signer.Cert, plain, nil)
	if err != nil {
		b.t.Fatal(err)
	}
	enc := etree.NewElement("saml:EncryptedID")
	enc.AddChild(data)
	el.InsertChildAt(old.Index(), enc)
	el.RemoveChild(old)
}

// TestIdPInitiatedLogoutInterop: upstream LogoutRequests as deployed IdPs
// send them end exactly the sessions they name: an encrypted NameID
// (Shibboleth encrypts it on the front channel), several SessionIndexes
// in one request (an IdP ending two logins at once).
func TestIdPInitiatedLogoutInterop(t *testing.T) {
	for _, tc := range []struct {
		name      string
		encrypt   bool
		indexes   []string
		endsAlice [2]bool
	}{
		{name: "encrypted NameID", encrypt: true, indexes: []string{"_s1"}, endsAlice: [2]bool{true, false}},
		{name: "two SessionIndexes", indexes: []string{"_s1", "_s2"}, endsAlice: [2]bool{true, true}},
		{name: "a foreign SessionIndex beside ours", indexes: []string{"_elsewhere", "_s2"}, endsAlice: [2]bool{false, true}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			b := newBridge(t, bridgeOptions{upstreams: []UpstreamConfig{corpUpstream(t, allSLO())}, soapWait: 5 * time.Second})
			s1 := b.session("corp", "alice", "alice@example.com", "_s1", newReceiver(t, http.StatusOK))
			s2 := b.session("corp", "alice", "alice@example.com", "_s2", newReceiver(t, http.StatusOK))
			bob := b.session("corp", "bob", "bob@example.com", "_s2", newReceiver(t, http.StatusOK))
			req := newRequest(t, b.sp.url(PathSLO), "alice@example.com", tc.indexes...)
			el := req.Element()
			if tc.encrypt {
				b.encryptNameID(el)
			}
			signed, err := loadSigner(t, "idp").SignEnveloped(el)
			if err != nil {
				t.Fatal(err)
			}
			v, _ := saml.POSTValue(signed)
			resp := b.post(PathSLO, "application/x-www-form-urlencoded",
				[]byte(url.Values{saml.ParamRequest: {v}, saml.ParamRelayState: {"idp-relay"}}.Encode()))
			lr := b.logoutResponseFrom(b.followLogoutPage(resp), saml.BindingPOST, req.ID)
			if !lr.Success() {
				t.Fatalf("status %s/%s, want Success", lr.Status, lr.SubStatus)
			}
			if got := [2]bool{b.ended(s1.ID), b.ended(s2.ID)}; got != tc.endsAlice || b.ended(bob.ID) {
				t.Fatalf("ended alice %v bob %v, want %v and bob not", got, b.ended(bob.ID), tc.endsAlice)
			}
		})
	}
}
