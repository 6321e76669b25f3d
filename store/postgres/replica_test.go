package postgres

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/slobridge/slobridge/store"
)

// t0 is the fixed "now" of these tests.
var t0 = time.Date(2026, time.March, 1, 12, 0, 0, 0, time.UTC)

// queue makes session sid with n back-channel participants and ends it at
// now, returning the queued deliveries.
func queue(tb testing.TB, db *DB, sid string, n int, now time.Time) []store.Delivery {
	tb.Helper()
	ctx := context.Background()
	s := store.Session{ID: sid, UserID: "u-" + sid, CreatedAt: now.Add(-time.Hour), ExpiresAt: now.Add(8 * time.Hour)}
	if err := db.CreateSession(ctx, s); err != nil {
		tb.Fatalf("CreateSession: %v", err)
	}
	for i := range n {
		app := fmt.Sprintf("app%04d", i)
		p := store.Participant{SessionID: sid, Key: "oidc:" + app, Kind: "oidc", AppID: app,
			Channels: store.ChannelBack, BackChannelURL: "https://" + app + ".example.org/bcl", JoinedAt: now}
		if _, err := db.AddParticipant(ctx, p); err != nil {
			tb.Fatalf("AddParticipant: %v", err)
		}
	}
	var seq int
	_, ds, err := db.EndSessions(ctx, store.LogoutSpec{
		LogoutID: "lo-" + sid, SessionIDs: []string{sid}, Initiator: store.Initiator{Kind: store.InitiatorUser},
		NewDeliveryID: func() string { seq++; return fmt.Sprintf("d-%s-%04d", sid, seq) }, Now: now,
	})
	if err != nil {
		tb.Fatalf("EndSessions: %v", err)
	}
	if len(ds) != n {
		tb.Fatalf("queued %d deliveries, want %d", len(ds), n)
	}
	return ds
}

// TestClaimAcrossReplicas has two store handles (two replicas, each with
// its own pool) claim one outbox from several goroutines each: no
// delivery is claimed twice while leased, every one is claimed, and once
// the leases run out the other replica takes over what was not completed.
func TestClaimAcrossReplicas(t *testing.T) {
	dsn, schema := testDSN(t), newSchema(t)
	replicas := []*DB{openSchema(t, dsn, schema, Options{}), openSchema(t, dsn, schema, Options{})}
	const n, lease = 300, time.Minute
	ds := queue(t, replicas[0], "s1", n, t0)

	var mu sync.Mutex
	claims := map[string][]string{} // delivery ID -> owners that claimed it
	var wg sync.WaitGroup
	errs := make(chan error, 8)
	for r, db := range replicas {
		for w := range 4 {
			owner := fmt.Sprintf("replica%d/worker%d", r, w)
			wg.Go(func() {
				for {
					got, err := db.ClaimDueDeliveries(t.Context(), owner, t0, lease, 7)
					if err != nil {
						errs <- err
						return
					}
					if len(got) == 0 {
						return
					}
					mu.Lock()
					for _, d := range got {
						claims[d.ID] = append(claims[d.ID], owner)
					}
					mu.Unlock()
				}
			})
		}
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatalf("ClaimDueDeliveries: %v", err)
	}
	if len(claims) != n {
		t.Fatalf("%d deliveries claimed, want all %d", len(claims), n)
	}
	perReplica := map[string]int{}
	for id, owners := range claims {
		if len(owners) != 1 {
			t.Fatalf("delivery %s claimed by %v while leased", id, owners)
		}
		perReplica[owners[0][:8]]++
	}
	t.Logf("claims per replica: %v", perReplica)

	// Replica 0's workers complete the deliveries they hold; replica 1
	// "dies" holding its leases.
	var completed, orphaned []string
	for _, d := range ds {
		owner := claims[d.ID][0]
		if owner[:8] != "replica0" {
			orphaned = append(orphaned, d.ID)
			continue
		}
		_, err := replicas[0].CompleteAttempt(t.Context(), d.ID, owner, store.Attempt{At: t0, OK: true, StatusCode: 200},
			store.DeliveryDelivered, time.Time{})
		if err != nil {
			t.Fatalf("CompleteAttempt: %v", err)
		}
		completed = append(completed, d.ID)
	}
	if got, _ := replicas[0].ClaimDueDeliveries(t.Context(), "replica0/late", t0.Add(lease-time.Second), lease, n); len(got) != 0 {
		t.Fatalf("claimed %d deliveries before the leases ran out", len(got))
	}
	taken, err := replicas[0].ClaimDueDeliveries(t.Context(), "replica0/takeover", t0.Add(lease), lease, n)
	if err != nil {
		t.Fatalf("ClaimDueDeliveries after lease expiry: %v", err)
	}
	var takenIDs []string
	for _, d := range taken {
		takenIDs = append(takenIDs, d.ID)
		if d.LeaseOwner != "replica0/takeover" || !d.LeaseUntil.Equal(t0.Add(2*lease)) {
			t.Fatalf("taken-over delivery: owner %q until %v", d.LeaseOwner, d.LeaseUntil)
		}
	}
	slices.Sort(takenIDs)
	slices.Sort(orphaned)
	if !slices.Equal(takenIDs, orphaned) {
		t.Fatalf("took over %d deliveries, want the %d of the dead replica", len(takenIDs), len(orphaned))
	}
	if len(orphaned) > 0 {
		id := orphaned[0]
		_, err := replicas[1].CompleteAttempt(t.Context(), id, claims[id][0], store.Attempt{At: t0, OK: true},
			store.DeliveryDelivered, time.Time{})
		if !errors.Is(err, store.ErrNotFound) {
			t.Fatalf("CompleteAttempt by the replica whose lease was taken over: %v, want ErrNotFound", err)
		}
	}
	counts, err := replicas[1].CountDeliveries(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	if counts[store.DeliveryDelivered] != len(completed) || counts[store.DeliveryPending] != len(orphaned) {
		t.Fatalf("counts %v, want %d delivered and %d pending", counts, len(completed), len(orphaned))
	}
}

// TestMigrateConcurrent runs three Migrate calls at once on a fresh schema,
// as three replicas starting together would: each migration is applied
// exactly once, and a later call applies nothing.
func TestMigrateConcurrent(t *testing.T) {
	dsn, schema := testDSN(t), newSchema(t)
	const callers = 3
	results := make([][]int, callers)
	errs := make([]error, callers)
	var wg sync.WaitGroup
	start := make(chan struct{})
	for i := range callers {
		wg.Go(func() {
			<-start
			results[i], errs[i] = Migrate(t.Context(), dsn, Options{Schema: schema})
		})
	}
	close(start)
	wg.Wait()
	applied := map[int]int{}
	for i := range callers {
		if errs[i] != nil {
			t.Fatalf("Migrate %d: %v", i, errs[i])
		}
		for _, v := range results[i] {
			applied[v]++
		}
	}
	latest := LatestVersion()
	if latest < 2 {
		t.Fatalf("LatestVersion = %d, want at least 2 embedded migrations", latest)
	}
	for v := 1; v <= latest; v++ {
		if applied[v] != 1 {
			t.Fatalf("migration %d applied %d times (results %v), want once", v, applied[v], results)
		}
	}
	if len(applied) != latest {
		t.Fatalf("applied versions %v, want 1..%d", applied, latest)
	}
	db := openSchema(t, dsn, schema, Options{SkipMigrations: true})
	var rows, maxV int
	err := db.Pool().QueryRow(t.Context(), "SELECT count(*), max(version) FROM "+migrationsTable).Scan(&rows, &maxV)
	if err != nil {
		t.Fatal(err)
	}
	if rows != latest || maxV != latest {
		t.Fatalf("%s has %d rows up to version %d, want %d", migrationsTable, rows, maxV, latest)
	}
	again, err := Migrate(t.Context(), dsn, Options{Schema: schema})
	if err != nil || len(again) != 0 {
		t.Fatalf("Migrate of a current schema applied %v, err %v; want nothing", again, err)
	}
}

// TestSkipMigrationsNeedsSchema checks that Open with SkipMigrations
// refuses a schema that was never migrated, saying so.
func TestSkipMigrationsNeedsSchema(t *testing.T) {
	dsn, schema := testDSN(t), newSchema(t)
	db, err := Open(t.Context(), dsn, Options{Schema: schema, SkipMigrations: true})
	if err == nil {
		_ = db.Close()
		t.Fatal("Open with SkipMigrations of an empty schema succeeded")
	}
	if !errors.Is(err, ErrSchemaVersion) {
		t.Fatalf("Open with SkipMigrations of an empty schema: %v, want ErrSchemaVersion", err)
	}
}

// TestSchemaAhead checks that a binary refuses a schema migrated by a
// newer release, with or without SkipMigrations.
func TestSchemaAhead(t *testing.T) {
	dsn, schema := testDSN(t), newSchema(t)
	db := openSchema(t, dsn, schema, Options{})
	if _, err := db.Pool().Exec(t.Context(), "INSERT INTO "+migrationsTable+" (version, name) VALUES ($1, 'from the future')",
		LatestVersion()+1); err != nil {
		t.Fatal(err)
	}
	for _, skip := range []bool{false, true} {
		other, err := Open(t.Context(), dsn, Options{Schema: schema, SkipMigrations: skip})
		if err == nil {
			_ = other.Close()
		}
		if !errors.Is(err, ErrSchemaVersion) {
			t.Fatalf("Open (SkipMigrations %v) of a newer schema: %v, want ErrSchemaVersion", skip, err)
		}
	}
}

// TestClosedIsUnavailable checks that calls on a closed store report
// store.ErrUnavailable.
func TestClosedIsUnavailable(t *testing.T) {
	db := openTemp(t)
	if err := db.Close(); err != nil {
		t.Fatal(err)
	}
	if err := db.Ping(t.Context()); !errors.Is(err, store.ErrUnavailable) {
		t.Fatalf("Ping after Close: %v, want store.ErrUnavailable", err)
	}
	_, err := db.AddParticipant(t.Context(), store.Participant{SessionID: "s", Key: "k"})
	if !errors.Is(err, store.ErrUnavailable) {
		t.Fatalf("AddParticipant after Close: %v, want store.ErrUnavailable", err)
	}
	if err := db.Close(); err != nil {
		t.Fatalf("second Close: %v", err)
	}
}
