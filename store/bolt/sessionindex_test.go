package bolt

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	bbolt "go.etcd.io/bbolt"

	"github.com/slobridge/slobridge/store"
)

// sessionIndexEntries lists the index entries of session id found in the
// session index buckets, as "bucket/key".
func sessionIndexEntries(t *testing.T, db *DB, id string) []string {
	t.Helper()
	var out []string
	err := db.bolt.View(func(tx *bbolt.Tx) error {
		for _, name := range []string{bkSessByUser, bkSessByNameID, bkSessByUp, bkSessActive, bkSessEnded} {
			err := tx.Bucket([]byte(name)).ForEach(func(k, _ []byte) error {
				if strings.HasSuffix(string(k), id) {
					out = append(out, fmt.Sprintf("%s/%q", name, k))
				}
				return nil
			})
			if err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	slices.Sort(out)
	return out
}

// wantIndexEntries lists the index entries s should have, as "bucket/key".
func wantIndexEntries(s store.Session) []string {
	var out []string
	for _, e := range sessionIndexKeys(s) {
		out = append(out, fmt.Sprintf("%s/%q", e.bucket, e.key))
	}
	slices.Sort(out)
	return slices.Compact(out)
}

// TestSessionIndexFollowsUpdates checks that re-authentication and the end
// of a session leave exactly the index entries of the stored session: none
// stale, none missing.
func TestSessionIndexFollowsUpdates(t *testing.T) {
	ctx := context.Background()
	db := openTemp(t)
	t0 := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
	s := store.Session{ID: "sess-idx", UserID: "alice", Upstream: "idp", NameID: store.NameID{Value: "alice-1"},
		SessionIndex: "si-1", CreatedAt: t0, AuthTime: t0, ExpiresAt: t0.Add(time.Hour)}
	if err := db.CreateSession(ctx, s); err != nil {
		t.Fatal(err)
	}
	steps := []struct {
		name string
		run  func() error
	}{
		{"created", func() error { return nil }},
		{"re-authenticated with another NameID", func() error {
			_, err := db.ReauthenticateSession(ctx, s.ID, store.SessionAuth{UserID: "alice", Upstream: "idp",
				NameID: store.NameID{Value: "alice-2"}, SessionIndex: "si-2", ExpiresAt: t0.Add(2 * time.Hour)}, t0.Add(time.Minute))
			return err
		}},
		{"re-authenticated with the same NameID", func() error {
			_, err := db.ReauthenticateSession(ctx, s.ID, store.SessionAuth{UserID: "alice", Upstream: "idp",
				NameID: store.NameID{Value: "alice-2"}, SessionIndex: "si-3", ExpiresAt: t0.Add(3 * time.Hour)}, t0.Add(2*time.Minute))
			return err
		}},
		{"ended", func() error {
			n := 0
			_, _, err := db.EndSessions(ctx, store.LogoutSpec{LogoutID: "lo-idx", SessionIDs: []string{s.ID},
				Initiator: store.Initiator{Kind: store.InitiatorAdmin}, Now: t0.Add(3 * time.Minute),
				NewDeliveryID: func() string { n++; return fmt.Sprintf("d-%d", n) }})
			return err
		}},
	}
	for _, st := range steps {
		if err := st.run(); err != nil {
			t.Fatalf("%s: %v", st.name, err)
		}
		got, err := db.GetSession(ctx, s.ID)
		if err != nil {
			t.Fatalf("%s: GetSession: %v", st.name, err)
		}
		if have, want := sessionIndexEntries(t, db, s.ID), wantIndexEntries(got); !slices.Equal(have, want) {
			t.Fatalf("%s: index entries\n%v\nwant\n%v", st.name, have, want)
		}
	}
}

// TestEmailIndexBuiltForOlderFiles: a file written before the email index
// existed gets it built when opened.
func TestEmailIndexBuiltForOlderFiles(t *testing.T) {
	path := t.TempDir() + "/old.db"
	db, err := Open(path, Options{NoSync: true})
	if err != nil {
		t.Fatal(err)
	}
	now := time.Now()
	s := store.Session{ID: "s1", UserID: "alice", CreatedAt: now, ExpiresAt: now.Add(time.Hour),
		Attributes: map[string][]string{"email": {"alice@example.org"}}}
	if err := db.CreateSession(context.Background(), s); err != nil {
		t.Fatal(err)
	}
	db.Close()
	raw, err := bbolt.Open(path, 0o600, nil)
	if err != nil {
		t.Fatal(err)
	}
	if err := raw.Update(func(tx *bbolt.Tx) error { return tx.DeleteBucket([]byte(bkSessByEmail)) }); err != nil {
		t.Fatal(err)
	}
	raw.Close()
	db, err = Open(path, Options{NoSync: true})
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	got, err := db.FindSessionsByEmail(context.Background(), "alice@example.org")
	if err != nil || len(got) != 1 || got[0].ID != "s1" {
		t.Fatalf("FindSessionsByEmail after reopening an older file: %v %v", got, err)
	}
}
