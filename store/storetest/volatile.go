package storetest

import (
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/slobridge/slobridge/store"
)

// vns is the volatile namespace of the suite.
const vns = store.VolatilePrefix + "code"

// testVolatile covers the records of volatile namespaces: every rule of
// records holds for them, and they are a namespace apart.
func testVolatile(t *testing.T, f Factory) {
	runAll(t, f, []subtest{
		{"Records", testVolatileRecords},
		{"TakeConcurrent", testVolatileTakeConcurrent},
		{"Grant", testVolatileGrant},
		{"Sweep", testVolatileSweep},
	})
	t.Run("Reopen", func(t *testing.T) { testVolatileReopen(t, f) })
	t.Run("Crash", func(t *testing.T) { testCrash(t, f) })
}

func testVolatileRecords(t *testing.T, s store.Store) {
	if !store.IsVolatile(vns) || store.IsVolatile("code") {
		t.Fatalf("IsVolatile(%q) = %v, IsVolatile(code) = %v", vns, store.IsVolatile(vns), store.IsVolatile("code"))
	}
	r := store.Record{Namespace: vns, Key: "k1", Value: []byte("volatile"), ExpiresAt: farFuture()}
	must(t, s.PutRecord(ctx(t), r), "PutRecord volatile")
	wantErr(t, s.PutRecord(ctx(t), r), store.ErrAlreadyExists, "PutRecord of a live volatile key")
	got, err := s.GetRecord(ctx(t), vns, "k1", at(0))
	must(t, err, "GetRecord volatile")
	wantEqual(t, norm(got), norm(r), "volatile record")

	// The same key in the durable namespace of the same name is another
	// record, and neither sees the other.
	_, err = s.GetRecord(ctx(t), "code", "k1", at(0))
	wantErr(t, err, store.ErrNotFound, "durable GetRecord of a volatile key")
	d := store.Record{Namespace: "code", Key: "k1", Value: []byte("durable"), ExpiresAt: farFuture()}
	must(t, s.PutRecord(ctx(t), d), "PutRecord durable with the same key")
	got, err = s.TakeRecord(ctx(t), vns, "k1", at(0))
	must(t, err, "TakeRecord volatile")
	wantEqual(t, string(got.Value), "volatile", "taken volatile value")
	_, err = s.TakeRecord(ctx(t), vns, "k1", at(0))
	wantErr(t, err, store.ErrNotFound, "TakeRecord volatile twice")
	got, err = s.GetRecord(ctx(t), "code", "k1", at(0))
	must(t, err, "durable record after the volatile take")
	wantEqual(t, string(got.Value), "durable", "durable value")

	// Expiry, replacement of an expired record, delete.
	must(t, s.PutRecord(ctx(t), store.Record{Namespace: vns, Key: "k2", Value: []byte("old"), ExpiresAt: farPast()}), "PutRecord expired")
	_, err = s.GetRecord(ctx(t), vns, "k2", at(0))
	wantErr(t, err, store.ErrNotFound, "GetRecord of an expired volatile record")
	must(t, s.PutRecord(ctx(t), store.Record{Namespace: vns, Key: "k2", Value: []byte("new"), ExpiresAt: farFuture()}), "PutRecord over an expired one")
	must(t, s.DeleteRecord(ctx(t), vns, "k2"), "DeleteRecord volatile")
	_, err = s.GetRecord(ctx(t), vns, "k2", at(0))
	wantErr(t, err, store.ErrNotFound, "GetRecord after DeleteRecord")
	must(t, s.DeleteRecord(ctx(t), vns, "k2"), "DeleteRecord of an absent volatile record")
	wantErr(t, s.PutRecord(ctx(t), store.Record{Namespace: vns, Key: "", ExpiresAt: farFuture()}), store.ErrInvalid, "PutRecord volatile with an empty key")
	wantErr(t, s.PutRecord(ctx(t), store.Record{Namespace: vns, Key: "a\x00b", ExpiresAt: farFuture()}), store.ErrInvalid, "PutRecord volatile with a NUL in the key")
}

// testVolatileTakeConcurrent: of concurrent takes of a volatile record,
// exactly one succeeds, as for durable ones.
func testVolatileTakeConcurrent(t *testing.T, s store.Store) {
	const records, takers = 5, 16
	for i := range records {
		must(t, s.PutRecord(ctx(t), store.Record{Namespace: vns, Key: fmt.Sprintf("k%d", i), Value: []byte("v"), ExpiresAt: farFuture()}), "PutRecord")
	}
	var wins [records]atomic.Int32
	errs := make(chan error, records*takers)
	var wg sync.WaitGroup
	for i := range records * takers {
		wg.Go(func() {
			_, err := s.TakeRecord(ctx(t), vns, fmt.Sprintf("k%d", i%records), at(0))
			switch {
			case err == nil:
				wins[i%records].Add(1)
			case !isNotFound(err):
				errs <- err
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatalf("concurrent TakeRecord: %v", err)
	}
	for i := range wins {
		if n := wins[i].Load(); n != 1 {
			t.Fatalf("volatile record k%d taken %d times, want exactly once", i, n)
		}
	}
}

// testVolatileGrant: TakeGrant on a volatile grant (an authorization
// code) decides between concurrent uses and remembers the first.
func testVolatileGrant(t *testing.T, s store.Store) {
	must(t, s.PutRecord(ctx(t), store.Record{Namespace: vns, Key: "g1", Value: []byte("request"), ExpiresAt: at(time.Minute)}), "PutRecord")
	const users = 16
	var first atomic.Int32
	var wg sync.WaitGroup
	errs := make(chan error, users)
	for i := range users {
		wg.Go(func() {
			u, err := s.TakeGrant(ctx(t), vns, "g1", []byte(fmt.Sprintf("family-%d", i)), at(time.Hour), at(0))
			if err != nil {
				errs <- err
				return
			}
			if u.First {
				first.Add(1)
			} else if len(u.Issued) == 0 {
				errs <- errors.New("a later use was not told what the first issued")
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatalf("concurrent TakeGrant: %v", err)
	}
	if n := first.Load(); n != 1 {
		t.Fatalf("%d first uses of one volatile grant, want 1", n)
	}
	_, err := s.GetRecord(ctx(t), vns, "g1", at(0))
	wantErr(t, err, store.ErrNotFound, "GetRecord of a used volatile grant")
}

// testVolatileSweep: Sweep removes expired volatile records too.
func testVolatileSweep(t *testing.T, s store.Store) {
	must(t, s.PutRecord(ctx(t), store.Record{Namespace: vns, Key: "old", Value: []byte("v"), ExpiresAt: at(time.Minute)}), "PutRecord")
	must(t, s.PutRecord(ctx(t), store.Record{Namespace: vns, Key: "live", Value: []byte("v"), ExpiresAt: farFuture()}), "PutRecord")
	res, err := s.Sweep(ctx(t), at(time.Hour), time.Hour)
	must(t, err, "Sweep")
	if res.Records != 1 {
		t.Fatalf("Sweep removed %d records, want 1 (the expired volatile one): %+v", res.Records, res)
	}
	_, err = s.GetRecord(ctx(t), vns, "live", at(0))
	must(t, err, "live volatile record after Sweep")
}

// testVolatileReopen: an orderly Close and reopen keeps volatile records
// (a restart does not cut the logins in progress).
func testVolatileReopen(t *testing.T, f Factory) {
	if f.Reopen == nil {
		t.Skip("storetest: Factory.Reopen not set: the backend cannot reopen its database")
	}
	s := f.New(t)
	r := store.Record{Namespace: vns, Key: "k1", Value: []byte("in progress"), ExpiresAt: farFuture()}
	must(t, s.PutRecord(ctx(t), r), "PutRecord")
	s = f.Reopen(t, s)
	got, err := s.TakeRecord(ctx(t), vns, "k1", at(0))
	must(t, err, "TakeRecord after an orderly reopen")
	wantEqual(t, norm(got), norm(r), "volatile record after reopen")
}

// testCrash stores a session with participants, a logout with its
// outbox, durable and volatile records, then crashes the store
// (Factory.Crash): everything durable is there afterwards; a volatile
// record may be lost, but is then wholly gone, and the store takes new
// ones under the same keys.
func testCrash(t *testing.T, f Factory) {
	if f.Crash == nil {
		t.Skip("storetest: Factory.Crash not set: the backend cannot simulate a crash")
	}
	s := f.New(t)
	createSessions(t, s, newSession("s1", "alice", at(0)), newSession("s2", "alice", at(time.Minute)))
	addParticipants(t, s,
		newParticipant("s1", "app1", store.ChannelBack, at(0)),
		newParticipant("s2", "app2", store.ChannelBack, at(0)),
		newParticipant("s2", "app3", store.ChannelFront, at(0)))
	_, ds := endSessions(t, s, "lo1", store.LogoutSpec{SessionIDs: []string{"s1"}, Now: at(time.Hour)})
	durable := store.Record{Namespace: "refresh", Key: "rt1", Value: []byte("family"), ExpiresAt: farFuture()}
	must(t, s.PutRecord(ctx(t), durable), "PutRecord durable")
	vol := store.Record{Namespace: vns, Key: "code1", Value: []byte("in progress"), ExpiresAt: farFuture()}
	must(t, s.PutRecord(ctx(t), vol), "PutRecord volatile")
	s1, s2 := getSession(t, s, "s1"), getSession(t, s, "s2")

	s = f.Crash(t, s)

	wantEqual(t, getSession(t, s, "s1"), s1, "ended session after a crash")
	wantEqual(t, getSession(t, s, "s2"), s2, "active session after a crash")
	ps, err := s.ListParticipants(ctx(t), "s2")
	must(t, err, "ListParticipants after a crash")
	if len(ps) != 2 {
		t.Fatalf("participants of s2 after a crash: %+v, want app2 and app3", ps)
	}
	gotDs, err := s.ListDeliveries(ctx(t), "lo1")
	must(t, err, "ListDeliveries after a crash")
	wantEqual(t, deliveryIDs(gotDs), deliveryIDs(ds), "outbox after a crash")
	got, err := s.GetRecord(ctx(t), "refresh", "rt1", at(0))
	must(t, err, "durable record after a crash")
	wantEqual(t, norm(got), norm(durable), "durable record after a crash")

	got, err = s.GetRecord(ctx(t), vns, "code1", at(0))
	switch {
	case err == nil:
		wantEqual(t, norm(got), norm(vol), "volatile record kept by a crash")
	case isNotFound(err):
		// Lost, as the contract allows: the person logs in again.
		must(t, s.PutRecord(ctx(t), vol), "PutRecord of a lost volatile key")
	default:
		t.Fatalf("GetRecord of a volatile record after a crash: %v", err)
	}
	must(t, s.PutRecord(ctx(t), store.Record{Namespace: vns, Key: "code2", Value: []byte("new"), ExpiresAt: farFuture()}), "volatile PutRecord after a crash")
	if _, err := s.TakeRecord(ctx(t), vns, "code2", at(0)); err != nil {
		t.Fatalf("volatile TakeRecord after a crash: %v", err)
	}
}
