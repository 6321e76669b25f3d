package main

import (
	"context"
	"fmt"
	"syscall"
	"testing"

	"github.com/slobridge/slobridge/store"
)

// TestGracefulShutdownFinishesInFlightAttempts sends SIGTERM while
// delivery attempts are in flight: the process stops claiming, lets the
// attempts finish and records them (delivered, not resent after the
// restart), leaves the deliveries it had not started pending, and exits 0.
// The restarted bridge delivers the rest. It runs on bbolt and, when
// available, PostgreSQL.
func TestGracefulShutdownFinishesInFlightAttempts(t *testing.T) {
	for _, be := range backends(t) {
		t.Run(be.name, func(t *testing.T) { gracefulShutdown(t, be) })
	}
}

func gracefulShutdown(t *testing.T, be backend) {
	const n, workers = 20, 5
	f := startStuckFanOut(t, be, n, workers, func(i int) bool { return i%2 == 0 })
	rcs, p1, lo, cfg := f.rcs, f.p1, f.lo, be.config
	inFlight := map[int]bool{}
	for i, rc := range rcs {
		if rc.slow && len(rc.got()) == 1 {
			inFlight[i] = true
		}
	}
	if len(inFlight) != workers {
		t.Fatalf("%d attempts in flight, want %d", len(inFlight), workers)
	}
	if err := p1.cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	p1.waitLog(t, `"msg":"delivery workers stopping"`)
	f.release()
	if err := p1.exitWithin(t, waitTimeout); err != nil {
		t.Fatalf("SIGTERM: exit %v\n%s", err, p1.log())
	}

	// What the stopped bridge left behind: in-flight attempts recorded as
	// delivered, nothing half-written, the rest pending.
	st := be.open(t)
	ds, err := st.ListDeliveries(context.Background(), lo.Logout.ID)
	_ = st.Close()
	if err != nil || len(ds) != n {
		t.Fatalf("deliveries after shutdown: %d %v", len(ds), err)
	}
	pending := 0
	for _, d := range ds {
		i := appIndex(t, d.Participant.AppID)
		switch {
		case inFlight[i] && d.State != store.DeliveryDelivered:
			t.Errorf("%s was in flight at SIGTERM but reads %s (%s)", d.Participant.AppID, d.State, d.LastError)
		case d.State == store.DeliveryRetrying || d.State == store.DeliveryFailed:
			t.Errorf("%s reads %s after a clean shutdown: %s", d.Participant.AppID, d.State, d.LastError)
		case d.State == store.DeliveryPending:
			pending++
		}
	}
	if pending == 0 {
		t.Fatalf("nothing was left pending: the shutdown did not come mid-fan-out")
	}

	p2 := startServe(t, cfg)
	status := waitLogoutDone(t, p2.baseURL(t), lo.Logout.ID)
	for _, row := range status.Participants {
		if row.State != string(store.DeliveryDelivered) {
			t.Errorf("%s: %s after restart", row.Key, row.State)
		}
	}
	for i := range inFlight {
		if got := rcs[i].got(); len(got) != 1 {
			t.Errorf("app%02d, recorded as delivered at shutdown, got %d requests", i, len(got))
		}
	}
}

// appIndex parses the index of a seeded participant ("app07" → 7).
func appIndex(t *testing.T, app string) int {
	t.Helper()
	var i int
	if _, err := fmt.Sscanf(app, "app%d", &i); err != nil {
		t.Fatalf("participant %q: %v", app, err)
	}
	return i
}
