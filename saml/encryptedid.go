package saml

import (
	"crypto"
	"crypto/rsa"

	"github.com/beevik/etree"
	"github.com/crewjam/saml/xmlenc"
)

// nsXMLEnc is the XML Encryption namespace.
const nsXMLEnc = "http://www.w3.org/2001/04/xmlenc#"

// maxDecryptedID caps the plaintext of an EncryptedID.
const maxDecryptedID = 16 << 10

// decryptID decrypts an <EncryptedID> (Core §2.2.4) with key and returns
// the <NameID> it holds. The session key is found where deployed IdPs put
// it: in the EncryptedData's ds:KeyInfo (ADFS, crewjam) or as an
// <EncryptedKey> beside the EncryptedData (Shibboleth, pointed at by a
// ds:RetrievalMethod). It is called only on a message whose signature
// verified, so no unauthenticated party can use the decryption as an
// oracle. Failures are Requester errors: the sender is authenticated.
func decryptID(enc *etree.Element, key crypto.PrivateKey) (*etree.Element, error) {
	rsaKey, ok := key.(*rsa.PrivateKey)
	if !ok {
		return nil, requester(StatusRequestUnsupported, "EncryptedID cannot be decrypted: no RSA decryption key")
	}
	datas := childrenNS(enc, nsXMLEnc, "EncryptedData")
	if len(datas) != 1 {
		return nil, requester("", "EncryptedID must hold one EncryptedData, has %d", len(datas))
	}
	var k any = rsaKey
	if keys := childrenNS(enc, nsXMLEnc, "EncryptedKey"); len(keys) > 0 {
		var err error
		for _, ek := range keys {
			var sk []byte
			if sk, err = decryptKey(rsaKey, ek); err == nil {
				k = sk
				break
			}
		}
		if err != nil {
			return nil, requester("", "EncryptedID key cannot be decrypted: %v", err)
		}
	}
	plain, err := xmlenc.Decrypt(k, datas[0])
	if err != nil {
		return nil, requester("", "EncryptedID cannot be decrypted: %v", err)
	}
	if len(plain) > maxDecryptedID {
		return nil, requester("", "decrypted EncryptedID larger than %d bytes", maxDecryptedID)
	}
	doc, err := parseXML(trimBOM(plain))
	if err != nil {
		return nil, requester("", "decrypted EncryptedID: %v", err)
	}
	if root := doc.Root(); is(root, NSAssertion, "NameID") {
		return root, nil
	}
	return nil, requester(StatusRequestUnsupported, "EncryptedID does not hold a NameID")
}

// decryptKey decrypts an <EncryptedKey> into the session key.
func decryptKey(key *rsa.PrivateKey, ek *etree.Element) ([]byte, error) {
	v, err := xmlenc.Decrypt(key, ek)
	if err != nil {
		return nil, err
	}
	return v, nil
}
