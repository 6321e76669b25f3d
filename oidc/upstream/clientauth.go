package upstream

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/rsa"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"encoding/pem"
	"errors"
	"fmt"
	"time"

	jose "github.com/go-jose/go-jose/v4"
	"golang.org/x/oauth2"
)

// Token endpoint authentication methods (OpenID Connect Core §9).
const (
	AuthClientSecretBasic = "client_secret_basic"
	AuthPrivateKeyJWT     = "private_key_jwt"
)

// assertionType is RFC 7523 §2.2's client_assertion_type.
const assertionType = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer"

// assertionLifetime bounds a client assertion (it is used at once).
const assertionLifetime = time.Minute

// clientKey is the bridge's private key for private_key_jwt, with the
// algorithm and key ID it signs with.
type clientKey struct {
	signer crypto.Signer
	alg    jose.SignatureAlgorithm
	kid    string
}

// ParseClientKey reads a PEM private key (PKCS #8, PKCS #1 or SEC 1: RSA
// of 2048 bits or more, ECDSA P-256, or Ed25519) for private_key_jwt.
func ParseClientKey(pemBytes []byte) (crypto.Signer, error) {
	blk, _ := pem.Decode(pemBytes)
	if blk == nil {
		return nil, errors.New("no PEM block in the private key")
	}
	var key any
	var err error
	switch blk.Type {
	case "RSA PRIVATE KEY":
		key, err = x509.ParsePKCS1PrivateKey(blk.Bytes)
	case "EC PRIVATE KEY":
		key, err = x509.ParseECPrivateKey(blk.Bytes)
	default:
		key, err = x509.ParsePKCS8PrivateKey(blk.Bytes)
	}
	if err != nil {
		return nil, fmt.Errorf("private key: %w", err)
	}
	s, ok := key.(crypto.Signer)
	if !ok {
		return nil, fmt.Errorf("private key of type %T cannot sign", key)
	}
	if _, err := keyAlg(s); err != nil {
		return nil, err
	}
	return s, nil
}

// keyAlg is the JWS algorithm a key signs client assertions with.
func keyAlg(s crypto.Signer) (jose.SignatureAlgorithm, error) {
	switch k := s.(type) {
	case *rsa.PrivateKey:
		if k.N.BitLen() < 2048 {
			return "", fmt.Errorf("RSA private key of %d bits: at least 2048 are required", k.N.BitLen())
		}
		return jose.RS256, nil
	case *ecdsa.PrivateKey:
		if k.Curve.Params().Name != "P-256" {
			return "", fmt.Errorf("ECDSA private key on %s: P-256 is required (ES256)", k.Curve.Params().Name)
		}
		return jose.ES256, nil
	case ed25519.PrivateKey:
		return jose.EdDSA, nil
	}
	return "", fmt.Errorf("private key of type %T is not RSA, ECDSA or Ed25519", s)
}

// newClientKey prepares a signer: its algorithm and its key ID, the
// RFC 7638 thumbprint of the public key.
func newClientKey(s crypto.Signer) (*clientKey, error) {
	alg, err := keyAlg(s)
	if err != nil {
		return nil, err
	}
	tp, err := (&jose.JSONWebKey{Key: s.Public()}).Thumbprint(crypto.SHA256)
	if err != nil {
		return nil, fmt.Errorf("private key thumbprint: %w", err)
	}
	return &clientKey{signer: s, alg: alg, kid: base64.RawURLEncoding.EncodeToString(tp)}, nil
}

// JWKS is the public key set the operator registers at the OP (or points
// its jwks_uri at, PathPrefix + name + "/jwks.json").
func (k *clientKey) JWKS() jose.JSONWebKeySet {
	return jose.JSONWebKeySet{Keys: []jose.JSONWebKey{{Key: k.signer.Public(), KeyID: k.kid, Algorithm: string(k.alg), Use: "sig"}}}
}

// assertion makes the client assertion for one token request (RFC 7523
// §3, Core §9): iss and sub the client ID, aud the token endpoint, a
// fresh jti, a minute's lifetime.
func (k *clientKey) assertion(clientID, tokenURL, jti string, now time.Time) (string, error) {
	signer, err := jose.NewSigner(jose.SigningKey{Algorithm: k.alg, Key: jose.JSONWebKey{Key: k.signer, KeyID: k.kid}},
		(&jose.SignerOptions{}).WithType("JWT"))
	if err != nil {
		return "", err
	}
	claims := map[string]any{"iss": clientID, "sub": clientID, "aud": tokenURL, "jti": jti,
		"iat": now.Unix(), "exp": now.Add(assertionLifetime).Unix()}
	obj, err := json.Marshal(claims)
	if err != nil {
		return "", err
	}
	jws, err := signer.Sign(obj)
	if err != nil {
		return "", fmt.Errorf("sign the client assertion: %w", err)
	}
	return jws.CompactSerialize()
}

// exchangeOptions authenticate a token request: nothing more for
// client_secret_basic (oauth2 sends the secret in the header), the client
// assertion for private_key_jwt.
func (rp *RP) exchangeOptions(d *discovered) ([]oauth2.AuthCodeOption, error) {
	if rp.key == nil {
		return nil, nil
	}
	a, err := rp.key.assertion(rp.cfg.ClientID, d.oauth.Endpoint.TokenURL, rp.opts.Engine.NewID(), rp.opts.Engine.Now())
	if err != nil {
		return nil, err
	}
	return []oauth2.AuthCodeOption{oauth2.SetAuthURLParam("client_assertion_type", assertionType),
		oauth2.SetAuthURLParam("client_assertion", a)}, nil
}
