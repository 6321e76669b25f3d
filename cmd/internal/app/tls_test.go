package app

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestServeTLS serves HTTPS from server.tls_cert_file and server.tls_key
// with an https base URL (no loopback exception needed).
func TestServeTLS(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	base := "https://" + ln.Addr().String()
	doc := validBase + `
server:
  base_url: ` + base + `
  tls_cert_file: testdata/tls.crt
  tls_key: {file: testdata/tls.key}
store:
  bolt:
    path: ` + filepath.Join(t.TempDir(), "tls.db") + "\n"
	doc = strings.Replace(doc, "allow_loopback_http: true", "allow_loopback_http: false", 1)
	cfg, err := Parse([]byte(doc), lookup)
	if err != nil {
		t.Fatalf("Parse: %v", err)
	}
	if *cfg.Session.SecureCookie != true {
		t.Error("session cookie not Secure with an https base URL")
	}
	ctx, cancel := context.WithCancel(context.Background())
	a, err := New(ctx, cfg, slog.New(slog.NewTextHandler(io.Discard, nil)))
	if err != nil {
		cancel()
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- a.Serve(ctx, ln) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("Serve: %v", err)
		}
		_ = a.Close()
	})

	pem, err := os.ReadFile("testdata/tls.crt")
	if err != nil {
		t.Fatal(err)
	}
	roots := x509.NewCertPool()
	roots.AppendCertsFromPEM(pem)
	client := &http.Client{Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: roots}}}
	code, body := get(t, client, base+"/.well-known/openid-configuration")
	if code != http.StatusOK || !strings.Contains(body, `"issuer":"`+base+`"`) {
		t.Fatalf("discovery over TLS: %d %s", code, body)
	}
	// Plain HTTP on the TLS port gets no answer it could mistake for ours.
	if resp, err := http.Get("http://" + ln.Addr().String() + "/healthz"); err == nil {
		resp.Body.Close()
		if resp.StatusCode == http.StatusOK {
			t.Fatal("plain HTTP served on the TLS listener")
		}
	}
}
