package main

import (
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/base64"
	"encoding/hex"
	"encoding/pem"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"math/big"
	"os"
	"path/filepath"
	"time"
)

// keysUsage is `slobridge keys`' usage.
const keysUsage = `usage: slobridge keys generate [--dir DIR] [--days N] [--force]

Writes into DIR (default keys, created with mode 0700):
  saml-sp.key, saml-sp.crt     the SAML SP signing key and certificate toward upstream IdPs
  saml-idp.key, saml-idp.crt   the SAML IdP signing key and certificate toward downstream SPs
  cookie                       the session cookie secret (384 random bits)
  admin-token                  the admin API token (256 random bits)
Keys and secrets get mode 0600, certificates 0644 (RSA 3072, self-signed,
valid for --days, default 1095). Existing files are never overwritten
unless --force is given. It prints the configuration lines that use them.
`

// keyFiles are the files `keys generate` writes, in order.
type keyFiles struct{ spKey, spCert, idpKey, idpCert, cookie, adminToken string }

// runKeys implements `slobridge keys …`.
func runKeys(args []string, stdout, stderr io.Writer) error {
	if len(args) == 0 || args[0] != "generate" {
		if len(args) > 0 && (args[0] == "-h" || args[0] == "--help" || args[0] == "help") {
			fmt.Fprint(stdout, keysUsage)
			return nil
		}
		fmt.Fprint(stderr, keysUsage)
		return errUsage
	}
	fset := newFlagSet("keys generate", stderr)
	fset.Usage = func() { fmt.Fprint(stderr, keysUsage) }
	dir := fset.String("dir", "keys", "directory to write the files into")
	days := fset.Int("days", 1095, "validity of the certificates in days")
	force := fset.Bool("force", false, "overwrite existing files")
	pos, err := parseFlags(fset, args[1:])
	if err != nil {
		return err
	}
	if len(pos) != 0 || *days < 1 {
		fmt.Fprint(stderr, keysUsage)
		return errUsage
	}
	f := keyFiles{spKey: filepath.Join(*dir, "saml-sp.key"), spCert: filepath.Join(*dir, "saml-sp.crt"),
		idpKey: filepath.Join(*dir, "saml-idp.key"), idpCert: filepath.Join(*dir, "saml-idp.crt"),
		cookie: filepath.Join(*dir, "cookie"), adminToken: filepath.Join(*dir, "admin-token")}
	all := []string{f.spKey, f.spCert, f.idpKey, f.idpCert, f.cookie, f.adminToken}
	if !*force {
		for _, p := range all {
			if _, err := os.Lstat(p); err == nil {
				return fmt.Errorf("%s exists: nothing was written (pass --force to replace every file)", p)
			} else if !errors.Is(err, fs.ErrNotExist) {
				return err
			}
		}
	}
	if err := os.MkdirAll(*dir, 0o700); err != nil {
		return err
	}
	valid := time.Duration(*days) * 24 * time.Hour
	for _, kc := range []struct{ key, cert, cn string }{
		{f.spKey, f.spCert, "slobridge SAML SP"}, {f.idpKey, f.idpCert, "slobridge SAML IdP"},
	} {
		keyPEM, certPEM, err := selfSigned(kc.cn, valid)
		if err != nil {
			return err
		}
		if err := writeNew(kc.key, keyPEM, 0o600); err != nil {
			return err
		}
		if err := writeNew(kc.cert, certPEM, 0o644); err != nil {
			return err
		}
	}
	if err := writeNew(f.cookie, []byte(base64.RawURLEncoding.EncodeToString(random(48))+"\n"), 0o600); err != nil {
		return err
	}
	if err := writeNew(f.adminToken, []byte(hex.EncodeToString(random(32))+"\n"), 0o600); err != nil {
		return err
	}
	for _, p := range all {
		fmt.Fprintln(stdout, "wrote", p)
	}
	fmt.Fprintf(stdout, `
Configuration that uses them (saml.sp matters with upstream.type saml;
drop saml.idp if the bridge serves no SAML apps):

session:
  cookie_secret: {file: %s}
admin:
  token: {file: %s}
saml:
  sp:
    cert_file: %s
    key_file: %s
  idp:
    enabled: true
    certificate_file: %s
    key: {file: %s}

The admin CLI reads the token with --token-file %s.
`, f.cookie, f.adminToken, f.spCert, f.spKey, f.idpCert, f.idpKey, f.adminToken)
	return nil
}

// selfSigned makes an RSA 3072 key and a self-signed signing certificate.
func selfSigned(cn string, valid time.Duration) (keyPEM, certPEM []byte, err error) {
	key, err := rsa.GenerateKey(rand.Reader, 3072)
	if err != nil {
		return nil, nil, fmt.Errorf("generate the %s key: %w", cn, err)
	}
	serial, err := rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 127))
	if err != nil {
		return nil, nil, err
	}
	now := time.Now()
	tmpl := &x509.Certificate{SerialNumber: serial, Subject: pkix.Name{CommonName: cn},
		NotBefore: now.Add(-time.Hour), NotAfter: now.Add(valid), KeyUsage: x509.KeyUsageDigitalSignature}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		return nil, nil, fmt.Errorf("make the %s certificate: %w", cn, err)
	}
	pk, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		return nil, nil, err
	}
	return pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: pk}),
		pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), nil
}

// random returns n random bytes.
func random(n int) []byte {
	b := make([]byte, n)
	_, _ = rand.Read(b) // crypto/rand.Read never fails (Go 1.24+)
	return b
}

// writeNew writes a file with mode perm through a temporary file renamed
// into place, so that a secret is never readable by others, not even
// while it is written.
func writeNew(path string, b []byte, perm os.FileMode) error {
	tmp, err := os.CreateTemp(filepath.Dir(path), "."+filepath.Base(path)+".*")
	if err != nil {
		return err
	}
	defer os.Remove(tmp.Name())
	if err := tmp.Chmod(perm); err != nil {
		tmp.Close()
		return err
	}
	if _, err := tmp.Write(b); err != nil {
		tmp.Close()
		return err
	}
	if err := tmp.Sync(); err != nil {
		tmp.Close()
		return err
	}
	if err := tmp.Close(); err != nil {
		return err
	}
	return os.Rename(tmp.Name(), path)
}
