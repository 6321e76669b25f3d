package oidc

import (
	"context"
	"encoding/json"
	"net/http"
	"slices"
	"testing"
	"time"

	gooidc "github.com/coreos/go-oidc/v3/oidc"
	jose "github.com/go-jose/go-jose/v4"

	"github.com/slobridge/slobridge/store"
)

// fetchJWKS reads the bridge's published key IDs over HTTP.
func fetchJWKS(t *testing.T, b *bridge) []string {
	t.Helper()
	resp := get(t, http.DefaultClient, b.p.Issuer()+PathJWKS)
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("JWKS: HTTP %d", resp.StatusCode)
	}
	var set jose.JSONWebKeySet
	if err := json.NewDecoder(resp.Body).Decode(&set); err != nil {
		t.Fatal(err)
	}
	var ids []string
	for _, k := range set.Keys {
		if !k.IsPublic() || k.Use != "sig" || k.Algorithm == "" {
			t.Fatalf("JWKS entry %s: public %v use %q alg %q", k.KeyID, k.IsPublic(), k.Use, k.Algorithm)
		}
		ids = append(ids, k.KeyID)
	}
	slices.Sort(ids)
	return ids
}

// signedKID signs an ID token now and returns the kid that signed it and
// the token.
func signedKID(t *testing.T, b *bridge) (string, string) {
	t.Helper()
	now := b.clock.Now()
	raw, err := b.p.mintIDToken(context.Background(), Client{ID: "app"},
		grant{ClientID: "app", SessionID: "sid-1", UserID: "alice", AuthTime: now}, sessionFor(now), "", now)
	if err != nil {
		t.Fatal(err)
	}
	jws, err := jose.ParseSigned(raw, []jose.SignatureAlgorithm{jose.RS256})
	if err != nil {
		t.Fatal(err)
	}
	return jws.Signatures[0].Header.KeyID, raw
}

// verifyAt verifies an ID token as an RP would, against the bridge's JWKS
// endpoint, at the bridge clock's time.
func verifyAt(t *testing.T, b *bridge, raw string) error {
	t.Helper()
	ks := gooidc.NewRemoteKeySet(context.Background(), b.p.Issuer()+PathJWKS)
	v := gooidc.NewVerifier(b.p.Issuer(), ks, &gooidc.Config{ClientID: "app", Now: b.clock.Now})
	_, err := v.Verify(context.Background(), raw)
	return err
}

// TestKeyRotation: a successor key is in the JWKS for KeyPublishAhead before
// it signs; the old key stays published until every token it signed has
// expired, and then leaves.
func TestKeyRotation(t *testing.T) {
	const (
		rotation = 4 * time.Hour
		ahead    = time.Hour
		idTTL    = 30 * time.Minute
	)
	b := newBridgeEngine(t, quietEngine, func(o *Options) {
		o.KeyRotation, o.KeyPublishAhead, o.IDTokenTTL, o.AccessTokenTTL = rotation, ahead, idTTL, 5*time.Minute
	})
	first, _ := signedKID(t, b)
	if got := fetchJWKS(t, b); !slices.Equal(got, []string{first}) {
		t.Fatalf("JWKS = %v, want [%s]", got, first)
	}

	// Inside the publish-ahead window: the successor appears, the first
	// key still signs.
	b.clock.Advance(rotation - ahead + time.Minute)
	if kid, _ := signedKID(t, b); kid != first {
		t.Fatalf("signed with %s before the successor's start, want %s", kid, first)
	}
	keys := fetchJWKS(t, b)
	if len(keys) != 2 || !slices.Contains(keys, first) {
		t.Fatalf("JWKS = %v, want the first key and its successor", keys)
	}
	next := keys[0]
	if next == first {
		next = keys[1]
	}

	// The last token of the first key, a minute before its period ends.
	b.clock.Advance(ahead - 2*time.Minute)
	kid, lastOld := signedKID(t, b)
	if kid != first {
		t.Fatalf("signed with %s before the successor's start, want %s", kid, first)
	}

	// After the first key's signing period: the successor signs, the first
	// key is still published so its tokens verify.
	b.clock.Advance(2 * time.Minute)
	if kid, _ := signedKID(t, b); kid != next {
		t.Fatalf("signed with %s after rotation, want the successor %s", kid, next)
	}
	if got := fetchJWKS(t, b); !slices.Contains(got, first) {
		t.Fatalf("JWKS = %v dropped the old key while its tokens live", got)
	}
	if err := verifyAt(t, b, lastOld); err != nil {
		t.Fatalf("an unexpired token of the old key no longer verifies: %v", err)
	}

	// Once the longest-lived token of the old key has expired, it leaves.
	b.clock.Advance(max(idTTL, 5*time.Minute, logoutTokenTTL) + time.Minute)
	if got := fetchJWKS(t, b); slices.Contains(got, first) || !slices.Contains(got, next) {
		t.Fatalf("JWKS = %v, want only the successor %s", got, next)
	}
}

// TestRotateKeyNow: an unscheduled rotation publishes the successor at once
// and switches signing only after KeyPublishAhead.
func TestRotateKeyNow(t *testing.T) {
	b := newBridgeEngine(t, quietEngine, func(o *Options) { o.KeyPublishAhead = 10 * time.Minute })
	first, _ := signedKID(t, b)
	if err := b.p.RotateKey(context.Background(), "RS256"); err != nil {
		t.Fatal(err)
	}
	keys := fetchJWKS(t, b)
	if len(keys) != 2 {
		t.Fatalf("JWKS after RotateKey = %v, want two keys", keys)
	}
	if kid, _ := signedKID(t, b); kid != first {
		t.Fatalf("the successor signs before it was published for KeyPublishAhead")
	}
	b.clock.Advance(10*time.Minute + time.Second)
	if kid, _ := signedKID(t, b); kid == first || !slices.Contains(keys, kid) {
		t.Fatalf("after KeyPublishAhead signed with %s, want the successor of %s in %v", kid, first, keys)
	}
}

func sessionFor(now time.Time) store.Session {
	return store.Session{ID: "sid-1", UserID: "alice", AuthTime: now, ExpiresAt: now.Add(8 * time.Hour)}
}
