package enginetest

import (
	"context"
	"encoding/hex"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"sync"
	"testing"
	"time"

	"github.com/slobridge/slobridge"
	"github.com/slobridge/slobridge/store"
	"github.com/slobridge/slobridge/store/postgres"
	"github.com/slobridge/slobridge/store/postgres/pgtest"
)

// testDSN returns the DSN of the test server (pgtest.DSN).
func testDSN(tb testing.TB) string { return pgtest.DSN(tb) }

// newSchema returns a fresh schema name, dropped when the test ends
// (pgtest.NewSchema).
func newSchema(tb testing.TB) string { return pgtest.NewSchema(tb) }

// openReplica opens one replica's store handle (its own pool) on schema.
func openReplica(tb testing.TB, schema string) *postgres.DB {
	tb.Helper()
	db, err := postgres.Open(context.Background(), testDSN(tb), postgres.Options{Schema: schema})
	if err != nil {
		tb.Fatalf("postgres.Open: %v", err)
	}
	tb.Cleanup(func() { _ = db.Close() })
	return db
}

// engineOptions are the options of one replica's engine.
func engineOptions(st store.Store, owner string) slobridge.Options {
	return slobridge.Options{
		Store:          st,
		Owner:          owner,
		Logger:         slog.New(slog.NewTextHandler(io.Discard, nil)),
		Notifiers:      map[string]slobridge.Notifier{"http": &slobridge.HTTPNotifier{Client: slobridge.NewBackChannelClient(slobridge.ClientOptions{AllowLoopback: true})}},
		AttemptTimeout: 5 * time.Second,
		BackoffBase:    10 * time.Millisecond,
		BackoffMax:     50 * time.Millisecond,
		PollInterval:   50 * time.Millisecond,
	}
}

// replica is one engine with its workers running until stop.
type replica struct {
	e    *slobridge.Engine
	stop func()
}

// startEngine creates an engine and, unless paused, runs its workers until
// stop is called (or the test ends).
func startEngine(tb testing.TB, opts slobridge.Options, run bool) *replica {
	tb.Helper()
	e, err := slobridge.NewEngine(opts)
	if err != nil {
		tb.Fatalf("NewEngine: %v", err)
	}
	r := &replica{e: e, stop: func() {}}
	if run {
		r.run(tb)
	}
	return r
}

// run starts the engine's workers.
func (r *replica) run(tb testing.TB) {
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { _ = r.e.Run(ctx); close(done) }()
	var once sync.Once
	r.stop = func() { once.Do(func() { cancel(); <-done }) }
	tb.Cleanup(r.stop)
}

// receiver is a back-channel endpoint that records the delivery IDs of the
// requests it got.
type receiver struct {
	srv     *httptest.Server
	mu      sync.Mutex
	ids     []string
	handler func(n int, w http.ResponseWriter, r *http.Request)
}

// newReceiver starts a receiver; handler (nil: answer 200) answers the
// n-th request.
func newReceiver(tb testing.TB, handler func(n int, w http.ResponseWriter, r *http.Request)) *receiver {
	rc := &receiver{handler: handler}
	rc.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_, _ = io.Copy(io.Discard, r.Body)
		rc.mu.Lock()
		n := len(rc.ids)
		rc.ids = append(rc.ids, r.Header.Get(slobridge.DeliveryIDHeader))
		rc.mu.Unlock()
		if rc.handler != nil {
			rc.handler(n, w, r)
		}
	}))
	tb.Cleanup(rc.srv.Close)
	return rc
}

// got returns the delivery IDs received so far.
func (rc *receiver) got() []string {
	rc.mu.Lock()
	defer rc.mu.Unlock()
	return append([]string(nil), rc.ids...)
}

// login creates a session on e with one "http" participant per receiver.
func login(tb testing.TB, e *slobridge.Engine, user string, rcs []*receiver) store.Session {
	tb.Helper()
	ctx := context.Background()
	s, err := e.CreateSession(ctx, store.Session{UserID: user, ExpiresAt: e.Now().Add(time.Hour)})
	if err != nil {
		tb.Fatalf("CreateSession: %v", err)
	}
	for i, rc := range rcs {
		app := "app" + hex.EncodeToString([]byte{byte(i >> 8), byte(i)})
		p := store.Participant{SessionID: s.ID, Kind: "http", AppID: app, Key: "http:" + app, Name: app,
			Channels: store.ChannelBack, BackChannelURL: rc.srv.URL + "/bc"}
		if _, err := e.AddParticipant(ctx, p); err != nil {
			tb.Fatalf("AddParticipant: %v", err)
		}
	}
	return s
}

// waitDone polls the store until every delivery of the logout is final,
// failing after a minute; it returns the deliveries.
func waitDone(tb testing.TB, st store.Store, logoutID string) []store.Delivery {
	tb.Helper()
	deadline := time.Now().Add(time.Minute)
	for {
		ds, err := st.ListDeliveries(context.Background(), logoutID)
		if err != nil {
			tb.Fatalf("ListDeliveries: %v", err)
		}
		done := true
		for _, d := range ds {
			done = done && d.State.Final()
		}
		if done {
			return ds
		}
		if time.Now().After(deadline) {
			tb.Fatalf("deliveries of %s not final after a minute: %+v", logoutID, ds)
		}
		time.Sleep(10 * time.Millisecond)
	}
}
