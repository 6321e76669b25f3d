package saml

import (
	"crypto"

	"github.com/beevik/etree"
)

// maxDecryptedID caps the plaintext of an EncryptedID.
const maxDecryptedID = 16 << 10

// decryptID decrypts an <EncryptedID> (Core §2.2.4) with key and returns
// the <NameID> it holds (DecryptElement: the session key in the
// EncryptedData's ds:KeyInfo, as ADFS and crewjam send it, or in a sibling
// <EncryptedKey>, as Shibboleth does). It is called only on a message
// whose signature verified, so no unauthenticated party can use the
// decryption as an oracle. Failures are Requester errors: the sender is
// authenticated.
func decryptID(enc *etree.Element, key crypto.PrivateKey) (*etree.Element, error) {
	plain, err := DecryptElement(enc, key)
	if err != nil {
		return nil, requester("", "EncryptedID: %v", err)
	}
	if len(plain) > maxDecryptedID {
		return nil, requester("", "decrypted EncryptedID larger than %d bytes", maxDecryptedID)
	}
	el, err := parseDecrypted(plain, enc)
	if err != nil {
		return nil, requester("", "decrypted EncryptedID: %v", err)
	}
	if is(el, NSAssertion, "NameID") {
		return el, nil
	}
	return nil, requester(StatusRequestUnsupported, "EncryptedID does not hold a NameID")
}
