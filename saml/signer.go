package saml

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha256"
	_ "crypto/sha512" // SHA-384 and SHA-512 for peers that sign with them
	"crypto/x509"
	"encoding/asn1"
	"errors"
	"fmt"
	"io"
	"math/big"
	"strings"
)

// Signer signs outgoing messages with one key and publishes its
// certificate. Key is an *rsa.PrivateKey (RSA-SHA256) or an
// *ecdsa.PrivateKey on P-256 (ECDSA-SHA256); any crypto.Signer whose public
// key is one of those works.
type Signer struct {
	// Key signs. Required.
	Key crypto.Signer
	// Cert is the certificate of Key, sent in ds:KeyInfo and published in
	// metadata. Required.
	Cert *x509.Certificate
	// Rand is the randomness for ECDSA; default crypto/rand.Reader.
	Rand io.Reader
}

// SigAlg returns the signature algorithm URI of the signer's key.
func (s *Signer) SigAlg() (string, error) {
	if s == nil || s.Key == nil || s.Cert == nil {
		return "", errors.New("saml: signer needs a key and a certificate")
	}
	switch s.Key.Public().(type) {
	case *rsa.PublicKey:
		return SigAlgRSASHA256, nil
	case *ecdsa.PublicKey:
		return SigAlgECDSASHA256, nil
	}
	return "", fmt.Errorf("saml: unsupported signing key type %T", s.Key.Public())
}

func (s *Signer) rand() io.Reader {
	if s.Rand != nil {
		return s.Rand
	}
	return rand.Reader
}

// signOctets signs data with SHA-256 and returns the signature in the form
// XML Signature uses: PKCS#1 v1.5 for RSA, r||s (RFC 4051 §3.3.1.1 via
// RFC 6931) for ECDSA.
func (s *Signer) signOctets(data []byte) ([]byte, error) {
	alg, err := s.SigAlg()
	if err != nil {
		return nil, err
	}
	h := sha256.Sum256(data)
	sig, err := s.Key.Sign(s.rand(), h[:], crypto.SHA256)
	if err != nil {
		return nil, fmt.Errorf("saml: sign: %w", err)
	}
	if alg == SigAlgECDSASHA256 {
		return derToRaw(sig, s.Key.Public().(*ecdsa.PublicKey))
	}
	return sig, nil
}

type ecdsaSig struct{ R, S *big.Int }

// derToRaw converts an ASN.1 ECDSA signature to r||s, each left-padded to
// the curve size.
func derToRaw(der []byte, pub *ecdsa.PublicKey) ([]byte, error) {
	var es ecdsaSig
	rest, err := asn1.Unmarshal(der, &es)
	if err != nil || len(rest) != 0 || es.R == nil || es.S == nil {
		return nil, errors.New("saml: ECDSA signature is not ASN.1")
	}
	n := (pub.Curve.Params().BitSize + 7) / 8
	out := make([]byte, 2*n)
	es.R.FillBytes(out[:n])
	es.S.FillBytes(out[n:])
	return out, nil
}

// rawToDER converts an r||s ECDSA signature to ASN.1 DER. A signature that
// is not 2*curve-size bytes is returned unchanged (some senders use DER).
func rawToDER(raw []byte, pub *ecdsa.PublicKey) []byte {
	n := (pub.Curve.Params().BitSize + 7) / 8
	if len(raw) != 2*n {
		return raw
	}
	der, err := asn1.Marshal(ecdsaSig{R: new(big.Int).SetBytes(raw[:n]), S: new(big.Int).SetBytes(raw[n:])})
	if err != nil {
		return raw
	}
	return der
}

// hashFor returns the hash of a signature algorithm URI, refusing SHA-1
// unless allowed and anything unknown.
func hashFor(sigAlg string, allowSHA1 bool) (crypto.Hash, error) {
	switch sigAlg {
	case SigAlgRSASHA256, SigAlgECDSASHA256:
		return crypto.SHA256, nil
	case SigAlgRSASHA384, SigAlgECDSASHA384:
		return crypto.SHA384, nil
	case SigAlgRSASHA512, SigAlgECDSASHA512:
		return crypto.SHA512, nil
	case SigAlgRSASHA1, SigAlgECDSASHA1:
		if allowSHA1 {
			return crypto.SHA1, nil
		}
		return 0, badSignature("SHA-1 signature algorithm %s refused", sigAlg)
	}
	return 0, badSignature("unsupported signature algorithm %q", sigAlg)
}

// verifyOctets checks sig over data under sigAlg with any of certs.
func verifyOctets(sigAlg string, data, sig []byte, t Trust) error {
	h, err := hashFor(sigAlg, t.AllowSHA1)
	if err != nil {
		return err
	}
	if len(t.Certs) == 0 {
		return badSignature("no trusted certificate for %q", t.EntityID)
	}
	hh := h.New()
	hh.Write(data)
	digest := hh.Sum(nil)
	wantEC := strings.HasPrefix(sigAlg, "http://www.w3.org/2001/04/xmldsig-more#ecdsa-")
	for _, c := range t.Certs {
		switch pub := c.PublicKey.(type) {
		case *rsa.PublicKey:
			if !wantEC && rsa.VerifyPKCS1v15(pub, h, digest, sig) == nil {
				return nil
			}
		case *ecdsa.PublicKey:
			if wantEC && ecdsa.VerifyASN1(pub, digest, rawToDER(sig, pub)) {
				return nil
			}
		}
	}
	return badSignature("signature does not verify with any key of %q", t.EntityID)
}

// Trust is what a receiver knows about a peer entity from its metadata:
// its entity ID and the certificates whose keys may sign its messages.
// Certificates are trust anchors by configuration; their validity dates
// are not checked (SAML Metadata Interoperability Profile §2.5.1).
type Trust struct {
	// EntityID is the peer's entity ID; a message's Issuer must equal it.
	EntityID string
	// Certs are the peer's signing certificates (several during a key
	// rollover).
	Certs []*x509.Certificate
	// AllowSHA1 accepts RSA-SHA1/ECDSA-SHA1 signatures and SHA-1 digests
	// from this peer. Off by default.
	AllowSHA1 bool
}
