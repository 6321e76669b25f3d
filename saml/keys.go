package saml

import (
	"crypto"
	"crypto/x509"
	"encoding/base64"
	"encoding/pem"
	"errors"
	"fmt"
	"os"
	"strings"
)

// ParseSigner reads a PEM certificate and its PEM private key (PKCS#8,
// PKCS#1 RSA or SEC 1 EC) into a Signer, checking that they match.
func ParseSigner(certPEM, keyPEM []byte) (*Signer, error) {
	certs, err := ParseCertificatesPEM(certPEM)
	if err != nil {
		return nil, err
	}
	kb, _ := pem.Decode(keyPEM)
	if kb == nil {
		return nil, errors.New("saml: private key is not PEM")
	}
	var key any
	switch kb.Type {
	case "RSA PRIVATE KEY":
		key, err = x509.ParsePKCS1PrivateKey(kb.Bytes)
	case "EC PRIVATE KEY":
		key, err = x509.ParseECPrivateKey(kb.Bytes)
	default:
		key, err = x509.ParsePKCS8PrivateKey(kb.Bytes)
	}
	if err != nil {
		return nil, fmt.Errorf("saml: parse private key: %w", err)
	}
	signer, ok := key.(crypto.Signer)
	if !ok {
		return nil, fmt.Errorf("saml: private key type %T cannot sign", key)
	}
	pub, ok := signer.Public().(interface{ Equal(crypto.PublicKey) bool })
	if !ok || !pub.Equal(certs[0].PublicKey) {
		return nil, errors.New("saml: private key does not match the certificate")
	}
	s := &Signer{Key: signer, Cert: certs[0]}
	if _, err := s.SigAlg(); err != nil {
		return nil, err
	}
	return s, nil
}

// LoadSigner reads ParseSigner's inputs from files.
func LoadSigner(certFile, keyFile string) (*Signer, error) {
	c, err := os.ReadFile(certFile)
	if err != nil {
		return nil, fmt.Errorf("saml: read certificate: %w", err)
	}
	k, err := os.ReadFile(keyFile)
	if err != nil {
		return nil, fmt.Errorf("saml: read private key: %w", err)
	}
	return ParseSigner(c, k)
}

// ParseCertificatesPEM reads one or more PEM certificates.
func ParseCertificatesPEM(data []byte) ([]*x509.Certificate, error) {
	var out []*x509.Certificate
	for {
		var b *pem.Block
		b, data = pem.Decode(data)
		if b == nil {
			break
		}
		if b.Type != "CERTIFICATE" {
			continue
		}
		c, err := x509.ParseCertificate(b.Bytes)
		if err != nil {
			return nil, fmt.Errorf("saml: parse certificate: %w", err)
		}
		out = append(out, c)
	}
	if len(out) == 0 {
		return nil, errors.New("saml: no PEM certificate found")
	}
	return out, nil
}

// ParseCertificateBase64 reads the base64 DER of a metadata
// <ds:X509Certificate>, ignoring whitespace.
func ParseCertificateBase64(s string) (*x509.Certificate, error) {
	der, err := base64.StdEncoding.DecodeString(strings.Join(strings.Fields(s), ""))
	if err != nil {
		return nil, fmt.Errorf("saml: certificate base64: %w", err)
	}
	c, err := x509.ParseCertificate(der)
	if err != nil {
		return nil, fmt.Errorf("saml: parse certificate: %w", err)
	}
	return c, nil
}
