package main

import (
	"context"
	"encoding/json"
	"net/http"
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
	for _, m := range regexp.MustCompile(`(?m)^  (Upstream SAML IdP|Calendar|Chat|Wiki)\s+(http://127\.0\.0\.1:\d+)`).FindAllStringSubmatch(text, -1) {
		resp, err := http.Get(m[2] + "/")
		if err != nil {
			t.Errorf("%s at %s: %v", m[1], m[2], err)
			continue
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusOK {
			t.Errorf("%s at %s answered %d", m[1], m[2], resp.StatusCode)
		}
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
