package idp

import (
	"context"
	"crypto/rsa"
	"crypto/x509"
	"encoding/pem"
	"flag"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"sync/atomic"
	"testing"
	"time"

	"github.com/gin-gonic/gin"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/slobridge/slobridge"
	"github.com/slobridge/slobridge/oidc"
	bsaml "github.com/slobridge/slobridge/saml"
	"github.com/slobridge/slobridge/store"
	"github.com/slobridge/slobridge/store/bolt"
)

var update = flag.Bool("update", false, "rewrite the golden negative corpus in testdata/corpus")

func init() { gin.SetMode(gin.ReleaseMode) }

// testSigner loads testdata/<name>.crt and .key.
func testSigner(t testing.TB, name string) *bsaml.Signer {
	t.Helper()
	s, err := bsaml.LoadSigner(filepath.Join("testdata", name+".crt"), filepath.Join("testdata", name+".key"))
	if err != nil {
		t.Fatalf("load signer %s: %v", name, err)
	}
	return s
}

func rsaKey(t *testing.T, name string) (*rsa.PrivateKey, *x509.Certificate) {
	t.Helper()
	s := testSigner(t, name)
	k, ok := s.Key.(*rsa.PrivateKey)
	if !ok {
		t.Fatalf("%s is not an RSA key", name)
	}
	return k, s.Cert
}

func certPEM(c *x509.Certificate) []byte {
	return pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: c.Raw})
}

// testAuth is the slobridge.Authenticator of the tests: it stands for the
// upstream login by creating the bridge session through the engine.
type testAuth struct {
	eng     *slobridge.Engine
	cookies slobridge.SessionCookies
	user    string
	email   string
	logins  atomic.Int32
	// upstream, when set, names the upstream IdP of the sessions made,
	// which then carry that IdP's NameID and SessionIndex.
	upstream string
}

// Upstream identifiers of the sessions testAuth makes with an upstream.
const (
	upstreamNameID       = "alice-at-corp"
	upstreamSessionIndex = "corp-session-1"
)

func (a *testAuth) StartLogin(w http.ResponseWriter, r *http.Request, returnTo string) error {
	s := store.Session{
		UserID: a.user, Attributes: map[string][]string{"email": {a.email}, "name": {"Alice Example"}},
		ExpiresAt: a.eng.Now().Add(8 * time.Hour),
	}
	if a.upstream != "" {
		s.Upstream, s.SessionIndex = a.upstream, upstreamSessionIndex
		s.NameID = store.NameID{Value: upstreamNameID, Format: "urn:oasis:names:tc:SAML:2.0:nameid-format:persistent"}
	}
	s, err := a.eng.CreateSession(r.Context(), s)
	if err != nil {
		return err
	}
	a.logins.Add(1)
	a.cookies.Set(w, s.ID, s.ExpiresAt)
	http.Redirect(w, r, returnTo, http.StatusFound)
	return nil
}

// bridge is a running bridge (engine, IdP, logout page) on 127.0.0.1.
type bridge struct {
	url     string
	srv     *httptest.Server
	st      store.Store
	eng     *slobridge.Engine
	idp     *IdP
	op      *oidc.Provider
	auth    *testAuth
	cookies slobridge.SessionCookies
	// reg holds the IdP's metrics.
	reg *prometheus.Registry
}

type bridgeOpts struct {
	cfg Config
	// baseURL, when set, is the IdP's external URL instead of the
	// listener's (stable Destinations for the golden corpus).
	baseURL string
	// rand, when set, is the IdP's random source.
	rand   io.Reader
	now    func() time.Time
	engine func(*slobridge.Options)
	// before runs after the listener exists and before New, with the
	// bridge URL (to write SP metadata that names it).
	before func(url string)
	// upstream, when set, is called with the engine and bridge URL
	// before New, to register the upstream side on the engine, and
	// sessions get an upstream named upstreamName.
	upstream     func(t testing.TB, eng *slobridge.Engine, url string)
	upstreamName string
	// wrapStore, when set, wraps the store the engine and the IdP use
	// (bridge.st stays the bbolt store).
	wrapStore func(store.Store) store.Store
}

// quietLogger discards logs unless SLOBRIDGE_TEST_LOG is set.
func quietLogger() *slog.Logger {
	if os.Getenv("SLOBRIDGE_TEST_LOG") != "" {
		return slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelDebug}))
	}
	return slog.New(slog.NewTextHandler(io.Discard, nil))
}

// newBridge starts a bridge with a bbolt store in t.TempDir().
func newBridge(t testing.TB, bo bridgeOpts) *bridge {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	url := "http://" + ln.Addr().String()
	if bo.before != nil {
		bo.before(url)
	}
	st, err := bolt.Open(filepath.Join(t.TempDir(), "bridge.db"), bolt.Options{NoSync: true})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	var est store.Store = st
	if bo.wrapStore != nil {
		est = bo.wrapStore(st)
	}
	eo := slobridge.Options{
		Store: est, Logger: quietLogger(), Now: bo.now,
		AttemptTimeout: 2 * time.Second, BackoffBase: 50 * time.Millisecond, BackoffMax: 200 * time.Millisecond,
		PollInterval: 50 * time.Millisecond,
	}
	if bo.engine != nil {
		bo.engine(&eo)
	}
	eng, err := slobridge.NewEngine(eo)
	if err != nil {
		t.Fatal(err)
	}
	cookies := slobridge.SessionCookies{Secret: []byte("0123456789abcdef0123456789abcdef")}
	auth := &testAuth{eng: eng, cookies: cookies, user: "alice", email: "alice@example.com", upstream: bo.upstreamName}
	reg := prometheus.NewRegistry()
	if bo.upstream != nil {
		bo.upstream(t, eng, url)
	}
	base := url
	if bo.baseURL != "" {
		base = bo.baseURL
	}
	ip, err := New(context.Background(), Options{
		Config: bo.cfg, BaseURL: base, Engine: eng, Cookies: cookies, Authenticator: auth,
		Signer: testSigner(t, "idp"), AllowLoopbackHTTP: true, Logger: quietLogger(), Rand: bo.rand,
		Registerer: reg,
	})
	if err != nil {
		t.Fatalf("new idp: %v", err)
	}
	// The OpenID Provider signs the logout tokens of OIDC participants.
	op, err := oidc.New(oidc.Options{Issuer: url, Engine: eng, Cookies: cookies, Authenticator: auth,
		AllowLoopbackHTTP: true, Logger: quietLogger()})
	if err != nil {
		t.Fatalf("new oidc provider: %v", err)
	}
	client := slobridge.NewBackChannelClient(slobridge.ClientOptions{AllowLoopback: true})
	eng.SetNotifier(ClientKind, ip.Notifier(client))
	eng.SetFrontChannel(ClientKind, ip)
	eng.SetNotifier(oidc.ParticipantKind, op.BackChannelNotifier(client))
	lp, err := slobridge.NewLogoutPage(slobridge.LogoutPageOptions{Engine: eng, Logger: quietLogger()})
	if err != nil {
		t.Fatal(err)
	}
	r := gin.New()
	ip.Mount(r)
	op.Mount(r)
	lp.Mount(r)
	srv := &httptest.Server{Listener: ln, Config: &http.Server{Handler: r}}
	srv.Start()
	t.Cleanup(srv.Close)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { defer close(done); _ = eng.Run(ctx) }()
	t.Cleanup(func() { cancel(); <-done })
	return &bridge{url: url, srv: srv, st: st, eng: eng, idp: ip, op: op, auth: auth, cookies: cookies, reg: reg}
}

// waitFor polls cond until it holds or the deadline passes.
func waitFor(t *testing.T, what string, d time.Duration, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(d)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(20 * time.Millisecond)
	}
}
