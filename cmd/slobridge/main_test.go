package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"
)

// binary is the slobridge binary built once for the tests of this package.
var binary string

func TestMain(m *testing.M) {
	code := func() int {
		dir, err := os.MkdirTemp("", "slobridge-bin-")
		if err != nil {
			fmt.Fprintln(os.Stderr, err)
			return 1
		}
		defer os.RemoveAll(dir)
		binary = filepath.Join(dir, "slobridge")
		out, err := exec.Command("go", "build", "-o", binary, ".").CombinedOutput()
		if err != nil {
			fmt.Fprintf(os.Stderr, "go build: %v\n%s", err, out)
			return 1
		}
		return m.Run()
	}()
	os.Exit(code)
}

// waitTimeout bounds every wait in these tests; it only matters when
// something hangs.
const waitTimeout = 60 * time.Second

// testEnv is the environment of every bridge process the tests start.
var testEnv = []string{
	"SLOBRIDGE_TEST_COOKIE=" + strings.Repeat("k", 40),
	"SLOBRIDGE_ADMIN_TOKEN=" + adminToken,
	"SLOBRIDGE_TEST_PASSWORD=password-of-alice",
}

const adminToken = "crash-test-admin-token"

// baseConfig is the configuration of the tests' bridge; %s is the bbolt
// file.
const baseConfig = `
server:
  listen: 127.0.0.1:0
  base_url: http://127.0.0.1:8080
log:
  level: info
store:
  bolt:
    path: %s
    lock_timeout: 500ms
delivery:
  workers: 5
  allow_loopback: true
  attempt_timeout: 5s
  lease: 6s
  backoff_base: 50ms
  backoff_max: 200ms
  poll_interval: 50ms
session:
  cookie_secret: ${SLOBRIDGE_TEST_COOKIE}
admin:
  token: ${SLOBRIDGE_ADMIN_TOKEN}
oidc:
  allow_loopback_http: true
upstream:
  type: static
  static:
    users:
      - username: alice
        password: {env: SLOBRIDGE_TEST_PASSWORD}
`

// writeConfig writes the configuration for the bbolt file db.
func writeConfig(t *testing.T, db string) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), "slobridge.yaml")
	if err := os.WriteFile(path, []byte(fmt.Sprintf(baseConfig, db)), 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}

// proc is a running `slobridge serve`.
type proc struct {
	cmd    *exec.Cmd
	addr   chan string
	done   chan struct{}
	mu     sync.Mutex
	stderr bytes.Buffer
	err    error
}

// startServe starts `slobridge serve --config cfg` and scans its JSON log
// for the listening address. The process is killed when the test ends.
func startServe(t *testing.T, cfg string) *proc {
	t.Helper()
	cmd := exec.Command(binary, "serve", "--config", cfg)
	cmd.Env = append(os.Environ(), testEnv...)
	pipe, err := cmd.StderrPipe()
	if err != nil {
		t.Fatal(err)
	}
	p := &proc{cmd: cmd, addr: make(chan string, 1), done: make(chan struct{})}
	if err := cmd.Start(); err != nil {
		t.Fatalf("start %s: %v", binary, err)
	}
	go func() {
		sc := bufio.NewScanner(pipe)
		for sc.Scan() {
			line := sc.Text()
			p.mu.Lock()
			p.stderr.WriteString(line + "\n")
			p.mu.Unlock()
			var rec struct {
				Msg  string `json:"msg"`
				Addr string `json:"addr"`
			}
			if json.Unmarshal([]byte(line), &rec) == nil && rec.Msg == "slobridge serving" {
				p.addr <- rec.Addr
			}
		}
		p.err = cmd.Wait()
		close(p.done)
	}()
	t.Cleanup(func() {
		_ = cmd.Process.Kill()
		<-p.done
	})
	return p
}

// log returns what the process wrote to stderr so far.
func (p *proc) log() string {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.stderr.String()
}

// baseURL waits for the process to listen and returns its URL.
func (p *proc) baseURL(t *testing.T) string {
	t.Helper()
	select {
	case a := <-p.addr:
		return "http://" + a
	case <-p.done:
		t.Fatalf("slobridge exited before listening (%v):\n%s", p.err, p.log())
	case <-time.After(waitTimeout):
		t.Fatalf("slobridge did not start listening:\n%s", p.log())
	}
	return ""
}

// exitWithin waits for the process to exit by itself.
func (p *proc) exitWithin(t *testing.T, d time.Duration) error {
	t.Helper()
	select {
	case <-p.done:
		return p.err
	case <-time.After(d):
		t.Fatalf("slobridge did not exit within %s:\n%s", d, p.log())
	}
	return nil
}

// admin calls the admin API through the real CLI (`slobridge admin …`)
// and decodes its JSON output.
func admin(t *testing.T, base string, out any, args ...string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), waitTimeout)
	defer cancel()
	cmd := exec.CommandContext(ctx, binary, append(append([]string{"admin"}, args...), "-o", "json")...)
	cmd.Env = append(os.Environ(), "SLOBRIDGE_URL="+base, "SLOBRIDGE_ADMIN_TOKEN="+adminToken)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil {
		t.Fatalf("slobridge admin %v: %v\n%s", args, err, stderr.String())
	}
	if err := json.Unmarshal(stdout.Bytes(), out); err != nil {
		t.Fatalf("slobridge admin %v printed %q: %v", args, stdout.String(), err)
	}
}

// httpGet returns the status of GET u.
func httpGet(u string) (int, error) {
	resp, err := http.Get(u)
	if err != nil {
		return 0, err
	}
	_, _ = io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	return resp.StatusCode, nil
}

// waitLog waits until the process has logged a line containing s.
func (p *proc) waitLog(t *testing.T, s string) {
	t.Helper()
	deadline := time.Now().Add(waitTimeout)
	for !strings.Contains(p.log(), s) {
		if time.Now().After(deadline) {
			t.Fatalf("slobridge never logged %q:\n%s", s, p.log())
		}
		time.Sleep(10 * time.Millisecond)
	}
}
