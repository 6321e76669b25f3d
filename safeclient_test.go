package slobridge

import (
	"context"
	"errors"
	"net"
	"net/http"
	"net/http/httptest"
	"testing"
)

func TestCheckDestination(t *testing.T) {
	tests := []struct {
		addr string
		opts ClientOptions
		ok   bool
	}{
		{"93.184.215.14:443", ClientOptions{}, true},
		{"[2606:4700::1111]:443", ClientOptions{}, true},
		{"127.0.0.1:80", ClientOptions{}, false},
		{"127.0.0.1:80", ClientOptions{AllowLoopback: true}, true},
		{"127.0.0.1:80", ClientOptions{AllowPrivate: true}, false},
		{"[::1]:80", ClientOptions{}, false},
		{"[::1]:80", ClientOptions{AllowLoopback: true}, true},
		{"[::ffff:127.0.0.1]:80", ClientOptions{}, false},
		{"10.1.2.3:80", ClientOptions{}, false},
		{"10.1.2.3:80", ClientOptions{AllowLoopback: true}, false},
		{"10.1.2.3:80", ClientOptions{AllowPrivate: true}, true},
		{"172.16.0.1:80", ClientOptions{}, false},
		{"192.168.1.1:80", ClientOptions{}, false},
		{"[::ffff:192.168.1.1]:80", ClientOptions{}, false},
		{"100.64.0.1:80", ClientOptions{}, false},
		{"100.64.0.1:80", ClientOptions{AllowPrivate: true}, true},
		{"[fd00::1]:80", ClientOptions{}, false},
		{"[fd00::1]:80", ClientOptions{AllowPrivate: true}, true},
		{"169.254.169.254:80", ClientOptions{}, false},
		{"169.254.169.254:80", ClientOptions{AllowPrivate: true, AllowLoopback: true}, false},
		{"[fe80::1]:80", ClientOptions{AllowPrivate: true}, false},
		{"0.0.0.0:80", ClientOptions{AllowPrivate: true, AllowLoopback: true}, false},
		{"0.1.2.3:80", ClientOptions{}, false},
		{"[::]:80", ClientOptions{AllowPrivate: true, AllowLoopback: true}, false},
		{"224.0.0.1:80", ClientOptions{AllowPrivate: true}, false},
		{"[ff02::1]:80", ClientOptions{AllowPrivate: true}, false},
		{"255.255.255.255:80", ClientOptions{AllowPrivate: true}, false},
		// NAT64, IPv4-compatible and cloud metadata spellings: refused
		// whatever the options (issue 14); AddressPolicy has the full table.
		{"[64:ff9b::a9fe:a9fe]:80", ClientOptions{}, false},
		{"[64:ff9b::a9fe:a9fe]:80", ClientOptions{AllowPrivate: true, AllowLoopback: true}, false},
		{"[::169.254.169.254]:80", ClientOptions{}, false},
		{"[fd00:ec2::254]:80", ClientOptions{AllowPrivate: true}, false},
		{"100.100.100.200:80", ClientOptions{AllowPrivate: true}, false},
		{"198.18.0.1:80", ClientOptions{}, false},
		{"[2002:a9fe:a9fe::1]:80", ClientOptions{}, false},
		{"192.0.2.10:443", ClientOptions{}, false},
		{"example.com:80", ClientOptions{AllowPrivate: true, AllowLoopback: true}, false},
		{"no-port", ClientOptions{}, false},
	}
	for _, tt := range tests {
		err := checkDestination(tt.addr, tt.opts)
		if tt.ok && err != nil {
			t.Errorf("checkDestination(%q, %+v) = %v, want allowed", tt.addr, tt.opts, err)
		}
		if !tt.ok && !errors.Is(err, ErrForbiddenDestination) {
			t.Errorf("checkDestination(%q, %+v) = %v, want ErrForbiddenDestination", tt.addr, tt.opts, err)
		}
	}
}

// TestBackChannelClientRefusesLoopback dials a real loopback server through
// a host name, so the refusal happens on the resolved IP at connect time.
func TestBackChannelClientRefusesLoopback(t *testing.T) {
	var hits int
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { hits++ }))
	defer srv.Close()
	_, port, _ := net.SplitHostPort(srv.Listener.Addr().String())
	req, _ := http.NewRequestWithContext(context.Background(), http.MethodPost, "http://localhost:"+port+"/", nil)
	_, err := NewBackChannelClient(ClientOptions{AllowPrivate: true}).Do(req)
	if !errors.Is(err, ErrForbiddenDestination) {
		t.Fatalf("POST to localhost: err = %v, want ErrForbiddenDestination", err)
	}
	if hits != 0 {
		t.Fatalf("server was reached %d times", hits)
	}
}

func TestBackChannelClientDoesNotFollowRedirects(t *testing.T) {
	var targetHits int
	target := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { targetHits++ }))
	defer target.Close()
	redirector := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		http.Redirect(w, r, target.URL, http.StatusTemporaryRedirect)
	}))
	defer redirector.Close()
	req, _ := http.NewRequestWithContext(context.Background(), http.MethodPost, redirector.URL, nil)
	resp, err := NewBackChannelClient(ClientOptions{AllowLoopback: true}).Do(req)
	if err != nil {
		t.Fatalf("POST: %v", err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusTemporaryRedirect {
		t.Errorf("status = %d, want 307 (the redirect itself)", resp.StatusCode)
	}
	if targetHits != 0 {
		t.Errorf("redirect target reached %d times", targetHits)
	}
}
