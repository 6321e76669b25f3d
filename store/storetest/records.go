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
