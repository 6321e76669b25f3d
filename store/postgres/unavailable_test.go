package postgres

import (
	"context"
	"errors"
	"io"
	"net"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"

	"github.com/slobridge/slobridge/store"
	"github.com/slobridge/slobridge/store/postgres/pgtest"
)

// proxy is a TCP forwarder on 127.0.0.1 in front of the test server that a
// test can cut (closing every connection and refusing new ones) and
// restore, to play a database that goes away and comes back.
type proxy struct {
	tb     testing.TB
	addr   string // the listening address, stable across Cut/Restore
	target string
	mu     sync.Mutex
	ln     net.Listener
	conns  []net.Conn
}

// newProxy starts a proxy to target and stops it when the test ends.
func newProxy(tb testing.TB, target string) *proxy {
	p := &proxy{tb: tb, target: target}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		tb.Fatal(err)
	}
	p.addr = ln.Addr().String()
	p.serve(ln)
	tb.Cleanup(p.Cut)
	return p
}

// serve accepts connections on ln until it is closed.
func (p *proxy) serve(ln net.Listener) {
	p.mu.Lock()
	p.ln = ln
	p.mu.Unlock()
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go p.forward(c)
		}
	}()
}

// forward copies between c and a new connection to the target.
func (p *proxy) forward(c net.Conn) {
	up, err := net.Dial("tcp", p.target)
	if err != nil {
		_ = c.Close()
		return
	}
	p.mu.Lock()
	p.conns = append(p.conns, c, up)
	p.mu.Unlock()
	go func() { _, _ = io.Copy(up, c); _ = up.Close() }()
	_, _ = io.Copy(c, up)
	_ = c.Close()
}

// Cut closes the listener and every forwarded connection: connecting is
// refused and open connections break.
func (p *proxy) Cut() {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.ln != nil {
		_ = p.ln.Close()
		p.ln = nil
	}
	for _, c := range p.conns {
		_ = c.Close()
	}
	p.conns = nil
}

// Restore listens again on the same address.
func (p *proxy) Restore() {
	ln, err := net.Listen("tcp", p.addr)
	if err != nil {
		p.tb.Fatalf("proxy: listen again on %s: %v", p.addr, err)
	}
	p.serve(ln)
}

// proxiedDSN returns a DSN that reaches the server of dsn through a new
// proxy.
func proxiedDSN(tb testing.TB, dsn string) (string, *proxy) {
	tb.Helper()
	cfg, err := pgx.ParseConfig(dsn)
	if err != nil {
		tb.Fatalf("parse %s: %v", pgtest.DSNEnv, err)
	}
	p := newProxy(tb, net.JoinHostPort(cfg.Host, strconv.Itoa(int(cfg.Port))))
	u := url.URL{Scheme: "postgres", User: url.UserPassword(cfg.User, cfg.Password), Host: p.addr,
		Path: "/" + cfg.Database, RawQuery: "sslmode=disable"}
	if cfg.Password == "" {
		u.User = url.User(cfg.User)
	}
	return u.String(), p
}

// TestUnavailable cuts the database away under an open store: every kind
// of call fails with an error wrapping store.ErrUnavailable (what the HTTP
// layer answers with 503), and once the database is back the same store
// works again without being reopened.
func TestUnavailable(t *testing.T) {
	dsn, p := proxiedDSN(t, testDSN(t))
	db := openSchema(t, dsn, newSchema(t), Options{ConnectTimeout: 2 * time.Second})
	ctx := t.Context()
	s := store.Session{ID: "s1", UserID: "alice", CreatedAt: t0, ExpiresAt: t0.Add(time.Hour)}
	if err := db.CreateSession(ctx, s); err != nil {
		t.Fatalf("CreateSession: %v", err)
	}

	p.Cut()
	calls := []struct {
		name string
		call func(ctx context.Context) error
	}{
		{"Ping", db.Ping},
		{"GetSession", func(ctx context.Context) error { _, err := db.GetSession(ctx, "s1"); return err }},
		{"AddParticipant", func(ctx context.Context) error {
			_, err := db.AddParticipant(ctx, store.Participant{SessionID: "s1", Key: "oidc:a", Channels: store.ChannelBack})
			return err
		}},
		{"EndSessions", func(ctx context.Context) error {
			_, _, err := db.EndSessions(ctx, store.LogoutSpec{LogoutID: "lo1", SessionIDs: []string{"s1"},
				NewDeliveryID: func() string { return "d1" }, Now: t0})
			return err
		}},
		{"ClaimDueDeliveries", func(ctx context.Context) error {
			_, err := db.ClaimDueDeliveries(ctx, "w1", t0, time.Minute, 10)
			return err
		}},
		{"CheckReplay", func(ctx context.Context) error { return db.CheckReplay(ctx, "saml", "id1", t0.Add(time.Hour), t0) }},
		{"Sweep", func(ctx context.Context) error { _, err := db.Sweep(ctx, t0, time.Hour); return err }},
	}
	for _, c := range calls {
		cctx, cancel := context.WithTimeout(ctx, 10*time.Second)
		err := c.call(cctx)
		cancel()
		if !errors.Is(err, store.ErrUnavailable) {
			t.Fatalf("%s with the database gone: %v, want store.ErrUnavailable", c.name, err)
		}
		if errors.Is(err, store.ErrNotFound) || errors.Is(err, store.ErrAlreadyExists) {
			t.Fatalf("%s with the database gone also claims %v", c.name, err)
		}
	}
	if _, err := Open(ctx, dsn, Options{Schema: db.Schema()}); !errors.Is(err, store.ErrUnavailable) {
		t.Fatalf("Open with the database gone: %v, want store.ErrUnavailable", err)
	}

	p.Restore()
	deadline := time.Now().Add(30 * time.Second)
	for db.Ping(ctx) != nil {
		if time.Now().After(deadline) {
			t.Fatalf("store did not recover after the database came back: %v", db.Ping(ctx))
		}
		time.Sleep(50 * time.Millisecond)
	}
	got, err := db.GetSession(ctx, "s1")
	if err != nil || got.ID != "s1" || !got.EndedAt.IsZero() {
		t.Fatalf("GetSession after recovery: %+v, %v (the failed logout must not have ended it)", got, err)
	}
	added, err := db.AddParticipant(ctx, store.Participant{SessionID: "s1", Key: "oidc:a", Channels: store.ChannelBack})
	if err != nil || !added {
		t.Fatalf("AddParticipant after recovery: added %v, %v", added, err)
	}
}

// TestBadDSN checks that a DSN that cannot be parsed is refused as invalid
// without echoing it (it may hold a password).
func TestBadDSN(t *testing.T) {
	const secret = "hunter2-secret"
	_, err := Open(t.Context(), "postgres://u:"+secret+"@127.0.0.1:notaport/db", Options{})
	if !errors.Is(err, store.ErrInvalid) {
		t.Fatalf("Open with a bad DSN: %v, want store.ErrInvalid", err)
	}
	if strings.Contains(err.Error(), secret) {
		t.Fatalf("error %q echoes the password", err)
	}
}

// TestListenSurvivesOutage cuts a listening replica off the database while
// another replica logs a session out: the change arrives once the
// database is reachable again, without a new Listen call.
func TestListenSurvivesOutage(t *testing.T) {
	direct, schema := testDSN(t), newSchema(t)
	proxied, p := proxiedDSN(t, direct)
	a := openSchema(t, proxied, schema, Options{ConnectTimeout: 2 * time.Second})
	b := openSchema(t, direct, schema, Options{})
	ctx, cancel := context.WithCancel(t.Context())
	defer cancel()
	feed, err := a.Listen(ctx, ListenOptions{PollInterval: 20 * time.Millisecond})
	if err != nil {
		t.Fatalf("Listen: %v", err)
	}
	s := store.Session{ID: "s1", UserID: "alice", CreatedAt: t0, ExpiresAt: t0.Add(time.Hour)}
	if err := b.CreateSession(ctx, s); err != nil {
		t.Fatal(err)
	}

	p.Cut()
	_, _, err = b.EndSessions(ctx, store.LogoutSpec{LogoutID: "lo1", SessionIDs: []string{"s1"},
		NewDeliveryID: func() string { return "d1" }, Now: t0})
	if err != nil {
		t.Fatalf("EndSessions on the reachable replica: %v", err)
	}
	select {
	case c := <-feed:
		t.Fatalf("change %+v arrived while the listener had no database", c)
	default:
	}
	p.Restore()
	if c := nextChange(t, feed); c.LogoutID != "lo1" || c.DeliveryID != "" {
		t.Fatalf("change after the outage: %+v, want the logout lo1", c)
	}
}

// TestNULRefused checks that values PostgreSQL cannot store (a NUL
// character) are refused as store.ErrInvalid, wherever they are.
func TestNULRefused(t *testing.T) {
	db := openTemp(t)
	ok := store.Session{ID: "s1", UserID: "alice", CreatedAt: t0, ExpiresAt: t0.Add(time.Hour)}
	if err := db.CreateSession(t.Context(), ok); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name string
		call func() error
	}{
		{"session ID", func() error {
			s := ok
			s.ID = "a\x00b"
			return db.CreateSession(t.Context(), s)
		}},
		{"session attribute", func() error {
			s := ok
			s.ID, s.Attributes = "s2", map[string][]string{"name": {"a\x00b"}}
			return db.CreateSession(t.Context(), s)
		}},
		{"participant data", func() error {
			_, err := db.AddParticipant(t.Context(), store.Participant{SessionID: "s1", Key: "oidc:a",
				Data: map[string]string{"k": "a\x00b"}})
			return err
		}},
		{"record key", func() error {
			return db.PutRecord(t.Context(), store.Record{Namespace: "code", Key: "a\x00b", ExpiresAt: t0})
		}},
	}
	for _, tc := range tests {
		if err := tc.call(); !errors.Is(err, store.ErrInvalid) {
			t.Errorf("%s with a NUL: %v, want store.ErrInvalid", tc.name, err)
		}
	}
}

// TestServerTerminatesConnections has the server terminate every
// connection of the store's pool (as a restart or failover does): each
// call either succeeds or fails with store.ErrUnavailable, and the pool
// reconnects by itself.
func TestServerTerminatesConnections(t *testing.T) {
	schema := newSchema(t)
	cfg, err := pgx.ParseConfig(testDSN(t))
	if err != nil {
		t.Fatal(err)
	}
	u := url.URL{Scheme: "postgres", User: url.User(cfg.User), Host: net.JoinHostPort(cfg.Host, strconv.Itoa(int(cfg.Port))),
		Path: "/" + cfg.Database, RawQuery: url.Values{"sslmode": {"disable"}, "application_name": {schema}}.Encode()}
	if cfg.Password != "" {
		u.User = url.UserPassword(cfg.User, cfg.Password)
	}
	db := openSchema(t, u.String(), schema, Options{})
	ctx := t.Context()
	s := store.Session{ID: "s1", UserID: "alice", CreatedAt: t0, ExpiresAt: t0.Add(time.Hour)}
	if err := db.CreateSession(ctx, s); err != nil {
		t.Fatal(err)
	}
	// Hold several connections so that the pool has more than one to lose.
	var wg sync.WaitGroup
	for range 4 {
		wg.Go(func() { _, _ = db.GetSession(ctx, "s1") })
	}
	wg.Wait()

	var killed int
	err = openTemp(t).Pool().QueryRow(ctx, `SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity
		WHERE application_name = $1`, schema).Scan(&killed)
	if err != nil || killed == 0 {
		t.Fatalf("terminated %d connections, %v; want the store's", killed, err)
	}
	recovered := false
	for i := 0; i < 50 && !recovered; i++ {
		_, err := db.GetSession(ctx, "s1")
		switch {
		case err == nil:
			recovered = true
		case !errors.Is(err, store.ErrUnavailable):
			t.Fatalf("GetSession after the server dropped the connections: %v, want success or store.ErrUnavailable", err)
		}
	}
	if !recovered {
		t.Fatal("store did not recover after the server dropped its connections")
	}
}

// TestDBErrorClassifiesRefusedWrites: a full disk is store.ErrNoSpace, a
// read-only server or transaction store.ErrUnavailable, so that every
// endpoint answers 503 in its own form.
func TestDBErrorClassifiesRefusedWrites(t *testing.T) {
	for _, tc := range []struct {
		code string
		want error
	}{
		{"53100", store.ErrNoSpace},     // disk_full
		{"25006", store.ErrUnavailable}, // read_only_sql_transaction
		{"53300", store.ErrUnavailable}, // too_many_connections
		{"57P01", store.ErrUnavailable}, // admin_shutdown
		{"23505", store.ErrAlreadyExists},
	} {
		if err := dbError(&pgconn.PgError{Code: tc.code}); !errors.Is(err, tc.want) {
			t.Errorf("SQLSTATE %s: %v, want %v", tc.code, err, tc.want)
		}
	}
}
