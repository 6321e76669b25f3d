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
	"strings"
	"time"

	"github.com/gin-gonic/gin"

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

// bridgeConfig is the configuration of the in-process bridge: the
// defaults of `slobridge serve` except what a loopback load test needs
// (http on 127.0.0.1, receivers on loopback) and the static upstream.
const bridgeConfig = `
server:
  base_url: {{BASE}}
log:
  level: error
store:
  bolt:
    path: {{DB}}
delivery:
  allow_loopback: true
  workers: {{WORKERS}}
session:
  cookie_secret: ${COOKIE}
admin:
  token: ${ADMIN}
upstream:
  type: static
  static:
    users:
      - username: load
        subject: user-load
        email: load@example.com
        name: Load Test
        password: ${PASSWORD}
oidc:
  registration_token: ${IAT}
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

// startBridge builds the bridge with cmd/internal/app exactly as
// `slobridge serve` does (a real bbolt file with fsync, the static upstream,
// the OpenID Provider, the SSF transmitter, the admin API) and serves it on
// a fresh 127.0.0.1 port. workers is delivery.workers (0: the default).
func startBridge(ctx context.Context, dir string, workers int, logw io.Writer) (*target, error) {
	gin.SetMode(gin.ReleaseMode)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, fmt.Errorf("listen: %w", err)
	}
	base := "http://" + ln.Addr().String()
	t := &target{
		BaseURL: base, Username: "load", DBPath: filepath.Join(dir, "slobridge.db"),
		RegistrationToken: randomToken(), AdminToken: randomToken(), Password: randomToken(),
	}
	secrets := map[string]string{
		"COOKIE": randomToken() + randomToken(), "ADMIN": t.AdminToken, "PASSWORD": t.Password, "IAT": t.RegistrationToken,
	}
	w := ""
	if workers > 0 {
		w = fmt.Sprint(workers)
	}
	certFile, keyFile, err := writeIdPKey(dir)
	if err != nil {
		_ = ln.Close()
		return nil, fmt.Errorf("SAML IdP key: %w", err)
	}
	doc := strings.NewReplacer("{{BASE}}", base, "{{DB}}", t.DBPath, "{{WORKERS}}", w,
		"{{IDPCERT}}", certFile, "{{IDPKEY}}", keyFile).Replace(bridgeConfig)
	cfg, err := app.Parse([]byte(doc), func(k string) (string, bool) { v, ok := secrets[k]; return v, ok })
	if err != nil {
		_ = ln.Close()
		return nil, fmt.Errorf("bridge configuration: %w", err)
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
		return err
	}
	return t, nil
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

// waitFor polls cond every 2 ms until it holds or timeout passes.
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
