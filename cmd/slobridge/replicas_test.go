package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/cookiejar"
	"net/http/httptest"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/slobridge/slobridge/store/postgres/pgtest"

	jose "github.com/go-jose/go-jose/v4"
	"github.com/jackc/pgx/v5"

	"github.com/slobridge/slobridge"
	adminapi "github.com/slobridge/slobridge/cmd/internal/admin"
	"github.com/slobridge/slobridge/cmd/internal/app"
	"github.com/slobridge/slobridge/store"
	"github.com/slobridge/slobridge/store/postgres"
)

// requirePostgres returns the DSN of the test server; without one the
// test is skipped, except under CI=true, where it fails.
func requirePostgres(t *testing.T) string {
	t.Helper()
	dsn := pgtest.DSN(t)
	return dsn
}

// clientSecretEnv holds the client secret of every OIDC client of the
// replica tests.
const clientSecretEnv = "SLOBRIDGE_TEST_CLIENT_SECRET"

const clientSecret = "replica-client-secret-0123456789"

// rpReceived is one back-channel logout request an RP received.
type rpReceived struct {
	deliveryID string
	sid        string
	// answered is set once the RP answered 200; a request whose
	// connection died first (the bridge was killed) stays unanswered.
	answered bool
	// err says why the logout token was not valid; empty when it was.
	err string
}

// rp is the back-channel logout endpoint of one OIDC client. It verifies
// each logout token against the bridge's JWKS. While hold is set it holds
// the first request of each delivery until release is closed or the
// connection dies.
type rp struct {
	srv     *httptest.Server
	jwksURL string
	hold    atomic.Bool
	release <-chan struct{}
	blocked chan<- struct{}

	mu   sync.Mutex
	reqs []rpReceived
}

func (p *rp) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if err := r.ParseForm(); err != nil {
		http.Error(w, err.Error(), http.StatusBadRequest)
		return
	}
	rec := rpReceived{deliveryID: r.Header.Get(slobridge.DeliveryIDHeader)}
	rec.sid, rec.err = p.verify(r.PostForm.Get("logout_token"))
	p.mu.Lock()
	first := true
	for _, q := range p.reqs {
		if q.deliveryID == rec.deliveryID {
			first = false
		}
	}
	i := len(p.reqs)
	p.reqs = append(p.reqs, rec)
	p.mu.Unlock()
	if p.hold.Load() && first {
		p.blocked <- struct{}{}
		select {
		case <-p.release:
		case <-r.Context().Done():
			return
		}
	}
	if rec.err != "" {
		w.WriteHeader(http.StatusBadRequest)
		return
	}
	w.WriteHeader(http.StatusOK)
	p.mu.Lock()
	p.reqs[i].answered = true
	p.mu.Unlock()
}

// verify checks the signature of a logout token against the bridge's
// JWKS and returns its sid.
func (p *rp) verify(raw string) (sid, errText string) {
	jws, err := jose.ParseSigned(raw, []jose.SignatureAlgorithm{jose.RS256, jose.ES256, jose.PS256, jose.EdDSA})
	if err != nil {
		return "", "parse: " + err.Error()
	}
	resp, err := http.Get(p.jwksURL)
	if err != nil {
		return "", "fetch JWKS: " + err.Error()
	}
	defer resp.Body.Close()
	var jwks jose.JSONWebKeySet
	if err := json.NewDecoder(resp.Body).Decode(&jwks); err != nil {
		return "", "decode JWKS: " + err.Error()
	}
	payload, err := jws.Verify(&jwks)
	if err != nil {
		return "", "verify: " + err.Error()
	}
	var c struct {
		SID    string         `json:"sid"`
		Events map[string]any `json:"events"`
	}
	if err := json.Unmarshal(payload, &c); err != nil {
		return "", "claims: " + err.Error()
	}
	if _, ok := c.Events["http://schemas.openid.net/event/backchannel-logout"]; !ok || c.SID == "" {
		return "", "not a logout token with a sid: " + string(payload)
	}
	return c.SID, ""
}

// of returns the requests of session sid.
func (p *rp) of(sid string) []rpReceived {
	p.mu.Lock()
	defer p.mu.Unlock()
	var out []rpReceived
	for _, q := range p.reqs {
		if q.sid == sid {
			out = append(out, q)
		}
	}
	return out
}

// errors returns the reasons of the invalid logout tokens received.
func (p *rp) errors() []string {
	p.mu.Lock()
	defer p.mu.Unlock()
	var out []string
	for _, q := range p.reqs {
		if q.err != "" {
			out = append(out, q.err)
		}
	}
	return out
}

// replicaConfig writes the configuration both replicas share: the
// PostgreSQL backend's, with one OIDC client per RP and attempts long
// enough that a held request is cut by the kill, not by the timeout.
func replicaConfig(t *testing.T, be backend, rps []*rp) string {
	t.Helper()
	doc, err := os.ReadFile(be.config)
	if err != nil {
		t.Fatal(err)
	}
	var clients strings.Builder
	for i, p := range rps {
		fmt.Fprintf(&clients, "    - client_id: app%02d\n      redirect_uris: [%s/cb]\n      backchannel_logout_uri: %s/backchannel\n"+
			"      backchannel_logout_session_required: true\n      client_secret: {env: %s}\n", i, p.srv.URL, p.srv.URL, clientSecretEnv)
	}
	s := string(doc)
	for _, r := range [][2]string{
		{"attempt_timeout: 5s\n  lease: 6s\n", "attempt_timeout: 20s\n  lease: 21s\n"},
		{"oidc:\n  allow_loopback_http: true\n", "oidc:\n  allow_loopback_http: true\n  allow_private_backchannel: true\n  clients:\n" + clients.String()},
	} {
		if !strings.Contains(s, r[0]) {
			t.Fatalf("the base configuration no longer has %q", r[0])
		}
		s = strings.Replace(s, r[0], r[1], 1)
	}
	path := filepath.Join(t.TempDir(), "replica.yaml")
	if err := os.WriteFile(path, []byte(s), 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}

// login signs alice in through the bridge at loginBase (the static login
// form, then single sign-on for the other clients) at every client, and
// redeems each authorization code at one of redeemAt in turn. It returns
// the bridge session ID.
func login(t *testing.T, loginBase string, redeemAt []string, rps []*rp) string {
	t.Helper()
	jar, _ := cookiejar.New(nil)
	browser := &http.Client{Jar: jar, CheckRedirect: func(r *http.Request, _ []*http.Request) error {
		if !strings.HasPrefix(r.URL.String(), loginBase) {
			return http.ErrUseLastResponse // the RP's callback: stop here
		}
		return nil
	}}
	codeFrom := func(resp *http.Response, state string) string {
		t.Helper()
		loc, err := url.Parse(resp.Header.Get("Location"))
		if resp.StatusCode/100 != 3 || err != nil || loc.Query().Get("code") == "" || loc.Query().Get("state") != state {
			t.Fatalf("the bridge did not return to the RP with a code: %d %s", resp.StatusCode, resp.Header.Get("Location"))
		}
		return loc.Query().Get("code")
	}
	for i, p := range rps {
		client := fmt.Sprintf("app%02d", i)
		state := "st-" + client
		q := url.Values{"client_id": {client}, "redirect_uri": {p.srv.URL + "/cb"}, "response_type": {"code"},
			"scope": {"openid"}, "state": {state}, "nonce": {"n-" + client}}
		resp, err := browser.Get(loginBase + "/oidc/authorize?" + q.Encode())
		if err != nil {
			t.Fatal(err)
		}
		page, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if i == 0 {
			m := regexp.MustCompile(`name="id" value="([^"]+)"`).FindSubmatch(page)
			if resp.StatusCode != http.StatusOK || m == nil {
				t.Fatalf("authorize did not lead to the login form (%d):\n%s", resp.StatusCode, page)
			}
			resp, err = browser.PostForm(loginBase+app.PathStaticLogin, url.Values{"id": {string(m[1])},
				"username": {"alice"}, "password": {"password-of-alice"}})
			if err != nil {
				t.Fatal(err)
			}
			resp.Body.Close()
		}
		code := codeFrom(resp, state)
		req, _ := http.NewRequest("POST", redeemAt[i%len(redeemAt)]+"/oidc/token", strings.NewReader(url.Values{
			"grant_type": {"authorization_code"}, "code": {code}, "redirect_uri": {p.srv.URL + "/cb"}}.Encode()))
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
		req.SetBasicAuth(client, clientSecret)
		resp, err = http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != http.StatusOK || !bytes.Contains(body, []byte("id_token")) {
			t.Fatalf("code exchange of %s: %d %s", client, resp.StatusCode, body)
		}
	}
	u, _ := url.Parse(loginBase)
	for _, c := range jar.Cookies(u) {
		if c.Name == slobridge.SessionCookieName {
			sid, _, _ := strings.Cut(c.Value, ".")
			return sid
		}
	}
	t.Fatal("no bridge session cookie after the login")
	return ""
}

// TestTwoReplicasLoginLogoutAndKill runs two `serve` processes on one
// PostgreSQL schema. Alice logs in through replica A at every one of the
// OIDC clients (half of the codes redeemed at B); an operator ends her
// session through replica B's admin CLI and every client gets exactly one
// valid logout token, under the delivery ID that A's status shows. Then
// she logs in again, half of the clients hold their logout request, and B
// is SIGKILLed while both replicas have attempts in flight: A finishes
// every delivery, retrying those B's death cut after their leases ran
// out, and every client is notified once per recorded attempt (plus the
// request that died with B).
func TestTwoReplicasLoginLogoutAndKill(t *testing.T) {
	const n, workers = 24, 5 // workers: delivery.workers of each replica
	dsn := requirePostgres(t)
	t.Setenv(clientSecretEnv, clientSecret)
	be := postgresBackend(t, dsn)
	release := make(chan struct{})
	blocked := make(chan struct{}, n)
	var releaseOnce sync.Once
	t.Cleanup(func() { releaseOnce.Do(func() { close(release) }) })
	rps := make([]*rp, n)
	for i := range rps {
		rps[i] = &rp{release: release, blocked: blocked}
		rps[i].srv = httptest.NewServer(rps[i])
		t.Cleanup(rps[i].srv.Close)
	}
	cfg := replicaConfig(t, be, rps)
	a, b := startServe(t, cfg), startServe(t, cfg)
	baseA, baseB := a.baseURL(t), b.baseURL(t)
	for _, p := range rps {
		p.jwksURL = baseA + "/oidc/jwks"
	}

	// Login through A, logout through B, every client notified once.
	sid := login(t, baseA, []string{baseA, baseB}, rps)
	var lo adminapi.LogoutResponse
	admin(t, baseB, &lo, "logout", "--session", sid)
	if len(lo.Logout.Participants) != n {
		t.Fatalf("logout through B names %d participants, want %d", len(lo.Logout.Participants), n)
	}
	st := waitLogoutDone(t, baseA, lo.Logout.ID)
	for _, row := range st.Participants {
		got := rps[rpIndex(t, row)].of(sid)
		if row.State != string(store.DeliveryDelivered) || row.Attempts != 1 || len(got) != 1 ||
			got[0].deliveryID != row.DeliveryID || !got[0].answered {
			t.Errorf("%s: state %s after %d attempts (delivery %s); the client got %+v",
				row.Key, row.State, row.Attempts, row.DeliveryID, got)
		}
	}

	// Login again through A; half of the clients hold their request; B is
	// killed while both replicas are stuck in them.
	sid = login(t, baseA, []string{baseA}, rps)
	for i, p := range rps {
		p.hold.Store(i%2 == 0)
	}
	admin(t, baseB, &lo, "logout", "--session", sid)
	for range 2 * workers {
		select {
		case <-blocked:
		case <-time.After(waitTimeout):
			t.Fatalf("the replicas never held %d attempts at once\nA:\n%s\nB:\n%s", 2*workers, a.log(), b.log())
		}
	}
	if err := b.cmd.Process.Signal(syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	if err := b.exitWithin(t, waitTimeout); err == nil {
		t.Fatal("the killed replica exited cleanly")
	}
	counts := outboxCounts(t, be)
	if unfinished := counts[store.DeliveryPending] + counts[store.DeliveryRetrying]; unfinished < workers {
		t.Fatalf("not killed mid-fan-out: outbox %v", counts)
	}
	t.Logf("B killed with outbox %v", counts)
	releaseOnce.Do(func() { close(release) })

	st = waitLogoutDone(t, baseA, lo.Logout.ID)
	cut := 0
	for _, row := range st.Participants {
		i := rpIndex(t, row)
		got := rps[i].of(sid)
		answered, unanswered := 0, 0
		for _, q := range got {
			if q.deliveryID != row.DeliveryID {
				t.Errorf("%s got delivery ID %s, the status says %s", row.Key, q.deliveryID, row.DeliveryID)
			}
			if q.answered {
				answered++
			} else {
				unanswered++
			}
		}
		if row.State != string(store.DeliveryDelivered) || answered != row.Attempts || unanswered > 1 ||
			unanswered == 1 && i%2 != 0 {
			t.Errorf("%s (held %v): state %s after %d recorded attempts; the client answered %d requests, %d were cut",
				row.Key, i%2 == 0, row.State, row.Attempts, answered, unanswered)
		}
		cut += unanswered
	}
	if cut != workers {
		t.Errorf("%d attempts died with B, want %d (its workers, all held)", cut, workers)
	}
	for _, p := range rps {
		if errs := p.errors(); len(errs) > 0 {
			t.Errorf("invalid logout tokens: %v", errs)
		}
	}
	if t.Failed() {
		t.Logf("A:\n%s", a.log())
	}
}

// rpIndex returns the index in rps of the client of a status row.
func rpIndex(t *testing.T, row slobridge.ParticipantStatus) int {
	t.Helper()
	i, err := strconv.Atoi(strings.TrimPrefix(row.AppID, "app"))
	if err != nil {
		t.Fatalf("status row of an unknown client %q", row.AppID)
	}
	return i
}

// TestThreeReplicasMigrateAtOnce starts three `slobridge migrate` on one
// fresh schema at once: each migration is applied by exactly one of them
// (the others wait on the advisory lock and find the schema current), and
// then three `serve` processes started at once on another fresh schema
// (each migrating at start-up) all come up.
func TestThreeReplicasMigrateAtOnce(t *testing.T) {
	dsn := requirePostgres(t)
	be := postgresBackend(t, dsn)
	var wg sync.WaitGroup
	outs := make([]string, 3)
	errs := make([]error, 3)
	for i := range outs {
		wg.Go(func() {
			ctx, cancel := context.WithTimeout(context.Background(), waitTimeout)
			defer cancel()
			cmd := exec.CommandContext(ctx, binary, "migrate", "--config", be.config)
			cmd.Env = append(os.Environ(), testEnv...)
			var stdout, stderr bytes.Buffer
			cmd.Stdout, cmd.Stderr = &stdout, &stderr
			if err := cmd.Run(); err != nil {
				errs[i] = fmt.Errorf("%w: %s", err, stderr.String())
			}
			outs[i] = stdout.String()
		})
	}
	wg.Wait()
	var applied []int
	for i, out := range outs {
		if errs[i] != nil {
			t.Fatalf("migrate %d: %v", i, errs[i])
		}
		switch {
		case out == "schema is up to date\n":
		case strings.HasPrefix(out, "applied migrations [") && strings.HasSuffix(out, "]\n"):
			for _, f := range strings.Fields(strings.TrimSuffix(strings.TrimPrefix(out, "applied migrations ["), "]\n")) {
				v, err := strconv.Atoi(f)
				if err != nil {
					t.Fatalf("migrate %d printed %q", i, out)
				}
				applied = append(applied, v)
			}
		default:
			t.Fatalf("migrate %d printed %q", i, out)
		}
	}
	slices.Sort(applied)
	want := make([]int, postgres.LatestVersion())
	for i := range want {
		want[i] = i + 1
	}
	if !slices.Equal(applied, want) {
		t.Fatalf("the three migrate runs applied %v together, want each of %v once (outputs %q)", applied, want, outs)
	}
	versions := migrationRows(t, dsn, be)
	if !slices.Equal(versions, want) {
		t.Fatalf("schema_migrations holds %v, want %v", versions, want)
	}

	be2 := postgresBackend(t, dsn)
	ps := []*proc{startServe(t, be2.config), startServe(t, be2.config), startServe(t, be2.config)}
	for i, p := range ps {
		base := p.baseURL(t)
		if code, err := httpGet(base + "/readyz"); err != nil || code != http.StatusOK {
			t.Fatalf("replica %d not ready: %d %v\n%s", i, code, err, p.log())
		}
	}
	if versions := migrationRows(t, dsn, be2); !slices.Equal(versions, want) {
		t.Fatalf("after three serve at once, schema_migrations holds %v, want %v", versions, want)
	}
}

// migrationRows returns the versions recorded in the backend's schema.
func migrationRows(t *testing.T, dsn string, be backend) []int {
	t.Helper()
	doc, err := os.ReadFile(be.config)
	if err != nil {
		t.Fatal(err)
	}
	m := regexp.MustCompile(`schema: (\S+)`).FindSubmatch(doc)
	if m == nil {
		t.Fatalf("no schema in %s", be.config)
	}
	ctx := context.Background()
	conn, err := pgx.Connect(ctx, dsn)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(ctx)
	rows, err := conn.Query(ctx, "SELECT version FROM "+pgx.Identifier{string(m[1]), "slobridge_schema_migrations"}.Sanitize()+" ORDER BY version")
	if err != nil {
		t.Fatal(err)
	}
	versions, err := pgx.CollectRows(rows, pgx.RowTo[int])
	if err != nil {
		t.Fatal(err)
	}
	return versions
}
