package bolt

import (
	"context"
	"errors"
	"fmt"
	"testing"
	"time"

	bbolt "go.etcd.io/bbolt"

	"github.com/slobridge/slobridge/store"
)

// fillEnded stores n sessions, each with a participant, ended at t0.
func fillEnded(t *testing.T, db *DB, n int, t0 time.Time) {
	t.Helper()
	const chunk = 1000
	for from := 0; from < n; from += chunk {
		err := db.bolt.Update(func(tx *bbolt.Tx) error {
			for i := from; i < min(from+chunk, n); i++ {
				s := store.Session{ID: fmt.Sprintf("s%06d", i), UserID: fmt.Sprintf("u%d", i%100),
					CreatedAt: t0.Add(-time.Hour), ExpiresAt: t0.Add(time.Hour), EndedAt: t0}
				if err := putSession(tx, nil, s); err != nil {
					return err
				}
			}
			return nil
		})
		if err != nil {
			t.Fatal(err)
		}
	}
}

// TestSweepWorksInBoundedTransactions: a backlog is removed in many small
// commits (at most sweepBatchKeys items each), not one long transaction,
// and completely, while a login is written beside it (how long a login
// waits is measured by BenchmarkSweepBacklog, not asserted here).
func TestSweepWorksInBoundedTransactions(t *testing.T) {
	db, err := Open(t.TempDir()+"/sweep.db", Options{NoSync: true})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = db.Close() })
	t0 := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	const backlog = 5500
	fillEnded(t, db, backlog, t0)
	for i := range 3 * sweepBatchKeys / 2 {
		r := store.Record{Namespace: store.VolatilePrefix + "x", Key: fmt.Sprint(i), ExpiresAt: t0}
		_ = memTx{&db.vol}.put(storedRecord{Record: r})
	}

	ctx := context.Background()
	before := db.CommitCounts()
	done := make(chan store.SweepResult)
	go func() {
		res, err := db.Sweep(ctx, t0.Add(48*time.Hour), time.Hour)
		if err != nil {
			t.Error(err)
		}
		done <- res
	}()
	login := store.Session{ID: "new", UserID: "bob", CreatedAt: t0.Add(47 * time.Hour), ExpiresAt: t0.Add(72 * time.Hour)}
	if err := db.CreateSession(ctx, login); err != nil {
		t.Fatal(err)
	}
	res := <-done
	if res.Sessions != backlog || res.Records != 3*sweepBatchKeys/2 {
		t.Fatalf("Sweep removed %+v, want %d sessions and %d records", res, backlog, 3*sweepBatchKeys/2)
	}
	after := db.CommitCounts()
	// NoSync: every commit counts as unsynced. 5,500 sessions in batches
	// of at most sweepBatchKeys are that many commits at least (the
	// volatile records are swept in memory).
	commits := after.Unsynced - before.Unsynced
	if commits < uint64(backlog/sweepBatchKeys)+1 {
		t.Fatalf("the sweep of %d sessions and %d records took %d commits: not bounded batches", backlog, res.Records, commits)
	}
	n, err := db.CountActiveSessions(ctx, t0.Add(48*time.Hour))
	if err != nil || n != 1 {
		t.Fatalf("CountActiveSessions after the sweep = %d, %v; want 1 (the login)", n, err)
	}
	if _, err := db.GetSession(ctx, "new"); err != nil {
		t.Fatalf("the login made during the sweep: %v", err)
	}
}

// TestSweepCancelled: a cancelled context stops the sweep between
// transactions, keeping what it removed.
func TestSweepCancelled(t *testing.T) {
	db, err := Open(t.TempDir()+"/sweep.db", Options{NoSync: true})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = db.Close() })
	t0 := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	fillEnded(t, db, 10, t0)
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if _, err := db.Sweep(ctx, t0.Add(48*time.Hour), time.Hour); err == nil {
		t.Fatal("Sweep with a cancelled context: no error")
	}
	if _, err := db.GetSession(context.Background(), "s000001"); err != nil {
		t.Fatalf("a session the cancelled sweep never reached: %v", err)
	}
}

// TestActiveCountKeptAndBuiltForOlderFiles: the count of active sessions
// is a stored counter that follows creates, re-authentications, ends and
// sweeps, and is built once for a file written before it existed.
func TestActiveCountKeptAndBuiltForOlderFiles(t *testing.T) {
	path := t.TempDir() + "/count.db"
	db, err := Open(path, Options{NoSync: true})
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	t0 := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	for i := range 5 {
		s := store.Session{ID: fmt.Sprint("s", i), UserID: "alice", CreatedAt: t0, ExpiresAt: t0.Add(time.Duration(i+1) * time.Hour)}
		if err := db.CreateSession(ctx, s); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := db.ReauthenticateSession(ctx, "s0", store.SessionAuth{UserID: "alice", AuthTime: t0, ExpiresAt: t0.Add(10 * time.Hour)}, t0); err != nil {
		t.Fatal(err)
	}
	if _, _, err := db.EndSessions(ctx, store.LogoutSpec{LogoutID: "lo", SessionIDs: []string{"s1"}, Now: t0, NewDeliveryID: func() string { return "d" }}); err != nil {
		t.Fatal(err)
	}
	want := func(at time.Duration, n int) {
		t.Helper()
		got, err := db.CountActiveSessions(ctx, t0.Add(at))
		if err != nil || got != n {
			t.Fatalf("CountActiveSessions at +%s = %d, %v; want %d", at, got, err, n)
		}
	}
	want(0, 4)             // s0 (re-authenticated until +10h), s2, s3, s4; s1 ended
	want(3*time.Hour, 3)   // s2 expired at +3h
	want(5*time.Hour+1, 1) // only s0
	db.Close()
	raw, err := bbolt.Open(path, 0o600, nil)
	if err != nil {
		t.Fatal(err)
	}
	if err := raw.Update(func(tx *bbolt.Tx) error { return tx.DeleteBucket([]byte(bkMeta)) }); err != nil {
		t.Fatal(err)
	}
	raw.Close()
	if db, err = Open(path, Options{NoSync: true}); err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	want(0, 4)
	if _, err := db.Sweep(ctx, t0.Add(20*time.Hour), time.Hour); err != nil {
		t.Fatal(err)
	}
	want(0, 0)
}

// TestVolatileLimitRefusesLogins: past Options.VolatileLimit a new volatile
// record (a login starting) is refused with store.ErrNoSpace; taking one
// (a login finishing) makes room again, and durable records are not
// affected.
func TestVolatileLimitRefusesLogins(t *testing.T) {
	db, err := Open(t.TempDir()+"/limit.db", Options{NoSync: true, VolatileLimit: 4096})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = db.Close() })
	ctx := context.Background()
	ns := store.VolatilePrefix + "authreq"
	exp := time.Now().Add(time.Hour)
	put := func(k string) error {
		return db.PutRecord(ctx, store.Record{Namespace: ns, Key: k, Value: make([]byte, 500), ExpiresAt: exp})
	}
	n := 0
	for ; n < 100; n++ {
		if err := put(fmt.Sprint("k", n)); err != nil {
			if !errors.Is(err, store.ErrNoSpace) {
				t.Fatalf("put %d: %v, want ErrNoSpace", n, err)
			}
			break
		}
	}
	if n == 0 || n == 100 {
		t.Fatalf("%d volatile records fitted in 4 KiB", n)
	}
	if err := db.PutRecord(ctx, store.Record{Namespace: "refresh", Key: "durable", Value: make([]byte, 500), ExpiresAt: exp}); err != nil {
		t.Fatalf("a durable record while the volatile ones are full: %v", err)
	}
	if _, err := db.TakeRecord(ctx, ns, "k0", time.Now()); err != nil {
		t.Fatal(err)
	}
	if err := put("again"); err != nil {
		t.Fatalf("a volatile record after one was taken: %v", err)
	}
}
