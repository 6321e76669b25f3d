package storetest

import (
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/slobridge/slobridge/store"
)

// testRecords covers expiring one-time records.
func testRecords(t *testing.T, f Factory) {
	runAll(t, f, []subtest{
		{"PutGet", testRecordPutGet},
		{"ExpiredReplaced", testRecordExpired},
		{"Take", testRecordTake},
		{"TakeConcurrent", testRecordTakeConcurrent},
		{"Delete", testRecordDelete},
		{"Grant", testGrant},
		{"GrantRace", testGrantRace},
	})
}

func testRecordPutGet(t *testing.T, s store.Store) {
	r := store.Record{Namespace: "code", Key: "k1", Value: []byte("payload"), ExpiresAt: farFuture()}
	must(t, s.PutRecord(ctx(t), r), "PutRecord")
	got, err := s.GetRecord(ctx(t), "code", "k1", at(0))
	must(t, err, "GetRecord")
	wantEqual(t, norm(got), norm(r), "GetRecord")

	dup := r
	dup.Value = []byte("other")
	wantErr(t, s.PutRecord(ctx(t), dup), store.ErrAlreadyExists, "PutRecord of a live key")
	got, err = s.GetRecord(ctx(t), "code", "k1", at(0))
	must(t, err, "GetRecord")
	wantEqual(t, string(got.Value), "payload", "value after refused duplicate")

	// The same key in another namespace is another record.
	must(t, s.PutRecord(ctx(t), store.Record{Namespace: "state", Key: "k1", Value: []byte("x"), ExpiresAt: farFuture()}), "PutRecord other namespace")
	_, err = s.GetRecord(ctx(t), "relay", "k1", at(0))
	wantErr(t, err, store.ErrNotFound, "GetRecord in an unused namespace")
	_, err = s.GetRecord(ctx(t), "code", "k1", farFuture())
	wantErr(t, err, store.ErrNotFound, "GetRecord at its expiry")

	// Keys are strings every backend can hold: no empty key, no NUL byte.
	wantErr(t, s.PutRecord(ctx(t), store.Record{Namespace: "code", Key: "", Value: []byte("x"), ExpiresAt: farFuture()}), store.ErrInvalid, "PutRecord with an empty key")
	wantErr(t, s.PutRecord(ctx(t), store.Record{Namespace: "code", Key: "a\x00b", Value: []byte("x"), ExpiresAt: farFuture()}), store.ErrInvalid, "PutRecord with a NUL in the key")
}

func testRecordExpired(t *testing.T, s store.Store) {
	old := store.Record{Namespace: "code", Key: "k1", Value: []byte("old"), ExpiresAt: farPast()}
	must(t, s.PutRecord(ctx(t), old), "PutRecord expired")
	_, err := s.GetRecord(ctx(t), "code", "k1", at(0))
	wantErr(t, err, store.ErrNotFound, "GetRecord of an expired record")
	_, err = s.TakeRecord(ctx(t), "code", "k1", at(0))
	wantErr(t, err, store.ErrNotFound, "TakeRecord of an expired record")

	fresh := store.Record{Namespace: "code", Key: "k1", Value: []byte("fresh"), ExpiresAt: farFuture()}
	must(t, s.PutRecord(ctx(t), fresh), "PutRecord over an expired record")
	got, err := s.GetRecord(ctx(t), "code", "k1", at(0))
	must(t, err, "GetRecord")
	wantEqual(t, norm(got), norm(fresh), "re-put record")
}

func testRecordTake(t *testing.T, s store.Store) {
	r := store.Record{Namespace: "code", Key: "k1", Value: []byte("payload"), ExpiresAt: farFuture()}
	must(t, s.PutRecord(ctx(t), store.Record{Namespace: "code", Key: "k0", Value: []byte("v"), ExpiresAt: farFuture()}), "PutRecord")
	must(t, s.PutRecord(ctx(t), r), "PutRecord")
	got, err := s.TakeRecord(ctx(t), "code", "k1", at(0))
	must(t, err, "TakeRecord")
	wantEqual(t, norm(got), norm(r), "taken record")
	_, err = s.TakeRecord(ctx(t), "code", "k1", at(0))
	wantErr(t, err, store.ErrNotFound, "TakeRecord twice")
	_, err = s.GetRecord(ctx(t), "code", "k1", at(0))
	wantErr(t, err, store.ErrNotFound, "GetRecord after take")
	_, err = s.TakeRecord(ctx(t), "code", "k0", farFuture().Add(time.Second))
	wantErr(t, err, store.ErrNotFound, "TakeRecord after expiry")
	_, err = s.GetRecord(ctx(t), "code", "k0", at(0))
	must(t, err, "record left alone by a refused take")
}

// testRecordTakeConcurrent takes each record from many goroutines at once:
// exactly one take per record succeeds.
func testRecordTakeConcurrent(t *testing.T, s store.Store) {
	const records, takers = 5, 16
	for i := range records {
		r := store.Record{Namespace: "code", Key: fmt.Sprintf("k%d", i), Value: []byte("v"), ExpiresAt: farFuture()}
		must(t, s.PutRecord(ctx(t), r), "PutRecord")
	}
	var wins [records]atomic.Int32
	errs := make(chan error, records*takers)
	var wg sync.WaitGroup
	for i := range records * takers {
		wg.Go(func() {
			_, err := s.TakeRecord(ctx(t), "code", fmt.Sprintf("k%d", i%records), at(0))
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
			t.Fatalf("record k%d taken %d times, want exactly once", i, n)
		}
	}
}

func testRecordDelete(t *testing.T, s store.Store) {
	r := store.Record{Namespace: "code", Key: "k1", Value: []byte("v"), ExpiresAt: farFuture()}
	must(t, s.PutRecord(ctx(t), r), "PutRecord")
	must(t, s.DeleteRecord(ctx(t), "code", "k1"), "DeleteRecord")
	_, err := s.GetRecord(ctx(t), "code", "k1", at(0))
	wantErr(t, err, store.ErrNotFound, "GetRecord after delete")
	must(t, s.DeleteRecord(ctx(t), "code", "k1"), "DeleteRecord of an absent record")
	must(t, s.PutRecord(ctx(t), r), "PutRecord after delete")
}

// testReplay covers CheckReplay.
func testReplay(t *testing.T, f Factory) {
	runAll(t, f, []subtest{
		{"WithinExpiry", testReplayWithinExpiry},
		{"Concurrent", testReplayConcurrent},
	})
}

func testReplayWithinExpiry(t *testing.T, s store.Store) {
	exp := at(5 * time.Minute)
	must(t, s.CheckReplay(ctx(t), "saml", "id-1", exp, at(0)), "CheckReplay first")
	wantErr(t, s.CheckReplay(ctx(t), "saml", "id-1", exp, at(time.Minute)), store.ErrReplay, "CheckReplay again")
	wantErr(t, s.CheckReplay(ctx(t), "saml", "id-1", at(time.Hour), exp.Add(-time.Second)), store.ErrReplay, "CheckReplay just before expiry")
	must(t, s.CheckReplay(ctx(t), "jti", "id-1", exp, at(time.Minute)), "same ID in another namespace")
	must(t, s.CheckReplay(ctx(t), "saml", "id-2", exp, at(time.Minute)), "another ID")

	// Once expired the identifier may be seen again, and is then recorded
	// until its new expiry.
	must(t, s.CheckReplay(ctx(t), "saml", "id-1", at(time.Hour), exp), "CheckReplay after expiry")
	wantErr(t, s.CheckReplay(ctx(t), "saml", "id-1", at(time.Hour), at(30*time.Minute)), store.ErrReplay, "CheckReplay within the new expiry")
}

func testReplayConcurrent(t *testing.T, s store.Store) {
	const checkers = 16
	var ok atomic.Int32
	errs := make(chan error, checkers)
	var wg sync.WaitGroup
	for range checkers {
		wg.Go(func() {
			err := s.CheckReplay(ctx(t), "saml", "id-1", at(time.Hour), at(0))
			switch {
			case err == nil:
				ok.Add(1)
			case !isReplay(err):
				errs <- err
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatalf("concurrent CheckReplay: %v", err)
	}
	if n := ok.Load(); n != 1 {
		t.Fatalf("%d of %d concurrent checks accepted the identifier, want 1", n, checkers)
	}
}

// testGrant covers TakeGrant used one after the other: the first use
// marks the grant and keeps what it issued past the grant's own expiry;
// every later use is told so with what the first issued; a used grant is
// no longer live for GetRecord, TakeRecord or PutRecord.
func testGrant(t *testing.T, s store.Store) {
	r := store.Record{Namespace: "code", Key: "g1", Value: []byte("request"), ExpiresAt: at(time.Minute)}
	must(t, s.PutRecord(ctx(t), r), "PutRecord")
	_, err := s.TakeGrant(ctx(t), "code", "absent", []byte("x"), at(time.Hour), at(0))
	wantErr(t, err, store.ErrNotFound, "TakeGrant of an absent grant")

	u, err := s.TakeGrant(ctx(t), "code", "g1", []byte("family-1"), at(time.Hour), at(0))
	must(t, err, "TakeGrant")
	if !u.First || string(u.Record.Value) != "request" || u.Issued != nil {
		t.Fatalf("first use: %+v", u)
	}
	_, err = s.GetRecord(ctx(t), "code", "g1", at(0))
	wantErr(t, err, store.ErrNotFound, "GetRecord of a used grant")
	_, err = s.TakeRecord(ctx(t), "code", "g1", at(0))
	wantErr(t, err, store.ErrNotFound, "TakeRecord of a used grant")

	for i := range 2 {
		// After the grant's own expiry, within keepUntil: still a reuse.
		u, err = s.TakeGrant(ctx(t), "code", "g1", []byte("family-2"), at(2*time.Hour), at(30*time.Minute))
		must(t, err, "TakeGrant again")
		if u.First || string(u.Issued) != "family-1" || string(u.Record.Value) != "request" {
			t.Fatalf("reuse %d: %+v", i, u)
		}
	}
	_, err = s.TakeGrant(ctx(t), "code", "g1", nil, at(0), at(time.Hour))
	wantErr(t, err, store.ErrNotFound, "TakeGrant after keepUntil")

	// keepUntil earlier than the expiry does not shorten it; no issued.
	must(t, s.PutRecord(ctx(t), store.Record{Namespace: "code", Key: "g2", Value: []byte("v"), ExpiresAt: at(time.Hour)}), "PutRecord")
	u, err = s.TakeGrant(ctx(t), "code", "g2", nil, at(0), at(0))
	must(t, err, "TakeGrant")
	wantEqual(t, u.First, true, "first use")
	u, err = s.TakeGrant(ctx(t), "code", "g2", nil, at(0), at(59*time.Minute))
	must(t, err, "TakeGrant again")
	wantEqual(t, u.First, false, "second use")
	if len(u.Issued) != 0 {
		t.Fatalf("issued %q, want none", u.Issued)
	}
}

// testGrantRace has many goroutines use one grant at the same moment,
// round after round: exactly one use is first, and every other one is
// answered what the winner issued (so that it can revoke that family),
// whatever the interleaving.
func testGrantRace(t *testing.T, s store.Store) {
	const users = 8
	rounds := 100
	if testing.Short() {
		rounds = 10
	}
	for round := range rounds {
		k := fmt.Sprintf("race-%d", round)
		must(t, s.PutRecord(ctx(t), store.Record{Namespace: "code", Key: k, Value: []byte("v"), ExpiresAt: at(time.Minute)}), "PutRecord")
		var wg sync.WaitGroup
		uses := make([]store.GrantUse, users)
		errs := make([]error, users)
		start := make(chan struct{})
		for i := range users {
			wg.Go(func() {
				<-start
				uses[i], errs[i] = s.TakeGrant(ctx(t), "code", k, fmt.Appendf(nil, "family-%d", i), at(time.Hour), at(0))
			})
		}
		close(start)
		wg.Wait()
		winner := -1
		for i := range users {
			must(t, errs[i], "concurrent TakeGrant")
			if uses[i].First {
				if winner >= 0 {
					t.Fatalf("round %d: uses %d and %d both first", round, winner, i)
				}
				winner = i
			}
		}
		if winner < 0 {
			t.Fatalf("round %d: no use was first", round)
		}
		for i := range users {
			if i != winner && string(uses[i].Issued) != fmt.Sprintf("family-%d", winner) {
				t.Fatalf("round %d: loser %d told %q, want the winner's family-%d", round, i, uses[i].Issued, winner)
			}
		}
	}
}
