package saml

import (
	"crypto/x509"
	"errors"
	"testing"

	"github.com/beevik/etree"
	"github.com/crewjam/saml/xmlenc"
)

// encryptedIDRequest returns a LogoutRequest whose NameID is encrypted to
// cert (AES-128-CBC, RSA-OAEP key transport). sibling puts the
// EncryptedKey beside the EncryptedData with a ds:RetrievalMethod, as
// Shibboleth does; otherwise it is inside the EncryptedData's KeyInfo, as
// ADFS and crewjam do.
func encryptedIDRequest(t *testing.T, cert *x509.Certificate, plain string, sibling bool) *etree.Element {
	t.Helper()
	e := xmlenc.OAEP()
	e.BlockCipher = xmlenc.AES128CBC
	data, err := e.Encrypt(cert, []byte(plain), nil)
	if err != nil {
		t.Fatal(err)
	}
	enc := etree.NewElement("saml:EncryptedID")
	enc.AddChild(data)
	if sibling {
		ki := data.FindElement("./KeyInfo")
		ek := ki.FindElement("./EncryptedKey")
		ki.RemoveChild(ek)
		ek.CreateAttr("Id", "_ek1")
		ek.CreateAttr("xmlns:ds", NSDSig)
		rm := ki.CreateElement("ds:RetrievalMethod")
		rm.CreateAttr("Type", "http://www.w3.org/2001/04/xmlenc#EncryptedKey")
		rm.CreateAttr("URI", "#_ek1")
		enc.AddChild(ek)
	}
	el := sampleRequest("_enc1").Element()
	old := el.SelectElement("saml:NameID")
	el.InsertChildAt(old.Index(), enc)
	el.RemoveChild(old)
	return el
}

const encNameID = `<saml:NameID xmlns:saml="urn:oasis:names:tc:SAML:2.0:assertion" ` +
	`Format="urn:oasis:names:tc:SAML:2.0:nameid-format:persistent" NameQualifier="` + idpEntity + `">AAdzZWNyZXQx</saml:NameID>`

// TestEncryptedID: a signed LogoutRequest whose principal is an
// <EncryptedID> (Shibboleth encrypts NameIDs on the front channel) is
// decrypted with the Validator's DecryptionKey after the signature
// verified, in both places IdPs put the EncryptedKey; without the key, to
// another key, or holding no NameID it is refused with a Requester status.
func TestEncryptedID(t *testing.T) {
	sp := testSigner(t, "sp")
	for _, tc := range []struct {
		name    string
		to      string
		plain   string
		sibling bool
		noKey   bool
		want    expectation
		sub     string
	}{
		{name: "key inside EncryptedData", to: "sp", plain: encNameID, want: expectOK},
		{name: "key beside EncryptedData", to: "sp", plain: encNameID, sibling: true, want: expectOK},
		{name: "no decryption key", to: "sp", plain: encNameID, noKey: true, want: expectReq, sub: StatusRequestUnsupported},
		{name: "encrypted to another key", to: "other", plain: encNameID, want: expectReq},
		{name: "encrypted to another key, beside", to: "other", plain: encNameID, sibling: true, want: expectReq},
		{name: "not a NameID", to: "sp", plain: `<saml:Issuer xmlns:saml="urn:oasis:names:tc:SAML:2.0:assertion">x</saml:Issuer>`,
			want: expectReq, sub: StatusRequestUnsupported},
		{name: "DTD inside", to: "sp", plain: `<!DOCTYPE x [<!ENTITY a "b">]>` + encNameID, want: expectReq},
	} {
		t.Run(tc.name, func(t *testing.T) {
			el := encryptedIDRequest(t, testSigner(t, tc.to).Cert, tc.plain, tc.sibling)
			v := testValidator(t)
			if !tc.noKey {
				v.DecryptionKey = sp.Key
			}
			r, err := v.LogoutRequest(ctxT(t), postMessage(t, el), testTrust(t, idpEntity, "idp"), spSLO)
			checkExpectation(t, err, tc.want)
			var se *Error
			if tc.sub != "" && (!errors.As(err, &se) || se.SubStatus != tc.sub) {
				t.Fatalf("err = %v, want second-level %s", err, tc.sub)
			}
			if tc.want == expectOK && (r.NameID.Value != "AAdzZWNyZXQx" || r.NameID.NameQualifier != idpEntity ||
				r.NameID.Format != "urn:oasis:names:tc:SAML:2.0:nameid-format:persistent" || len(r.SessionIndexes) != 2) {
				t.Fatalf("parsed %+v", r)
			}
		})
	}
}
