package main

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"net/http"
	"os"
	"os/exec"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"
)

// syncBuffer is an io.Writer that tests can read while it is written.
type syncBuffer struct {
	mu sync.Mutex
	b  strings.Builder
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// TestDemoCommand runs `slobridge demo` on free ports, follows its printed
// instructions far enough to find every part answering, and stops it the
// way Ctrl-C does (the context ends); it must exit cleanly.
func TestDemoCommand(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	var out, errOut syncBuffer
	done := make(chan error, 1)
	go func() { done <- demoMain(ctx, []string{"--listen", "127.0.0.1:0"}, &out, &errOut) }()

	deadline := time.Now().Add(60 * time.Second)
	for !strings.Contains(out.String(), "Try it") {
		select {
		case err := <-done:
			t.Fatalf("demo exited early: %v\nstdout:\n%s\nstderr:\n%s", err, out.String(), errOut.String())
		default:
		}
		if time.Now().After(deadline) {
			t.Fatalf("demo printed no instructions; stderr:\n%s", errOut.String())
		}
		time.Sleep(20 * time.Millisecond)
	}
	text := out.String()
	for _, want := range []string{"Bridge", "Upstream SAML IdP", "Calendar", "Chat", "Wiki", "Reports API", "alice", "bob", "admin logout --user alice"} {
		if !strings.Contains(text, want) {
			t.Errorf("instructions lack %q:\n%s", want, text)
		}
	}
	if !regexp.MustCompile(`alice\s+password \S{8,}`).MatchString(text) {
		t.Errorf("no password printed for alice:\n%s", text)
	}
	bridge := regexp.MustCompile(`Bridge\s+(http://127\.0\.0\.1:\d+)`).FindStringSubmatch(text)
	if bridge == nil {
		t.Fatalf("no bridge URL in:\n%s", text)
	}
	resp, err := http.Get(bridge[1] + "/.well-known/openid-configuration")
	if err != nil {
		t.Fatal(err)
	}
	var disc struct {
		Issuer string `json:"issuer"`
	}
	err = json.NewDecoder(resp.Body).Decode(&disc)
	resp.Body.Close()
	if err != nil || disc.Issuer != bridge[1] {
		t.Errorf("discovery issuer %q (%v), want %s", disc.Issuer, err, bridge[1])
	}
	// Every URL the demo prints answers a page (the bridge's root too,
	// and the Reports API's), and no favicon request is a 404.
	for _, m := range regexp.MustCompile(`(?m)^  (Bridge|Upstream SAML IdP|Calendar|Chat|Wiki|Reports API)\s+(http://127\.0\.0\.1:\d+)`).FindAllStringSubmatch(text, -1) {
		code, body := getPage(t, m[2]+"/")
		if code != http.StatusOK || !strings.Contains(body, "<html") {
			t.Errorf("%s at %s answered %d:\n%s", m[1], m[2], code, body)
		}
		if m[1] == "Bridge" && (!strings.Contains(body, "Calendar") || !strings.Contains(body, "/.well-known/openid-configuration") ||
			!strings.Contains(body, "/saml/idp/metadata")) {
			t.Errorf("the bridge's root page lacks the demo's apps or its endpoints:\n%s", body)
		}
		if m[1] == "Reports API" && !strings.Contains(body, "GET /data") {
			t.Errorf("the Reports API page does not say what it accepts:\n%s", body)
		}
		if code, _ := getPage(t, m[2]+"/favicon.ico"); code == http.StatusNotFound {
			t.Errorf("%s: /favicon.ico is a 404", m[1])
		}
	}
	// The status hint works as printed: its URL and token, an ID from an
	// admin logout.
	hint := regexp.MustCompile(`SLOBRIDGE_URL=(\S+) SLOBRIDGE_ADMIN_TOKEN=(\S+) \\\s+go run ./cmd/slobridge admin status LOGOUT_ID`).FindStringSubmatch(text)
	if hint == nil {
		t.Fatalf("no admin status hint with URL and token:\n%s", text)
	}
	// An ID that names no logout: the CLI reaches the bridge with the
	// hint's URL and token and gets the API's "no such logout" (a wrong
	// port or token would fail to connect or answer 401).
	cmd := exec.Command(binary, "admin", "status", "no-such-logout-id")
	cmd.Env = append(os.Environ(), "SLOBRIDGE_URL="+hint[1], "SLOBRIDGE_ADMIN_TOKEN="+hint[2])
	var cliOut, cliErr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &cliOut, &cliErr
	if err := cmd.Run(); err == nil || !strings.Contains(cliOut.String()+cliErr.String(), "no such logout") {
		t.Errorf("the printed admin status hint: %v\n%s%s", err, cliOut.String(), cliErr.String())
	}
	cancel()
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("demo stopped with %v; stderr:\n%s", err, errOut.String())
		}
	case <-time.After(30 * time.Second):
		t.Fatal("demo did not stop after its context ended")
	}
	if !strings.Contains(out.String(), "stopping the demo") {
		t.Errorf("no stop message:\n%s", out.String())
	}
	if _, err := http.Get(bridge[1] + "/.well-known/openid-configuration"); err == nil {
		t.Errorf("the bridge still answers after the demo stopped")
	}
}

// getPage GETs u and returns the status and body.
func getPage(t *testing.T, u string) (int, string) {
	t.Helper()
	resp, err := http.Get(u)
	if err != nil {
		t.Fatalf("GET %s: %v", u, err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

// TestDemoUpstreamLateFlag runs the README's `demo --upstream-late`: the
// bridge's /readyz says "degraded" until the upstream starts, then
// "ready".
func TestDemoUpstreamLateFlag(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	var out, errOut syncBuffer
	done := make(chan error, 1)
	go func() {
		done <- demoMain(ctx, []string{"--listen", "127.0.0.1:0", "--upstream-late", "2s"}, &out, &errOut)
	}()
	deadline := time.Now().Add(60 * time.Second)
	for !strings.Contains(out.String(), "Try it") {
		if time.Now().After(deadline) {
			t.Fatalf("demo printed no instructions; stderr:\n%s", errOut.String())
		}
		time.Sleep(20 * time.Millisecond)
	}
	bridge := regexp.MustCompile(`Bridge\s+(http://127\.0\.0\.1:\d+)`).FindStringSubmatch(out.String())
	if bridge == nil {
		t.Fatalf("no bridge URL in:\n%s", out.String())
	}
	if _, body := getPage(t, bridge[1]+"/readyz"); !strings.Contains(body, `"degraded"`) {
		t.Fatalf("/readyz before the upstream started: %s", body)
	}
	for {
		if _, body := getPage(t, bridge[1]+"/readyz"); strings.Contains(body, `"ready"`) {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("/readyz never became ready after the upstream started")
		}
		time.Sleep(100 * time.Millisecond)
	}
	cancel()
	if err := <-done; err != nil {
		t.Fatalf("demo stopped with %v", err)
	}
}
