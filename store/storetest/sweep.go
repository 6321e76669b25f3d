package storetest

import (
	"testing"
	"time"

	"github.com/slobridge/slobridge/store"
)

// testSweep covers Sweep and that it leaves no stale index entries.
func testSweep(t *testing.T, f Factory) {
	runAll(t, f, []subtest{
		{"Expired", testSweepExpired},
		{"Retain", testSweepRetain},
	})
}

// sweepFixture stores, relative to t0: an expired session (expires +1h),
// a long session (expires +10h), two sessions ended at +30m (one whose
// logout is all delivered at +40m, one whose delivery is still pending),
// records and replay entries expired at +1h and live until +10h, and keys
// retired at +1h, at +10h and never.
func sweepFixture(t *testing.T, s store.Store) {
	t.Helper()
	expired := newSession("expired", "alice", at(0))
	expired.ExpiresAt = at(time.Hour)
	long := newSession("long", "alice", at(0))
	long.ExpiresAt = at(10 * time.Hour)
	createSessions(t, s, expired, long, newSession("done", "alice", at(0)), newSession("pending", "bob", at(0)))
	addParticipants(t, s,
		newParticipant("expired", "app1", store.ChannelBack, at(0)),
		newParticipant("long", "app1", store.ChannelBack, at(0)),
		newParticipant("done", "app1", store.ChannelBack, at(0)),
		newParticipant("pending", "app1", store.ChannelBack, at(0)))
	_, ds := endSessions(t, s, "lo-done", store.LogoutSpec{SessionIDs: []string{"done"}, Now: at(30 * time.Minute)})
	endSessions(t, s, "lo-pending", store.LogoutSpec{SessionIDs: []string{"pending"}, Now: at(30 * time.Minute)})
	claimed := claim(t, s, "w1", at(30*time.Minute), time.Minute, 10)
	if len(claimed) != 2 {
		t.Fatalf("claimed %d, want 2", len(claimed))
	}
	_, err := s.CompleteAttempt(ctx(t), ds[0].ID, "w1", store.Attempt{At: at(40 * time.Minute), OK: true},
		store.DeliveryDelivered, time.Time{})
	must(t, err, "CompleteAttempt")

	for _, r := range []store.Record{
		{Namespace: "code", Key: "old", Value: []byte("v"), ExpiresAt: at(time.Hour)},
		{Namespace: "code", Key: "live", Value: []byte("v"), ExpiresAt: farFuture()},
	} {
		must(t, s.PutRecord(ctx(t), r), "PutRecord "+r.Key)
	}
	must(t, s.CheckReplay(ctx(t), "saml", "old", at(time.Hour), at(0)), "CheckReplay old")
	must(t, s.CheckReplay(ctx(t), "saml", "live", at(10*time.Hour), at(0)), "CheckReplay live")
	retired, later, forever := newKey("retired", "oidc", at(0)), newKey("later", "oidc", at(0)), newKey("forever", "oidc", at(0))
	retired.RetireAt, later.RetireAt, forever.RetireAt = at(time.Hour), at(10*time.Hour), time.Time{}
	for _, k := range []store.Key{retired, later, forever} {
		must(t, s.PutKey(ctx(t), k), "PutKey "+k.ID)
	}
}

func testSweepExpired(t *testing.T, s store.Store) {
	sweepFixture(t, s)
	res, err := s.Sweep(ctx(t), at(3*time.Hour), time.Hour)
	must(t, err, "Sweep")
	want := store.SweepResult{Sessions: 3, Logouts: 1, Deliveries: 1, Records: 1, Replay: 1, Keys: 1}
	wantEqual(t, res, want, "Sweep result")

	for _, id := range []string{"expired", "done", "pending"} {
		_, err := s.GetSession(ctx(t), id)
		wantErr(t, err, store.ErrNotFound, "GetSession of swept "+id)
	}
	getSession(t, s, "long")
	byUser, err := s.ListSessionsByUser(ctx(t), "alice")
	must(t, err, "ListSessionsByUser")
	wantEqual(t, sessionIDs(byUser), []string{"long"}, "alice's sessions after sweep")
	byUser, err = s.ListSessionsByUser(ctx(t), "bob")
	must(t, err, "ListSessionsByUser")
	wantEqual(t, sessionIDs(byUser), []string(nil), "bob's sessions after sweep")
	byNameID, err := s.FindSessionsByNameID(ctx(t), "idp", store.NameID{Value: "alice@example.org"}, "")
	must(t, err, "FindSessionsByNameID")
	wantEqual(t, sessionIDs(byNameID), []string{"long"}, "sessions by NameID after sweep")
	n, err := s.CountActiveSessions(ctx(t), at(0))
	must(t, err, "CountActiveSessions")
	if n != 1 { // "expired" was active at t0 but is swept; only "long" remains
		t.Fatalf("CountActiveSessions(t0) = %d, want 1", n)
	}

	_, err = s.GetLogout(ctx(t), "lo-done")
	wantErr(t, err, store.ErrNotFound, "GetLogout of swept logout")
	ds, err := s.ListDeliveries(ctx(t), "lo-done")
	must(t, err, "ListDeliveries of swept logout")
	if len(ds) != 0 {
		t.Fatalf("swept logout still lists %d deliveries", len(ds))
	}
	los, err := s.ListLogoutsByUser(ctx(t), "alice")
	must(t, err, "ListLogoutsByUser")
	if len(los) != 0 {
		t.Fatalf("swept logout still listed for its user: %+v", los)
	}
	if _, err := s.GetLogout(ctx(t), "lo-pending"); err != nil {
		t.Fatalf("logout with a pending delivery was swept: %v", err)
	}
	counts, err := s.CountDeliveries(ctx(t))
	must(t, err, "CountDeliveries")
	if counts[store.DeliveryDelivered] != 0 || counts[store.DeliveryPending] != 1 {
		t.Fatalf("CountDeliveries after sweep = %v, want 1 pending", counts)
	}

	_, err = s.GetRecord(ctx(t), "code", "live", at(3*time.Hour))
	must(t, err, "live record after sweep")
	wantErr(t, s.CheckReplay(ctx(t), "saml", "live", at(10*time.Hour), at(3*time.Hour)), store.ErrReplay, "live replay entry after sweep")
	keys, err := s.ListKeys(ctx(t), "oidc")
	must(t, err, "ListKeys")
	if len(keys) != 2 {
		t.Fatalf("%d keys after sweep, want 2", len(keys))
	}

	// Swept IDs are free again, and a second sweep finds nothing.
	createSessions(t, s, newSession("expired", "alice", at(3*time.Hour)))
	must(t, s.PutRecord(ctx(t), store.Record{Namespace: "code", Key: "old", Value: []byte("v"), ExpiresAt: farFuture()}), "PutRecord swept key")
	res, err = s.Sweep(ctx(t), at(3*time.Hour), time.Hour)
	must(t, err, "second Sweep")
	wantEqual(t, res, store.SweepResult{}, "second Sweep result")
}

func testSweepRetain(t *testing.T, s store.Store) {
	sweepFixture(t, s)
	// Retaining 24h keeps sessions and logouts; records, replay entries
	// and keys go at their own expiry.
	res, err := s.Sweep(ctx(t), at(3*time.Hour), 24*time.Hour)
	must(t, err, "Sweep")
	want := store.SweepResult{Records: 1, Replay: 1, Keys: 1}
	wantEqual(t, res, want, "Sweep result with long retention")
	for _, id := range []string{"expired", "done", "pending", "long"} {
		getSession(t, s, id)
	}
	if _, err := s.GetLogout(ctx(t), "lo-done"); err != nil {
		t.Fatalf("logout swept within retention: %v", err)
	}
	_, err = s.GetRecord(ctx(t), "code", "old", at(0))
	wantErr(t, err, store.ErrNotFound, "swept record")
}
