package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/slobridge/slobridge"
	adminapi "github.com/slobridge/slobridge/cmd/internal/admin"
	"github.com/slobridge/slobridge/store"
)

// crashReceiver is one back-channel participant of the crash test. A slow
// one holds its first request until released (or until the bridge's
// connection dies), so that the bridge is killed with attempts in flight.
type crashReceiver struct {
	srv     *httptest.Server
	slow    bool
	release <-chan struct{}
	blocked chan<- struct{}

	mu  sync.Mutex
	ids []string
}

func (rc *crashReceiver) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	_, _ = io.Copy(io.Discard, r.Body)
	rc.mu.Lock()
	first := len(rc.ids) == 0
	rc.ids = append(rc.ids, r.Header.Get(slobridge.DeliveryIDHeader))
	rc.mu.Unlock()
	if rc.slow && first {
		rc.blocked <- struct{}{}
		select {
		case <-rc.release:
		case <-r.Context().Done():
			return
		}
	}
	w.WriteHeader(http.StatusNoContent)
}

func (rc *crashReceiver) got() []string {
	rc.mu.Lock()
	defer rc.mu.Unlock()
	return append([]string(nil), rc.ids...)
}

// seedSession writes a session with one "http" back-channel participant
// per receiver into the store, as a login would have.
func seedSession(t *testing.T, be backend, rcs []*crashReceiver) string {
	t.Helper()
	ctx := context.Background()
	st := be.open(t)
	defer st.Close()
	eng, err := slobridge.NewEngine(slobridge.Options{Store: st})
	if err != nil {
		t.Fatal(err)
	}
	s, err := eng.CreateSession(ctx, store.Session{UserID: "alice", ExpiresAt: time.Now().Add(time.Hour)})
	if err != nil {
		t.Fatal(err)
	}
	for i, rc := range rcs {
		app := fmt.Sprintf("app%02d", i)
		_, err := eng.AddParticipant(ctx, store.Participant{SessionID: s.ID, Kind: "http", AppID: app, Name: app,
			Channels: store.ChannelBack, BackChannelURL: rc.srv.URL + "/logout"})
		if err != nil {
			t.Fatal(err)
		}
	}
	return s.ID
}

// outboxCounts reads the delivery counts straight from the store (a
// bbolt file must not be open elsewhere).
func outboxCounts(t *testing.T, be backend) map[store.DeliveryState]int {
	t.Helper()
	st := be.open(t)
	defer st.Close()
	c, err := st.CountDeliveries(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// TestCrashMidFanOutLosesNothing is the crash test of issue 2: a logout of
// a session with 50 back-channel participants (10 of them slow) is
// started through the admin CLI, the bridge is SIGKILLed while attempts
// are in flight and others have not started, and after a restart every
// receiver has its notification, always under the same delivery ID, and
// the status reads delivered for all 50. It runs on bbolt and, when
// available, PostgreSQL.
func TestCrashMidFanOutLosesNothing(t *testing.T) {
	for _, be := range backends(t) {
		t.Run(be.name, func(t *testing.T) { crashMidFanOut(t, be) })
	}
}

// stuckFanOut is a bridge process with a logout mid-fan-out: every
// worker is held in a slow receiver, so attempts are in flight and other
// deliveries have not started.
type stuckFanOut struct {
	rcs     []*crashReceiver
	p1      *proc
	lo      adminapi.LogoutResponse
	release func() // lets the slow receivers answer (once; also at cleanup)
}

// startStuckFanOut seeds a session with n back-channel receivers (those
// for which slow(i) holds block their first request), starts the binary
// on be, logs the session out through the admin CLI and waits until
// workers slow receivers hold a request at once.
func startStuckFanOut(t *testing.T, be backend, n, workers int, slow func(i int) bool) *stuckFanOut {
	t.Helper()
	release := make(chan struct{})
	blocked := make(chan struct{}, n)
	f := &stuckFanOut{}
	for i := range n {
		rc := &crashReceiver{slow: slow(i), release: release, blocked: blocked}
		rc.srv = httptest.NewServer(rc)
		t.Cleanup(rc.srv.Close)
		f.rcs = append(f.rcs, rc)
	}
	var releaseOnce sync.Once
	f.release = func() { releaseOnce.Do(func() { close(release) }) }
	t.Cleanup(f.release)

	sid := seedSession(t, be, f.rcs)
	f.p1 = startServe(t, be.config)
	admin(t, f.p1.baseURL(t), &f.lo, "logout", "--session", sid)
	if len(f.lo.Logout.SessionIDs) != 1 || len(f.lo.Logout.Participants) != n {
		t.Fatalf("logout: %+v", f.lo.Logout)
	}
	for range workers {
		select {
		case <-blocked:
		case <-time.After(waitTimeout):
			t.Fatalf("the bridge never reached %d slow receivers at once:\n%s", workers, f.p1.log())
		}
	}
	return f
}

func crashMidFanOut(t *testing.T, be backend) {
	const n, workers = 50, 5
	f := startStuckFanOut(t, be, n, workers, func(i int) bool { return i%5 == 0 })
	rcs, p1, lo, cfg := f.rcs, f.p1, f.lo, be.config

	if err := p1.cmd.Process.Signal(syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	if err := p1.exitWithin(t, waitTimeout); err == nil {
		t.Fatal("the killed bridge exited cleanly")
	}
	f.release()

	// The kill really came mid-fan-out: the file holds unfinished deliveries.
	counts := outboxCounts(t, be)
	if unfinished := counts[store.DeliveryPending] + counts[store.DeliveryRetrying]; unfinished < workers || counts[store.DeliveryDelivered] >= n {
		t.Fatalf("not killed mid-fan-out: outbox %v", counts)
	}
	reached := 0
	atKill := make([]int, n)
	for i, rc := range rcs {
		atKill[i] = len(rc.got())
		if atKill[i] > 0 {
			reached++
		}
	}
	if reached == n {
		t.Fatalf("all %d receivers were reached before the kill", n)
	}
	t.Logf("killed with outbox %v; %d of %d receivers reached", counts, reached, n)

	p2 := startServe(t, cfg)
	status := waitLogoutDone(t, p2.baseURL(t), lo.Logout.ID)

	seen := map[string]string{}
	for _, row := range status.Participants {
		if row.State != string(store.DeliveryDelivered) || row.DeliveryID == "" {
			t.Errorf("%s: state %s, delivery %q, last error %q", row.Key, row.State, row.DeliveryID, row.LastError)
		}
		seen[row.AppID] = row.DeliveryID
	}
	if len(status.Participants) != n {
		t.Fatalf("status has %d participants, want %d", len(status.Participants), n)
	}
	ids := map[string]bool{}
	for i, rc := range rcs {
		app := fmt.Sprintf("app%02d", i)
		got := rc.got()
		if len(got) == 0 {
			t.Errorf("%s (slow %v) never got its notification", app, rc.slow)
			continue
		}
		for _, id := range got {
			if id != seen[app] {
				t.Errorf("%s got delivery IDs %v, status says %s: not stable", app, got, seen[app])
				break
			}
		}
		if ids[got[0]] {
			t.Errorf("%s shares delivery ID %s with another receiver", app, got[0])
		}
		ids[got[0]] = true
		if rc.slow && atKill[i] == 1 && len(got) < 2 {
			// Its attempt died with the process: the bridge never saw an
			// answer, so the restarted one must have sent it again.
			t.Errorf("%s was in flight at the kill but got no second request", app)
		}
	}
}

// waitLogoutDone polls the logout's status through the admin CLI until
// every delivery is final.
func waitLogoutDone(t *testing.T, base, logoutID string) slobridge.LogoutStatus {
	t.Helper()
	deadline := time.Now().Add(waitTimeout)
	for {
		var st slobridge.LogoutStatus
		admin(t, base, &st, "status", "--", logoutID) // "--": an ID may begin with "-"
		if st.Done {
			return st
		}
		if time.Now().After(deadline) {
			t.Fatalf("logout %s not done after restart: %+v", logoutID, st.Participants)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// TestSecondServeOnSameFileFailsLocked shows that a second `serve` on a
// bbolt file in use exits with a clear "database locked" error after
// store.bolt.lock_timeout instead of hanging.
func TestSecondServeOnSameFileFailsLocked(t *testing.T) {
	db := filepath.Join(t.TempDir(), "locked.db")
	cfg := writeConfig(t, db)
	first := startServe(t, cfg)
	base := first.baseURL(t)
	if code, err := httpGet(base + "/readyz"); err != nil || code != http.StatusOK {
		t.Fatalf("first bridge not ready: %d %v", code, err)
	}
	second := startServe(t, cfg)
	err := second.exitWithin(t, waitTimeout)
	var ee *exec.ExitError
	if !errors.As(err, &ee) || ee.ExitCode() != 1 {
		t.Fatalf("second serve: exit %v, want status 1\n%s", err, second.log())
	}
	if msg := second.log(); !strings.Contains(msg, "database locked") || !strings.Contains(msg, db) || !strings.Contains(msg, "500ms") {
		t.Fatalf("second serve did not say the database is locked:\n%s", msg)
	}
	// The first one is unaffected.
	if code, err := httpGet(base + "/readyz"); err != nil || code != http.StatusOK {
		t.Fatalf("first bridge after the second failed: %d %v", code, err)
	}
}

// TestServeRejectsInvalidConfig runs the binary on bad configurations: it
// must exit 1 at start-up with a message naming the key.
func TestServeRejectsInvalidConfig(t *testing.T) {
	good := fmt.Sprintf(baseConfig, filepath.Join(t.TempDir(), "x.db"))
	tests := []struct {
		name, doc, want string
	}{
		{"unknown key", good + "colour: blue\n", "(colour): field colour not found"},
		{"bad duration", strings.Replace(good, "attempt_timeout: 5s", "attempt_timeout: soon", 1), "(delivery.attempt_timeout): cannot unmarshal"},
		{"unset secret", strings.Replace(good, "${SLOBRIDGE_ADMIN_TOKEN}", "${SLOBRIDGE_UNSET_FOR_TEST}", 1), "admin.token: environment variable SLOBRIDGE_UNSET_FOR_TEST is not set"},
		{"bad driver", strings.Replace(good, "store:\n", "store:\n  driver: sqlite\n", 1), `store.driver: must be bolt or postgres, not "sqlite"`},
		{"https required", strings.Replace(good, "http://127.0.0.1:8080", "http://bridge.example.com", 1), "server.base_url: must use https"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			path := filepath.Join(t.TempDir(), "bad.yaml")
			if err := os.WriteFile(path, []byte(tt.doc), 0o600); err != nil {
				t.Fatal(err)
			}
			ctx, cancel := context.WithTimeout(context.Background(), waitTimeout)
			defer cancel()
			cmd := exec.CommandContext(ctx, binary, "serve", "--config", path)
			cmd.Env = append(os.Environ(), testEnv...)
			out, err := cmd.CombinedOutput()
			var ee *exec.ExitError
			if !errors.As(err, &ee) || ee.ExitCode() != 1 {
				t.Fatalf("exit %v, want status 1; output:\n%s", err, out)
			}
			if !strings.Contains(string(out), tt.want) {
				t.Fatalf("output does not contain %q:\n%s", tt.want, out)
			}
		})
	}
}
