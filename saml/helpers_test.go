package saml

import (
	"context"
	"path/filepath"
	"testing"
	"time"

	"github.com/slobridge/slobridge/store/bolt"
)

// t0 is the fixed clock of the codec tests and of the negative corpus.
var t0 = time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)

func testSigner(t testing.TB, name string) *Signer {
	t.Helper()
	s, err := LoadSigner(filepath.Join("testdata", name+".crt"), filepath.Join("testdata", name+".key"))
	if err != nil {
		t.Fatalf("load %s key: %v", name, err)
	}
	return s
}

func testTrust(t testing.TB, entityID string, names ...string) Trust {
	t.Helper()
	tr := Trust{EntityID: entityID}
	for _, n := range names {
		tr.Certs = append(tr.Certs, testSigner(t, n).Cert)
	}
	return tr
}

func testValidator(t testing.TB) *Validator {
	t.Helper()
	db, err := bolt.Open(filepath.Join(t.TempDir(), "saml.db"), bolt.Options{NoSync: true})
	if err != nil {
		t.Fatalf("open store: %v", err)
	}
	t.Cleanup(func() { _ = db.Close() })
	return &Validator{Store: db, Now: func() time.Time { return t0 }}
}

func ctxT(t testing.TB) context.Context { return t.Context() }
