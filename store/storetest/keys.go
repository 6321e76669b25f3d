package storetest

import (
	"testing"
	"time"

	"github.com/slobridge/slobridge/store"
)

// testKeys covers signing keys.
func testKeys(t *testing.T, f Factory) {
	runAll(t, f, []subtest{{"CRUD", testKeyCRUD}})
}

// newKey returns a signing key created at created.
func newKey(id, use string, created time.Time) store.Key {
	return store.Key{
		ID: id, Use: use, Algorithm: "ES256",
		PrivatePEM: []byte("-----BEGIN PRIVATE KEY-----\n" + id + "\n-----END PRIVATE KEY-----\n"),
		CreatedAt:  created, NotBefore: created.Add(time.Hour),
		NotAfter: created.Add(90 * 24 * time.Hour), RetireAt: created.Add(120 * 24 * time.Hour),
	}
}

func testKeyCRUD(t *testing.T, s store.Store) {
	newer, older, saml := newKey("k-new", "oidc", at(time.Hour)), newKey("k-old", "oidc", at(0)), newKey("k-saml", "saml", at(0))
	for _, k := range []store.Key{newer, saml, older} {
		must(t, s.PutKey(ctx(t), k), "PutKey "+k.ID)
	}
	got, err := s.ListKeys(ctx(t), "oidc")
	must(t, err, "ListKeys")
	wantEqual(t, norm(got), norm([]store.Key{older, newer}), "oidc keys, oldest first")

	older.NotAfter = at(2 * time.Hour)
	must(t, s.PutKey(ctx(t), older), "PutKey replace")
	got, err = s.ListKeys(ctx(t), "oidc")
	must(t, err, "ListKeys")
	wantEqual(t, norm(got), norm([]store.Key{older, newer}), "oidc keys after replace")

	must(t, s.DeleteKey(ctx(t), "k-old"), "DeleteKey")
	got, err = s.ListKeys(ctx(t), "oidc")
	must(t, err, "ListKeys")
	wantEqual(t, norm(got), norm([]store.Key{newer}), "oidc keys after delete")
	got, err = s.ListKeys(ctx(t), "saml")
	must(t, err, "ListKeys saml")
	wantEqual(t, norm(got), norm([]store.Key{saml}), "saml keys")
}
