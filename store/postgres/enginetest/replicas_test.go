package enginetest

import (
	"context"
	"net/http"
	"slices"
	"sync/atomic"
	"testing"
	"time"

	"github.com/slobridge/slobridge"
	"github.com/slobridge/slobridge/store"
	"github.com/slobridge/slobridge/store/postgres"
)

// TestLoginOnOneReplicaLogoutOnAnother logs in through replica A and out
// through replica B, both running delivery workers on one database: every
// participant is notified exactly once (every receiver answers 200), A's
// status page reports the logout done, and A's change feed hears of the
// logout B made.
func TestLoginOnOneReplicaLogoutOnAnother(t *testing.T) {
	schema := newSchema(t)
	dbA, dbB := openReplica(t, schema), openReplica(t, schema)
	a := startEngine(t, engineOptions(dbA, "replica-a"), true)
	b := startEngine(t, engineOptions(dbB, "replica-b"), true)
	feed, err := dbA.Listen(t.Context(), postgres.ListenOptions{})
	if err != nil {
		t.Fatalf("Listen: %v", err)
	}

	rcs := make([]*receiver, 20)
	for i := range rcs {
		rcs[i] = newReceiver(t, nil)
	}
	s := login(t, a.e, "alice", rcs)
	lo, err := b.e.Logout(t.Context(), slobridge.LogoutRequest{SessionIDs: []string{s.ID},
		Initiator: store.Initiator{Kind: store.InitiatorUser}})
	if err != nil {
		t.Fatalf("Logout on replica B: %v", err)
	}
	ds := waitDone(t, dbA, lo.ID)
	if len(ds) != len(rcs) {
		t.Fatalf("%d deliveries, want %d", len(ds), len(rcs))
	}
	for _, d := range ds {
		if d.State != store.DeliveryDelivered || len(d.Attempts) != 1 {
			t.Fatalf("delivery %s: state %s after %d attempts, want delivered after 1", d.ID, d.State, len(d.Attempts))
		}
	}
	var want, got []string
	for i, rc := range rcs {
		ids := rc.got()
		if len(ids) != 1 {
			t.Fatalf("receiver %d got %d notifications %v, want exactly 1", i, len(ids), ids)
		}
		got = append(got, ids[0])
	}
	for _, d := range ds {
		want = append(want, d.ID)
	}
	slices.Sort(want)
	slices.Sort(got)
	if !slices.Equal(got, want) {
		t.Fatalf("receivers got delivery IDs %v, want %v", got, want)
	}
	st, err := a.e.Status(t.Context(), lo.ID)
	if err != nil || !st.Done {
		t.Fatalf("status on replica A: done %v, %v", st.Done, err)
	}
	select {
	case c := <-feed:
		if c.LogoutID != lo.ID || c.DeliveryID != "" {
			t.Fatalf("first change on replica A: %+v, want logout %s", c, lo.ID)
		}
	case <-time.After(time.Minute):
		t.Fatal("replica A heard nothing of the logout on replica B")
	}
}

// TestDeadReplicaLeasesTakenOver has replica A claim every delivery of a
// logout and die while its attempts hang (its store is closed and its
// workers stopped, so it records nothing more); replica B, started after,
// claims them once A's leases run out and delivers every one. A receiver
// may see A's unfinished attempt and B's (at-least-once), but every
// delivery ends delivered with B's attempt as its only recorded one.
func TestDeadReplicaLeasesTakenOver(t *testing.T) {
	schema := newSchema(t)
	dbA, dbB := openReplica(t, schema), openReplica(t, schema)
	// The engine attempts a delivery only with AttemptTimeout left on its
	// lease; A is killed while its attempts hang, well before they time
	// out, and B claims them once the leases run out.
	const lease = 8 * time.Second
	optsA, optsB := engineOptions(dbA, "replica-a"), engineOptions(dbB, "replica-b")
	optsA.Lease, optsB.Lease = lease, lease
	a := startEngine(t, optsA, true)
	b := startEngine(t, optsB, false)

	var hanging atomic.Int32
	rcs := make([]*receiver, 10)
	for i := range rcs {
		rcs[i] = newReceiver(t, func(n int, w http.ResponseWriter, r *http.Request) {
			if n == 0 { // replica A's attempt: hang until it is cancelled
				hanging.Add(1)
				<-r.Context().Done()
				return
			}
			w.WriteHeader(http.StatusOK)
		})
	}
	s := login(t, a.e, "alice", rcs)
	lo, err := b.e.Logout(t.Context(), slobridge.LogoutRequest{SessionIDs: []string{s.ID},
		Initiator: store.Initiator{Kind: store.InitiatorUser}})
	if err != nil {
		t.Fatalf("Logout on replica B: %v", err)
	}
	deadline := time.Now().Add(time.Minute)
	for int(hanging.Load()) < len(rcs) {
		if time.Now().After(deadline) {
			t.Fatalf("replica A started %d of %d attempts", hanging.Load(), len(rcs))
		}
		time.Sleep(5 * time.Millisecond)
	}
	// Replica A dies: from now on it can write nothing.
	_ = dbA.Close()
	a.stop()

	b.run(t)
	ds := waitDone(t, dbB, lo.ID)
	for _, d := range ds {
		if d.State != store.DeliveryDelivered || len(d.Attempts) != 1 || !d.Attempts[0].OK {
			t.Fatalf("delivery %s: state %s, attempts %+v; want delivered by one recorded attempt", d.ID, d.State, d.Attempts)
		}
	}
	for i, rc := range rcs {
		if ids := rc.got(); len(ids) != 2 || ids[0] != ids[1] {
			t.Fatalf("receiver %d got %v, want A's unfinished attempt and B's, same delivery ID", i, ids)
		}
	}
	counts, err := dbB.CountDeliveries(context.Background())
	if err != nil || counts[store.DeliveryDelivered] != len(rcs) {
		t.Fatalf("CountDeliveries %v, %v; want %d delivered", counts, err, len(rcs))
	}
}
