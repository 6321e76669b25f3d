package demo

import (
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"fmt"
	"math/big"
	"os"
	"path/filepath"
	"time"

	bsaml "github.com/slobridge/slobridge/saml"
)

// keyPair is a throw-away RSA key and self-signed certificate, as a
// signer and as PEM files (the bridge's configuration takes files).
type keyPair struct {
	signer            *bsaml.Signer
	certPEM, keyPEM   []byte
	certFile, keyFile string
}

// newKeyPair makes an RSA-2048 key with a self-signed certificate for cn
// and writes both to dir (the key with mode 0600).
func newKeyPair(dir, name, cn string) (*keyPair, error) {
	key, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		return nil, fmt.Errorf("demo: %s key: %w", name, err)
	}
	serial, err := rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 62))
	if err != nil {
		return nil, fmt.Errorf("demo: %s serial: %w", name, err)
	}
	now := time.Now()
	tmpl := &x509.Certificate{SerialNumber: serial, Subject: pkix.Name{CommonName: cn},
		NotBefore: now.Add(-time.Hour), NotAfter: now.Add(365 * 24 * time.Hour),
		KeyUsage: x509.KeyUsageDigitalSignature}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		return nil, fmt.Errorf("demo: %s certificate: %w", name, err)
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		return nil, fmt.Errorf("demo: %s certificate: %w", name, err)
	}
	kp := &keyPair{
		signer:  &bsaml.Signer{Key: key, Cert: cert},
		certPEM: pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}),
		keyPEM:  pem.EncodeToMemory(&pem.Block{Type: "RSA PRIVATE KEY", Bytes: x509.MarshalPKCS1PrivateKey(key)}),
	}
	kp.certFile, kp.keyFile = filepath.Join(dir, name+".crt"), filepath.Join(dir, name+".key")
	if err := os.WriteFile(kp.certFile, kp.certPEM, 0o644); err != nil {
		return nil, fmt.Errorf("demo: write %s certificate: %w", name, err)
	}
	if err := os.WriteFile(kp.keyFile, kp.keyPEM, 0o600); err != nil {
		return nil, fmt.Errorf("demo: write %s key: %w", name, err)
	}
	return kp, nil
}
