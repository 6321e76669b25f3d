package slobridge

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/slobridge/slobridge/store"
	"github.com/slobridge/slobridge/store/bolt"
)

// waitTimeout bounds every poll-with-deadline in these tests; it is far
// above what the conditions need, so it only matters when something hangs.
const waitTimeout = 20 * time.Second

// openStore opens a bbolt store at path and closes it when the test ends.
func openStore(t testing.TB, path string) store.Store {
	t.Helper()
	db, err := bolt.Open(path, bolt.Options{})
	if err != nil {
		t.Fatalf("open store %s: %v", path, err)
	}
	t.Cleanup(func() { _ = db.Close() })
	return db
}

// testOptions are engine options with short retry settings and the HTTP
// notifier allowed to reach loopback receivers.
func testOptions(st store.Store) Options {
	return Options{
		Store:          st,
		Logger:         slog.New(slog.NewTextHandler(io.Discard, nil)),
		Notifiers:      map[string]Notifier{"http": &HTTPNotifier{Client: NewBackChannelClient(ClientOptions{AllowLoopback: true})}},
		AttemptTimeout: 5 * time.Second,
		BackoffBase:    10 * time.Millisecond,
		BackoffMax:     50 * time.Millisecond,
		PollInterval:   50 * time.Millisecond,
	}
}

// runEngine creates an engine and runs its workers until the returned stop
// function is called (or the test ends). stop returns once Run returned.
func runEngine(t testing.TB, opts Options) (*Engine, func()) {
	t.Helper()
	e, err := NewEngine(opts)
	if err != nil {
		t.Fatalf("NewEngine: %v", err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- e.Run(ctx) }()
	var once sync.Once
	stop := func() {
		once.Do(func() {
			cancel()
			if err := <-done; err != nil {
				t.Errorf("Run: %v", err)
			}
		})
	}
	t.Cleanup(stop)
	return e, stop
}

// receiver is a back-channel endpoint that records the delivery IDs it got.
type receiver struct {
	srv *httptest.Server
	mu  sync.Mutex
	ids []string
	// answer decides the status of the n-th request (0-based); nil = 200.
	answer func(n int, r *http.Request) int
}

func newReceiver(t testing.TB, answer func(n int, r *http.Request) int) *receiver {
	t.Helper()
	rc := &receiver{answer: answer}
	rc.srv = httptest.NewServer(http.HandlerFunc(rc.serve))
	t.Cleanup(rc.srv.Close)
	return rc
}

func (rc *receiver) serve(w http.ResponseWriter, r *http.Request) {
	_, _ = io.Copy(io.Discard, r.Body)
	rc.mu.Lock()
	n := len(rc.ids)
	rc.ids = append(rc.ids, r.Header.Get(DeliveryIDHeader))
	rc.mu.Unlock()
	code := http.StatusOK
	if rc.answer != nil {
		code = rc.answer(n, r)
	}
	w.WriteHeader(code)
}

func (rc *receiver) got() []string {
	rc.mu.Lock()
	defer rc.mu.Unlock()
	return append([]string(nil), rc.ids...)
}

// newSession creates an active session of user with the given participants
// (their SessionID is filled in).
func newSession(t testing.TB, e *Engine, user string, ps ...store.Participant) store.Session {
	t.Helper()
	ctx := context.Background()
	s, err := e.CreateSession(ctx, store.Session{UserID: user, ExpiresAt: e.Now().Add(time.Hour)})
	if err != nil {
		t.Fatalf("CreateSession: %v", err)
	}
	for _, p := range ps {
		p.SessionID = s.ID
		if _, err := e.AddParticipant(ctx, p); err != nil {
			t.Fatalf("AddParticipant %s: %v", p.Key, err)
		}
	}
	return s
}

// backParticipant is an "http" participant notified at url.
func backParticipant(app, url string) store.Participant {
	return store.Participant{Kind: "http", AppID: app, Key: "http:" + app, Name: app,
		Channels: store.ChannelBack, BackChannelURL: url}
}

// waitStatus polls the logout's status until cond holds, failing the test
// after waitTimeout with the last status.
func waitStatus(t testing.TB, e *Engine, logoutID string, what string, cond func(LogoutStatus) bool) LogoutStatus {
	t.Helper()
	deadline := time.Now().Add(waitTimeout)
	for {
		st, err := e.Status(context.Background(), logoutID)
		if err != nil {
			t.Fatalf("Status: %v", err)
		}
		if cond(st) {
			return st
		}
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s; status: %+v", what, st.Participants)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// row returns the status row of participant key.
func row(t testing.TB, st LogoutStatus, key string) ParticipantStatus {
	t.Helper()
	for _, p := range st.Participants {
		if p.Key == key {
			return p
		}
	}
	t.Fatalf("no participant %s in status", key)
	return ParticipantStatus{}
}

func allDone(st LogoutStatus) bool { return st.Done }

func TestLogoutDeliversToEveryParticipant(t *testing.T) {
	st := openStore(t, t.TempDir()+"/slobridge.db")
	e, _ := runEngine(t, testOptions(st))
	events, unsubscribe := e.Subscribe(1024)
	defer unsubscribe()

	const n = 5
	var ps []store.Participant
	rcs := map[string]*receiver{}
	for i := range n {
		rc := newReceiver(t, nil)
		p := backParticipant(fmt.Sprintf("app%d", i), rc.srv.URL+"/bc")
		if i == n-1 {
			p.Channels |= store.ChannelFront
			p.FrontChannelURL = "https://app.example/fc"
		}
		rcs[p.Key] = rc
		ps = append(ps, p)
	}
	initRC := newReceiver(t, nil)
	initiator := backParticipant("initiator", initRC.srv.URL+"/bc")
	initiator.Key = "oidc:initiator" // the RP "initiator" (InitiatorKey)
	front := store.Participant{Kind: "oidc", AppID: "front", Key: "oidc:front", Channels: store.ChannelFront, FrontChannelURL: "https://front.example/fc"}
	s := newSession(t, e, "alice", append(ps, initiator, front)...)

	lo, err := e.Logout(context.Background(), LogoutRequest{SessionIDs: []string{s.ID},
		Initiator: store.Initiator{Kind: store.InitiatorRP, ID: "initiator"}})
	if err != nil {
		t.Fatalf("Logout: %v", err)
	}
	status := waitStatus(t, e, lo.ID, "every delivery final", allDone)

	for key, rc := range rcs {
		r := row(t, status, key)
		if r.State != "delivered" || r.Attempts != 1 || r.DeliveryID == "" {
			t.Errorf("%s: %+v, want delivered after 1 attempt", key, r)
		}
		if got := rc.got(); len(got) != 1 || got[0] != r.DeliveryID {
			t.Errorf("%s received %q, want exactly [%q]", key, got, r.DeliveryID)
		}
	}
	if r := row(t, status, "http:app4"); r.Channel != "back+front" {
		t.Errorf("back+front participant: channel %q", r.Channel)
	}
	if r := row(t, status, front.Key); r.State != StateFrontChannel || r.DeliveryID != "" {
		t.Errorf("front-only participant: %+v, want state %q without delivery", r, StateFrontChannel)
	}
	if r := row(t, status, initiator.Key); r.State != StateInitiator || r.DeliveryID != "" {
		t.Errorf("initiator: %+v, want state %q without delivery", r, StateInitiator)
	}
	if got := initRC.got(); len(got) != 0 {
		t.Errorf("initiator was notified: %q", got)
	}

	// The live status page sees the logout and a final event per delivery.
	sawLogout, delivered := false, map[string]bool{}
	for len(delivered) < n || !sawLogout {
		select {
		case ev := <-events:
			if ev.LogoutID != lo.ID {
				t.Fatalf("event for logout %q, want %q", ev.LogoutID, lo.ID)
			}
			if ev.Logout != nil {
				sawLogout = true
			}
			if ev.Delivery != nil && ev.Delivery.State == store.DeliveryDelivered {
				delivered[ev.Delivery.ID] = true
			}
		case <-time.After(waitTimeout):
			t.Fatalf("events: logout seen %v, %d delivered events, want %d", sawLogout, len(delivered), n)
		}
	}
}

func TestDeliveryRetriesServerErrors(t *testing.T) {
	const failures = 3
	st := openStore(t, t.TempDir()+"/slobridge.db")
	e, _ := runEngine(t, testOptions(st))
	rc := newReceiver(t, func(n int, _ *http.Request) int {
		if n < failures {
			return http.StatusInternalServerError
		}
		return http.StatusOK
	})
	s := newSession(t, e, "bob", backParticipant("flaky", rc.srv.URL))
	lo, err := e.Logout(context.Background(), LogoutRequest{SessionIDs: []string{s.ID}, Initiator: store.Initiator{Kind: store.InitiatorUser}})
	if err != nil {
		t.Fatal(err)
	}
	status := waitStatus(t, e, lo.ID, "delivered", allDone)
	r := row(t, status, "http:flaky")
	if r.State != "delivered" || r.Attempts != failures+1 {
		t.Fatalf("status %+v, want delivered after %d attempts", r, failures+1)
	}
	d, err := st.GetDelivery(context.Background(), r.DeliveryID)
	if err != nil {
		t.Fatal(err)
	}
	for i, a := range d.Attempts {
		wantOK, wantCode := i == failures, http.StatusInternalServerError
		if wantOK {
			wantCode = 0 // a Notifier reports success without a status
		}
		if a.OK != wantOK || a.StatusCode != wantCode || (a.Error == "") != wantOK || a.At.IsZero() {
			t.Errorf("attempt %d: %+v, want ok=%v status=%d", i, a, wantOK, wantCode)
		}
	}
	for _, id := range rc.got() {
		if id != r.DeliveryID {
			t.Errorf("receiver got delivery id %q, want %q on every attempt", id, r.DeliveryID)
		}
	}
}

func TestDeliveryResumesWhenReceiverComesBack(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close() // connections are refused until the receiver comes back

	st := openStore(t, t.TempDir()+"/slobridge.db")
	e, _ := runEngine(t, testOptions(st))
	s := newSession(t, e, "carol", backParticipant("down", "http://"+addr+"/bc"))
	lo, err := e.Logout(context.Background(), LogoutRequest{SessionIDs: []string{s.ID}, Initiator: store.Initiator{Kind: store.InitiatorUser}})
	if err != nil {
		t.Fatal(err)
	}
	waitStatus(t, e, lo.ID, "two refused attempts", func(st LogoutStatus) bool {
		return st.Participants[0].Attempts >= 2 && st.Participants[0].State == "retrying"
	})

	ln, err = net.Listen("tcp", addr)
	if err != nil {
		t.Skipf("address %s was taken by someone else meanwhile: %v", addr, err)
	}
	rc := &receiver{}
	srv := &http.Server{Handler: http.HandlerFunc(rc.serve), ReadHeaderTimeout: 5 * time.Second}
	go func() { _ = srv.Serve(ln) }()
	defer srv.Close()

	status := waitStatus(t, e, lo.ID, "delivered after recovery", allDone)
	r := status.Participants[0]
	if r.State != "delivered" || r.Attempts < 3 {
		t.Fatalf("status %+v, want delivered after at least 3 attempts", r)
	}
	if got := rc.got(); len(got) != 1 || got[0] != r.DeliveryID {
		t.Errorf("receiver got %q, want [%q]", got, r.DeliveryID)
	}
}

func TestDeliveryGivesUp(t *testing.T) {
	srv := httptest.NewServer(http.NotFoundHandler())
	downURL := srv.URL
	srv.Close()
	gone := newReceiver(t, func(int, *http.Request) int { return http.StatusGone })

	st := openStore(t, t.TempDir()+"/slobridge.db")
	opts := testOptions(st)
	opts.GiveUpAfter = 200 * time.Millisecond
	e, _ := runEngine(t, opts)
	s := newSession(t, e, "dave", backParticipant("down", downURL), backParticipant("gone", gone.srv.URL))
	lo, err := e.Logout(context.Background(), LogoutRequest{SessionIDs: []string{s.ID}, Initiator: store.Initiator{Kind: store.InitiatorUser}})
	if err != nil {
		t.Fatal(err)
	}
	status := waitStatus(t, e, lo.ID, "both failed", allDone)

	down := row(t, status, "http:down")
	if down.State != "failed" || down.Attempts < 2 || !strings.Contains(down.LastError, "refused") {
		t.Errorf("down receiver: %+v, want failed after retries with a connection error", down)
	}
	d, err := st.GetDelivery(context.Background(), down.DeliveryID)
	if err != nil {
		t.Fatal(err)
	}
	// The engine judges the give-up age when the last attempt ends
	// (Attempt.At is when it started).
	if last := d.Attempts[len(d.Attempts)-1]; last.At.Add(last.Duration).Sub(d.CreatedAt) < opts.GiveUpAfter {
		t.Errorf("gave up %v after the logout, before GiveUpAfter %v", last.At.Add(last.Duration).Sub(d.CreatedAt), opts.GiveUpAfter)
	}
	g := row(t, status, "http:gone")
	if g.State != "failed" || g.Attempts != 1 || !strings.Contains(g.LastError, "410") {
		t.Errorf("410 receiver: %+v, want failed after one attempt (permanent)", g)
	}
}

func TestRetryFailed(t *testing.T) {
	var mu sync.Mutex
	code := http.StatusGone
	rc := newReceiver(t, func(int, *http.Request) int { mu.Lock(); defer mu.Unlock(); return code })
	st := openStore(t, t.TempDir()+"/slobridge.db")
	e, _ := runEngine(t, testOptions(st))
	s := newSession(t, e, "erin", backParticipant("app", rc.srv.URL))
	lo, err := e.Logout(context.Background(), LogoutRequest{SessionIDs: []string{s.ID}, Initiator: store.Initiator{Kind: store.InitiatorAdmin, ID: "ops"}})
	if err != nil {
		t.Fatal(err)
	}
	if r := waitStatus(t, e, lo.ID, "failed", allDone).Participants[0]; r.State != "failed" {
		t.Fatalf("before retry: %+v, want failed", r)
	}

	mu.Lock()
	code = http.StatusNoContent // the operator fixed the receiver
	mu.Unlock()
	n, err := e.RetryFailed(context.Background(), lo.ID)
	if err != nil || n != 1 {
		t.Fatalf("RetryFailed = %d, %v; want 1, nil", n, err)
	}
	r := waitStatus(t, e, lo.ID, "delivered after retry", func(st LogoutStatus) bool {
		return st.Participants[0].State == "delivered"
	}).Participants[0]
	if r.Attempts != 2 {
		t.Errorf("after retry: %+v, want 2 attempts", r)
	}
	if got := rc.got(); len(got) != 2 || got[0] != r.DeliveryID || got[1] != r.DeliveryID {
		t.Errorf("receiver got %q, want the same delivery id twice", got)
	}
	if n, err := e.RetryFailed(context.Background(), lo.ID); err != nil || n != 0 {
		t.Errorf("second RetryFailed = %d, %v; want 0, nil", n, err)
	}
	if _, err := e.RetryFailed(context.Background(), "no-such-logout"); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("RetryFailed of unknown logout: %v, want ErrNotFound", err)
	}
}

// TestRetryDelivery: an operator sends one failed delivery again; the
// worker delivers it at once with the same delivery ID.
func TestRetryDelivery(t *testing.T) {
	var mu sync.Mutex
	code := http.StatusGone
	rc := newReceiver(t, func(int, *http.Request) int { mu.Lock(); defer mu.Unlock(); return code })
	st := openStore(t, t.TempDir()+"/slobridge.db")
	e, _ := runEngine(t, testOptions(st))
	s := newSession(t, e, "erin", backParticipant("app", rc.srv.URL))
	lo, err := e.Logout(context.Background(), LogoutRequest{SessionIDs: []string{s.ID}, Initiator: store.Initiator{Kind: store.InitiatorAdmin, ID: "ops"}})
	if err != nil {
		t.Fatal(err)
	}
	id := waitStatus(t, e, lo.ID, "failed", allDone).Participants[0].DeliveryID
	mu.Lock()
	code = http.StatusNoContent
	mu.Unlock()
	d, changed, err := e.RetryDelivery(context.Background(), id)
	if err != nil || !changed || d.State != store.DeliveryPending {
		t.Fatalf("RetryDelivery = %s, %v, %v; want pending, changed", d.State, changed, err)
	}
	r := waitStatus(t, e, lo.ID, "delivered after retry", func(st LogoutStatus) bool {
		return st.Participants[0].State == "delivered"
	}).Participants[0]
	if got := rc.got(); r.Attempts != 2 || len(got) != 2 || got[1] != id {
		t.Errorf("after retry: %+v, receiver got %q; want 2 attempts of delivery %s", r, got, id)
	}
	if _, changed, err := e.RetryDelivery(context.Background(), id); err != nil || changed {
		t.Errorf("RetryDelivery of a delivered delivery: changed %v, %v; want unchanged", changed, err)
	}
	if _, _, err := e.RetryDelivery(context.Background(), "no-such-delivery"); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("RetryDelivery of an unknown delivery: %v, want ErrNotFound", err)
	}
}

func TestLogoutByUserAndUnknownSession(t *testing.T) {
	st := openStore(t, t.TempDir()+"/slobridge.db")
	e, _ := runEngine(t, testOptions(st))
	rc := newReceiver(t, nil)
	ctx := context.Background()
	var sessions []store.Session
	for range 3 {
		sessions = append(sessions, newSession(t, e, "frank", backParticipant("app", rc.srv.URL)))
	}
	other := newSession(t, e, "grace", backParticipant("app", rc.srv.URL))

	lo, err := e.Logout(ctx, LogoutRequest{UserID: "frank", Initiator: store.Initiator{Kind: store.InitiatorAdmin, ID: "ops"}})
	if err != nil {
		t.Fatal(err)
	}
	if len(lo.SessionIDs) != len(sessions) {
		t.Fatalf("logout ended %d sessions, want %d", len(lo.SessionIDs), len(sessions))
	}
	status := waitStatus(t, e, lo.ID, "delivered", allDone)
	ids := map[string]bool{}
	for _, r := range status.Participants {
		if r.State != "delivered" {
			t.Errorf("%s in %s: %s, want delivered", r.Key, r.SessionID, r.State)
		}
		ids[r.DeliveryID] = true
	}
	if len(ids) != len(sessions) {
		t.Errorf("%d distinct deliveries, want one per session (%d)", len(ids), len(sessions))
	}
	for _, s := range sessions {
		got, err := st.GetSession(ctx, s.ID)
		if err != nil || got.EndedAt.IsZero() || got.LogoutID != lo.ID {
			t.Errorf("session %s after logout: %+v, %v; want ended by %s", s.ID, got, err, lo.ID)
		}
	}
	if got, err := st.GetSession(ctx, other.ID); err != nil || !got.Active(e.Now()) {
		t.Errorf("another user's session: %+v, %v; want still active", got, err)
	}

	_, err = e.Logout(ctx, LogoutRequest{SessionIDs: []string{"no-such-session"}, Initiator: store.Initiator{Kind: store.InitiatorUser}})
	if !errors.Is(err, store.ErrNotFound) {
		t.Errorf("Logout of an unknown session: %v, want ErrNotFound", err)
	}
	if _, err := e.Status(ctx, "no-such-logout"); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("Status of an unknown logout: %v, want ErrNotFound", err)
	}
}

func TestMissingNotifierIsRetried(t *testing.T) {
	st := openStore(t, t.TempDir()+"/slobridge.db")
	e, _ := runEngine(t, testOptions(st))
	p := store.Participant{Kind: "soap", AppID: "sp", Channels: store.ChannelBack, BackChannelURL: "https://sp.example/soap"}
	s := newSession(t, e, "heidi", p)
	lo, err := e.Logout(context.Background(), LogoutRequest{SessionIDs: []string{s.ID}, Initiator: store.Initiator{Kind: store.InitiatorUser}})
	if err != nil {
		t.Fatal(err)
	}
	r := waitStatus(t, e, lo.ID, "two attempts", func(st LogoutStatus) bool { return st.Participants[0].Attempts >= 2 }).Participants[0]
	if r.State != "retrying" || !strings.Contains(r.LastError, `no notifier for participant kind "soap"`) {
		t.Errorf("status %+v, want retrying with a missing-notifier error", r)
	}
}
