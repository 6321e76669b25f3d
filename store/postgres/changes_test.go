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
