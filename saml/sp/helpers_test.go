package sp

import (
	"context"
	"crypto/x509"
	"encoding/base64"
	"encoding/xml"
	"io"
	"log/slog"
	"net/http"
	"net/http/cookiejar"
	"net/http/httptest"
	"net/url"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	crewjam "github.com/crewjam/saml"
	"github.com/gin-gonic/gin"

	"github.com/slobridge/slobridge"
	"github.com/slobridge/slobridge/saml"
	"github.com/slobridge/slobridge/store"
	"github.com/slobridge/slobridge/store/bolt"
)

func init() { gin.SetMode(gin.TestMode) }

var testSecret = []byte("0123456789abcdef0123456789abcdef-test")

// bridge is a bridge under test: a real bbolt store, the engine with its
// delivery workers and the HTTP notifier, the SP and the root logout page,
// served on 127.0.0.1.
type bridge struct {
	t       testing.TB
	eng     *slobridge.Engine
	st      store.Store
	sp      *SP
	srv     *httptest.Server
	client  *http.Client
	cookies slobridge.SessionCookies
}

type bridgeOptions struct {
	// baseURL defaults to the test server's URL.
	baseURL   string
	upstreams []UpstreamConfig
	// now is the SP's clock (default the engine's, real time).
	now      func() time.Time
	soapWait time.Duration
	// skew is saml.sp.clock_skew (default 3m).
	skew time.Duration
	// refresh is saml.sp.metadata_refresh; retry the first wait before an
	// unavailable upstream is tried again.
	refresh, retry time.Duration
	// mount, when set, adds routes (another protocol's endpoints) and
	// notifiers before the engine's workers start.
	mount func(r *gin.Engine, eng *slobridge.Engine, sp *SP, base string)
}

func loadSigner(t testing.TB, name string) *saml.Signer {
	t.Helper()
	s, err := saml.LoadSigner(filepath.Join("..", "testdata", name+".crt"), filepath.Join("..", "testdata", name+".key"))
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// quietLogger discards logs unless SLOBRIDGE_TEST_LOG is set.
func quietLogger() *slog.Logger {
	if os.Getenv("SLOBRIDGE_TEST_LOG") != "" {
		return slog.New(slog.NewTextHandler(os.Stderr, nil))
	}
	return slog.New(slog.NewTextHandler(io.Discard, nil))
}

func newBridge(t testing.TB, bo bridgeOptions) *bridge {
	t.Helper()
	db, err := bolt.Open(filepath.Join(t.TempDir(), "bridge.db"), bolt.Options{NoSync: true})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = db.Close() })
	eng, err := slobridge.NewEngine(slobridge.Options{
		Store:  db,
		Logger: quietLogger(),
		Notifiers: map[string]slobridge.Notifier{"http": &slobridge.HTTPNotifier{
			Client: slobridge.NewBackChannelClient(slobridge.ClientOptions{AllowLoopback: true})}},
		AttemptTimeout: 2 * time.Second,
		PollInterval:   50 * time.Millisecond,
		BackoffBase:    time.Second,
	})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	t.Cleanup(func() { cancel(); wg.Wait() })

	router := gin.New()
	srv := httptest.NewServer(router)
	t.Cleanup(srv.Close)
	base := bo.baseURL
	if base == "" {
		base = srv.URL
	}
	cookies := slobridge.SessionCookies{Secret: testSecret}
	sp, err := New(ctx, Options{
		Engine: eng, Cookies: cookies, BaseURL: base, Signer: loadSigner(t, "sp"),
		Upstreams: bo.upstreams, Logger: quietLogger(), Now: bo.now, SOAPLogoutWait: bo.soapWait, ClockSkew: bo.skew, MetadataRefresh: bo.refresh, RetryFirst: bo.retry,
	})
	if err != nil {
		t.Fatalf("sp.New: %v", err)
	}
	sp.Mount(router)
	eng.SetNotifier(LegKind, sp)
	eng.AddUpstreamLegs(sp.UpstreamLegs)
	lp, err := slobridge.NewLogoutPage(slobridge.LogoutPageOptions{Engine: eng, Upstream: sp, Logger: quietLogger()})
	if err != nil {
		t.Fatal(err)
	}
	lp.Mount(router)
	router.GET("/test/login", func(c *gin.Context) {
		if err := sp.StartLogin(c.Writer, c.Request, "/test/whoami?client_id="+url.QueryEscape(c.Query("client_id"))); err != nil {
			c.String(http.StatusInternalServerError, err.Error())
		}
	})
	// /test/app-login is an app's own login request (an OIDC authorize or
	// SAML SSO URL) that needs a user: returnTo names no client.
	router.GET("/test/app-login", func(c *gin.Context) {
		if err := sp.StartLogin(c.Writer, c.Request, "/test/whoami"); err != nil {
			c.String(http.StatusInternalServerError, err.Error())
		}
	})
	router.GET("/test/whoami", func(c *gin.Context) {
		s, err := eng.ActiveSession(c.Request.Context(), cookies, c.Request)
		if err != nil {
			c.String(http.StatusUnauthorized, "no session")
			return
		}
		c.JSON(http.StatusOK, s)
	})
	if bo.mount != nil {
		bo.mount(router, eng, sp, base)
	}
	wg.Add(1)
	go func() { defer wg.Done(); _ = eng.Run(ctx) }()
	jar, _ := cookiejar.New(nil)
	client := &http.Client{Jar: jar, CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	return &bridge{t: t, eng: eng, st: db, sp: sp, srv: srv, client: client, cookies: cookies}
}

// local maps a URL under the bridge's base URL onto the test server.
func (b *bridge) local(u string) string {
	if strings.HasPrefix(u, "/") {
		return b.srv.URL + u
	}
	return b.srv.URL + strings.TrimPrefix(u, b.sp.opts.BaseURL)
}

func (b *bridge) do(req *http.Request) *http.Response {
	b.t.Helper()
	resp, err := b.client.Do(req)
	if err != nil {
		b.t.Fatal(err)
	}
	return resp
}

func (b *bridge) get(u string) *http.Response {
	b.t.Helper()
	req, err := http.NewRequest(http.MethodGet, b.local(u), nil)
	if err != nil {
		b.t.Fatal(err)
	}
	return b.do(req)
}

func (b *bridge) post(u, contentType string, body []byte) *http.Response {
	b.t.Helper()
	req, err := http.NewRequest(http.MethodPost, b.local(u), strings.NewReader(string(body)))
	if err != nil {
		b.t.Fatal(err)
	}
	req.Header.Set("Content-Type", contentType)
	return b.do(req)
}

func readBody(t testing.TB, resp *http.Response) string {
	t.Helper()
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

var inputRE = regexp.MustCompile(`<input[^>]*name="([^"]+)"[^>]*value="([^"]*)"`)
var actionRE = regexp.MustCompile(`<form[^>]*action="([^"]+)"`)

// parseForm extracts the action and hidden fields of the first HTML form.
func parseForm(t testing.TB, html string) (string, url.Values) {
	t.Helper()
	m := actionRE.FindStringSubmatch(html)
	if m == nil {
		t.Fatalf("no form in:\n%s", html)
	}
	v := url.Values{}
	for _, f := range inputRE.FindAllStringSubmatch(html, -1) {
		v.Set(unescape(f[1]), unescape(f[2]))
	}
	return unescape(m[1]), v
}

func unescape(s string) string {
	r := strings.NewReplacer("&amp;", "&", "&#43;", "+", "&#34;", `"`, "&quot;", `"`, "&lt;", "<", "&gt;", ">", "&#61;", "=", "&#39;", "'")
	return r.Replace(s)
}

// idpMetadata renders IdP metadata: the signing certificate, an SSO
// service and the given SLO endpoints (binding → location).
func idpMetadata(t testing.TB, entityID string, cert *x509.Certificate, sso string, slo map[string]string) []byte {
	t.Helper()
	ki := crewjam.KeyInfo{X509Data: crewjam.X509Data{X509Certificates: []crewjam.X509Certificate{{Data: base64.StdEncoding.EncodeToString(cert.Raw)}}}}
	var slos []crewjam.Endpoint
	for _, b := range []string{saml.BindingRedirect, saml.BindingPOST, saml.BindingSOAP} {
		if loc, ok := slo[b]; ok {
			slos = append(slos, crewjam.Endpoint{Binding: b, Location: loc})
		}
	}
	ed := crewjam.EntityDescriptor{EntityID: entityID, IDPSSODescriptors: []crewjam.IDPSSODescriptor{{
		SSODescriptor: crewjam.SSODescriptor{
			RoleDescriptor:       crewjam.RoleDescriptor{ProtocolSupportEnumeration: saml.NSProtocol, KeyDescriptors: []crewjam.KeyDescriptor{{Use: "signing", KeyInfo: ki}}},
			SingleLogoutServices: slos,
		},
		SingleSignOnServices: []crewjam.Endpoint{{Binding: saml.BindingRedirect, Location: sso}},
	}}}
	b, err := xml.Marshal(ed)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func writeFile(t testing.TB, name string, data []byte) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), name)
	if err := os.WriteFile(p, data, 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

// receiver is a back-channel participant endpoint that counts
// notifications and answers status.
type receiver struct {
	srv  *httptest.Server
	mu   sync.Mutex
	hits int
}

func newReceiver(t *testing.T, status int) *receiver {
	r := &receiver{}
	r.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		r.mu.Lock()
		r.hits++
		r.mu.Unlock()
		w.WriteHeader(status)
	}))
	t.Cleanup(r.srv.Close)
	return r
}

func (r *receiver) count() int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.hits
}

// session creates an active bridge session of upstream up for nameID and
// session index, with the given back-channel receivers as participants.
func (b *bridge) session(up, user, nameID, index string, recv ...*receiver) store.Session {
	b.t.Helper()
	ctx := b.t.Context()
	s, err := b.eng.CreateSession(ctx, store.Session{UserID: user, Upstream: up,
		NameID: store.NameID{Value: nameID, Format: "urn:oasis:names:tc:SAML:1.1:nameid-format:emailAddress",
			NameQualifier: "https://idp.example.test/metadata", SPNameQualifier: "https://bridge.example.test/saml/sp/metadata"},
		SessionIndex: index, ExpiresAt: time.Now().Add(time.Hour)})
	if err != nil {
		b.t.Fatal(err)
	}
	for i, r := range recv {
		if _, err := b.eng.AddParticipant(ctx, store.Participant{SessionID: s.ID, Kind: "http",
			AppID: "app" + string(rune('a'+i)), Channels: store.ChannelBack, BackChannelURL: r.srv.URL}); err != nil {
			b.t.Fatal(err)
		}
	}
	return s
}

// ended reports whether session id has ended.
func (b *bridge) ended(id string) bool {
	b.t.Helper()
	s, err := b.st.GetSession(b.t.Context(), id)
	if err != nil {
		b.t.Fatal(err)
	}
	return !s.EndedAt.IsZero()
}
