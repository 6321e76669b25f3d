package app

import (
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/cookiejar"
	"net/url"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/gin-gonic/gin"
	jose "github.com/go-jose/go-jose/v4"

	"github.com/slobridge/slobridge"
)

func TestMain(m *testing.M) {
	gin.SetMode(gin.ReleaseMode)
	os.Exit(m.Run())
}

// waitTimeout bounds every poll in these tests; it only matters when
// something hangs.
const waitTimeout = 20 * time.Second

// inbox is a test endpoint that records the bodies posted to it.
type inbox struct {
	mu     sync.Mutex
	bodies []string
	types  []string
	status int
}

func (b *inbox) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	body, _ := io.ReadAll(r.Body)
	b.mu.Lock()
	b.bodies = append(b.bodies, string(body))
	b.types = append(b.types, r.Header.Get("Content-Type"))
	b.mu.Unlock()
	w.WriteHeader(b.status)
}

func (b *inbox) got() ([]string, []string) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return append([]string(nil), b.bodies...), append([]string(nil), b.types...)
}

func newInbox(t *testing.T, status int) (*inbox, string) {
	t.Helper()
	b := &inbox{status: status}
	srv := newLoopbackServer(t, b)
	return b, srv
}

// newLoopbackServer serves h on 127.0.0.1 and returns its URL.
func newLoopbackServer(t *testing.T, h http.Handler) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := &http.Server{Handler: h, ReadHeaderTimeout: 5 * time.Second}
	go func() { _ = srv.Serve(ln) }()
	t.Cleanup(func() { _ = srv.Close() })
	return "http://" + ln.Addr().String()
}

// startApp builds and serves an App from a YAML document (with
// {{BASE}} replaced by its URL) until the test ends.
func startApp(t testing.TB, doc string, env map[string]string) (*App, string) {
	t.Helper()
	return startAppLog(t, doc, env, slog.New(slog.NewTextHandler(io.Discard, nil)))
}

// startAppLog is startApp with the logger every component must use.
func startAppLog(t testing.TB, doc string, env map[string]string, log *slog.Logger) (*App, string) {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	base := "http://" + ln.Addr().String()
	doc = strings.ReplaceAll(doc, "{{BASE}}", base)
	cfg, err := Parse([]byte(doc), func(k string) (string, bool) { v, ok := env[k]; return v, ok })
	if err != nil {
		t.Fatalf("Parse: %v", err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	a, err := New(ctx, cfg, log)
	if err != nil {
		cancel()
		t.Fatalf("New: %v", err)
	}
	done := make(chan error, 1)
	go func() { done <- a.Serve(ctx, ln) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("Serve: %v", err)
		}
		if err := a.Close(); err != nil {
			t.Errorf("Close: %v", err)
		}
	})
	return a, base
}

const wiringConfig = `
server:
  base_url: {{BASE}}
store:
  bolt:
    path: {{DB}}
delivery:
  allow_loopback: true
  backoff_base: 10ms
  backoff_max: 100ms
  poll_interval: 50ms
session:
  cookie_secret: ${COOKIE}
admin:
  token: ${ADMIN}
upstream:
  type: static
  static:
    users:
      - username: alice
        subject: user-alice
        email: alice@example.com
        password: {env: PASSWORD}
oidc:
  allow_loopback_http: true
  allow_private_backchannel: true
  clients:
    - client_id: app1
      client_name: App One
      redirect_uris: [{{RP}}/cb]
      backchannel_logout_uri: {{RP}}/backchannel
      backchannel_logout_session_required: true
      client_secret: {env: APP1_SECRET}
ssf:
  allow_http: true
  receivers:
    - id: api
      name: Demo API
      push_url: {{SSF}}/events
      authorization: {env: SSF_AUTH}
`

// TestServeWiresLoginLogoutAndSignals runs the whole wiring: a browser
// logs in through the OIDC authorize endpoint and the static
// authenticator, the new session is joined by the OIDC client and by the
// SSF receiver (through the engine's session hook), then an operator ends
// it through the admin API and both receive signed notifications that
// verify against the bridge's JWKS.
func TestServeWiresLoginLogoutAndSignals(t *testing.T) {
	rp, rpURL := newInbox(t, http.StatusOK)
	rcv, ssfURL := newInbox(t, http.StatusAccepted)
	env := map[string]string{
		"COOKIE": strings.Repeat("c", 40), "ADMIN": "admin-token-0123456789", "PASSWORD": "alice-password",
		"APP1_SECRET": "app1-secret-0123456789", "SSF_AUTH": "Bearer ssf-push-token",
	}
	doc := strings.NewReplacer("{{DB}}", filepath.Join(t.TempDir(), "bridge.db"), "{{RP}}", rpURL, "{{SSF}}", ssfURL).Replace(wiringConfig)
	a, base := startApp(t, doc, env)

	for _, path := range []string{"/healthz", "/readyz", "/.well-known/openid-configuration", "/.well-known/ssf-configuration"} {
		if code, _ := get(t, http.DefaultClient, base+path); code != http.StatusOK {
			t.Fatalf("GET %s: %d", path, code)
		}
	}

	sid := browserLogin(t, base, rpURL)
	parts, err := a.Store().ListParticipants(context.Background(), sid)
	if err != nil {
		t.Fatal(err)
	}
	keys := map[string]bool{}
	for _, p := range parts {
		keys[p.Key] = true
	}
	if !keys["oidc:app1"] || !keys["ssf:api"] || len(parts) != 2 {
		t.Fatalf("participants of the new session: %+v", parts)
	}

	lo := adminJSON(t, base, env["ADMIN"], "POST", "/admin/v1/logouts", `{"session_id":"`+sid+`"}`, http.StatusCreated)
	logoutID := lo["logout"].(map[string]any)["id"].(string)
	status := waitDone(t, base, env["ADMIN"], logoutID)
	for _, p := range status["participants"].([]any) {
		row := p.(map[string]any)
		if row["state"] != "delivered" {
			t.Errorf("participant %v: state %v, last error %v", row["key"], row["state"], row["last_error"])
		}
	}

	jwks := fetchJWKS(t, base)
	bodies, _ := rp.got()
	if len(bodies) != 1 {
		t.Fatalf("RP got %d back-channel requests", len(bodies))
	}
	form, err := url.ParseQuery(bodies[0])
	if err != nil {
		t.Fatal(err)
	}
	claims := verifyJWT(t, jwks, form.Get("logout_token"))
	if claims["sid"] != sid || claims["iss"] != base || claims["sub"] != "user-alice" {
		t.Errorf("logout token claims: %v", claims)
	}
	sets, types := rcv.got()
	if len(sets) != 1 || types[0] != "application/secevent+jwt" {
		t.Fatalf("SSF receiver got %d pushes, types %v", len(sets), types)
	}
	set := verifyJWT(t, jwks, sets[0])
	if set["iss"] != base || set["events"] == nil {
		t.Errorf("SET claims: %v", set)
	}

	code, metrics := get(t, http.DefaultClient, base+"/metrics")
	if code != http.StatusOK || !strings.Contains(metrics, `slobridge_logouts_total{initiator="admin"} 1`) ||
		!strings.Contains(metrics, `slobridge_http_requests_total{code="201",method="POST",route="/admin/v1/logouts"} 1`) ||
		!strings.Contains(metrics, `slobridge_http_requests_total{code="200",method="GET",route="/admin/v1/logouts/:logout_id"}`) {
		t.Errorf("metrics (%d) lack the admin logout:\n%s", code, grep(metrics, "slobridge_"))
	}
}

// browserLogin signs alice in at app1 through the bridge and returns the
// bridge session ID.
func browserLogin(t *testing.T, base, rpURL string) string {
	t.Helper()
	jar, _ := cookiejar.New(nil)
	browser := &http.Client{Jar: jar, CheckRedirect: func(r *http.Request, _ []*http.Request) error {
		if strings.HasPrefix(r.URL.String(), rpURL) {
			return http.ErrUseLastResponse // the RP's callback: stop here
		}
		return nil
	}}
	q := url.Values{"client_id": {"app1"}, "redirect_uri": {rpURL + "/cb"}, "response_type": {"code"},
		"scope": {"openid email"}, "state": {"st-1"}, "nonce": {"n-1"}}
	code, page := get(t, browser, base+"/oidc/authorize?"+q.Encode())
	m := regexp.MustCompile(`name="id" value="([^"]+)"`).FindStringSubmatch(page)
	if code != http.StatusOK || m == nil {
		t.Fatalf("authorize did not lead to the login form (%d):\n%s", code, page)
	}
	// A wrong password is refused and keeps the form.
	resp, err := browser.PostForm(base+PathStaticLogin, url.Values{"id": {m[1]}, "username": {"alice"}, "password": {"wrong-password"}})
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusUnauthorized {
		t.Fatalf("wrong password: %d", resp.StatusCode)
	}
	resp, err = browser.PostForm(base+PathStaticLogin, url.Values{"id": {m[1]}, "username": {"alice"}, "password": {"alice-password"}})
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	loc, err := url.Parse(resp.Header.Get("Location"))
	if resp.StatusCode != http.StatusFound && resp.StatusCode != http.StatusSeeOther || err != nil ||
		loc.Query().Get("code") == "" || loc.Query().Get("state") != "st-1" {
		t.Fatalf("login did not return to the RP with a code: %d %s", resp.StatusCode, resp.Header.Get("Location"))
	}
	// The code exchange makes app1 a participant of the session.
	req, _ := http.NewRequest("POST", base+"/oidc/token", strings.NewReader(url.Values{
		"grant_type": {"authorization_code"}, "code": {loc.Query().Get("code")}, "redirect_uri": {rpURL + "/cb"}}.Encode()))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.SetBasicAuth("app1", "app1-secret-0123456789")
	resp, err = http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	tokBody, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK || !strings.Contains(string(tokBody), "id_token") {
		t.Fatalf("code exchange: %d %s", resp.StatusCode, tokBody)
	}
	u, _ := url.Parse(base)
	for _, c := range jar.Cookies(u) {
		if c.Name == slobridge.SessionCookieName {
			sid, _, _ := strings.Cut(c.Value, ".")
			return sid
		}
	}
	t.Fatal("no bridge session cookie after login")
	return ""
}

func get(t *testing.T, c *http.Client, u string) (int, string) {
	t.Helper()
	resp, err := c.Get(u)
	if err != nil {
		t.Fatalf("GET %s: %v", u, err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

func adminJSON(t *testing.T, base, token, method, path, body string, want int) map[string]any {
	t.Helper()
	req, _ := http.NewRequest(method, base+path, strings.NewReader(body))
	req.Header.Set("Authorization", "Bearer "+token)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var out map[string]any
	b, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != want || json.Unmarshal(b, &out) != nil {
		t.Fatalf("%s %s: %d %s", method, path, resp.StatusCode, b)
	}
	return out
}

func waitDone(t *testing.T, base, token, logoutID string) map[string]any {
	t.Helper()
	deadline := time.Now().Add(waitTimeout)
	for {
		st := adminJSON(t, base, token, "GET", "/admin/v1/logouts/"+logoutID, "", http.StatusOK)
		if st["done"] == true {
			return st
		}
		if time.Now().After(deadline) {
			t.Fatalf("logout %s not done: %v", logoutID, st)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func fetchJWKS(t *testing.T, base string) jose.JSONWebKeySet {
	t.Helper()
	_, body := get(t, http.DefaultClient, base+"/oidc/jwks")
	var set jose.JSONWebKeySet
	if err := json.Unmarshal([]byte(body), &set); err != nil {
		t.Fatalf("JWKS: %v", err)
	}
	return set
}

// verifyJWT checks a compact JWS against the JWKS and returns its claims.
func verifyJWT(t *testing.T, jwks jose.JSONWebKeySet, raw string) map[string]any {
	t.Helper()
	jws, err := jose.ParseSigned(raw, []jose.SignatureAlgorithm{jose.RS256, jose.ES256})
	if err != nil {
		t.Fatalf("parse JWS: %v", err)
	}
	keys := jwks.Key(jws.Signatures[0].Header.KeyID)
	if len(keys) == 0 {
		t.Fatalf("JWS key %q is not in the JWKS", jws.Signatures[0].Header.KeyID)
	}
	payload, err := jws.Verify(keys[0])
	if err != nil {
		t.Fatalf("JWS does not verify: %v", err)
	}
	var claims map[string]any
	if err := json.Unmarshal(payload, &claims); err != nil {
		t.Fatal(err)
	}
	return claims
}

func grep(s, sub string) string {
	var out []string
	for _, l := range strings.Split(s, "\n") {
		if strings.Contains(l, sub) && !strings.HasPrefix(l, "#") {
			out = append(out, l)
		}
	}
	return strings.Join(out, "\n")
}

// TestBodyCap shows that a body over server.max_body_bytes is refused
// with 413 before any handler reads it.
func TestBodyCap(t *testing.T) {
	doc := strings.NewReplacer("{{DB}}", filepath.Join(t.TempDir(), "b.db"), "{{RP}}", "http://127.0.0.1:1", "{{SSF}}", "http://127.0.0.1:1").
		Replace(wiringConfig) + "\n"
	doc = strings.Replace(doc, "server:\n", "server:\n  max_body_bytes: 2048\n", 1)
	_, base := startApp(t, doc, map[string]string{
		"COOKIE": strings.Repeat("c", 40), "ADMIN": "admin-token-0123456789", "PASSWORD": "alice-password",
		"APP1_SECRET": "app1-secret-0123456789", "SSF_AUTH": "Bearer x",
	})
	resp, err := http.Post(base+"/oidc/token", "application/x-www-form-urlencoded", strings.NewReader(strings.Repeat("a=b&", 4096)))
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusRequestEntityTooLarge {
		t.Fatalf("oversized token request: %d, want 413", resp.StatusCode)
	}
}

func TestNewRefusesUnvalidatedConfig(t *testing.T) {
	var cfg Config
	cfg.Store.Bolt.Path = filepath.Join(t.TempDir(), "never.db")
	if _, err := New(context.Background(), cfg, nil); err == nil || !strings.Contains(err.Error(), "not validated") {
		t.Fatalf("New with a raw Config: %v", err)
	}
}
