package oidc

import (
	"bytes"
	"context"
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rsa"
	"crypto/sha256"
	"crypto/x509"
	"encoding/json"
	"encoding/pem"
	"errors"
	"fmt"
	"io"
	"slices"
	"strings"
	"sync"
	"time"

	jose "github.com/go-jose/go-jose/v4"

	"github.com/slobridge/slobridge/store"
)

// KeyUse is the store.Key Use of the provider's signing keys.
const KeyUse = "oidc"

// keyCacheTTL bounds how stale the in-memory view of the store's keys may
// be. A rotation made by another replica is seen within it; that is safe
// because a new key is published KeyPublishAhead before it signs.
const keyCacheTTL = time.Minute

// Signing algorithms the provider offers (oidc.signing_alg,
// oidc.access_token_alg, a client's id_token_signed_response_alg). RS256
// is the default: OpenID Connect Core §15.1 requires every OP to support
// it and every RP accepts it. ES256 and EdDSA (Ed25519) sign twenty to
// forty times faster, PS256 is RSA with PSS padding.
var signingAlgs = []string{string(jose.RS256), string(jose.ES256), string(jose.PS256), string(jose.EdDSA)}

// joseAlgs are signingAlgs as go-jose names them: what the provider
// accepts when it parses a token it signed.
var joseAlgs = []jose.SignatureAlgorithm{jose.RS256, jose.ES256, jose.PS256, jose.EdDSA}

// SigningAlgorithms returns the JWS algorithms the provider can sign with.
func SigningAlgorithms() []string { return slices.Clone(signingAlgs) }

// checkAlg returns an error naming what is offered when alg is not.
func checkAlg(alg string) error {
	if !slices.Contains(signingAlgs, alg) {
		return fmt.Errorf("%q is not one of %s", alg, strings.Join(signingAlgs, ", "))
	}
	return nil
}

// keyringPolicy says how keys rotate.
type keyringPolicy struct {
	// rotation is how long a key signs (NotAfter - NotBefore).
	rotation time.Duration
	// publishAhead is how long a successor is published before it signs.
	publishAhead time.Duration
	// maxTokenTTL is the longest life of a token signed by a key: the key
	// stays published until RetireAt = NotAfter + maxTokenTTL.
	maxTokenTTL time.Duration
}

// signingKey is a parsed store.Key.
type signingKey struct {
	meta store.Key
	priv crypto.Signer
}

// keyring keeps the provider's signing keys in the store: every replica
// signs with and publishes the same keys. Rotation: a key signs from
// NotBefore to NotAfter; its successor is written publishAhead before the
// key's NotAfter with NotBefore = that NotAfter, so relying parties that
// cache the JWKS already know it when it starts signing; a key leaves the
// JWKS at RetireAt, after every token it signed has expired.
type keyring struct {
	st     store.Store
	now    func() time.Time
	rand   io.Reader
	policy keyringPolicy

	mu       sync.Mutex
	keys     []signingKey
	loadedAt time.Time
	parsed   map[string]signingKey
}

func newKeyring(st store.Store, now func() time.Time, rnd io.Reader, p keyringPolicy) *keyring {
	return &keyring{st: st, now: now, rand: rnd, policy: p, parsed: map[string]signingKey{}}
}

// load returns the store's keys, re-reading them when the cache is stale or
// force is set.
func (k *keyring) load(ctx context.Context, force bool) ([]signingKey, error) {
	k.mu.Lock()
	defer k.mu.Unlock()
	now := k.now()
	if !force && k.keys != nil && now.Sub(k.loadedAt) < keyCacheTTL && !now.Before(k.loadedAt) {
		return k.keys, nil
	}
	stored, err := k.st.ListKeys(ctx, KeyUse)
	if err != nil {
		return nil, fmt.Errorf("oidc: list signing keys: %w", err)
	}
	keys := make([]signingKey, 0, len(stored))
	for _, sk := range stored {
		if p, ok := k.parsed[sk.ID]; ok && bytes.Equal(p.meta.PrivatePEM, sk.PrivatePEM) {
			p.meta = sk
			keys = append(keys, p)
			continue
		}
		priv, err := parsePrivatePEM(sk.PrivatePEM)
		if err != nil {
			return nil, fmt.Errorf("oidc: signing key %s: %w", sk.ID, err)
		}
		p := signingKey{meta: sk, priv: priv}
		k.parsed[sk.ID] = p
		keys = append(keys, p)
	}
	k.keys, k.loadedAt = keys, now
	return keys, nil
}

// signer returns the key that signs with alg now, creating the first key
// or a successor when needed.
func (k *keyring) signer(ctx context.Context, alg string) (signingKey, error) {
	keys, err := k.load(ctx, false)
	if err != nil {
		return signingKey{}, err
	}
	now := k.now()
	cur, ok := current(keys, alg, now)
	if ok && !needsSuccessor(keys, cur, now, k.policy.publishAhead) {
		return cur, nil
	}
	if keys, err = k.load(ctx, true); err != nil {
		return signingKey{}, err
	}
	cur, ok = current(keys, alg, now)
	if !ok {
		if err := k.create(ctx, alg, now); err != nil {
			return signingKey{}, err
		}
	} else if needsSuccessor(keys, cur, now, k.policy.publishAhead) {
		if err := k.create(ctx, alg, cur.meta.NotAfter); err != nil {
			return signingKey{}, err
		}
	}
	if keys, err = k.load(ctx, true); err != nil {
		return signingKey{}, err
	}
	if cur, ok = current(keys, alg, now); !ok {
		return signingKey{}, fmt.Errorf("oidc: no %s signing key valid at %s", alg, now.Format(time.RFC3339))
	}
	return cur, nil
}

// Rotate writes a successor for alg that starts signing publishAhead from
// now, and shortens the current key's signing period to end then. Use it
// for an unscheduled rotation (a suspected leak of the current key still
// needs its removal from the store).
func (k *keyring) Rotate(ctx context.Context, alg string) error {
	keys, err := k.load(ctx, true)
	if err != nil {
		return err
	}
	now := k.now()
	start := now.Add(k.policy.publishAhead)
	if cur, ok := current(keys, alg, now); ok && cur.meta.NotAfter.After(start) {
		m := cur.meta
		m.NotAfter = start
		m.RetireAt = start.Add(k.policy.maxTokenTTL)
		if err := k.st.PutKey(ctx, m); err != nil {
			return fmt.Errorf("oidc: shorten key %s: %w", m.ID, err)
		}
	}
	if err := k.create(ctx, alg, start); err != nil {
		return err
	}
	_, err = k.load(ctx, true)
	return err
}

// current returns the newest key of alg whose signing period holds now.
func current(keys []signingKey, alg string, now time.Time) (signingKey, bool) {
	var best signingKey
	found := false
	for _, sk := range keys {
		m := sk.meta
		if m.Algorithm != alg || now.Before(m.NotBefore) || !now.Before(m.NotAfter) {
			continue
		}
		if !found || m.NotBefore.After(best.meta.NotBefore) {
			best, found = sk, true
		}
	}
	return best, found
}

// needsSuccessor reports whether cur stops signing within publishAhead and
// no key of its algorithm is yet published to follow it.
func needsSuccessor(keys []signingKey, cur signingKey, now time.Time, ahead time.Duration) bool {
	if cur.meta.NotAfter.Sub(now) > ahead {
		return false
	}
	for _, sk := range keys {
		if sk.meta.Algorithm == cur.meta.Algorithm && !sk.meta.NotBefore.Before(cur.meta.NotAfter) {
			return false
		}
	}
	return true
}

// create generates and stores a key of alg that signs from notBefore.
func (k *keyring) create(ctx context.Context, alg string, notBefore time.Time) error {
	var priv crypto.Signer
	var err error
	switch alg {
	case string(jose.RS256), string(jose.PS256):
		priv, err = rsa.GenerateKey(k.rand, 2048)
	case string(jose.ES256):
		priv, err = ecdsa.GenerateKey(elliptic.P256(), k.rand)
	case string(jose.EdDSA):
		_, priv, err = ed25519.GenerateKey(k.rand)
	default:
		return fmt.Errorf("oidc: unsupported signing algorithm %q", alg)
	}
	if err != nil {
		return fmt.Errorf("oidc: generate %s key: %w", alg, err)
	}
	der, err := x509.MarshalPKCS8PrivateKey(priv)
	if err != nil {
		return fmt.Errorf("oidc: encode %s key: %w", alg, err)
	}
	pubDER, err := x509.MarshalPKIXPublicKey(priv.Public())
	if err != nil {
		return fmt.Errorf("oidc: encode %s public key: %w", alg, err)
	}
	sum := sha256.Sum256(pubDER)
	now := k.now()
	notAfter := notBefore.Add(k.policy.rotation)
	key := store.Key{
		ID: b64(sum[:16]), Use: KeyUse, Algorithm: alg,
		PrivatePEM: pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: der}),
		CreatedAt:  now, NotBefore: notBefore, NotAfter: notAfter,
		RetireAt: notAfter.Add(k.policy.maxTokenTTL),
	}
	if err := k.st.PutKey(ctx, key); err != nil {
		return fmt.Errorf("oidc: store %s key: %w", alg, err)
	}
	return nil
}

// published returns every key not yet retired at now, including successors
// that do not sign yet.
func (k *keyring) published(ctx context.Context) ([]signingKey, error) {
	keys, err := k.load(ctx, false)
	if err != nil {
		return nil, err
	}
	now := k.now()
	out := make([]signingKey, 0, len(keys))
	for _, sk := range keys {
		if now.Before(sk.meta.RetireAt) {
			out = append(out, sk)
		}
	}
	return out, nil
}

// JWKS returns the public keys to publish.
func (k *keyring) JWKS(ctx context.Context) (jose.JSONWebKeySet, error) {
	keys, err := k.published(ctx)
	if err != nil {
		return jose.JSONWebKeySet{}, err
	}
	set := jose.JSONWebKeySet{Keys: make([]jose.JSONWebKey, 0, len(keys))}
	for _, sk := range keys {
		set.Keys = append(set.Keys, jose.JSONWebKey{
			Key: sk.priv.Public(), KeyID: sk.meta.ID, Algorithm: sk.meta.Algorithm, Use: "sig",
		})
	}
	return set, nil
}

// sign signs claims as a compact JWS with the current key of alg and the
// JOSE header typ.
func (k *keyring) sign(ctx context.Context, alg, typ string, claims any) (string, error) {
	sk, err := k.signer(ctx, alg)
	if err != nil {
		return "", err
	}
	payload, err := json.Marshal(claims)
	if err != nil {
		return "", fmt.Errorf("oidc: encode claims: %w", err)
	}
	signer, err := jose.NewSigner(jose.SigningKey{
		Algorithm: jose.SignatureAlgorithm(alg),
		Key:       jose.JSONWebKey{Key: sk.priv, KeyID: sk.meta.ID, Algorithm: alg},
	}, (&jose.SignerOptions{}).WithType(jose.ContentType(typ)))
	if err != nil {
		return "", fmt.Errorf("oidc: new %s signer: %w", alg, err)
	}
	jws, err := signer.Sign(payload)
	if err != nil {
		return "", fmt.Errorf("oidc: sign %s token: %w", typ, err)
	}
	return jws.CompactSerialize()
}

// errUnknownKey reports a JWS signed by a key the provider does not publish.
var errUnknownKey = errors.New("oidc: token signed by an unknown or retired key")

// VerifySignature implements go-oidc's KeySet over the provider's own
// published keys: it verifies a compact JWS and returns its payload.
func (k *keyring) VerifySignature(ctx context.Context, raw string) ([]byte, error) {
	jws, err := jose.ParseSigned(raw, joseAlgs)
	if err != nil {
		return nil, fmt.Errorf("oidc: parse JWS: %w", err)
	}
	return k.verify(ctx, jws)
}

// verify checks a parsed JWS against the published keys and returns its
// payload.
func (k *keyring) verify(ctx context.Context, jws *jose.JSONWebSignature) ([]byte, error) {
	if len(jws.Signatures) != 1 {
		return nil, errors.New("oidc: JWS must carry exactly one signature")
	}
	h := jws.Signatures[0].Header
	keys, err := k.published(ctx)
	if err != nil {
		return nil, err
	}
	for _, sk := range keys {
		if sk.meta.ID != h.KeyID || sk.meta.Algorithm != h.Algorithm {
			continue
		}
		payload, err := jws.Verify(sk.priv.Public())
		if err != nil {
			return nil, fmt.Errorf("oidc: verify JWS: %w", err)
		}
		return payload, nil
	}
	return nil, errUnknownKey
}

func parsePrivatePEM(b []byte) (crypto.Signer, error) {
	blk, _ := pem.Decode(b)
	if blk == nil || blk.Type != "PRIVATE KEY" {
		return nil, errors.New("not a PKCS#8 PEM block")
	}
	k, err := x509.ParsePKCS8PrivateKey(blk.Bytes)
	if err != nil {
		return nil, fmt.Errorf("parse PKCS#8: %w", err)
	}
	s, ok := k.(crypto.Signer)
	if !ok {
		return nil, fmt.Errorf("unsupported key type %T", k)
	}
	return s, nil
}
