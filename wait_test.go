package slobridge

import (
	"context"
	"errors"
	"net/http"
	"path/filepath"
	"slices"
	"sync/atomic"
	"testing"
	"time"

	"github.com/slobridge/slobridge/store"
)

// TestWaitDone: the one wait on a logout returns as soon as every
// delivery is final; with a receiver that keeps failing it returns the
// not-done status when the wait ends; and it returns ctx's error, with the
// last status, when the caller gives up first.
func TestWaitDone(t *testing.T) {
	ok := newReceiver(t, nil)
	failing := newReceiver(t, func(int, *http.Request) int { return http.StatusServiceUnavailable })
	e, _ := runEngine(t, testOptions(openStore(t, filepath.Join(t.TempDir(), "w.db"))))
	ctx := context.Background()
	logout := func(url string) string {
		s := newSession(t, e, "alice", backParticipant("app", url))
		lo, err := e.Logout(ctx, LogoutRequest{SessionIDs: []string{s.ID}, Initiator: store.Initiator{Kind: store.InitiatorAdmin}})
		if err != nil {
			t.Fatal(err)
		}
		return lo.ID
	}
	// Done: generous wait, it must return well before it (not asserted as a time).
	st, err := e.WaitDone(ctx, logout(ok.srv.URL), time.Minute)
	if err != nil || !st.Done {
		t.Fatalf("WaitDone with a healthy receiver: %+v %v", st, err)
	}
	st, err = e.WaitDone(ctx, logout(failing.srv.URL), 300*time.Millisecond)
	if err != nil || st.Done || len(st.Participants) != 1 {
		t.Fatalf("WaitDone with a failing receiver: done %v, %v", st.Done, err)
	}
	cctx, cancel := context.WithCancel(ctx)
	cancel()
	st, err = e.WaitDone(cctx, logout(failing.srv.URL), time.Minute)
	if !errors.Is(err, context.Canceled) || st.Done {
		t.Fatalf("WaitDone after the caller gave up: done %v, %v", st.Done, err)
	}
	if _, err := e.WaitDone(ctx, "no-such-logout", time.Second); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("WaitDone of an unknown logout: %v", err)
	}
}

// TestWatch: Watch reports the status at once and after each change until
// the logout is done; a receiver that recovers shows as failing, then
// delivered; fn's error ends the watch.
func TestWatch(t *testing.T) {
	var fails atomic.Int32
	fails.Store(2)
	rc := newReceiver(t, func(int, *http.Request) int {
		if fails.Add(-1) >= 0 {
			return http.StatusServiceUnavailable
		}
		return http.StatusNoContent
	})
	opts := testOptions(openStore(t, filepath.Join(t.TempDir(), "w.db")))
	e, _ := runEngine(t, opts)
	ctx := context.Background()
	s := newSession(t, e, "alice", backParticipant("app", rc.srv.URL))
	lo, err := e.Logout(ctx, LogoutRequest{SessionIDs: []string{s.ID}, Initiator: store.Initiator{Kind: store.InitiatorAdmin}})
	if err != nil {
		t.Fatal(err)
	}
	var states []string
	err = e.Watch(ctx, lo.ID, func(st LogoutStatus) error {
		if n := len(states); n == 0 || states[n-1] != st.Participants[0].State {
			states = append(states, st.Participants[0].State)
		}
		return nil
	})
	if err != nil || len(states) < 2 || states[len(states)-1] != "delivered" || !slices.Contains(states, "retrying") {
		t.Fatalf("Watch saw %v (%v); want the retries, then delivered", states, err)
	}
	stopped := errors.New("stop")
	if err := e.Watch(ctx, lo.ID, func(LogoutStatus) error { return stopped }); !errors.Is(err, stopped) {
		t.Fatalf("Watch with a failing fn: %v", err)
	}
	if err := e.Watch(ctx, "no-such-logout", func(LogoutStatus) error { return nil }); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("Watch of an unknown logout: %v", err)
	}
}
