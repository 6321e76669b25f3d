package oidc

import (
	"context"
	"io"
	"log/slog"
	"net/http"
	"net/http/cookiejar"
	"net/http/httptest"
	"path/filepath"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/gin-gonic/gin"

	"github.com/slobridge/slobridge"
	"github.com/slobridge/slobridge/store"
	"github.com/slobridge/slobridge/store/bolt"
)

const testIAT = "initial-access-token-for-tests-0123456789"

// clock is a test clock: real time plus an offset tests can advance, so
// that relying parties using the real clock still accept tokens.
type clock struct {
	mu     sync.Mutex
	offset time.Duration
}

func (c *clock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return time.Now().Add(c.offset)
}

func (c *clock) Advance(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.offset += d
}

// testAuth is a slobridge.Authenticator for tests: it creates a bridge
// session through the engine (as the SAML upstream does after a successful
// assertion), sets the cookie and returns to the bridge.
type testAuth struct {
	eng     *slobridge.Engine
	cookies slobridge.SessionCookies
	user    string
	calls   atomic.Int64
}

func (a *testAuth) StartLogin(w http.ResponseWriter, r *http.Request, returnTo string) error {
	a.calls.Add(1)
	now := a.eng.Now()
	s, err := a.eng.CreateSession(r.Context(), store.Session{
		UserID: a.user, AuthTime: now, ExpiresAt: now.Add(8 * time.Hour),
		Attributes: map[string][]string{"email": {a.user + "@example.com"}, "name": {"Test User"}},
	})
	if err != nil {
		return err
	}
	a.cookies.Set(w, s.ID, s.ExpiresAt)
	http.Redirect(w, r, returnTo, http.StatusFound)
	return nil
}

// bridge is a running OpenID Provider on 127.0.0.1 over a real bbolt file.
type bridge struct {
	srv   *httptest.Server
	p     *Provider
	eng   *slobridge.Engine
	st    store.Store
	auth  *testAuth
	clock *clock
}

type bridgeOpt func(*Options)

func quietLogger() *slog.Logger { return slog.New(slog.NewTextHandler(io.Discard, nil)) }

func openStore(tb testing.TB, noSync bool) store.Store {
	tb.Helper()
	db, err := bolt.Open(filepath.Join(tb.TempDir(), "bridge.db"), bolt.Options{NoSync: noSync})
	if err != nil {
		tb.Fatalf("open bolt: %v", err)
	}
	tb.Cleanup(func() { _ = db.Close() })
	return db
}

// newBridge starts a bridge. The engine's delivery workers run until the
// test ends, with the back-channel notifier on the safe client.
func newBridge(tb testing.TB, opts ...bridgeOpt) *bridge {
	tb.Helper()
	return newBridgeEngine(tb, nil, opts...)
}

// newBridgeEngine is newBridge with a hook that adjusts the engine's
// options before the engine is made.
func newBridgeEngine(tb testing.TB, engOpt func(*slobridge.Options), opts ...bridgeOpt) *bridge {
	tb.Helper()
	return newBridgeStore(tb, openStore(tb, false), engOpt, opts...)
}

// newBridgeStore is newBridgeEngine over a given store.
func newBridgeStore(tb testing.TB, st store.Store, engOpt func(*slobridge.Options), opts ...bridgeOpt) *bridge {
	tb.Helper()
	gin.SetMode(gin.ReleaseMode)
	clk := &clock{}
	eo := slobridge.Options{
		Store: st, Logger: quietLogger(), Now: clk.Now, BackoffBase: 50 * time.Millisecond, PollInterval: 50 * time.Millisecond,
	}
	if engOpt != nil {
		engOpt(&eo)
	}
	eng, err := slobridge.NewEngine(eo)
	if err != nil {
		tb.Fatalf("engine: %v", err)
	}
	cookies := slobridge.SessionCookies{Secret: []byte("0123456789abcdef0123456789abcdef"), Secure: false}
	auth := &testAuth{eng: eng, cookies: cookies, user: "alice"}
	srv := httptest.NewUnstartedServer(nil)
	o := Options{
		Issuer: "http://" + srv.Listener.Addr().String(), Engine: eng, Cookies: cookies,
		Authenticator: auth, Now: clk.Now, Logger: quietLogger(), RegistrationToken: testIAT,
		AllowLoopbackHTTP: true, AllowPrivateBackchannel: true,
	}
	for _, f := range opts {
		f(&o)
	}
	p, err := New(o)
	if err != nil {
		tb.Fatalf("new provider: %v", err)
	}
	eng.SetNotifier(ParticipantKind, p.BackChannelNotifier(slobridge.NewBackChannelClient(slobridge.ClientOptions{AllowLoopback: true, AllowPrivate: true})))
	lp, err := slobridge.NewLogoutPage(slobridge.LogoutPageOptions{Engine: eng, Logger: quietLogger()})
	if err != nil {
		tb.Fatalf("logout page: %v", err)
	}
	r := gin.New()
	p.Mount(r)
	lp.Mount(r)
	srv.Config.Handler = r
	srv.Start()
	tb.Cleanup(srv.Close)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { defer close(done); _ = eng.Run(ctx) }()
	tb.Cleanup(func() { cancel(); <-done })
	return &bridge{srv: srv, p: p, eng: eng, st: st, auth: auth, clock: clk}
}

// browser returns an HTTP client with a cookie jar that follows redirects.
func browser(tb testing.TB) *http.Client {
	tb.Helper()
	jar, err := cookiejar.New(nil)
	if err != nil {
		tb.Fatal(err)
	}
	return &http.Client{Jar: jar, Timeout: 10 * time.Second}
}

// noFollow returns a copy of c that stops at the first redirect.
func noFollow(c *http.Client) *http.Client {
	cc := *c
	cc.CheckRedirect = func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }
	return &cc
}

// register registers a client through the registration endpoint.
func (b *bridge) register(tb testing.TB, md ClientMetadata) RegistrationResponse {
	tb.Helper()
	resp, err := b.p.Register(context.Background(), md)
	if err != nil {
		tb.Fatalf("register: %v", err)
	}
	return resp
}

// waitFor polls cond until it holds or the deadline passes.
func waitFor(tb testing.TB, what string, cond func() bool) {
	tb.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			tb.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(10 * time.Millisecond)
	}
}
