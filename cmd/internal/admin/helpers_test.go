package admin

import (
	"context"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"sync"
	"testing"
	"time"

	"github.com/slobridge/slobridge"
	"github.com/slobridge/slobridge/store"
	"github.com/slobridge/slobridge/store/bolt"
)

// waitTimeout bounds every wait of these tests; it matters only when
// something hangs.
const waitTimeout = 30 * time.Second

func quietLogger() *slog.Logger { return slog.New(slog.NewTextHandler(io.Discard, nil)) }

func openStore(t testing.TB, path string) store.Store {
	t.Helper()
	db, err := bolt.Open(path, bolt.Options{NoSync: true})
	if err != nil {
		t.Fatalf("open store %s: %v", path, err)
	}
	t.Cleanup(func() { _ = db.Close() })
	return db
}

// testOptions are engine options with short retries and the HTTP notifier
// allowed to reach loopback receivers.
func testOptions(st store.Store) slobridge.Options {
	return slobridge.Options{
		Store:  st,
		Logger: quietLogger(),
		Notifiers: map[string]slobridge.Notifier{"http": &slobridge.HTTPNotifier{
			Client: slobridge.NewBackChannelClient(slobridge.ClientOptions{AllowLoopback: true})}},
		AttemptTimeout: 5 * time.Second,
		BackoffBase:    10 * time.Millisecond,
		BackoffMax:     50 * time.Millisecond,
		PollInterval:   50 * time.Millisecond,
	}
}

// runEngine creates an engine and runs its workers until the test ends.
func runEngine(t testing.TB, opts slobridge.Options) (*slobridge.Engine, func()) {
	t.Helper()
	e, err := slobridge.NewEngine(opts)
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

// receiver is a back-channel endpoint that records the delivery IDs it
// got and answers what answer says (200 without it).
type receiver struct {
	srv    *httptest.Server
	answer func(n int, r *http.Request) int
	mu     sync.Mutex
	ids    []string
}

func newReceiver(t testing.TB, answer func(n int, r *http.Request) int) *receiver {
	t.Helper()
	rc := &receiver{answer: answer}
	rc.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_, _ = io.Copy(io.Discard, r.Body)
		rc.mu.Lock()
		n := len(rc.ids)
		rc.ids = append(rc.ids, r.Header.Get(slobridge.DeliveryIDHeader))
		rc.mu.Unlock()
		code := http.StatusOK
		if rc.answer != nil {
			code = rc.answer(n, r)
		}
		w.WriteHeader(code)
	}))
	t.Cleanup(rc.srv.Close)
	return rc
}

func (rc *receiver) got() []string {
	rc.mu.Lock()
	defer rc.mu.Unlock()
	return append([]string(nil), rc.ids...)
}

// newSession creates a session of user with participants ps.
func newSession(t testing.TB, e *slobridge.Engine, user string, ps ...store.Participant) store.Session {
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

// waitStatus polls the logout's status until cond holds.
func waitStatus(t testing.TB, e *slobridge.Engine, logoutID string, what string, cond func(slobridge.LogoutStatus) bool) slobridge.LogoutStatus {
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
func allDone(st slobridge.LogoutStatus) bool { return st.Done }
