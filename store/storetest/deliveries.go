package storetest

import (
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/slobridge/slobridge/store"
)

// testDeliveries covers the outbox: claims, leases, attempts, retries and
// counts.
func testDeliveries(t *testing.T, f Factory) {
	runAll(t, f, []subtest{
		{"ClaimOrderLimitLease", testClaimOrderLimitLease},
		{"CompleteAttempt", testCompleteAttempt},
		{"FinalNeverClaimed", testFinalNeverClaimed},
		{"RetryDeliveries", testRetryDeliveries},
		{"RetryDelivery", testRetryDelivery},
		{"ListFailingDeliveries", testListFailingDeliveries},
		{"NextDueAt", testNextDueAt},
	})
}

// queueLogout makes a session with n back-channel participants and ends it
// at now, returning its deliveries.
func queueLogout(t *testing.T, s store.Store, id string, n int, now time.Time) []store.Delivery {
	t.Helper()
	sid := "s-" + id
	createSessions(t, s, newSession(sid, "u-"+id, now.Add(-time.Hour)))
	for i := range n {
		addParticipants(t, s, newParticipant(sid, fmt.Sprintf("app%d", i), store.ChannelBack, now.Add(-time.Minute)))
	}
	_, ds := endSessions(t, s, id, store.LogoutSpec{SessionIDs: []string{sid}, Now: now})
	if len(ds) != n {
		t.Fatalf("logout %s queued %d deliveries, want %d", id, len(ds), n)
	}
	return ds
}

// claim claims due deliveries or fails.
func claim(t *testing.T, s store.Store, owner string, now time.Time, lease time.Duration, limit int) []store.Delivery {
	t.Helper()
	ds, err := s.ClaimDueDeliveries(ctx(t), owner, now, lease, limit)
	must(t, err, "ClaimDueDeliveries "+owner)
	return norm(ds)
}

func testClaimOrderLimitLease(t *testing.T, s store.Store) {
	late := queueLogout(t, s, "late", 2, at(time.Minute))
	early := queueLogout(t, s, "early", 2, at(0))

	if got := claim(t, s, "w1", at(-time.Second), time.Minute, 10); len(got) != 0 {
		t.Fatalf("claimed %d deliveries before they were due", len(got))
	}
	got := claim(t, s, "w1", at(5*time.Minute), time.Minute, 3)
	if len(got) != 3 {
		t.Fatalf("claimed %d, want the limit 3", len(got))
	}
	firstTwo := deliveryIDs(got[:2])
	slices.Sort(firstTwo)
	wantEqual(t, firstTwo, deliveryIDs(early), "earliest due claimed first")
	if !slices.Contains(deliveryIDs(late), got[2].ID) {
		t.Fatalf("third claim %s is not from the later logout", got[2].ID)
	}
	for _, d := range got {
		if d.LeaseOwner != "w1" || !d.LeaseUntil.Equal(at(6*time.Minute)) || d.State != store.DeliveryPending {
			t.Fatalf("claimed delivery: owner %q until %v state %s", d.LeaseOwner, d.LeaseUntil, d.State)
		}
		stored, err := s.GetDelivery(ctx(t), d.ID)
		must(t, err, "GetDelivery")
		if stored.LeaseOwner != "w1" || !stored.LeaseUntil.Equal(at(6*time.Minute)) {
			t.Fatalf("stored lease: owner %q until %v", stored.LeaseOwner, stored.LeaseUntil)
		}
	}

	rest := claim(t, s, "w2", at(5*time.Minute+30*time.Second), time.Minute, 10)
	if len(rest) != 1 || slices.Contains(deliveryIDs(got), rest[0].ID) {
		t.Fatalf("second owner claimed %v, want only the unleased delivery", deliveryIDs(rest))
	}
	if again := claim(t, s, "w3", at(5*time.Minute+45*time.Second), time.Minute, 10); len(again) != 0 {
		t.Fatalf("claimed %v while every lease runs", deliveryIDs(again))
	}
	// w1's leases ran out at +6m (w2's runs until +6m30s): w3 takes them over.
	taken := claim(t, s, "w3", at(6*time.Minute+time.Second), time.Minute, 10)
	wantEqual(t, sorted(deliveryIDs(taken)), sorted(deliveryIDs(got)), "deliveries taken over after lease expiry")
	_, err := s.CompleteAttempt(ctx(t), got[0].ID, "w1", store.Attempt{At: at(6 * time.Minute), OK: true},
		store.DeliveryDelivered, time.Time{})
	wantErr(t, err, store.ErrNotFound, "CompleteAttempt by the owner whose lease was taken over")
	if none := claim(t, s, "w1", at(6*time.Minute+time.Second), time.Minute, 0); len(none) != 0 {
		t.Fatalf("limit 0 claimed %d", len(none))
	}
}

// sorted returns a sorted copy of ids.
func sorted(ids []string) []string {
	out := slices.Clone(ids)
	slices.Sort(out)
	return out
}

func testCompleteAttempt(t *testing.T, s store.Store) {
	ds := queueLogout(t, s, "lo1", 1, at(0))
	id := ds[0].ID
	claim(t, s, "w1", at(time.Minute), time.Minute, 10)

	fail := store.Attempt{At: at(time.Minute), Duration: 250 * time.Millisecond, StatusCode: 503, Error: "status 503"}
	_, err := s.CompleteAttempt(ctx(t), id, "w2", fail, store.DeliveryRetrying, at(10*time.Minute))
	wantErr(t, err, store.ErrNotFound, "CompleteAttempt by a non-owner")
	_, err = s.CompleteAttempt(ctx(t), "nope", "w1", fail, store.DeliveryRetrying, at(10*time.Minute))
	wantErr(t, err, store.ErrNotFound, "CompleteAttempt of an unknown delivery")

	got, err := s.CompleteAttempt(ctx(t), id, "w1", fail, store.DeliveryRetrying, at(10*time.Minute))
	must(t, err, "CompleteAttempt retrying")
	want := ds[0]
	want.State, want.NextAttemptAt, want.Attempts, want.LastError = store.DeliveryRetrying, at(10*time.Minute), []store.Attempt{fail}, "status 503"
	wantEqual(t, norm(got), norm(want), "delivery after a failed attempt")
	stored, err := s.GetDelivery(ctx(t), id)
	must(t, err, "GetDelivery")
	wantEqual(t, norm(stored), norm(want), "stored delivery after a failed attempt")

	_, err = s.CompleteAttempt(ctx(t), id, "w1", fail, store.DeliveryRetrying, at(20*time.Minute))
	wantErr(t, err, store.ErrNotFound, "CompleteAttempt without a lease")
	if early := claim(t, s, "w1", at(10*time.Minute-time.Second), time.Minute, 10); len(early) != 0 {
		t.Fatal("retrying delivery claimed before its next attempt time")
	}
	if due := claim(t, s, "w2", at(10*time.Minute), time.Minute, 10); len(due) != 1 || due[0].State != store.DeliveryRetrying {
		t.Fatalf("retrying delivery not claimed when due: %+v", due)
	}
	ok := store.Attempt{At: at(10 * time.Minute), Duration: time.Second, OK: true, StatusCode: 200}
	got, err = s.CompleteAttempt(ctx(t), id, "w2", ok, store.DeliveryDelivered, time.Time{})
	must(t, err, "CompleteAttempt delivered")
	if got.State != store.DeliveryDelivered || len(got.Attempts) != 2 || !got.DoneAt.Equal(at(10*time.Minute)) ||
		got.LeaseOwner != "" || !got.LeaseUntil.IsZero() {
		t.Fatalf("delivered: %+v", got)
	}
	counts, err := s.CountDeliveries(ctx(t))
	must(t, err, "CountDeliveries")
	if counts[store.DeliveryDelivered] != 1 || counts[store.DeliveryPending]+counts[store.DeliveryRetrying] != 0 {
		t.Fatalf("CountDeliveries = %v, want 1 delivered", counts)
	}
}

func testFinalNeverClaimed(t *testing.T, s store.Store) {
	ds := queueLogout(t, s, "lo1", 3, at(0))
	claimed := claim(t, s, "w1", at(0), time.Minute, 10)
	if len(claimed) != 3 {
		t.Fatalf("claimed %d, want 3", len(claimed))
	}
	states := []store.DeliveryState{store.DeliveryDelivered, store.DeliveryFailed, store.DeliveryRetrying}
	for i, st := range states {
		_, err := s.CompleteAttempt(ctx(t), ds[i].ID, "w1", store.Attempt{At: at(time.Second), OK: st == store.DeliveryDelivered},
			st, at(time.Hour))
		must(t, err, "CompleteAttempt "+string(st))
	}
	got := claim(t, s, "w2", at(1000*time.Hour), time.Minute, 10)
	wantEqual(t, deliveryIDs(got), []string{ds[2].ID}, "claimable deliveries far in the future")
	counts, err := s.CountDeliveries(ctx(t))
	must(t, err, "CountDeliveries")
	want := map[store.DeliveryState]int{store.DeliveryDelivered: 1, store.DeliveryFailed: 1, store.DeliveryRetrying: 1}
	for _, st := range states {
		if counts[st] != want[st] {
			t.Fatalf("CountDeliveries = %v, want %v", counts, want)
		}
	}
}

func testRetryDeliveries(t *testing.T, s store.Store) {
	ds := queueLogout(t, s, "lo1", 3, at(0))
	claim(t, s, "w1", at(0), time.Minute, 10)
	fail := store.Attempt{At: at(time.Second), Error: "connection refused"}
	for i, st := range []store.DeliveryState{store.DeliveryFailed, store.DeliveryDelivered, store.DeliveryFailed} {
		a := fail
		a.OK = st == store.DeliveryDelivered
		_, err := s.CompleteAttempt(ctx(t), ds[i].ID, "w1", a, st, time.Time{})
		must(t, err, "CompleteAttempt")
	}
	n, err := s.RetryDeliveries(ctx(t), "lo1", at(time.Hour))
	must(t, err, "RetryDeliveries")
	if n != 2 {
		t.Fatalf("RetryDeliveries reset %d, want 2", n)
	}
	for _, i := range []int{0, 2} {
		d, err := s.GetDelivery(ctx(t), ds[i].ID)
		must(t, err, "GetDelivery")
		if d.State != store.DeliveryPending || !d.NextAttemptAt.Equal(at(time.Hour)) || len(d.Attempts) != 1 {
			t.Fatalf("reset delivery: state %s next %v attempts %d", d.State, d.NextAttemptAt, len(d.Attempts))
		}
	}
	got := claim(t, s, "w2", at(time.Hour), time.Minute, 10)
	wantEqual(t, sorted(deliveryIDs(got)), sorted([]string{ds[0].ID, ds[2].ID}), "claimed after retry")
	n, err = s.RetryDeliveries(ctx(t), "lo1", at(2*time.Hour))
	must(t, err, "RetryDeliveries with nothing failed")
	if n != 0 {
		t.Fatalf("RetryDeliveries reset %d non-failed deliveries", n)
	}
	_, err = s.RetryDeliveries(ctx(t), "nope", at(time.Hour))
	wantErr(t, err, store.ErrNotFound, "RetryDeliveries of an unknown logout")
}

// testRetryDelivery: an operator's retry of one delivery makes a failed
// one pending and a retrying one due at once, keeping its attempts, and
// leaves a delivered one and one a worker holds alone.
func testRetryDelivery(t *testing.T, s store.Store) {
	ds := queueLogout(t, s, "lo1", 4, at(0))
	claim(t, s, "w1", at(0), time.Minute, 10)
	complete := func(i int, st store.DeliveryState, next time.Time) {
		t.Helper()
		_, err := s.CompleteAttempt(ctx(t), ds[i].ID, "w1", store.Attempt{At: at(time.Second), OK: st == store.DeliveryDelivered,
			StatusCode: 503, Error: "HTTP 503"}, st, next)
		must(t, err, "CompleteAttempt")
	}
	complete(0, store.DeliveryFailed, time.Time{})
	complete(1, store.DeliveryDelivered, time.Time{})
	complete(2, store.DeliveryRetrying, at(time.Hour))
	// ds[3] stays leased to w1 until at(time.Minute).

	cases := []struct {
		i       int
		now     time.Time
		changed bool
		state   store.DeliveryState
		next    time.Time
	}{
		{0, at(10 * time.Second), true, store.DeliveryPending, at(10 * time.Second)},
		{1, at(10 * time.Second), false, store.DeliveryDelivered, time.Time{}},
		{2, at(10 * time.Second), true, store.DeliveryRetrying, at(10 * time.Second)},
		{3, at(30 * time.Second), false, store.DeliveryPending, at(time.Minute)},
	}
	for _, c := range cases {
		d, changed, err := s.RetryDelivery(ctx(t), ds[c.i].ID, c.now)
		must(t, err, "RetryDelivery")
		d = norm(d)
		if changed != c.changed || d.State != c.state || !d.NextAttemptAt.Equal(c.next) {
			t.Fatalf("RetryDelivery of delivery %d: changed %v state %s next %v, want %v %s %v", c.i, changed, d.State, d.NextAttemptAt, c.changed, c.state, c.next)
		}
		stored, err := s.GetDelivery(ctx(t), ds[c.i].ID)
		must(t, err, "GetDelivery")
		if stored = norm(stored); stored.State != d.State || !stored.NextAttemptAt.Equal(d.NextAttemptAt) {
			t.Fatalf("RetryDelivery of delivery %d answered %s at %v but stored %s at %v", c.i, d.State, d.NextAttemptAt, stored.State, stored.NextAttemptAt)
		}
		if c.i != 3 && (len(stored.Attempts) != 1 || !stored.DoneAt.IsZero() != (c.i == 1) || stored.LeaseOwner != "") {
			t.Fatalf("retried delivery %d: %d attempts, done %v, lease %q", c.i, len(stored.Attempts), stored.DoneAt, stored.LeaseOwner)
		}
	}
	got := claim(t, s, "w2", at(20*time.Second), time.Minute, 10)
	wantEqual(t, sorted(deliveryIDs(got)), sorted([]string{ds[0].ID, ds[2].ID}), "claimed after retrying one by one")
	_, _, err := s.RetryDelivery(ctx(t), "nope", at(time.Hour))
	wantErr(t, err, store.ErrNotFound, "RetryDelivery of an unknown delivery")
}

// testListFailingDeliveries: the failing deliveries (retrying or failed)
// page newest first, and one leaves the list when it is delivered or sent
// again.
func testListFailingDeliveries(t *testing.T, s store.Store) {
	a := queueLogout(t, s, "lo1", 3, at(0))
	b := queueLogout(t, s, "lo2", 3, at(time.Minute))
	claim(t, s, "w1", at(time.Minute), time.Hour, 10)
	states := []store.DeliveryState{store.DeliveryFailed, store.DeliveryRetrying, store.DeliveryDelivered}
	for i, st := range states {
		for _, d := range []store.Delivery{a[i], b[(i+1)%3]} {
			_, err := s.CompleteAttempt(ctx(t), d.ID, "w1", store.Attempt{At: at(2 * time.Minute), OK: st == store.DeliveryDelivered, Error: "refused"},
				st, at(time.Hour))
			must(t, err, "CompleteAttempt")
		}
	}
	// Failing: a[0], a[1], b[1], b[2]; newest first, by ID within a time.
	failing := []store.Delivery{a[0], a[1], b[1], b[2]}
	slices.SortFunc(failing, func(x, y store.Delivery) int {
		if c := y.CreatedAt.Compare(x.CreatedAt); c != 0 {
			return c
		}
		return strings.Compare(y.ID, x.ID)
	})
	pageAll := func() []string {
		t.Helper()
		var got []string
		var cur store.Cursor
		for range 10 {
			page, err := s.ListFailingDeliveries(ctx(t), cur, 3)
			must(t, err, "ListFailingDeliveries")
			if len(page) == 0 {
				return got
			}
			for _, d := range page {
				if !d.State.Failing() {
					t.Fatalf("ListFailingDeliveries listed %s in state %s", d.ID, d.State)
				}
				got = append(got, d.ID)
			}
			last := page[len(page)-1]
			cur = store.Cursor{CreatedAt: last.CreatedAt, ID: last.ID}
		}
		t.Fatal("ListFailingDeliveries never ends")
		return nil
	}
	wantEqual(t, pageAll(), deliveryIDs(failing), "failing deliveries, newest first, page after page")

	_, changed, err := s.RetryDelivery(ctx(t), a[0].ID, at(3*time.Minute))
	must(t, err, "RetryDelivery")
	if !changed {
		t.Fatal("RetryDelivery of a failed delivery changed nothing")
	}
	w := claim(t, s, "w2", at(time.Hour), time.Minute, 10)
	for _, d := range w {
		if d.ID == b[2].ID {
			_, err := s.CompleteAttempt(ctx(t), d.ID, "w2", store.Attempt{At: at(time.Hour), OK: true}, store.DeliveryDelivered, time.Time{})
			must(t, err, "CompleteAttempt")
		}
	}
	want := slices.DeleteFunc(deliveryIDs(failing), func(id string) bool { return id == a[0].ID || id == b[2].ID })
	wantEqual(t, pageAll(), want, "failing deliveries after a retry and a delivery")

	for _, limit := range []int{0, -1, store.MaxPage + 1} {
		_, err := s.ListFailingDeliveries(ctx(t), store.Cursor{}, limit)
		wantErr(t, err, store.ErrInvalid, fmt.Sprintf("ListFailingDeliveries with limit %d", limit))
	}
}

func testNextDueAt(t *testing.T, s store.Store) {
	assertNoDeliveries(t, s)
	ds := queueLogout(t, s, "lo1", 2, at(time.Minute))
	queueLogout(t, s, "lo0", 1, at(0))
	wantNextDue(t, s, at(0))

	claim(t, s, "w1", at(2*time.Minute), time.Minute, 10)
	// Every delivery is leased: the next one is due when the leases end.
	wantNextDue(t, s, at(3*time.Minute))

	for i, d := range ds {
		_, err := s.CompleteAttempt(ctx(t), d.ID, "w1", store.Attempt{At: at(2 * time.Minute), Error: "timeout"},
			store.DeliveryRetrying, at(time.Duration(30-i)*time.Minute))
		must(t, err, "CompleteAttempt")
	}
	wantNextDue(t, s, at(3*time.Minute)) // lo0's delivery, still leased
	others := claim(t, s, "w2", at(4*time.Minute), time.Minute, 10)
	if len(others) != 1 {
		t.Fatalf("claimed %d, want lo0's delivery", len(others))
	}
	_, err := s.CompleteAttempt(ctx(t), others[0].ID, "w2", store.Attempt{At: at(4 * time.Minute), OK: true},
		store.DeliveryDelivered, time.Time{})
	must(t, err, "CompleteAttempt")
	wantNextDue(t, s, at(29*time.Minute))
}

// wantNextDue fails unless NextDueAt reports want.
func wantNextDue(t *testing.T, s store.Store, want time.Time) {
	t.Helper()
	got, ok, err := s.NextDueAt(ctx(t))
	must(t, err, "NextDueAt")
	if !ok || !got.Equal(want) {
		t.Fatalf("NextDueAt = %v, %v; want %v", got, ok, want)
	}
}
