package postgres

import (
	"context"
	"testing"
	"time"

	"github.com/slobridge/slobridge/store"
)

// nextChange waits for the next change on ch; it fails the test if none
// comes within a minute (a hang, not a timing assertion).
func nextChange(t *testing.T, ch <-chan Change) Change {
	t.Helper()
	select {
	case c, ok := <-ch:
		if !ok {
			t.Fatal("change feed closed")
		}
		return c
	case <-time.After(time.Minute):
		t.Fatal("no change arrived within a minute")
	}
	return Change{}
}

// TestListenAcrossReplicas has replica A listen while replica B logs a
// session out and delivers: A hears of the logout and of each delivery's
// new state, and nothing of a logout that was rolled back. It runs with
// LISTEN/NOTIFY, with polling only, and with the LISTEN connection killed
// by the server half-way.
func TestListenAcrossReplicas(t *testing.T) {
	tests := []struct {
		name     string
		opts     ListenOptions
		killConn bool
	}{
		{"notify", ListenOptions{PollInterval: time.Hour}, false},
		{"poll only", ListenOptions{PollOnly: true, PollInterval: 20 * time.Millisecond}, false},
		{"listen connection killed", ListenOptions{PollInterval: 50 * time.Millisecond}, true},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			dsn, schema := testDSN(t), newSchema(t)
			a, b := openSchema(t, dsn, schema, Options{}), openSchema(t, dsn, schema, Options{})
			ctx, cancel := context.WithCancel(t.Context())
			defer cancel()
			feed, err := a.Listen(ctx, tc.opts)
			if err != nil {
				t.Fatalf("Listen: %v", err)
			}

			s := store.Session{ID: "s1", UserID: "alice", CreatedAt: t0, ExpiresAt: t0.Add(time.Hour)}
			if err := b.CreateSession(ctx, s); err != nil {
				t.Fatal(err)
			}
			p := store.Participant{SessionID: "s1", Key: "oidc:app", Kind: "oidc", AppID: "app",
				Channels: store.ChannelBack, BackChannelURL: "https://app.example.org/bcl"}
			if _, err := b.AddParticipant(ctx, p); err != nil {
				t.Fatal(err)
			}
			// A logout that fails (unknown session) is rolled back and
			// never announced.
			_, _, err = b.EndSessions(ctx, store.LogoutSpec{LogoutID: "lo-failed", SessionIDs: []string{"s1", "nope"},
				NewDeliveryID: func() string { return "d-failed" }, Now: t0})
			if err == nil {
				t.Fatal("EndSessions with an unknown session succeeded")
			}
			if tc.killConn {
				killListeners(t, a)
			}
			_, ds, err := b.EndSessions(ctx, store.LogoutSpec{LogoutID: "lo1", SessionIDs: []string{"s1"},
				NewDeliveryID: func() string { return "d1" }, Now: t0})
			if err != nil || len(ds) != 1 {
				t.Fatalf("EndSessions: %d deliveries, %v", len(ds), err)
			}
			if c := nextChange(t, feed); c.LogoutID != "lo1" || c.DeliveryID != "" || c.At.IsZero() {
				t.Fatalf("first change %+v, want the new logout lo1", c)
			}

			if _, err := b.ClaimDueDeliveries(ctx, "w1", t0, time.Minute, 1); err != nil {
				t.Fatal(err)
			}
			_, err = b.CompleteAttempt(ctx, "d1", "w1", store.Attempt{At: t0, Error: "status 503"}, store.DeliveryFailed, time.Time{})
			if err != nil {
				t.Fatal(err)
			}
			want := Change{LogoutID: "lo1", DeliveryID: "d1", State: store.DeliveryFailed}
			if c := nextChange(t, feed); c.LogoutID != want.LogoutID || c.DeliveryID != want.DeliveryID || c.State != want.State {
				t.Fatalf("second change %+v, want %+v", c, want)
			}
			if n, err := b.RetryDeliveries(ctx, "lo1", t0); err != nil || n != 1 {
				t.Fatalf("RetryDeliveries: %d, %v", n, err)
			}
			want.State = store.DeliveryPending
			if c := nextChange(t, feed); c.DeliveryID != want.DeliveryID || c.State != want.State {
				t.Fatalf("third change %+v, want %+v", c, want)
			}

			cancel()
			for range feed { // the feed closes once ctx ends
			}
		})
	}
}

// killListeners makes the server terminate the LISTEN connections of db's
// schema, as a server restart or a network cut would.
func killListeners(t *testing.T, db *DB) {
	t.Helper()
	deadline := time.Now().Add(time.Minute)
	for {
		var n int
		// The LISTEN connection of this schema is the one whose last
		// statement was LISTEN on the schema's channel.
		err := db.Pool().QueryRow(t.Context(), `SELECT count(pg_terminate_backend(pid))
			FROM pg_stat_activity WHERE application_name = $1
			  AND query = 'LISTEN "slobridge_' || left(md5(current_schema()), 16) || '"'`,
			listenAppName).Scan(&n)
		if err != nil {
			t.Fatalf("terminate the LISTEN connection: %v", err)
		}
		if n > 0 {
			return
		}
		if time.Now().After(deadline) {
			t.Fatal("no LISTEN connection to terminate")
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// TestListenOutOfOrderCommits has a transaction that wrote a change early
// commit after a later logout: the listener loses neither, and hands them
// on in the order the transactions started writing, once both ended.
func TestListenOutOfOrderCommits(t *testing.T) {
	dsn, schema := testDSN(t), newSchema(t)
	a, b := openSchema(t, dsn, schema, Options{}), openSchema(t, dsn, schema, Options{})
	ctx, cancel := context.WithCancel(t.Context())
	defer cancel()
	feed, err := a.Listen(ctx, ListenOptions{PollInterval: time.Hour})
	if err != nil {
		t.Fatalf("Listen: %v", err)
	}
	slow, err := b.Pool().Begin(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = slow.Rollback(context.Background()) }()
	if _, err := slow.Exec(ctx, "INSERT INTO changes (logout_id) VALUES ('lo-early')"); err != nil {
		t.Fatal(err)
	}

	s := store.Session{ID: "s1", UserID: "alice", CreatedAt: t0, ExpiresAt: t0.Add(time.Hour)}
	if err := b.CreateSession(ctx, s); err != nil {
		t.Fatal(err)
	}
	if _, _, err := b.EndSessions(ctx, store.LogoutSpec{LogoutID: "lo-late", SessionIDs: []string{"s1"},
		NewDeliveryID: func() string { return "d1" }, Now: t0}); err != nil {
		t.Fatal(err)
	}
	if err := slow.Commit(ctx); err != nil {
		t.Fatal(err)
	}
	b.notifier.poke() // what the store does after its own commits
	for _, want := range []string{"lo-early", "lo-late"} {
		if c := nextChange(t, feed); c.LogoutID != want {
			t.Fatalf("change %+v, want logout %s", c, want)
		}
	}
}

// TestReadWindowHoldsBack reads the feed step by step around a
// transaction that wrote a change first and commits last: the later
// logout is held back (not skipped) until it ends, then both come.
func TestReadWindowHoldsBack(t *testing.T) {
	db := openTemp(t)
	ctx := t.Context()
	var cursor string
	if err := db.Pool().QueryRow(ctx, "SELECT pg_snapshot_xmin(pg_current_snapshot())::text").Scan(&cursor); err != nil {
		t.Fatal(err)
	}
	slow, err := db.Pool().Begin(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = slow.Rollback(context.Background()) }()
	if _, err := slow.Exec(ctx, "INSERT INTO changes (logout_id) VALUES ('lo-early')"); err != nil {
		t.Fatal(err)
	}
	s := store.Session{ID: "s1", UserID: "alice", CreatedAt: t0, ExpiresAt: t0.Add(time.Hour)}
	if err := db.CreateSession(ctx, s); err != nil {
		t.Fatal(err)
	}
	if _, _, err := db.EndSessions(ctx, store.LogoutSpec{LogoutID: "lo-late", SessionIDs: []string{"s1"},
		NewDeliveryID: func() string { return "d1" }, Now: t0}); err != nil {
		t.Fatal(err)
	}

	w, err := readWindow(ctx, db.Pool(), cursor)
	if err != nil {
		t.Fatal(err)
	}
	if len(w.changes) != 0 || !w.held {
		t.Fatalf("while the early writer runs: changes %+v, held %v; want none, held", w.changes, w.held)
	}
	if err := slow.Commit(ctx); err != nil {
		t.Fatal(err)
	}
	// Transactions of other clients of the server can hold the window
	// back too (transaction IDs are server-wide): read until both came.
	var got []string
	deadline := time.Now().Add(time.Minute)
	for len(got) < 2 {
		if time.Now().After(deadline) {
			t.Fatalf("after it committed: changes %v after a minute, want [lo-early lo-late]", got)
		}
		if w, err = readWindow(ctx, db.Pool(), w.next); err != nil {
			t.Fatal(err)
		}
		for _, c := range w.changes {
			got = append(got, c.LogoutID)
		}
	}
	if len(got) != 2 || got[0] != "lo-early" || got[1] != "lo-late" {
		t.Fatalf("after it committed: changes %v, want [lo-early lo-late]", got)
	}
	again, err := readWindow(ctx, db.Pool(), w.next)
	if err != nil || len(again.changes) != 0 {
		t.Fatalf("a further read: %+v, %v; want nothing new", again.changes, err)
	}
}

// TestSweepChanges checks that Sweep drops change-feed rows older than an
// hour by the database clock, keeps newer ones, and leaves them out of
// its result.
func TestSweepChanges(t *testing.T) {
	db := openTemp(t)
	ctx := t.Context()
	_, err := db.Pool().Exec(ctx, `INSERT INTO changes (logout_id, at) VALUES
		('lo-old', now() - interval '2 hours'), ('lo-new', now() - interval '10 minutes')`)
	if err != nil {
		t.Fatal(err)
	}
	res, err := db.Sweep(ctx, t0, time.Hour)
	if err != nil {
		t.Fatalf("Sweep: %v", err)
	}
	if res != (store.SweepResult{}) {
		t.Fatalf("Sweep result %+v, want nothing counted", res)
	}
	var left []string
	rows, err := db.Pool().Query(ctx, "SELECT logout_id FROM changes ORDER BY seq")
	if err != nil {
		t.Fatal(err)
	}
	for rows.Next() {
		var id string
		if err := rows.Scan(&id); err != nil {
			t.Fatal(err)
		}
		left = append(left, id)
	}
	if err := rows.Err(); err != nil {
		t.Fatal(err)
	}
	if len(left) != 1 || left[0] != "lo-new" {
		t.Fatalf("changes after Sweep: %v, want [lo-new]", left)
	}
}
