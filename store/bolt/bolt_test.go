package bolt

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	bbolt "go.etcd.io/bbolt"

	"github.com/slobridge/slobridge/store"
	"github.com/slobridge/slobridge/store/storetest"
)

// openTemp opens a fresh database file in t.TempDir and closes it at the
// end of the test.
func openTemp(t *testing.T) *DB {
	t.Helper()
	db, err := Open(filepath.Join(t.TempDir(), "slobridge.db"), Options{})
	if err != nil {
		t.Fatalf("Open: %v", err)
	}
	t.Cleanup(func() { _ = db.Close() })
	return db
}

func TestConformance(t *testing.T) {
	storetest.RunTests(t, storetest.Factory{
		New: func(t *testing.T) store.Store { return openTemp(t) },
		Reopen: func(t *testing.T, s store.Store) store.Store {
			db := s.(*DB)
			if err := db.Close(); err != nil {
				t.Fatalf("Close: %v", err)
			}
			again, err := Open(db.Path(), Options{})
			if err != nil {
				t.Fatalf("reopen: %v", err)
			}
			t.Cleanup(func() { _ = again.Close() })
			return again
		},
		Crash: crashCopy,
	})
}

// crashCopy copies the files of the open db as a crash leaves them into a
// new directory and opens the copy: the database file (every commit was
// synced), and no volatile file, which only a clean Close writes.
func crashCopy(t *testing.T, s store.Store) store.Store {
	db := s.(*DB)
	dir := t.TempDir()
	path := filepath.Join(dir, "slobridge.db")
	if _, err := os.Stat(VolatilePath(db.Path())); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("a volatile file exists while the database is open: %v", err)
	}
	b, err := os.ReadFile(db.Path())
	if err != nil {
		t.Fatalf("crash copy: %v", err)
	}
	if err := os.WriteFile(path, b, 0o600); err != nil {
		t.Fatalf("crash copy: %v", err)
	}
	again, err := Open(path, Options{})
	if err != nil {
		t.Fatalf("open after a crash: %v", err)
	}
	t.Cleanup(func() { _ = again.Close() })
	return again
}

// TestCrashDiscardsVolatileRecords: after a crash the volatile records
// are gone (they lived in memory); a clean Close keeps them for the next
// Open, which removes the file it read them from.
func TestCrashDiscardsVolatileRecords(t *testing.T) {
	db := openTemp(t)
	ctx := t.Context()
	ns := store.VolatilePrefix + "code"
	exp := time.Now().Add(time.Hour)
	if err := db.PutRecord(ctx, store.Record{Namespace: ns, Key: "k", Value: []byte("v"), ExpiresAt: exp}); err != nil {
		t.Fatal(err)
	}
	crashed := crashCopy(t, db)
	if _, err := crashed.GetRecord(ctx, ns, "k", time.Now()); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("volatile record after a crash: %v, want ErrNotFound (file discarded)", err)
	}
	if c := db.CommitCounts(); c.Unsynced != 1 || c.Synced != 0 {
		t.Fatalf("commit counts after one volatile put: %+v, want 1 unsynced", c)
	}
	if err := db.Close(); err != nil {
		t.Fatal(err)
	}
	again, err := Open(db.Path(), Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer again.Close()
	if _, err := os.Stat(VolatilePath(db.Path())); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("Open left the volatile file in place: %v", err)
	}
	if _, err := again.GetRecord(ctx, ns, "k", time.Now()); err != nil {
		t.Fatalf("volatile record after a clean Close and Open: %v", err)
	}
}

func TestOpenLocked(t *testing.T) {
	db := openTemp(t)
	// bbolt's flock belongs to the open file description, so a second Open
	// in the same process contends for it like another process would.
	_, err := Open(db.Path(), Options{Timeout: 50 * time.Millisecond})
	if !errors.Is(err, store.ErrLocked) {
		t.Fatalf("second Open: got %v, want store.ErrLocked", err)
	}
	if want := "database locked by another process: " + db.Path(); !strings.Contains(err.Error(), want) {
		t.Fatalf("error %q does not say %q", err, want)
	}
	if err := db.Ping(t.Context()); err != nil {
		t.Fatalf("first handle broken by the refused open: %v", err)
	}
}

func TestOpenNotBolt(t *testing.T) {
	tests := []struct {
		name    string
		content []byte
	}{
		{"text file", []byte(strings.Repeat("this is not a bbolt database\n", 1000))},
		{"zeros", make([]byte, 64*1024)},
		{"tiny", []byte("x")},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			path := filepath.Join(t.TempDir(), "not.db")
			if err := os.WriteFile(path, tc.content, 0o600); err != nil {
				t.Fatal(err)
			}
			db, err := Open(path, Options{})
			if err == nil {
				_ = db.Close()
				t.Fatal("Open of a non-bbolt file succeeded")
			}
			if !strings.Contains(err.Error(), path) || errors.Is(err, store.ErrLocked) {
				t.Fatalf("error %q does not name the file, or claims a lock", err)
			}
			t.Logf("error: %v", err)
		})
	}
}

func TestClosedIsUnavailable(t *testing.T) {
	db := openTemp(t)
	if err := db.Close(); err != nil {
		t.Fatal(err)
	}
	if err := db.Ping(t.Context()); !errors.Is(err, store.ErrUnavailable) {
		t.Fatalf("Ping after Close: got %v, want store.ErrUnavailable", err)
	}
	_, err := db.AddParticipant(context.Background(), store.Participant{SessionID: "s", Key: "k"})
	if !errors.Is(err, store.ErrUnavailable) {
		t.Fatalf("AddParticipant after Close: got %v, want store.ErrUnavailable", err)
	}
}

func TestRefusesNUL(t *testing.T) {
	db := openTemp(t)
	s := store.Session{ID: "a\x00b", UserID: "u", ExpiresAt: time.Now().Add(time.Hour)}
	if err := db.CreateSession(t.Context(), s); !errors.Is(err, store.ErrInvalid) {
		t.Fatalf("CreateSession with NUL in ID: got %v, want store.ErrInvalid", err)
	}
	s.ID, s.UserID = "s1", "u\x00v"
	if err := db.CreateSession(t.Context(), s); !errors.Is(err, store.ErrInvalid) {
		t.Fatalf("CreateSession with NUL in user ID: got %v, want store.ErrInvalid", err)
	}
}

// TestReleaseLeasesOnOpen shows that a delivery leased by a process that
// was killed mid-attempt is due at once after Open with ReleaseLeases,
// and that a plain Open keeps the lease as the store contract says.
func TestReleaseLeasesOnOpen(t *testing.T) {
	ctx := t.Context()
	now := time.Date(2026, time.March, 1, 12, 0, 0, 0, time.UTC)
	path := filepath.Join(t.TempDir(), "slobridge.db")
	db, err := Open(path, Options{Now: func() time.Time { return now }})
	if err != nil {
		t.Fatal(err)
	}
	if err := db.CreateSession(ctx, store.Session{ID: "s1", UserID: "u1", CreatedAt: now, ExpiresAt: now.Add(time.Hour)}); err != nil {
		t.Fatal(err)
	}
	for _, app := range []string{"a", "b"} {
		if _, err := db.AddParticipant(ctx, store.Participant{SessionID: "s1", Key: "http:" + app, Kind: "http", AppID: app,
			Channels: store.ChannelBack, BackChannelURL: "https://" + app + ".example/logout", JoinedAt: now}); err != nil {
			t.Fatal(err)
		}
	}
	n := 0
	if _, _, err := db.EndSessions(ctx, store.LogoutSpec{LogoutID: "lo1", SessionIDs: []string{"s1"},
		Initiator: store.Initiator{Kind: store.InitiatorAdmin}, Now: now,
		NewDeliveryID: func() string { n++; return fmt.Sprintf("d%d", n) }}); err != nil {
		t.Fatal(err)
	}
	claimed, err := db.ClaimDueDeliveries(ctx, "dead-process", now, time.Minute, 1)
	if err != nil || len(claimed) != 1 {
		t.Fatalf("claim: %v, %d deliveries", err, len(claimed))
	}
	if err := db.Close(); err != nil {
		t.Fatal(err)
	}
	dueNow := func(db *DB) int {
		t.Helper()
		ds, err := db.ClaimDueDeliveries(ctx, "probe", now.Add(time.Second), time.Minute, 10)
		if err != nil {
			t.Fatal(err)
		}
		return len(ds)
	}

	// A plain Open keeps the dead process's lease: one of two is due.
	plain, err := Open(path, Options{Now: func() time.Time { return now }})
	if err != nil {
		t.Fatal(err)
	}
	if got := dueNow(plain); got != 1 {
		t.Fatalf("plain Open: %d deliveries due, want 1 (the other is still leased)", got)
	}
	if err := plain.Close(); err != nil {
		t.Fatal(err)
	}

	// The probe above leased the free one too; ReleaseLeases frees both.
	again, err := Open(path, Options{ReleaseLeases: true, Now: func() time.Time { return now }})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = again.Close() })
	if got := dueNow(again); got != 2 {
		t.Fatalf("Open with ReleaseLeases: %d deliveries due, want 2", got)
	}
	d, err := again.GetDelivery(ctx, claimed[0].ID)
	if err != nil {
		t.Fatal(err)
	}
	if d.LeaseOwner != "probe" {
		t.Fatalf("released delivery leased by %q, want the new claimant", d.LeaseOwner)
	}
}

// TestClientKindIndex shows that ListClients by kind follows kind changes
// and deletions, and that a file written before the kind index existed
// gets the index built at Open.
func TestClientKindIndex(t *testing.T) {
	ctx := t.Context()
	db := openTemp(t)
	for _, c := range []store.Client{{ID: "ssf:api", Kind: "ssf"}, {ID: "wiki", Kind: "oidc"}, {ID: "chat", Kind: "oidc"}} {
		if err := db.PutClient(ctx, c); err != nil {
			t.Fatal(err)
		}
	}
	ids := func(db *DB, kind string) string {
		t.Helper()
		cs, err := db.ListClients(ctx, kind)
		if err != nil {
			t.Fatal(err)
		}
		var out []string
		for _, c := range cs {
			out = append(out, c.ID)
		}
		return strings.Join(out, ",")
	}
	if got := ids(db, "oidc"); got != "chat,wiki" {
		t.Fatalf("oidc clients %q, want chat,wiki", got)
	}
	if err := db.UpdateClient(ctx, "chat", func(c store.Client) (store.Client, error) { c.Kind = "saml"; return c, nil }); err != nil {
		t.Fatal(err)
	}
	if err := db.DeleteClient(ctx, "wiki"); err != nil {
		t.Fatal(err)
	}
	if got := ids(db, "oidc") + "|" + ids(db, "saml") + "|" + ids(db, ""); got != "|chat|chat,ssf:api" {
		t.Fatalf("after kind change and delete: %q, want |chat|chat,ssf:api", got)
	}

	// Drop the index, as in a file of an earlier build, and reopen.
	if err := db.bolt.Update(func(tx *bbolt.Tx) error { return tx.DeleteBucket([]byte(bkClientsByKind)) }); err != nil {
		t.Fatal(err)
	}
	if err := db.Close(); err != nil {
		t.Fatal(err)
	}
	again, err := Open(db.Path(), Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = again.Close() })
	if got := ids(again, "ssf") + "|" + ids(again, "saml"); got != "ssf:api|chat" {
		t.Fatalf("after rebuilding the index: %q, want ssf:api|chat", got)
	}
}

// TestFailingIndexBuiltForOlderFiles: a file written before the index of
// failing deliveries existed gets it built when it is opened.
func TestFailingIndexBuiltForOlderFiles(t *testing.T) {
	ctx := context.Background()
	db := openTemp(t)
	now := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	if err := db.CreateSession(ctx, store.Session{ID: "s1", UserID: "alice", CreatedAt: now, ExpiresAt: now.Add(time.Hour)}); err != nil {
		t.Fatal(err)
	}
	for _, app := range []string{"a", "b"} {
		p := store.Participant{SessionID: "s1", Key: "oidc:" + app, Kind: "oidc", AppID: app, Channels: store.ChannelBack,
			BackChannelURL: "https://" + app + ".example/logout", JoinedAt: now}
		if _, err := db.AddParticipant(ctx, p); err != nil {
			t.Fatal(err)
		}
	}
	n := 0
	_, ds, err := db.EndSessions(ctx, store.LogoutSpec{LogoutID: "lo1", SessionIDs: []string{"s1"}, Now: now,
		NewDeliveryID: func() string { n++; return fmt.Sprintf("d%d", n) }})
	if err != nil || len(ds) != 2 {
		t.Fatalf("EndSessions: %d deliveries, %v", len(ds), err)
	}
	if _, err := db.ClaimDueDeliveries(ctx, "w", now, time.Minute, 10); err != nil {
		t.Fatal(err)
	}
	if _, err := db.CompleteAttempt(ctx, "d2", "w", store.Attempt{At: now, Error: "refused"}, store.DeliveryFailed, time.Time{}); err != nil {
		t.Fatal(err)
	}
	if err := db.bolt.Update(func(tx *bbolt.Tx) error { return tx.DeleteBucket([]byte(bkDelFailing)) }); err != nil {
		t.Fatal(err)
	}
	if err := db.Close(); err != nil {
		t.Fatal(err)
	}
	again, err := Open(db.Path(), Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = again.Close() })
	got, err := again.ListFailingDeliveries(ctx, store.Cursor{}, 10)
	if err != nil || len(got) != 1 || got[0].ID != "d2" {
		t.Fatalf("failing deliveries after rebuilding the index: %+v, %v; want d2", got, err)
	}
}

// TestSessionFilterIndexesBuiltForOlderFiles: a file written before the
// indexes of sessions by upstream and by app existed gets them built when
// it is opened.
func TestSessionFilterIndexesBuiltForOlderFiles(t *testing.T) {
	ctx := context.Background()
	db := openTemp(t)
	now := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	if err := db.CreateSession(ctx, store.Session{ID: "s1", UserID: "alice", Upstream: "corp", CreatedAt: now, ExpiresAt: now.Add(time.Hour)}); err != nil {
		t.Fatal(err)
	}
	if _, err := db.AddParticipant(ctx, store.Participant{SessionID: "s1", Key: "oidc:payroll", Kind: "oidc", AppID: "payroll", JoinedAt: now}); err != nil {
		t.Fatal(err)
	}
	err := db.bolt.Update(func(tx *bbolt.Tx) error {
		return errors.Join(tx.DeleteBucket([]byte(bkSessByUp)), tx.DeleteBucket([]byte(bkSessByApp)))
	})
	if err != nil {
		t.Fatal(err)
	}
	if err := db.Close(); err != nil {
		t.Fatal(err)
	}
	again, err := Open(db.Path(), Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = again.Close() })
	for _, f := range []store.SessionFilter{{Upstream: "corp"}, {AppID: "payroll"}} {
		got, err := again.ListSessions(ctx, f, store.Cursor{}, 10)
		if err != nil || len(got) != 1 || got[0].ID != "s1" {
			t.Fatalf("sessions by %+v after rebuilding the indexes: %+v, %v; want s1", f, got, err)
		}
	}
}
