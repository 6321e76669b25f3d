package slobridge

import (
	"context"
	"errors"
	"testing"
	"time"
)

func TestHostKey(t *testing.T) {
	tests := map[string]string{
		"https://RP.example.com/logout":     "https://rp.example.com:443",
		"https://rp.example.com:8443/x?y=z": "https://rp.example.com:8443",
		"http://rp.example.com/logout":      "http://rp.example.com:80",
		"http://127.0.0.1:9000/a":           "http://127.0.0.1:9000",
		"http://[::1]:9000/a":               "http://[::1]:9000",
		"not a url":                         "not a url",
		"":                                  "",
	}
	for in, want := range tests {
		if got := ReceiverOf(in); got != want {
			t.Errorf("ReceiverOf(%q) = %q, want %q", in, got, want)
		}
	}
}

func TestHostLimiter(t *testing.T) {
	l := newHostLimiter(2)
	ctx := context.Background()
	for range 2 {
		if err := l.acquire(ctx, "a"); err != nil {
			t.Fatal(err)
		}
	}
	// Another host is not affected by a full one.
	if err := l.acquire(ctx, "b"); err != nil {
		t.Fatal(err)
	}
	l.release("b")
	// The third slot of "a" waits until its context ends.
	cctx, cancel := context.WithTimeout(ctx, 10*time.Millisecond)
	defer cancel()
	if err := l.acquire(cctx, "a"); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("third acquire = %v, want deadline exceeded", err)
	}
	got := make(chan error, 1)
	go func() { got <- l.acquire(ctx, "a") }()
	l.release("a")
	if err := <-got; err != nil {
		t.Fatal(err)
	}
	l.release("a")
	l.release("a")
	if n := len(l.sems); n != 0 {
		t.Errorf("%d semaphores left after every release, want 0", n)
	}
}
