package main

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/rsa"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"encoding/pem"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/gin-gonic/gin"

	"github.com/slobridge/slobridge"
	adminapi "github.com/slobridge/slobridge/cmd/internal/admin"
	"github.com/slobridge/slobridge/cmd/internal/app"
	"github.com/slobridge/slobridge/store"
	"github.com/slobridge/slobridge/store/bolt"
)

func TestCommandLineUsage(t *testing.T) {
	tests := []struct {
		name   string
		args   []string
		code   int
		stdout string
		stderr string
	}{
		{"no command", nil, 2, "", "usage: slobridge"},
		{"unknown command", []string{"frobnicate"}, 2, "", `unknown command "frobnicate"`},
		{"version", []string{"version"}, 0, "slobridge ", ""},
		{"help", []string{"help"}, 0, "usage: slobridge", ""},
		{"serve without config", []string{"serve"}, 2, "", "--config FILE is required"},
		{"serve bad flag", []string{"serve", "--colour"}, 2, "", "flag provided but not defined: -colour"},
		{"serve missing file", []string{"serve", "--config", "/nonexistent/slobridge.yaml"}, 1, "", "/nonexistent/slobridge.yaml"},
		{"migrate without config", []string{"migrate"}, 2, "", "--config FILE is required"},
		{"check without config", []string{"check"}, 2, "", "--config FILE is required"},
		{"check missing file", []string{"check", "--config", "/nonexistent/x.yaml"}, 1, "", "/nonexistent/x.yaml"},
		{"admin without sub-command", []string{"admin"}, 2, "", "sub-commands:"},
		{"admin unknown sub-command", []string{"admin", "purge"}, 2, "", `unknown admin sub-command "purge"`},
		{"admin logout without target", []string{"admin", "logout"}, 2, "", "exactly one of --session SID and --user USER"},
		{"admin logout with both", []string{"admin", "logout", "--user", "u", "--session", "s"}, 2, "", "exactly one of"},
		{"admin status with two ids", []string{"admin", "status", "a", "b"}, 2, "", "takes at most one LOGOUT_ID"},
		{"admin help", []string{"admin", "--help"}, 0, "sub-commands:", ""},
		{"admin sub-command help", []string{"admin", "logout", "--help"}, 0, "usage: slobridge admin logout (--session SID | --user USER)", ""},
		{"admin bad output", []string{"admin", "receivers", "-o", "yaml"}, 2, "", `--output must be table or json, not "yaml"`},
		{"admin sessions without user", []string{"admin", "sessions"}, 2, "", "needs --user USER"},
		{"admin bad server", []string{"admin", "status", "x", "--server", "ftp://host"}, 1, "", "is not an http(s) URL"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Setenv(envAdminToken, "some-token")
			var stdout, stderr bytes.Buffer
			code := run(context.Background(), tt.args, &stdout, &stderr)
			if code != tt.code || !strings.Contains(stdout.String(), tt.stdout) || !strings.Contains(stderr.String(), tt.stderr) {
				t.Errorf("exit %d, want %d\nstdout: %s\nstderr: %s", code, tt.code, stdout.String(), stderr.String())
			}
		})
	}
}

// TestAdminCommands runs the admin sub-commands in-process against the
// real admin API over a bbolt store.
func TestAdminCommands(t *testing.T) {
	gin.SetMode(gin.ReleaseMode)
	ctx := context.Background()
	st, err := bolt.Open(filepath.Join(t.TempDir(), "cli.db"), bolt.Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = st.Close() })
	eng, err := slobridge.NewEngine(slobridge.Options{Store: st, Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
	if err != nil {
		t.Fatal(err)
	}
	s, err := eng.CreateSession(ctx, store.Session{UserID: "carol", ExpiresAt: time.Now().Add(time.Hour)})
	if err != nil {
		t.Fatal(err)
	}
	adm, err := adminapi.New(adminapi.Options{Engine: eng, Token: "cli-test-admin-token", Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
	if err != nil {
		t.Fatal(err)
	}
	r := gin.New()
	adm.Mount(r)
	srv := httptest.NewServer(r)
	t.Cleanup(srv.Close)
	tokenFile := filepath.Join(t.TempDir(), "token")
	if err := os.WriteFile(tokenFile, []byte("cli-test-admin-token\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	t.Setenv(envAdminURL, srv.URL)
	t.Setenv(envAdminToken, "")

	call := func(want int, args ...string) string {
		t.Helper()
		var stdout, stderr bytes.Buffer
		if code := run(ctx, append([]string{"admin"}, args...), &stdout, &stderr); code != want {
			t.Fatalf("admin %v: exit %d, want %d\n%s%s", args, code, want, stdout.String(), stderr.String())
		}
		return stdout.String() + stderr.String()
	}

	if out := call(1, "sessions", "--user", "carol"); !strings.Contains(out, "no admin token") {
		t.Fatalf("without a token: %s", out)
	}
	var list adminapi.Sessions
	if err := json.Unmarshal([]byte(call(0, "sessions", "--user", "carol", "--token-file", tokenFile, "-o", "json")), &list); err != nil || len(list.Sessions) != 1 || list.Sessions[0].ID != s.ID {
		t.Fatalf("sessions: %+v %v", list, err)
	}
	t.Setenv(envAdminToken, "wrong-token-wrong-token")
	if out := call(1, "sessions", "--user", "carol"); !strings.Contains(out, "server answered 401: invalid_token") {
		t.Fatalf("wrong token: %s", out)
	}
	t.Setenv(envAdminToken, "cli-test-admin-token")
	if out := call(1, "logout", "--session", "no-such-session"); !strings.Contains(out, "server answered 404: not_found") {
		t.Fatalf("unknown session: %s", out)
	}
	var lo adminapi.LogoutResponse
	if err := json.Unmarshal([]byte(call(0, "logout", "--user", "carol", "-o", "json")), &lo); err != nil || len(lo.Logout.SessionIDs) != 1 {
		t.Fatalf("logout --user: %+v %v", lo, err)
	}
	var status slobridge.LogoutStatus
	if err := json.Unmarshal([]byte(call(0, "status", lo.Logout.ID, "-o", "json")), &status); err != nil || status.Logout.ID != lo.Logout.ID {
		t.Fatalf("status: %+v %v", status, err)
	}
	var rr adminapi.RetryResponse
	if err := json.Unmarshal([]byte(call(0, "retry", lo.Logout.ID, "--timeout", "10s", "-o", "json")), &rr); err != nil || rr.LogoutID != lo.Logout.ID || rr.Reset != 0 {
		t.Fatalf("retry: %+v %v", rr, err)
	}
}

// TestAdminReceiverCommands manages SSF receivers with the CLI against a
// bridge served in-process from a configuration.
func TestAdminReceiverCommands(t *testing.T) {
	gin.SetMode(gin.ReleaseMode)
	for _, e := range testEnv {
		k, v, _ := strings.Cut(e, "=")
		t.Setenv(k, v)
	}
	doc := fmt.Sprintf(baseConfig, filepath.Join(t.TempDir(), "cli-recv.db")) + "ssf:\n  allow_http: true\n"
	cfg, err := app.Parse([]byte(doc), os.LookupEnv)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	a, err := app.New(ctx, cfg, slog.New(slog.NewTextHandler(io.Discard, nil)))
	if err != nil {
		cancel()
		t.Fatal(err)
	}
	srv := httptest.NewServer(a.Handler())
	t.Cleanup(func() { srv.Close(); cancel(); _ = a.Close() })
	t.Setenv(envAdminURL, srv.URL)
	authFile := filepath.Join(t.TempDir(), "auth")
	if err := os.WriteFile(authFile, []byte("Bearer push-secret\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	call := func(want int, args ...string) string {
		t.Helper()
		var stdout, stderr bytes.Buffer
		if code := run(ctx, append([]string{"admin"}, args...), &stdout, &stderr); code != want {
			t.Fatalf("admin %v: exit %d, want %d\n%s%s", args, code, want, stdout.String(), stderr.String())
		}
		return stdout.String() + stderr.String()
	}
	call(0, "add-receiver", "orders", "--push-url", "http://127.0.0.1:9/events", "--name", "Orders", "--authorization-file", authFile)
	out := call(0, "receivers", "-o", "json")
	if !strings.Contains(out, `"id": "orders"`) || !strings.Contains(out, `"has_authorization": true`) || strings.Contains(out, "push-secret") {
		t.Fatalf("receivers: %s", out)
	}
	if out := call(1, "add-receiver", "bad", "--push-url", "ftp://x"); !strings.Contains(out, "server answered 400: invalid_request") {
		t.Fatalf("bad receiver: %s", out)
	}
	call(2, "add-receiver", "orders")
	call(2, "logout", "--user", "u", "--authorization-file", authFile)
	if out := call(0, "remove-receiver", "orders"); out != "done\n" {
		t.Fatalf("remove-receiver: %q", out)
	}
	if out := call(1, "remove-receiver", "orders"); !strings.Contains(out, "404") {
		t.Fatalf("second remove: %s", out)
	}
	// No SAML IdP configured: registration is not served.
	if out := call(1, "register-sp", "--metadata-url", "https://sp.example.com/md"); !strings.Contains(out, "404") {
		t.Fatalf("register-sp without an IdP: %s", out)
	}
	// The static upstream of this configuration.
	if out := call(0, "upstreams", "-o", "json"); !strings.Contains(out, `"name": "static"`) || !strings.Contains(out, `"available": true`) {
		t.Fatalf("upstreams: %s", out)
	}
	call(2, "upstreams", "extra")
}

func TestCheckCommand(t *testing.T) {
	for _, e := range testEnv {
		k, v, _ := strings.Cut(e, "=")
		t.Setenv(k, v)
	}
	db := filepath.Join(t.TempDir(), "check.db")
	good := writeConfig(t, db)
	var stdout, stderr bytes.Buffer
	if code := run(context.Background(), []string{"check", "--config", good}, &stdout, &stderr); code != 0 || !strings.Contains(stdout.String(), "configuration OK") {
		t.Fatalf("check of a good config: exit %d\n%s%s", code, stdout.String(), stderr.String())
	}
	if _, err := os.Stat(db); err == nil {
		t.Fatal("check created the database")
	}
	t.Setenv("SLOBRIDGE_ADMIN_TOKEN", "")
	stdout.Reset()
	stderr.Reset()
	if code := run(context.Background(), []string{"check", "--config", good}, &stdout, &stderr); code != 1 || !strings.Contains(stderr.String(), "admin.token: environment variable SLOBRIDGE_ADMIN_TOKEN is empty") {
		t.Fatalf("check with an empty secret: exit %d\n%s", code, stderr.String())
	}
}

// TestCheckOnline: `check` does not fetch metadata URLs, `check --online`
// does and names the key whose URL does not answer; warnings (here a
// transient upstream NameID without user_id_attribute) are printed.
func TestCheckOnline(t *testing.T) {
	for _, e := range testEnv {
		k, v, _ := strings.Cut(e, "=")
		t.Setenv(k, v)
	}
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := l.Addr().String()
	l.Close()
	td, err := filepath.Abs(filepath.Join("..", "internal", "app", "testdata"))
	if err != nil {
		t.Fatal(err)
	}
	doc := strings.Replace(fmt.Sprintf(baseConfig, filepath.Join(t.TempDir(), "c.db")), "  type: static\n", "  type: saml\n", 1) + `
saml:
  sp:
    cert_file: ` + filepath.Join(td, "bridge-sp.crt") + `
    key_file: ` + filepath.Join(td, "bridge-sp.key") + `
    upstreams:
      - name: corp
        metadata_url: http://` + addr + `/metadata
        name_id_format: urn:oasis:names:tc:SAML:2.0:nameid-format:transient
`
	cfg := filepath.Join(t.TempDir(), "online.yaml")
	if err := os.WriteFile(cfg, []byte(doc), 0o600); err != nil {
		t.Fatal(err)
	}
	var stdout, stderr bytes.Buffer
	if code := run(context.Background(), []string{"check", "--config", cfg}, &stdout, &stderr); code != 0 ||
		!strings.Contains(stdout.String(), "warning: saml.sp.upstreams[0]: name_id_format is transient") {
		t.Fatalf("offline check: exit %d\n%s%s", code, stdout.String(), stderr.String())
	}
	stdout.Reset()
	stderr.Reset()
	if code := run(context.Background(), []string{"check", "--online", "--config", cfg}, &stdout, &stderr); code != 1 ||
		!strings.Contains(stderr.String(), "config: saml.sp.upstreams[0].metadata_url:") {
		t.Fatalf("online check with the metadata URL down: exit %d\n%s%s", code, stdout.String(), stderr.String())
	}
}

// TestVersion: `slobridge version` names a version (never "(devel)") and
// the Go version; a release build's -ldflags stamps show as given.
func TestVersion(t *testing.T) {
	out, err := exec.Command(binary, "version").Output()
	if err != nil {
		t.Fatal(err)
	}
	if v := string(out); !strings.HasPrefix(v, "slobridge v") || strings.Contains(v, "(devel)") || !strings.Contains(v, "go1.") {
		t.Fatalf("version: %q", v)
	}
	stamped := filepath.Join(t.TempDir(), "slobridge")
	ld := "-X main.buildVersion=v9.8.7 -X main.buildCommit=0123456789abcdef -X main.buildDate=2026-12-06T12:00:00Z"
	if b, err := exec.Command("go", "build", "-ldflags", ld, "-o", stamped, ".").CombinedOutput(); err != nil {
		t.Fatalf("go build with stamps: %v\n%s", err, b)
	}
	out, err = exec.Command(stamped, "version").Output()
	if err != nil {
		t.Fatal(err)
	}
	if v := string(out); !strings.HasPrefix(v, "slobridge v9.8.7 (commit 0123456789ab, built 2026-12-06T12:00:00Z, go1.") {
		t.Fatalf("stamped version: %q", v)
	}
}

// readmeBlock returns the first ```sh block of the README after heading.
func readmeBlock(t *testing.T, heading, contains string) string {
	t.Helper()
	b, err := os.ReadFile(filepath.Join("..", "..", "README.md"))
	if err != nil {
		t.Fatal(err)
	}
	doc := string(b)
	i := strings.Index(doc, heading)
	if i < 0 {
		t.Fatalf("README has no %q", heading)
	}
	for _, m := range regexp.MustCompile("(?s)```sh\n(.*?)```").FindAllStringSubmatch(doc[i:], -1) {
		if strings.Contains(m[1], contains) {
			return m[1]
		}
	}
	t.Fatalf("README has no sh block with %q after %q", contains, heading)
	return ""
}

// TestReadmeKeysCommands runs the README's key and secret commands as
// written, in a temporary directory, and uses what they made in a
// configuration that `check` accepts.
func TestReadmeKeysCommands(t *testing.T) {
	if _, err := exec.LookPath("openssl"); err != nil {
		msg := "openssl not found (apt-get install openssl)"
		if os.Getenv("CI") == "true" {
			t.Fatal(msg)
		}
		t.Skip(msg)
	}
	block := readmeBlock(t, "### Installing and deploying", "openssl req")
	dir := t.TempDir()
	cmd := exec.Command("sh", "-e", "-c", block)
	cmd.Dir = dir
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("the README's key commands: %v\n%s", err, out)
	}
	k := filepath.Join(dir, "keys")
	for _, e := range testEnv {
		key, v, _ := strings.Cut(e, "=")
		t.Setenv(key, v)
	}
	doc := fmt.Sprintf(baseConfig, filepath.Join(dir, "x.db"))
	doc = strings.Replace(doc, "cookie_secret: ${SLOBRIDGE_TEST_COOKIE}", "cookie_secret: {file: "+filepath.Join(k, "cookie")+"}", 1)
	doc = strings.Replace(doc, "token: ${SLOBRIDGE_ADMIN_TOKEN}", "token: {file: "+filepath.Join(k, "admin-token")+"}", 1)
	doc += "saml:\n  idp:\n    enabled: true\n    certificate_file: " + filepath.Join(k, "saml-idp.crt") + "\n    key: {file: " + filepath.Join(k, "saml-idp.key") + "}\n"
	cfg := filepath.Join(dir, "slobridge.yaml")
	if err := os.WriteFile(cfg, []byte(doc), 0o600); err != nil {
		t.Fatal(err)
	}
	var stdout, stderr bytes.Buffer
	if code := run(context.Background(), []string{"check", "--config", cfg}, &stdout, &stderr); code != 0 {
		t.Fatalf("check with the README's keys: exit %d\n%s%s", code, stdout.String(), stderr.String())
	}
	if _, err := app.Load(cfg); err != nil {
		t.Fatal(err)
	}
}

// TestReadmeInstallCommands runs the README's install commands, with the
// installed or built binary put in a temporary directory.
func TestReadmeInstallCommands(t *testing.T) {
	block := readmeBlock(t, "### Installing and deploying", "go install")
	dir := t.TempDir()
	root, err := filepath.Abs(filepath.Join("..", ".."))
	if err != nil {
		t.Fatal(err)
	}
	for _, line := range strings.Split(block, "\n") {
		line, _, _ = strings.Cut(line, "#")
		if line = strings.TrimSpace(line); line == "" {
			continue
		}
		line = strings.Replace(line, "-o slobridge", "-o "+filepath.Join(dir, "slobridge-static"), 1)
		cmd := exec.Command("sh", "-c", line)
		cmd.Dir = root
		cmd.Env = append(os.Environ(), "GOBIN="+dir)
		if out, err := cmd.CombinedOutput(); err != nil {
			t.Fatalf("%s: %v\n%s", line, err, out)
		}
	}
	for _, bin := range []string{"slobridge", "slobridge-static"} {
		if out, err := exec.Command(filepath.Join(dir, bin), "version").Output(); err != nil || !strings.HasPrefix(string(out), "slobridge v") {
			t.Fatalf("%s version: %q %v", bin, out, err)
		}
	}
}

// TestCheckPrintsTheUpstreamOPRegistration: with upstream.type oidc, check
// prints the four URIs to register at each OpenID Provider, and the JWKS
// URI for one that uses private_key_jwt.
func TestCheckPrintsTheUpstreamOPRegistration(t *testing.T) {
	for _, e := range testEnv {
		k, v, _ := strings.Cut(e, "=")
		t.Setenv(k, v)
	}
	key, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	keyFile := filepath.Join(t.TempDir(), "op.pem")
	if err := os.WriteFile(keyFile, pem.EncodeToMemory(&pem.Block{Type: "RSA PRIVATE KEY", Bytes: x509.MarshalPKCS1PrivateKey(key)}), 0o600); err != nil {
		t.Fatal(err)
	}
	doc := strings.Replace(fmt.Sprintf(baseConfig, filepath.Join(t.TempDir(), "c.db")), "  type: static\n",
		"  type: oidc\n  oidc:\n    - {name: corp, issuer: https://login.example.com, client_id: bridge, client_secret: {env: SLOBRIDGE_TEST_PASSWORD}}\n"+
			"    - {name: partner, issuer: https://partner.example.com, client_id: bridge, token_endpoint_auth_method: private_key_jwt, private_key: {file: "+keyFile+"}}\n", 1)
	path := filepath.Join(t.TempDir(), "oidc.yaml")
	if err := os.WriteFile(path, []byte(doc), 0o600); err != nil {
		t.Fatal(err)
	}
	var stdout, stderr bytes.Buffer
	if code := run(context.Background(), []string{"check", "--config", path}, &stdout, &stderr); code != 0 {
		t.Fatalf("check: exit %d\n%s%s", code, stdout.String(), stderr.String())
	}
	for _, want := range []string{
		"upstream corp (https://login.example.com): register at the OpenID Provider, for client_id bridge:",
		"redirect URI:              http://127.0.0.1:8080/upstream/oidc/corp/callback",
		"back-channel logout URI:   http://127.0.0.1:8080/upstream/oidc/corp/backchannel-logout",
		"front-channel logout URI:  http://127.0.0.1:8080/upstream/oidc/corp/frontchannel-logout",
		"post-logout redirect URI:  http://127.0.0.1:8080/upstream/oidc/corp/logged-out",
		"upstream partner (https://partner.example.com): register at the OpenID Provider, for client_id bridge:",
		"JWKS URI (private_key_jwt): http://127.0.0.1:8080/upstream/oidc/partner/jwks.json",
	} {
		if !strings.Contains(stdout.String(), want) {
			t.Errorf("check output lacks %q:\n%s", want, stdout.String())
		}
	}
}

// TestKeysGenerate: keys generate writes matching RSA 3072 key pairs,
// a cookie secret and an admin token with safe permissions, refuses to
// overwrite them, and the configuration it prints passes check.
func TestKeysGenerate(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "keys")
	var stdout, stderr bytes.Buffer
	if code := run(context.Background(), []string{"keys", "generate", "--dir", dir}, &stdout, &stderr); code != 0 {
		t.Fatalf("keys generate: exit %d: %s", code, stderr.String())
	}
	for name, want := range map[string]os.FileMode{"saml-sp.key": 0o600, "saml-sp.crt": 0o644, "saml-idp.key": 0o600,
		"saml-idp.crt": 0o644, "cookie": 0o600, "admin-token": 0o600} {
		fi, err := os.Stat(filepath.Join(dir, name))
		if err != nil || fi.Mode().Perm() != want {
			t.Errorf("%s: %v, mode %v, want %v", name, err, fi.Mode().Perm(), want)
		}
	}
	if fi, err := os.Stat(dir); err != nil || fi.Mode().Perm() != 0o700 {
		t.Errorf("the directory: %v %v, want mode 0700", err, fi.Mode().Perm())
	}
	for _, p := range []string{"saml-sp", "saml-idp"} {
		pair, err := tls.LoadX509KeyPair(filepath.Join(dir, p+".crt"), filepath.Join(dir, p+".key"))
		if err != nil {
			t.Fatalf("%s: %v", p, err)
		}
		if k, ok := pair.PrivateKey.(*rsa.PrivateKey); !ok || k.N.BitLen() != 3072 {
			t.Errorf("%s: key %T, want RSA 3072", p, pair.PrivateKey)
		}
	}
	for _, p := range []string{"cookie", "admin-token"} {
		if b, _ := os.ReadFile(filepath.Join(dir, p)); len(strings.TrimSpace(string(b))) < 64 {
			t.Errorf("%s is %d characters", p, len(strings.TrimSpace(string(b))))
		}
	}
	out := stdout.String()
	snippet := out[strings.Index(out, "session:"):strings.Index(out, "\nThe admin CLI")]
	doc := fmt.Sprintf(`server:
  listen: 127.0.0.1:0
  base_url: http://127.0.0.1:8080
store:
  bolt:
    path: %s
oidc:
  allow_loopback_http: true
upstream:
  type: static
  static:
    users:
      - username: alice
        password: {env: SLOBRIDGE_TEST_PASSWORD}
`, filepath.Join(t.TempDir(), "k.db")) + snippet
	cfg := filepath.Join(t.TempDir(), "slobridge.yaml")
	if err := os.WriteFile(cfg, []byte(doc), 0o600); err != nil {
		t.Fatal(err)
	}
	t.Setenv("SLOBRIDGE_TEST_PASSWORD", "password-of-alice")
	stdout.Reset()
	stderr.Reset()
	if code := run(context.Background(), []string{"check", "--config", cfg}, &stdout, &stderr); code != 0 {
		t.Fatalf("check of the printed configuration: exit %d\n%s\n%s%s", code, doc, stdout.String(), stderr.String())
	}
	before, _ := os.ReadFile(filepath.Join(dir, "cookie"))
	stderr.Reset()
	if code := run(context.Background(), []string{"keys", "generate", "--dir", dir}, &stdout, &stderr); code != 1 ||
		!strings.Contains(stderr.String(), "exists: nothing was written") {
		t.Fatalf("a second run: exit %d: %s", code, stderr.String())
	}
	if after, _ := os.ReadFile(filepath.Join(dir, "cookie")); !bytes.Equal(before, after) {
		t.Fatal("a refused run changed the cookie secret")
	}
}
