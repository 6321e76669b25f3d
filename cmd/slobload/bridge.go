package main

import (
	"context"
	"crypto/rand"
	"encoding/base64"
	"fmt"
	"io"
	"net"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"github.com/gin-gonic/gin"
	"github.com/jackc/pgx/v5"

	"github.com/slobridge/slobridge/cmd/internal/app"
)

// target is the bridge under load and the credentials the tool uses on it.
type target struct {
	// BaseURL is the bridge's issuer URL, without a trailing slash.
	BaseURL string
	// RegistrationToken is the initial access token of dynamic client
	// registration (RFC 7591), used to register the load test's clients.
	RegistrationToken string
	// AdminToken is the admin API bearer token, used to register the
	// resource server as an SSF event receiver and to read logout status.
	AdminToken string
	// Username and Password log in at the bridge's static upstream.
	Username, Password string
	// DBPath is the bbolt file of an in-process bridge ("" otherwise).
	DBPath string
	// stop ends an in-process bridge and releases its store.
	stop func() error
}

// bridgeConfig is the configuration of the bridge under load: the
// defaults of `slobridge serve` except what a loopback load test needs
// (http on 127.0.0.1, receivers on loopback), the static upstream, dynamic
// registration and the SAML IdP. Secrets come from the environment, under
// the names slobload -url reads too.
const bridgeConfig = `# slobridge serve configuration for the load tool (go run ./cmd/slobload -url ...)
server:
  listen: {{LISTEN}}
  base_url: {{BASE}}
log:
  level: warn
store:
  bolt:
    path: {{DB}}
delivery:
  allow_loopback: true
  workers: {{WORKERS}}
session:
  cookie_secret: ${SLOBLOAD_COOKIE_SECRET}
admin:
  token: ${SLOBLOAD_ADMIN_TOKEN}
upstream:
  type: static
  static:
    users:
      - username: load
        subject: user-load
        email: load@example.com
        name: Load Test
        password: ${SLOBLOAD_PASSWORD}
oidc:
  registration_token: ${SLOBLOAD_REGISTRATION_TOKEN}
  allow_loopback_http: true
  allow_private_backchannel: true
ssf:
  allow_http: true
saml:
  idp:
    enabled: true
    certificate_file: {{IDPCERT}}
    key: {file: {{IDPKEY}}}
`

// loadConfig is what writeConfig produces: the configuration document and
// the secrets it reads from the environment.
type loadConfig struct {
	Doc     string
	Secrets map[string]string
}

// newLoadConfig writes a fresh IdP key pair under dir and returns the
// configuration for a bridge listening on listen, with fresh secrets.
func newLoadConfig(dir, listen string, workers int) (loadConfig, error) {
	return newLoadConfigStore(dir, listen, workers, "", "")
}

// newLoadConfigStore is newLoadConfig with the PostgreSQL backend when dsn
// is set (in schema), else bbolt.
func newLoadConfigStore(dir, listen string, workers int, dsn, schema string) (loadConfig, error) {
	certFile, keyFile, err := writeIdPKey(dir)
	if err != nil {
		return loadConfig{}, fmt.Errorf("SAML IdP key: %w", err)
	}
	w := ""
	if workers > 0 {
		w = fmt.Sprint(workers)
	}
	doc := strings.NewReplacer("{{LISTEN}}", listen, "{{BASE}}", "http://"+listen, "{{DB}}", filepath.Join(dir, "slobridge.db"),
		"{{WORKERS}}", w, "{{IDPCERT}}", certFile, "{{IDPKEY}}", keyFile).Replace(bridgeConfig)
	secrets := map[string]string{
		"SLOBLOAD_COOKIE_SECRET": randomToken() + randomToken(), "SLOBLOAD_ADMIN_TOKEN": randomToken(),
		"SLOBLOAD_PASSWORD": randomToken(), "SLOBLOAD_REGISTRATION_TOKEN": randomToken(),
	}
	if dsn != "" {
		doc = strings.Replace(doc, "store:\n  bolt:\n", "store:\n  driver: postgres\n  postgres:\n    dsn: ${SLOBLOAD_POSTGRES_DSN}\n    schema: "+schema+"\n  bolt:\n", 1)
		secrets["SLOBLOAD_POSTGRES_DSN"] = dsn
	}
	return loadConfig{Doc: doc, Secrets: secrets}, nil
}

// writeConfig writes dir/slobridge.yaml (and the IdP key pair) for
// `slobridge serve` on listen, and the shell exports of its secrets to w,
// for: eval "$(slobload -write-config DIR)".
func writeConfig(dir, listen string, w io.Writer) error {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return err
	}
	lc, err := newLoadConfig(dir, listen, 0)
	if err != nil {
		return err
	}
	path := filepath.Join(dir, "slobridge.yaml")
	if err := os.WriteFile(path, []byte(lc.Doc), 0o600); err != nil {
		return err
	}
	keys := make([]string, 0, len(lc.Secrets))
	for k := range lc.Secrets {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	fmt.Fprintf(w, "# slobridge serve --config %s; then slobload -url http://%s\n", path, listen)
	for _, k := range keys {
		fmt.Fprintf(w, "export %s='%s'\n", k, lc.Secrets[k])
	}
	return nil
}

// startBridge builds the bridge with cmd/internal/app exactly as
// `slobridge serve` does (a real bbolt file with fsync, the static upstream,
// the OpenID Provider, the SAML IdP, the SSF transmitter, the admin API)
// and serves it on a fresh 127.0.0.1 port. workers is delivery.workers (0:
// the default).
func startBridge(ctx context.Context, dir string, workers int, pgDSN, signingAlg string, logw io.Writer) (*target, error) {
	gin.SetMode(gin.ReleaseMode)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, fmt.Errorf("listen: %w", err)
	}
	schema := ""
	if pgDSN != "" {
		schema = "slobload_" + strings.ToLower(randomToken()[:12])
		schema = strings.NewReplacer("-", "_").Replace(schema)
	}
	lc, err := newLoadConfigStore(dir, ln.Addr().String(), workers, pgDSN, schema)
	if err != nil {
		_ = ln.Close()
		return nil, err
	}
	cfg, err := app.Parse([]byte(lc.Doc), func(k string) (string, bool) { v, ok := lc.Secrets[k]; return v, ok })
	if err != nil {
		_ = ln.Close()
		return nil, fmt.Errorf("bridge configuration: %w", err)
	}
	cfg.OIDC.SigningAlg = signingAlg
	dbPath := cfg.Store.Bolt.Path
	if pgDSN != "" {
		dbPath = ""
	}
	t := &target{
		BaseURL: "http://" + ln.Addr().String(), Username: "load", DBPath: dbPath,
		RegistrationToken: lc.Secrets["SLOBLOAD_REGISTRATION_TOKEN"], AdminToken: lc.Secrets["SLOBLOAD_ADMIN_TOKEN"],
		Password: lc.Secrets["SLOBLOAD_PASSWORD"],
	}
	if logw == nil {
		logw = io.Discard
	}
	log, err := app.NewLogger(cfg.Log, logw)
	if err != nil {
		_ = ln.Close()
		return nil, err
	}
	sctx, cancel := context.WithCancel(ctx)
	a, err := app.New(sctx, cfg, log)
	if err != nil {
		cancel()
		_ = ln.Close()
		return nil, fmt.Errorf("start bridge: %w", err)
	}
	done := make(chan error, 1)
	go func() { done <- a.Serve(sctx, ln) }()
	t.stop = func() error {
		cancel()
		err := <-done
		if cerr := a.Close(); err == nil {
			err = cerr
		}
		if schema != "" {
			if derr := dropSchema(pgDSN, schema); err == nil {
				err = derr
			}
		}
		return err
	}
	return t, nil
}

// dropSchema removes the load test's PostgreSQL schema.
func dropSchema(dsn, schema string) error {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	conn, err := pgx.Connect(ctx, dsn)
	if err != nil {
		return fmt.Errorf("drop schema %s: %w", schema, err)
	}
	defer conn.Close(ctx)
	if _, err := conn.Exec(ctx, "DROP SCHEMA IF EXISTS "+pgx.Identifier{schema}.Sanitize()+" CASCADE"); err != nil {
		return fmt.Errorf("drop schema %s: %w", schema, err)
	}
	return nil
}

// Close stops an in-process bridge; a remote one is left alone.
func (t *target) Close() error {
	if t.stop == nil {
		return nil
	}
	return t.stop()
}

// randomToken returns 32 random bytes, base64url: secrets of the
// in-process bridge, never printed.
func randomToken() string {
	b := make([]byte, 32)
	if _, err := rand.Read(b); err != nil {
		panic(err) // crypto/rand never fails on Linux
	}
	return base64.RawURLEncoding.EncodeToString(b)
}

// fileSize returns the size of path, or -1.
func fileSize(path string) int64 {
	if path == "" {
		return -1
	}
	fi, err := os.Stat(path)
	if err != nil {
		return -1
	}
	return fi.Size()
}

// waitFor polls cond every 2 ms until it holds or timeout passes. The
// latencies the tool reports are stamped by the receivers themselves, so
// the polling interval does not enter them.
func waitFor(ctx context.Context, timeout time.Duration, cond func() bool) bool {
	deadline := time.Now().Add(timeout)
	for !cond() {
		if time.Now().After(deadline) || ctx.Err() != nil {
			return false
		}
		time.Sleep(2 * time.Millisecond)
	}
	return true
}
