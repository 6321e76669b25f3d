package oidc

import (
	"encoding/hex"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	bbolt "go.etcd.io/bbolt"

	"github.com/slobridge/slobridge/store/bolt"
)

// storeSnapshot is the whole content of a bbolt store: "bucket/key" → value
// for every key of every bucket (nested buckets by path).
type storeSnapshot map[string]string

// snapshot copies the bridge's bbolt file and reads every bucket of the
// copy. The caller makes sure no write is in flight (the test is between
// requests, and the engine's poll interval is long), so the copy is the
// committed state.
func (b *bridge) snapshot(tb testing.TB) storeSnapshot {
	tb.Helper()
	db, ok := b.st.(*bolt.DB)
	if !ok {
		tb.Fatalf("snapshot needs the bbolt store, have %T", b.st)
	}
	raw, err := os.ReadFile(db.Path())
	if err != nil {
		tb.Fatalf("snapshot: read store file: %v", err)
	}
	cp := filepath.Join(tb.TempDir(), "snapshot.db")
	if err := os.WriteFile(cp, raw, 0o600); err != nil {
		tb.Fatal(err)
	}
	bdb, err := bbolt.Open(cp, 0o600, &bbolt.Options{ReadOnly: true, Timeout: time.Second})
	if err != nil {
		tb.Fatalf("snapshot: open copy: %v", err)
	}
	defer bdb.Close()
	snap := storeSnapshot{}
	err = bdb.View(func(tx *bbolt.Tx) error {
		return tx.ForEach(func(name []byte, bk *bbolt.Bucket) error {
			return dumpBucket(snap, string(name), bk)
		})
	})
	if err != nil {
		tb.Fatalf("snapshot: read copy: %v", err)
	}
	return snap
}

func dumpBucket(snap storeSnapshot, path string, bk *bbolt.Bucket) error {
	return bk.ForEach(func(k, v []byte) error {
		p := path + "/" + hex.EncodeToString(k)
		if v == nil {
			if nested := bk.Bucket(k); nested != nil {
				return dumpBucket(snap, p, nested)
			}
		}
		snap[p] = string(v)
		return nil
	})
}

// diff lists the keys that were added, removed or changed from a to b.
func (a storeSnapshot) diff(b storeSnapshot) []string {
	var out []string
	for k, v := range a {
		switch w, ok := b[k]; {
		case !ok:
			out = append(out, "removed "+k)
		case w != v:
			out = append(out, "changed "+k)
		}
	}
	for k := range b {
		if _, ok := a[k]; !ok {
			out = append(out, "added "+k)
		}
	}
	slices.Sort(out)
	return out
}

// bucketOf returns the top-level bucket of a diff line.
func bucketOf(line string) string {
	_, p, _ := strings.Cut(line, " ")
	b, _, _ := strings.Cut(p, "/")
	return b
}

// requireUnchanged fails unless the only differences are in the allowed
// top-level buckets.
func requireUnchanged(tb testing.TB, before, after storeSnapshot, allowed ...string) {
	tb.Helper()
	var bad []string
	for _, l := range before.diff(after) {
		if !slices.Contains(allowed, bucketOf(l)) {
			bad = append(bad, l)
		}
	}
	if len(bad) > 0 {
		tb.Fatalf("the store changed:\n%s", strings.Join(bad, "\n"))
	}
}

// TestSnapshotSeesChanges makes sure the snapshot comparison can fail: a
// registration between two snapshots is reported.
func TestSnapshotSeesChanges(t *testing.T) {
	b := newBridgeEngine(t, quietEngine)
	before := b.snapshot(t)
	b.register(t, ClientMetadata{RedirectURIs: []string{"https://app.example/cb"}})
	after := b.snapshot(t)
	d := before.diff(after)
	// The client and its entry in the store's index of clients by kind.
	if len(d) != 2 || !strings.HasPrefix(d[0], "added clients/") || !strings.HasPrefix(d[1], "added clients_by_kind/") {
		t.Fatalf("diff = %v, want one added client and its kind-index entry", d)
	}
	if fmt.Sprint(before.diff(before)) != "[]" {
		t.Fatal("a snapshot differs from itself")
	}
}
