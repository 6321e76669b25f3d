package slobridge

import (
	"context"
	"errors"
	"net/http"
	"path/filepath"
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
