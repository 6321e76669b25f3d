package saml

import (
	"crypto"
	"crypto/aes"
	"crypto/cipher"
	"crypto/rand"
	"crypto/rsa"
	_ "crypto/sha1" // OAEP's default digest (XML Encryption §5.4.2), not a signature.
	_ "crypto/sha256"
	_ "crypto/sha512"
	"encoding/base64"
	"errors"
	"fmt"
	"strings"

	"github.com/beevik/etree"
)

// XML Encryption algorithm URIs the bridge decrypts (XML Encryption 1.0
// §5.2 and 1.1 §5.2.4, §5.5.2). Nothing else is accepted: not RSA PKCS#1
// v1.5 key transport (Bleichenbacher), not Triple-DES, not key agreement.
const (
	EncAES128CBC = "http://www.w3.org/2001/04/xmlenc#aes128-cbc"
	EncAES192CBC = "http://www.w3.org/2001/04/xmlenc#aes192-cbc"
	EncAES256CBC = "http://www.w3.org/2001/04/xmlenc#aes256-cbc"
	EncAES128GCM = "http://www.w3.org/2009/xmlenc11#aes128-gcm"
	EncAES192GCM = "http://www.w3.org/2009/xmlenc11#aes192-gcm"
	EncAES256GCM = "http://www.w3.org/2009/xmlenc11#aes256-gcm"
	// KeyRSAOAEPMGF1P is RSA-OAEP with MGF1-SHA1 and a DigestMethod of
	// SHA-1 by default (XML Encryption 1.0 §5.4.2).
	KeyRSAOAEPMGF1P = "http://www.w3.org/2001/04/xmlenc#rsa-oaep-mgf1p"
	// KeyRSAOAEP is RSA-OAEP with a DigestMethod and an MGF of choice (XML
	// Encryption 1.1 §5.5.2).
	KeyRSAOAEP = "http://www.w3.org/2009/xmlenc11#rsa-oaep"
)

// Namespaces of XML Encryption.
const (
	nsXMLEnc   = "http://www.w3.org/2001/04/xmlenc#"
	nsXMLEnc11 = "http://www.w3.org/2009/xmlenc11#"
)

// digestSHA256Crewjam is the SHA-256 DigestMethod URI crewjam's xmlenc
// writes in an OAEP EncryptionMethod (in the xmldsig namespace, where the
// spec has none); IdPs built on it send it, so it is read as SHA-256.
const digestSHA256Crewjam = "http://www.w3.org/2000/09/xmldsig#sha256"

// maxEncryptedKeys caps the key candidates tried for one EncryptedData.
const maxEncryptedKeys = 4

// EncryptionMethods returns the algorithms the bridge decrypts, in the
// order it prefers them, for the EncryptionMethod elements of its metadata
// (Metadata §2.4.1.1): advertise only what DecryptElement accepts.
func EncryptionMethods() []string {
	return []string{EncAES128GCM, EncAES256GCM, EncAES192GCM, EncAES128CBC, EncAES256CBC, EncAES192CBC,
		KeyRSAOAEP, KeyRSAOAEPMGF1P}
}

// dataKeySize returns the key length of a data encryption algorithm and
// whether it is GCM; ok is false for anything not accepted.
func dataKeySize(alg string) (size int, gcm, ok bool) {
	switch alg {
	case EncAES128CBC:
		return 16, false, true
	case EncAES192CBC:
		return 24, false, true
	case EncAES256CBC:
		return 32, false, true
	case EncAES128GCM:
		return 16, true, true
	case EncAES192GCM:
		return 24, true, true
	case EncAES256GCM:
		return 32, true, true
	}
	return 0, false, false
}

// errDecrypt is what every decryption failure says to the peer: the
// details (which step failed) go to the error chain for the log only, so
// that the answer is no padding or key oracle.
var errDecrypt = errors.New("saml: encrypted element cannot be decrypted")

// decryptError wraps the detail of a decryption failure under errDecrypt.
func decryptError(format string, args ...any) error {
	return fmt.Errorf("%w: "+format, append([]any{errDecrypt}, args...)...)
}

// DecryptElement decrypts an element of type EncryptedElementType (SAML
// Core §2.2.4: EncryptedAssertion, EncryptedID, EncryptedAttribute) with
// key and returns the plaintext, the serialized element it hides. It is
// written on Go's crypto alone and checks every algorithm and length
// before any cipher runs, so no input makes it panic:
//   - exactly one xenc:EncryptedData child, Type Element or absent, its
//     EncryptionMethod one of AES-CBC or AES-GCM (128, 192, 256);
//   - the content key in an xenc:EncryptedKey inside the EncryptedData's
//     ds:KeyInfo (ADFS, crewjam, xmlsec1) or a sibling of the EncryptedData
//     (Shibboleth); RSA-OAEP only, its length that of the data algorithm;
//   - CBC: IV + whole blocks, padding 1..16 (XML Encryption §5.2);
//     GCM: 96-bit IV + ciphertext + 128-bit tag (1.1 §5.2.4).
//
// Every failure wraps the same error, so the answer tells an attacker
// nothing about which check failed.
func DecryptElement(enc *etree.Element, key crypto.PrivateKey) ([]byte, error) {
	rsaKey, ok := key.(*rsa.PrivateKey)
	if !ok || rsaKey == nil {
		return nil, decryptError("no RSA decryption key")
	}
	datas := childrenNS(enc, nsXMLEnc, "EncryptedData")
	if len(datas) != 1 {
		return nil, decryptError("%s must hold one EncryptedData, has %d", enc.Tag, len(datas))
	}
	ed := datas[0]
	if typ := ed.SelectAttrValue("Type", ""); typ != "" && typ != nsXMLEnc+"Element" {
		return nil, decryptError("EncryptedData Type %q is not Element", typ)
	}
	alg, err := encryptionMethod(ed)
	if err != nil {
		return nil, err
	}
	// Checked here too (decryptData checks it again), so that an
	// algorithm we refuse costs no RSA decryption.
	if _, _, ok := dataKeySize(alg); !ok {
		return nil, decryptError("data encryption algorithm %q not accepted", alg)
	}
	ct, err := cipherValue(ed)
	if err != nil {
		return nil, err
	}
	var keys []*etree.Element
	for _, ki := range childrenNS(ed, NSDSig, "KeyInfo") {
		keys = append(keys, childrenNS(ki, nsXMLEnc, "EncryptedKey")...)
	}
	keys = append(keys, childrenNS(enc, nsXMLEnc, "EncryptedKey")...)
	if len(keys) == 0 {
		return nil, decryptError("no EncryptedKey")
	}
	if len(keys) > maxEncryptedKeys {
		return nil, decryptError("%d EncryptedKeys, at most %d", len(keys), maxEncryptedKeys)
	}
	var cek []byte
	for _, ek := range keys {
		if cek, err = decryptKey(rsaKey, ek); err == nil {
			break
		}
	}
	if err != nil {
		return nil, err
	}
	return decryptData(alg, cek, ct)
}

// decryptData decrypts a cipher text (IV included) with content key cek
// under data algorithm alg, checking the algorithm and the key length.
func decryptData(alg string, cek, ct []byte) ([]byte, error) {
	size, gcm, ok := dataKeySize(alg)
	if !ok {
		return nil, decryptError("data encryption algorithm %q not accepted", alg)
	}
	if len(cek) != size {
		return nil, decryptError("content key of %d bytes for %s", len(cek), alg)
	}
	block, err := aes.NewCipher(cek)
	if err != nil {
		return nil, decryptError("%v", err)
	}
	if gcm {
		return openGCM(block, ct)
	}
	return openCBC(block, ct)
}

// openGCM decrypts IV || ciphertext || tag.
func openGCM(block cipher.Block, ct []byte) ([]byte, error) {
	aead, err := cipher.NewGCM(block)
	if err != nil {
		return nil, decryptError("%v", err)
	}
	if len(ct) < aead.NonceSize()+aead.Overhead() {
		return nil, decryptError("GCM cipher text of %d bytes is shorter than IV and tag", len(ct))
	}
	plain, err := aead.Open(nil, ct[:aead.NonceSize()], ct[aead.NonceSize():], nil)
	if err != nil {
		return nil, decryptError("GCM: %v", err)
	}
	return plain, nil
}

// openCBC decrypts IV || blocks and removes the XML Encryption padding
// (the last octet counts the padding octets, 1 to the block size; the
// others are arbitrary).
func openCBC(block cipher.Block, ct []byte) ([]byte, error) {
	bs := block.BlockSize()
	if len(ct) < 2*bs || len(ct)%bs != 0 {
		return nil, decryptError("CBC cipher text of %d bytes is not IV plus whole blocks", len(ct))
	}
	out := make([]byte, len(ct)-bs)
	cipher.NewCBCDecrypter(block, ct[:bs]).CryptBlocks(out, ct[bs:])
	pad := int(out[len(out)-1])
	if pad == 0 || pad > bs {
		return nil, decryptError("bad CBC padding")
	}
	return out[:len(out)-pad], nil
}

// decryptKey decrypts an xenc:EncryptedKey with RSA-OAEP.
func decryptKey(key *rsa.PrivateKey, ek *etree.Element) ([]byte, error) {
	alg, err := encryptionMethod(ek)
	if err != nil {
		return nil, err
	}
	em := childrenNS(ek, nsXMLEnc, "EncryptionMethod")[0]
	digest, mgf := crypto.SHA1, crypto.SHA1
	switch alg {
	case KeyRSAOAEPMGF1P:
	case KeyRSAOAEP:
		for _, m := range childrenNS(em, nsXMLEnc11, "MGF") {
			if mgf, err = mgfHash(m.SelectAttrValue("Algorithm", "")); err != nil {
				return nil, err
			}
		}
	default:
		return nil, decryptError("key transport algorithm %q not accepted", alg)
	}
	dms := childrenNS(em, NSDSig, "DigestMethod")
	if len(dms) > 1 {
		return nil, decryptError("EncryptionMethod holds %d DigestMethods", len(dms))
	}
	if len(dms) == 1 {
		if digest, err = oaepDigest(dms[0].SelectAttrValue("Algorithm", "")); err != nil {
			return nil, err
		}
	}
	var label []byte
	for _, p := range childrenNS(em, nsXMLEnc, "OAEPparams") {
		if label, err = base64.StdEncoding.DecodeString(strings.Join(strings.Fields(p.Text()), "")); err != nil {
			return nil, decryptError("OAEPparams: %v", err)
		}
	}
	ct, err := cipherValue(ek)
	if err != nil {
		return nil, err
	}
	if len(ct) != key.Size() {
		return nil, decryptError("EncryptedKey of %d bytes for a %d-byte RSA key", len(ct), key.Size())
	}
	cek, err := key.Decrypt(rand.Reader, ct, &rsa.OAEPOptions{Hash: digest, MGFHash: mgf, Label: label})
	if err != nil && alg == KeyRSAOAEPMGF1P && digest != crypto.SHA1 {
		// rsa-oaep-mgf1p fixes MGF1 to SHA-1 whatever the digest; crewjam
		// (and IdPs built on Go's rsa.EncryptOAEP) use the digest for both.
		cek, err = key.Decrypt(rand.Reader, ct, &rsa.OAEPOptions{Hash: digest, MGFHash: digest, Label: label})
	}
	if err != nil {
		return nil, decryptError("EncryptedKey: %v", err)
	}
	return cek, nil
}

// encryptionMethod returns the Algorithm of el's one EncryptionMethod.
func encryptionMethod(el *etree.Element) (string, error) {
	ems := childrenNS(el, nsXMLEnc, "EncryptionMethod")
	if len(ems) != 1 {
		return "", decryptError("%s must name one EncryptionMethod, has %d", el.Tag, len(ems))
	}
	return ems[0].SelectAttrValue("Algorithm", ""), nil
}

// cipherValue returns the decoded CipherData/CipherValue of el; a
// CipherReference (which would make the bridge fetch a URL) is refused.
func cipherValue(el *etree.Element) ([]byte, error) {
	cds := childrenNS(el, nsXMLEnc, "CipherData")
	if len(cds) != 1 {
		return nil, decryptError("%s must hold one CipherData", el.Tag)
	}
	cvs := childrenNS(cds[0], nsXMLEnc, "CipherValue")
	if len(cvs) != 1 || len(cds[0].ChildElements()) != 1 {
		return nil, decryptError("CipherData must hold one CipherValue and nothing else")
	}
	v, err := base64.StdEncoding.DecodeString(strings.Join(strings.Fields(cvs[0].Text()), ""))
	if err != nil {
		return nil, decryptError("CipherValue: %v", err)
	}
	return v, nil
}

// oaepDigest maps an OAEP DigestMethod URI to its hash.
func oaepDigest(alg string) (crypto.Hash, error) {
	switch alg {
	case digestSHA1:
		return crypto.SHA1, nil
	case digestSHA256, digestSHA256Crewjam:
		return crypto.SHA256, nil
	case digestSHA384:
		return crypto.SHA384, nil
	case digestSHA512:
		return crypto.SHA512, nil
	}
	return 0, decryptError("OAEP digest %q not accepted", alg)
}

// mgfHash maps an xenc11:MGF Algorithm URI (1.1 §5.5.2) to its hash.
func mgfHash(alg string) (crypto.Hash, error) {
	switch alg {
	case nsXMLEnc11 + "mgf1sha1":
		return crypto.SHA1, nil
	case nsXMLEnc11 + "mgf1sha256":
		return crypto.SHA256, nil
	case nsXMLEnc11 + "mgf1sha384":
		return crypto.SHA384, nil
	case nsXMLEnc11 + "mgf1sha512":
		return crypto.SHA512, nil
	}
	return 0, decryptError("OAEP MGF %q not accepted", alg)
}
