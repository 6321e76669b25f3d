package resource

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"sync"
	"time"

	jose "github.com/go-jose/go-jose/v4"
)

// DefaultJWKSRefresh is the least time between two JWKS downloads caused by
// tokens naming an unknown key.
const DefaultJWKSRefresh = 5 * time.Minute

// failedRefresh is the least time between a failed JWKS download and the
// next attempt.
const failedRefresh = 5 * time.Second

// maxJWKSBytes caps a JWKS document.
const maxJWKSBytes = 1 << 20

// remoteKeys is the oidc.KeySet of a Guard that downloads the bridge's JWKS
// itself, so that anonymous callers cannot make it download at will (go-oidc's
// RemoteKeySet downloads again for every token whose kid it does not know
// and for every bad signature):
//   - a token whose kid is known is verified with that key only; a bad
//     signature is a bad token, never a reason to download;
//   - an unknown kid (or a first use) downloads the JWKS at most once per
//     refresh interval (after a failed download, once per failedRefresh),
//     one download at a time; the others wait for it.
type remoteKeys struct {
	url     string
	client  *http.Client
	refresh time.Duration
	now     func() time.Time

	mu      sync.Mutex
	keys    []jose.JSONWebKey
	fetched time.Time     // last download attempt
	loading chan struct{} // closed when the running download ends
	lastErr error
}

func newRemoteKeys(url string, client *http.Client, refresh time.Duration, now func() time.Time) *remoteKeys {
	if client == nil {
		client = http.DefaultClient
	}
	if refresh <= 0 {
		refresh = DefaultJWKSRefresh
	}
	return &remoteKeys{url: url, client: client, refresh: refresh, now: now}
}

// VerifySignature implements oidc.KeySet.
func (k *remoteKeys) VerifySignature(ctx context.Context, raw string) ([]byte, error) {
	jws, err := jose.ParseSigned(raw, []jose.SignatureAlgorithm{jose.RS256, jose.ES256, jose.PS256, jose.EdDSA})
	if err != nil {
		return nil, fmt.Errorf("malformed JWS: %v", err)
	}
	if len(jws.Signatures) != 1 {
		return nil, errors.New("want exactly one signature")
	}
	kid := jws.Signatures[0].Header.KeyID
	keys, err := k.candidates(ctx, kid)
	if err != nil {
		return nil, err
	}
	for _, key := range keys {
		if payload, err := jws.Verify(key.Key); err == nil {
			return payload, nil
		}
	}
	return nil, errors.New("failed to verify signature")
}

// candidates returns the keys that may have signed a token with kid,
// downloading the JWKS when kid is unknown and the last download is older
// than the refresh interval.
func (k *remoteKeys) candidates(ctx context.Context, kid string) ([]jose.JSONWebKey, error) {
	for range 2 {
		k.mu.Lock()
		if match := matching(k.keys, kid); len(match) > 0 {
			k.mu.Unlock()
			return match, nil
		}
		if wait := k.loading; wait != nil {
			k.mu.Unlock()
			select {
			case <-wait:
				continue
			case <-ctx.Done():
				return nil, ctx.Err()
			}
		}
		wait := k.refresh
		if k.lastErr != nil {
			wait = min(wait, failedRefresh)
		}
		if !k.fetched.IsZero() && k.now().Sub(k.fetched) < wait {
			err := k.lastErr
			k.mu.Unlock()
			if err != nil {
				return nil, fmt.Errorf("%w: %v", errKeysUnavailable, err)
			}
			return nil, fmt.Errorf("no key with kid %q (the JWKS is downloaded again at most every %s)", kid, k.refresh)
		}
		done := make(chan struct{})
		k.loading, k.fetched = done, k.now()
		k.mu.Unlock()
		keys, err := k.download(ctx)
		k.mu.Lock()
		k.lastErr = err
		if err == nil {
			k.keys = keys
		}
		k.loading = nil
		close(done)
		k.mu.Unlock()
		if err != nil {
			return nil, fmt.Errorf("%w: %v", errKeysUnavailable, err)
		}
	}
	return nil, fmt.Errorf("no key with kid %q", kid)
}

// matching returns the signing keys with kid; with no kid, every signing key.
func matching(keys []jose.JSONWebKey, kid string) []jose.JSONWebKey {
	var out []jose.JSONWebKey
	for _, key := range keys {
		if key.Use != "" && key.Use != "sig" {
			continue
		}
		if kid == "" || key.KeyID == kid {
			out = append(out, key)
		}
	}
	return out
}

// download fetches and parses the JWKS.
func (k *remoteKeys) download(ctx context.Context) ([]jose.JSONWebKey, error) {
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 10*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, k.url, nil)
	if err != nil {
		return nil, err
	}
	resp, err := k.client.Do(req)
	if err != nil {
		return nil, fmt.Errorf("fetching keys: %v", err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("fetching keys: %s answered %s", k.url, resp.Status)
	}
	body, err := io.ReadAll(io.LimitReader(resp.Body, maxJWKSBytes+1))
	if err != nil {
		return nil, fmt.Errorf("fetching keys: %v", err)
	}
	if len(body) > maxJWKSBytes {
		return nil, fmt.Errorf("fetching keys: JWKS larger than %d bytes", maxJWKSBytes)
	}
	var set jose.JSONWebKeySet
	if err := json.Unmarshal(body, &set); err != nil {
		return nil, fmt.Errorf("fetching keys: %v", err)
	}
	return set.Keys, nil
}
