package sp

import (
	"context"
	"net"
	"net/http"
	"os"
	"strings"
	"testing"
	"time"
)

// TestUpstreamUnavailableAtStart: an upstream whose metadata URL cannot be
// read when the bridge starts, and of which no copy is kept, does not stop
// the bridge: New succeeds, Unavailable names it, a login answers 503 with
// Retry-After; Run tries again, and once the metadata URL answers, a
// person logs in through that upstream in Chromium without a restart.
func TestUpstreamUnavailableAtStart(t *testing.T) {
	ctx := chromium(t)
	idp := newBrowserIdP(t)
	md, err := os.ReadFile(idp.metadataFile(t))
	if err != nil {
		t.Fatal(err)
	}
	// The metadata's address: free now, nothing listens until later.
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := l.Addr().String()
	l.Close()

	b := newBridge(t, bridgeOptions{retry: 50 * time.Millisecond,
		upstreams: []UpstreamConfig{{Name: "corp", MetadataURL: "http://" + addr + "/metadata"}}})
	idp.bridge = b
	if down := b.sp.Unavailable(); !strings.Contains(down["corp"], "connect") {
		t.Fatalf("Unavailable() = %v, want corp unreachable", down)
	}
	resp := b.get("/test/login")
	if body := readBody(t, resp); resp.StatusCode != http.StatusServiceUnavailable || resp.Header.Get("Retry-After") == "" ||
		!strings.Contains(body, "cannot be reached") {
		t.Fatalf("login while the upstream is unavailable: HTTP %d Retry-After %q: %s", resp.StatusCode, resp.Header.Get("Retry-After"), body)
	}

	rctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { defer close(done); _ = b.sp.Run(rctx) }()
	t.Cleanup(func() { cancel(); <-done })
	time.Sleep(200 * time.Millisecond) // a few failed retries

	var ml net.Listener
	for range 50 {
		if ml, err = net.Listen("tcp", addr); err == nil {
			break
		}
		time.Sleep(100 * time.Millisecond)
	}
	if err != nil {
		t.Fatalf("listen on %s again: %v", addr, err)
	}
	srv := &http.Server{ReadHeaderTimeout: 5 * time.Second, Handler: http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "application/samlmetadata+xml")
		_, _ = w.Write(md)
	})}
	go func() { _ = srv.Serve(ml) }()
	t.Cleanup(func() { _ = srv.Close() })
	waitFor(t, "the upstream's metadata after it came back", func() bool { return len(b.sp.Unavailable()) == 0 })

	registerSP(t, idp.srv, b)
	s := browserLogin(t, ctx, b, idp)
	if s.Upstream != "corp" {
		t.Fatalf("logged in through %q, want corp", s.Upstream)
	}
}
