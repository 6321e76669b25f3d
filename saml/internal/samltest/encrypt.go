package samltest

import (
	"crypto/aes"
	"crypto/cipher"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha1"
	"crypto/x509"
	"encoding/base64"
	"fmt"
	"testing"
)

// XML Encryption URIs used by Encrypt.
const (
	AES128CBC   = "http://www.w3.org/2001/04/xmlenc#aes128-cbc"
	AES128GCM   = "http://www.w3.org/2009/xmlenc11#aes128-gcm"
	TripleDES   = "http://www.w3.org/2001/04/xmlenc#tripledes-cbc"
	RSAOAEP     = "http://www.w3.org/2001/04/xmlenc#rsa-oaep-mgf1p"
	nsXMLEnc    = "http://www.w3.org/2001/04/xmlenc#"
	nsXMLDSig   = "http://www.w3.org/2000/09/xmldsig#"
	typeElement = nsXMLEnc + "Element"
)

// Encryption says how Encrypt builds an xenc:EncryptedData. Its zero value
// is AES-128-CBC with an RSA-OAEP (MGF1-SHA1) key, as xmlsec1 and pysaml2
// send it.
type Encryption struct {
	// Alg is the data EncryptionMethod written; default AES128CBC. Data is
	// encrypted with AES-GCM when it is AES128GCM, AES-CBC otherwise.
	Alg string
	// KeyLen is the content key length; default 16.
	KeyLen int
	// Cipher, when set, replaces the data cipher text (IV included) after
	// encryption: the crafted lengths of an attack.
	Cipher func(ct []byte) []byte
}

// Encrypt encrypts plain to cert the way an IdP would, under the control
// of e, and returns the xenc:EncryptedData element (with its EncryptedKey
// in ds:KeyInfo) as XML text declaring its own namespaces.
func Encrypt(t testing.TB, cert *x509.Certificate, plain []byte, e Encryption) string {
	t.Helper()
	pub, ok := cert.PublicKey.(*rsa.PublicKey)
	if !ok {
		t.Fatal("samltest.Encrypt: certificate key is not RSA")
	}
	if e.Alg == "" {
		e.Alg = AES128CBC
	}
	if e.KeyLen == 0 {
		e.KeyLen = 16
	}
	key := make([]byte, e.KeyLen)
	_, _ = rand.Read(key)
	ek, err := rsa.EncryptOAEP(sha1.New(), rand.Reader, pub, key, nil)
	if err != nil {
		t.Fatal(err)
	}
	var ct []byte
	if block, err := aes.NewCipher(key); err == nil {
		if e.Alg == AES128GCM {
			aead, _ := cipher.NewGCM(block)
			nonce := make([]byte, aead.NonceSize())
			_, _ = rand.Read(nonce)
			ct = aead.Seal(nonce, nonce, plain, nil)
		} else {
			pad := aes.BlockSize - len(plain)%aes.BlockSize
			padded := append(append([]byte{}, plain...), make([]byte, pad)...)
			padded[len(padded)-1] = byte(pad)
			ct = make([]byte, aes.BlockSize+len(padded))
			_, _ = rand.Read(ct[:aes.BlockSize])
			cipher.NewCBCEncrypter(block, ct[:aes.BlockSize]).CryptBlocks(ct[aes.BlockSize:], padded)
		}
	} else {
		ct = make([]byte, 64) // a key length AES refuses: the cipher text does not matter.
	}
	if e.Cipher != nil {
		ct = e.Cipher(ct)
	}
	return fmt.Sprintf(`<xenc:EncryptedData xmlns:xenc="%s" Type="%s"><xenc:EncryptionMethod Algorithm="%s"/>`+
		`<ds:KeyInfo xmlns:ds="%s"><xenc:EncryptedKey><xenc:EncryptionMethod Algorithm="%s"/>`+
		`<xenc:CipherData><xenc:CipherValue>%s</xenc:CipherValue></xenc:CipherData></xenc:EncryptedKey></ds:KeyInfo>`+
		`<xenc:CipherData><xenc:CipherValue>%s</xenc:CipherValue></xenc:CipherData></xenc:EncryptedData>`,
		nsXMLEnc, typeElement, e.Alg, nsXMLDSig, RSAOAEP,
		base64.StdEncoding.EncodeToString(ek), base64.StdEncoding.EncodeToString(ct))
}

// Crafted are the encryptions that made crewjam's xmlenc panic: GCM with
// a cipher text shorter than its nonce, CBC with a length that is not
// whole blocks, and Triple-DES (which it read with an AES IV length).
func Crafted() map[string]Encryption {
	return map[string]Encryption{
		"aes128-gcm shorter than the nonce": {Alg: AES128GCM, Cipher: func([]byte) []byte { return []byte{1, 2, 3, 4, 5} }},
		"aes128-cbc not whole blocks":       {Alg: AES128CBC, Cipher: func(ct []byte) []byte { return ct[:len(ct)-3] }},
		"tripledes-cbc":                     {Alg: TripleDES, KeyLen: 24, Cipher: func([]byte) []byte { return make([]byte, 20) }},
		"aes128-cbc IV only":                {Alg: AES128CBC, Cipher: func(ct []byte) []byte { return ct[:16] }},
		"aes128-gcm empty":                  {Alg: AES128GCM, Cipher: func([]byte) []byte { return nil }},
	}
}
