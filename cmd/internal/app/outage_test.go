package app

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/cookiejar"
	"net/url"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/beevik/etree"
	"github.com/jackc/pgx/v5"

	bsaml "github.com/slobridge/slobridge/saml"
)

// ownPostgres is a PostgreSQL server the test starts itself (initdb into a
// scratch directory, its own port) so that it can stop and start it; the
// shared instance other tests use is never touched.
type ownPostgres struct {
	t       *testing.T
	bin     string
	dir     string
	port    int
	asUser  []string // runuser prefix when running as root
	running bool
}

// startOwnPostgres initdb's and starts a server, or skips the test (fails
// it under CI=true) when the server binaries are missing.
func startOwnPostgres(t *testing.T) *ownPostgres {
	t.Helper()
	bin := ""
	if p, err := exec.LookPath("initdb"); err == nil {
		bin = filepath.Dir(p)
	} else if m, _ := filepath.Glob("/usr/lib/postgresql/*/bin/initdb"); len(m) > 0 {
		bin = filepath.Dir(m[len(m)-1])
	}
	if bin == "" {
		msg := "the store-outage test starts its own PostgreSQL and needs initdb and pg_ctl (Debian package postgresql)"
		if os.Getenv("CI") == "true" {
			t.Fatal(msg + " (CI=true requires it)")
		}
		t.Skip(msg)
	}
	dir, err := os.MkdirTemp("", "slobridge-pg-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = os.RemoveAll(dir) })
	pg := &ownPostgres{t: t, bin: bin, dir: dir}
	if os.Geteuid() == 0 {
		// PostgreSQL refuses to run as root.
		u, err := user.Lookup("postgres")
		if err != nil {
			t.Fatalf("running as root and there is no postgres user to run the server as: %v", err)
		}
		uid, _ := strconv.Atoi(u.Uid)
		gid, _ := strconv.Atoi(u.Gid)
		if err := os.Chown(dir, uid, gid); err != nil {
			t.Fatal(err)
		}
		if err := os.Chmod(dir, 0o755); err != nil {
			t.Fatal(err)
		}
		pg.asUser = []string{"runuser", "-u", "postgres", "--"}
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	pg.port = ln.Addr().(*net.TCPAddr).Port
	_ = ln.Close()
	pg.run("initdb", "-D", filepath.Join(dir, "data"), "-A", "trust", "-U", "postgres", "--no-sync", "-E", "UTF8")
	pg.start()
	t.Cleanup(func() {
		if pg.running {
			pg.stop()
		}
	})
	return pg
}

func (pg *ownPostgres) run(tool string, args ...string) {
	pg.t.Helper()
	cmd := append(append([]string{}, pg.asUser...), append([]string{filepath.Join(pg.bin, tool)}, args...)...)
	out, err := exec.Command(cmd[0], cmd[1:]...).CombinedOutput()
	if err != nil {
		log, _ := os.ReadFile(filepath.Join(pg.dir, "log"))
		pg.t.Fatalf("%s: %v\n%s\n%s", tool, err, out, log)
	}
}

func (pg *ownPostgres) start() {
	pg.t.Helper()
	pg.run("pg_ctl", "-D", filepath.Join(pg.dir, "data"), "-l", filepath.Join(pg.dir, "log"), "-w", "-o",
		fmt.Sprintf("-p %d -k %s -c listen_addresses=127.0.0.1 -c fsync=off", pg.port, pg.dir), "start")
	pg.running = true
}

func (pg *ownPostgres) stop() {
	pg.t.Helper()
	pg.run("pg_ctl", "-D", filepath.Join(pg.dir, "data"), "-m", "fast", "-w", "stop")
	pg.running = false
}

func (pg *ownPostgres) dsn() string {
	return fmt.Sprintf("postgres://postgres@127.0.0.1:%d/postgres?sslmode=disable&connect_timeout=2", pg.port)
}

// outageAnswer is one request and the form its 503 must take.
type outageAnswer struct {
	name   string
	do     func() (*http.Response, error)
	wantIn string // what the body must say (protocol form)
}

// TestStoreOutageAnswers503 runs two bridges (replicas: a static upstream
// and a SAML upstream, both with the OpenID Provider and the SAML IdP) on
// a PostgreSQL server the test starts, stops and starts again. While it
// is down, every endpoint that needs the store answers 503 with
// Retry-After in its protocol's form: OAuth JSON temporarily_unavailable,
// an HTML page saying the storage is unavailable, the admin API's JSON;
// /readyz answers 503. A logout acknowledged before the outage and one
// made after it lose nothing.
func TestStoreOutageAnswers503(t *testing.T) {
	pg := startOwnPostgres(t)
	rp, rpURL := newInbox(t, http.StatusOK)
	_, ssfURL := newInbox(t, http.StatusAccepted)
	env := map[string]string{
		"COOKIE": strings.Repeat("c", 40), "ADMIN": "admin-token-0123456789", "PASSWORD": "alice-password",
		"APP1_SECRET": "app1-secret-0123456789", "SSF_AUTH": "Bearer x",
	}
	pgStore := "store:\n  driver: postgres\n  postgres:\n    dsn: " + pg.dsn() + "\n"
	idpSection := `
saml:
  idp:
    enabled: true
    certificate_file: testdata/idp.crt
    key: {file: testdata/idp.key}
    service_providers:
      - metadata_file: testdata/sp-metadata.xml
        name: Test SP
`
	base := strings.NewReplacer("{{RP}}", rpURL, "{{SSF}}", ssfURL).Replace(wiringConfig)
	base = strings.Replace(base, "store:\n  bolt:\n    path: {{DB}}\n", pgStore, 1)
	base = strings.Replace(base, "oidc:\n", "oidc:\n  registration_token: registration-token-0123456789\n", 1)
	if !strings.Contains(base, "driver: postgres") {
		t.Fatal("the wiring config's store section changed; update this test")
	}
	logs := &syncBuffer{}
	_, a := startAppLog(t, base+idpSection, env, slog.New(slog.NewJSONHandler(logs, nil)))
	samlUp := strings.Replace(base, "  type: static\n", "  type: saml\n", 1) + strings.Replace(idpSection, "saml:\n", "saml:\n  sp:\n    cert_file: testdata/bridge-sp.crt\n    key_file: testdata/bridge-sp.key\n    upstreams:\n      - name: corp\n        metadata_file: testdata/upstream-metadata.xml\n", 1)
	_, b := startApp(t, samlUp, env)

	// Before the outage: a login and its logout, delivered.
	sid := browserLogin(t, a, rpURL)
	tok, idt := tokensFor(t, a, rpURL)
	lo := adminJSON(t, a, env["ADMIN"], "POST", "/admin/v1/logouts", `{"session_id":"`+sid+`"}`, http.StatusCreated)
	before := lo["logout"].(map[string]any)["id"].(string)
	waitDone(t, a, env["ADMIN"], before)
	sid2 := browserLogin(t, a, rpURL)
	got, _ := rp.got()
	deliveredBefore := len(got)

	pg.stop()
	noFollow := &http.Client{Timeout: 20 * time.Second, CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	form := func(u string, v url.Values, user, pass string) func() (*http.Response, error) {
		return func() (*http.Response, error) {
			req, _ := http.NewRequest(http.MethodPost, u, strings.NewReader(v.Encode()))
			req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
			if user != "" {
				req.SetBasicAuth(user, pass)
			}
			return noFollow.Do(req)
		}
	}
	getURL := func(u, bearer string) func() (*http.Response, error) {
		return func() (*http.Response, error) {
			req, _ := http.NewRequest(http.MethodGet, u, nil)
			if bearer != "" {
				req.Header.Set("Authorization", "Bearer "+bearer)
			}
			return noFollow.Do(req)
		}
	}
	authz := url.Values{"client_id": {"app1"}, "redirect_uri": {rpURL + "/cb"}, "response_type": {"code"}, "scope": {"openid"}, "state": {"s"}}
	const oauthJSON, page, adminForm = `"temporarily_unavailable"`, "storage is unavailable", `"unavailable"`
	for _, c := range []outageAnswer{
		{"readyz", getURL(a+"/readyz", ""), `"unreachable"`},
		{"token", form(a+"/oidc/token", url.Values{"grant_type": {"authorization_code"}, "code": {"x"}, "redirect_uri": {rpURL + "/cb"}}, "app1", env["APP1_SECRET"]), oauthJSON},
		{"token, refresh", form(a+"/oidc/token", url.Values{"grant_type": {"refresh_token"}, "refresh_token": {"x"}}, "app1", env["APP1_SECRET"]), oauthJSON},
		{"introspection", form(a+"/oidc/introspect", url.Values{"token": {tok}}, "app1", env["APP1_SECRET"]), oauthJSON},
		{"revocation", form(a+"/oidc/revoke", url.Values{"token": {"x"}}, "app1", env["APP1_SECRET"]), oauthJSON},
		{"userinfo", getURL(a+"/oidc/userinfo", tok), oauthJSON},
		{"end session", getURL(a+"/oidc/logout?id_token_hint="+idt, ""), page},
		{"admin: sessions", getURL(a+"/admin/v1/users/user-alice/sessions", env["ADMIN"]), adminForm},
		{"admin: logout status", getURL(a+"/admin/v1/logouts/"+before, env["ADMIN"]), adminForm},
		{"logout status page", getURL(a+"/logout/page/"+before, ""), page},
	} {
		resp, err := c.do()
		if err != nil {
			t.Errorf("%s: %v", c.name, err)
			continue
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != http.StatusServiceUnavailable || !strings.Contains(string(body), c.wantIn) ||
			(c.name != "readyz" && resp.Header.Get("Retry-After") == "") {
			t.Errorf("%s while the store is down: HTTP %d, Retry-After %q, body %.300s; want 503 saying %s",
				c.name, resp.StatusCode, resp.Header.Get("Retry-After"), body, c.wantIn)
		}
	}

	// SAML: an SP's signed AuthnRequest and SOAP LogoutRequest at the IdP,
	// the upstream's signed LogoutRequest at the SP (front and SOAP).
	spSigner, err := bsaml.LoadSigner("testdata/sp.crt", "testdata/sp.key")
	if err != nil {
		t.Fatal(err)
	}
	upSigner, err := bsaml.LoadSigner("testdata/upstream.crt", "testdata/upstream.key")
	if err != nil {
		t.Fatal(err)
	}
	now := time.Now().UTC().Format(time.RFC3339)
	authn := etree.NewDocument()
	if err := authn.ReadFromString(`<samlp:AuthnRequest xmlns:samlp="urn:oasis:names:tc:SAML:2.0:protocol" xmlns:saml="urn:oasis:names:tc:SAML:2.0:assertion" ` +
		`ID="_outage-authn" Version="2.0" IssueInstant="` + now + `" Destination="` + a + `/saml/idp/sso" ` +
		`AssertionConsumerServiceURL="https://sp.example.com/saml/acs"><saml:Issuer>https://sp.example.com/saml/metadata</saml:Issuer></samlp:AuthnRequest>`); err != nil {
		t.Fatal(err)
	}
	ssoURL, err := bsaml.RedirectURL(a+"/saml/idp/sso", bsaml.ParamRequest, authn.Root(), "rs", spSigner)
	if err != nil {
		t.Fatal(err)
	}
	soapTo := func(u, issuer string, signer *bsaml.Signer) func() (*http.Response, error) {
		return func() (*http.Response, error) {
			lr := &bsaml.LogoutRequest{ID: "_outage-" + issuer[8:12], IssueInstant: time.Now(), Destination: u, Issuer: issuer,
				NameID: bsaml.NameID{Value: "alice@example.com"}}
			signed, err := signer.SignEnveloped(lr.Element())
			if err != nil {
				return nil, err
			}
			env, err := bsaml.SOAPEnvelope(signed)
			if err != nil {
				return nil, err
			}
			return noFollow.Post(u, "text/xml; charset=utf-8", strings.NewReader(string(env)))
		}
	}
	upLR := &bsaml.LogoutRequest{ID: "_outage-front", IssueInstant: time.Now(), Destination: b + "/saml/sp/slo",
		Issuer: "https://idp.example.com/metadata", NameID: bsaml.NameID{Value: "alice@example.com"}}
	sloURL, err := bsaml.RedirectURL(b+"/saml/sp/slo", bsaml.ParamRequest, upLR.Element(), "rs", upSigner)
	if err != nil {
		t.Fatal(err)
	}
	idpLR := &bsaml.LogoutRequest{ID: "_outage-idp-front", IssueInstant: time.Now(), Destination: a + "/saml/idp/slo",
		Issuer: "https://sp.example.com/saml/metadata", NameID: bsaml.NameID{Value: "alice@example.com"}}
	idpSLO, err := bsaml.RedirectURL(a+"/saml/idp/slo", bsaml.ParamRequest, idpLR.Element(), "rs", spSigner)
	if err != nil {
		t.Fatal(err)
	}
	register := func() (*http.Response, error) {
		req, _ := http.NewRequest(http.MethodPost, a+"/oidc/register", strings.NewReader(`{"redirect_uris":["https://app.example/cb"]}`))
		req.Header.Set("Content-Type", "application/json")
		req.Header.Set("Authorization", "Bearer registration-token-0123456789")
		return noFollow.Do(req)
	}
	retry := func() (*http.Response, error) {
		req, _ := http.NewRequest(http.MethodPost, a+"/admin/v1/logouts/"+before+"/retry", nil)
		req.Header.Set("Authorization", "Bearer "+env["ADMIN"])
		return noFollow.Do(req)
	}
	for _, c := range []outageAnswer{
		{"OIDC registration", register, oauthJSON},
		{"admin: retry", retry, adminForm},
		{"SAML IdP front-channel SLO", getURL(idpSLO, ""), page},
		{"SAML IdP SSO", getURL(ssoURL, ""), page},
		{"SAML IdP SOAP SLO", soapTo(a+"/saml/idp/slo/soap", "https://sp.example.com/saml/metadata", spSigner), "Fault"},
		{"SAML SP front-channel SLO", getURL(sloURL, ""), page},
		{"SAML SP SOAP SLO", soapTo(b+"/saml/sp/slo/soap", "https://idp.example.com/metadata", upSigner), "Fault"},
	} {
		resp, err := c.do()
		if err != nil {
			t.Errorf("%s: %v", c.name, err)
			continue
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != http.StatusServiceUnavailable || !strings.Contains(string(body), c.wantIn) || resp.Header.Get("Retry-After") == "" {
			t.Errorf("%s while the store is down: HTTP %d, Retry-After %q, body %.400s; want 503 with %s",
				c.name, resp.StatusCode, resp.Header.Get("Retry-After"), body, c.wantIn)
		}
	}

	// The authorization endpoint answers in its own form (RFC 6749
	// §4.1.2.1): a redirect to the client with temporarily_unavailable.
	for _, base := range []string{a, b} {
		resp, err := getURL(base+"/oidc/authorize?"+authz.Encode(), "")()
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		loc, _ := url.Parse(resp.Header.Get("Location"))
		if resp.StatusCode != http.StatusFound && resp.StatusCode != http.StatusSeeOther || loc == nil ||
			loc.Query().Get("error") != "temporarily_unavailable" || loc.Query().Get("state") != "s" {
			t.Errorf("authorize at %s while the store is down: HTTP %d to %q, want the client's redirect URI with temporarily_unavailable", base, resp.StatusCode, resp.Header.Get("Location"))
		}
	}

	pg.start()
	deadline := time.Now().Add(30 * time.Second)
	for {
		code, _ := get(t, http.DefaultClient, a+"/readyz")
		if code == http.StatusOK {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("/readyz after PostgreSQL came back: %d", code)
		}
		time.Sleep(200 * time.Millisecond)
	}
	// After the outage: the earlier logout is still complete, and a new
	// one is delivered.
	st := waitDone(t, a, env["ADMIN"], before)
	for _, p := range st["participants"].([]any) {
		if row := p.(map[string]any); row["state"] != "delivered" {
			t.Errorf("logout before the outage: participant %v is %v", row["key"], row["state"])
		}
	}
	lo2 := adminJSON(t, a, env["ADMIN"], "POST", "/admin/v1/logouts", `{"session_id":"`+sid2+`"}`, http.StatusCreated)
	waitDone(t, a, env["ADMIN"], lo2["logout"].(map[string]any)["id"].(string))
	if got, _ := rp.got(); len(got) != deliveredBefore+1 {
		t.Fatalf("the RP got %d back-channel logouts in all, want %d", len(got), deliveredBefore+1)
	}

	// A server that answers but takes no writes (read-only): the ping
	// passes, the write probe does not, and /readyz says why.
	conn, err := pgx.Connect(context.Background(), pg.dsn())
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(context.Background())
	setReadOnly := func(on bool) {
		q := "ALTER SYSTEM RESET default_transaction_read_only"
		if on {
			q = "ALTER SYSTEM SET default_transaction_read_only = on"
		}
		if _, err := conn.Exec(context.Background(), q); err != nil {
			t.Fatal(err)
		}
		if _, err := conn.Exec(context.Background(), "SELECT pg_reload_conf()"); err != nil {
			t.Fatal(err)
		}
	}
	waitReady := func(want int, say string) {
		t.Helper()
		deadline := time.Now().Add(30 * time.Second)
		for {
			code, body := get(t, http.DefaultClient, a+"/readyz")
			if code == want && strings.Contains(body, say) {
				return
			}
			if time.Now().After(deadline) {
				t.Fatalf("/readyz: %d %s, want %d saying %q", code, body, want, say)
			}
			time.Sleep(200 * time.Millisecond)
		}
	}
	setReadOnly(true)
	waitReady(http.StatusServiceUnavailable, "not writable")
	setReadOnly(false)
	waitReady(http.StatusOK, "writable")

	// One logger: every line the replica wrote, the readiness warnings
	// among them, is in the configured (JSON) format.
	lines := strings.Split(strings.TrimSpace(logs.String()), "\n")
	probe := 0
	for _, l := range lines {
		var rec map[string]any
		if err := json.Unmarshal([]byte(l), &rec); err != nil {
			t.Fatalf("a log line is not JSON: %q", l)
		}
		if strings.HasPrefix(fmt.Sprint(rec["msg"]), "readiness probe") {
			probe++
		}
	}
	if probe == 0 || len(lines) < 10 {
		t.Fatalf("%d log lines, %d from the readiness probe", len(lines), probe)
	}
}

// syncBuffer is a bytes.Buffer safe for the concurrent writes of a logger.
type syncBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *syncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

// tokensFor logs alice in at app1 once more and returns the access token
// and ID token of the code exchange.
func tokensFor(t *testing.T, base, rpURL string) (string, string) {
	t.Helper()
	jar, _ := cookiejar.New(nil)
	br := &http.Client{Jar: jar, CheckRedirect: func(r *http.Request, _ []*http.Request) error {
		if strings.HasPrefix(r.URL.String(), rpURL) {
			return http.ErrUseLastResponse
		}
		return nil
	}}
	q := url.Values{"client_id": {"app1"}, "redirect_uri": {rpURL + "/cb"}, "response_type": {"code"}, "scope": {"openid"}, "state": {"t"}}
	_, page := get(t, br, base+"/oidc/authorize?"+q.Encode())
	id := strings.SplitN(strings.SplitN(page, `name="id" value="`, 2)[1], `"`, 2)[0]
	resp, err := br.PostForm(base+PathStaticLogin, url.Values{"id": {id}, "username": {"alice"}, "password": {"alice-password"}})
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	loc, _ := url.Parse(resp.Header.Get("Location"))
	req, _ := http.NewRequestWithContext(context.Background(), "POST", base+"/oidc/token", strings.NewReader(url.Values{
		"grant_type": {"authorization_code"}, "code": {loc.Query().Get("code")}, "redirect_uri": {rpURL + "/cb"}}.Encode()))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.SetBasicAuth("app1", "app1-secret-0123456789")
	resp, err = http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var tr struct {
		AccessToken string `json:"access_token"`
		IDToken     string `json:"id_token"`
	}
	if err := json.NewDecoder(resp.Body).Decode(&tr); err != nil || tr.AccessToken == "" {
		t.Fatalf("token: %v", err)
	}
	return tr.AccessToken, tr.IDToken
}
