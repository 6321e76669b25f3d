package app

import (
	"context"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"io"
	"math/big"
	"net"
	"net/http"
	"net/http/cookiejar"
	"net/url"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"
)

// TestSAMLIdPWiring serves the SAML IdP from the configuration: its
// metadata is published under the base URL and the configured SP is
// registered from its metadata file.
func TestSAMLIdPWiring(t *testing.T) {
	doc := strings.NewReplacer("{{DB}}", filepath.Join(t.TempDir(), "saml.db"), "{{RP}}", "http://127.0.0.1:1", "{{SSF}}", "http://127.0.0.1:1").
		Replace(wiringConfig) + `
saml:
  idp:
    enabled: true
    certificate_file: testdata/idp.crt
    key: {file: testdata/idp.key}
    service_providers:
      - metadata_file: testdata/sp-metadata.xml
        name: Test SP
`
	a, base := startApp(t, doc, map[string]string{
		"COOKIE": strings.Repeat("c", 40), "ADMIN": "admin-token-0123456789", "PASSWORD": "alice-password",
		"APP1_SECRET": "app1-secret-0123456789", "SSF_AUTH": "Bearer x",
	})
	code, md := get(t, http.DefaultClient, base+"/saml/idp/metadata")
	if code != http.StatusOK || !strings.Contains(md, `entityID="`+base+`/saml/idp/metadata"`) || !strings.Contains(md, "SingleLogoutService") {
		t.Fatalf("IdP metadata (%d):\n%s", code, md)
	}
	sp, err := a.SAMLIdP().ServiceProvider(context.Background(), "https://sp.example.com/saml/metadata")
	if err != nil || sp.Name != "Test SP" {
		t.Fatalf("configured SP not registered: %+v %v", sp, err)
	}

	// Register another SP at run time through the admin API, from its
	// metadata URL.
	raw, err := os.ReadFile("testdata/sp-metadata.xml")
	if err != nil {
		t.Fatal(err)
	}
	other := strings.ReplaceAll(string(raw), "https://sp.example.com", "https://sp2.example.com")
	mdURL := newLoopbackServer(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/samlmetadata+xml")
		_, _ = io.WriteString(w, other)
	}))
	tok := "admin-token-0123456789"
	got := adminJSON(t, base, tok, "POST", "/admin/v1/saml/sps", `{"metadata_url":"`+mdURL+`/md","name":"Second SP"}`, http.StatusCreated)
	if got["entity_id"] != "https://sp2.example.com/saml/metadata" {
		t.Fatalf("register SP: %v", got)
	}
	if sp2, err := a.SAMLIdP().ServiceProvider(context.Background(), "https://sp2.example.com/saml/metadata"); err != nil || sp2.Name != "Second SP" {
		t.Fatalf("registered SP: %+v %v", sp2, err)
	}
	for _, bad := range []string{
		`{"metadata_url":"` + mdURL + `/md","colour":"red"}`,
		`{"metadata_file":"/etc/passwd"}`,
		`{}`,
	} {
		if got := adminJSON(t, base, tok, "POST", "/admin/v1/saml/sps", bad, http.StatusBadRequest); got["error"] != "invalid_request" {
			t.Errorf("register %s: %v", bad, got)
		}
	}
	// The statically configured SP cannot be replaced.
	static := newLoopbackServer(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { _, _ = w.Write(raw) }))
	adminJSON(t, base, tok, "POST", "/admin/v1/saml/sps", `{"metadata_url":"`+static+`/md"}`, http.StatusBadRequest)
}

// TestSAMLUpstreamWiring runs the bridge with upstream.type saml: the SP
// metadata is served, and an OIDC authorization request without a bridge
// session sends the browser to the upstream IdP with a signed
// AuthnRequest (the SP is the OpenID Provider's authenticator).
func TestSAMLUpstreamWiring(t *testing.T) {
	doc := strings.NewReplacer("{{DB}}", filepath.Join(t.TempDir(), "up.db"), "{{RP}}", "http://127.0.0.1:1", "{{SSF}}", "http://127.0.0.1:2").
		Replace(wiringConfig)
	doc = strings.Replace(doc, "  type: static\n", "  type: saml\n", 1) + `
saml:
  sp:
    cert_file: testdata/bridge-sp.crt
    key_file: testdata/bridge-sp.key
    upstreams:
      - name: corp
        metadata_file: testdata/upstream-metadata.xml
`
	a, base := startApp(t, doc, map[string]string{
		"COOKIE": strings.Repeat("c", 40), "ADMIN": "admin-token-0123456789", "PASSWORD": "alice-password",
		"APP1_SECRET": "app1-secret-0123456789", "SSF_AUTH": "Bearer x",
	})
	if a.SAMLSP() == nil {
		t.Fatal("no SAML SP with upstream.type saml")
	}
	code, md := get(t, http.DefaultClient, base+"/saml/sp/metadata")
	if code != http.StatusOK || !strings.Contains(md, `entityID="`+base+`/saml/sp/metadata"`) || !strings.Contains(md, base+"/saml/sp/acs") {
		t.Fatalf("SP metadata (%d):\n%s", code, md)
	}
	if code, _ := get(t, http.DefaultClient, base+"/login/static"); code != http.StatusNotFound {
		t.Fatalf("static login served with upstream.type saml: %d", code)
	}
	jar, _ := cookiejar.New(nil)
	browser := &http.Client{Jar: jar, CheckRedirect: func(r *http.Request, _ []*http.Request) error {
		if r.URL.Host == "idp.example.com" {
			return http.ErrUseLastResponse
		}
		return nil
	}}
	q := url.Values{"client_id": {"app1"}, "redirect_uri": {"http://127.0.0.1:1/cb"}, "response_type": {"code"},
		"scope": {"openid"}, "state": {"s"}}
	resp, err := browser.Get(base + "/oidc/authorize?" + q.Encode())
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	loc, _ := url.Parse(resp.Header.Get("Location"))
	if loc == nil || loc.Host != "idp.example.com" || loc.Path != "/sso" || loc.Query().Get("SAMLRequest") == "" ||
		loc.Query().Get("Signature") == "" || loc.Query().Get("SigAlg") == "" {
		t.Fatalf("authorize without a session: %d %s", resp.StatusCode, resp.Header.Get("Location"))
	}
}

// TestServeStartsWithUpstreamDown: serve starts although the SAML
// upstream's metadata URL cannot be read (and no copy is kept), and
// /readyz names the upstream as unavailable ("degraded", still 200: the
// bridge's logouts work) until its metadata can be read.
func TestServeStartsWithUpstreamDown(t *testing.T) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := l.Addr().String()
	l.Close()
	doc := strings.NewReplacer("{{DB}}", filepath.Join(t.TempDir(), "down.db"), "{{RP}}", "http://127.0.0.1:1", "{{SSF}}", "http://127.0.0.1:2").
		Replace(wiringConfig)
	doc = strings.Replace(doc, "  type: static\n", "  type: saml\n", 1) + `
saml:
  sp:
    cert_file: testdata/bridge-sp.crt
    key_file: testdata/bridge-sp.key
    upstreams:
      - name: corp
        metadata_url: http://` + addr + `/metadata
`
	_, base := startApp(t, doc, map[string]string{
		"COOKIE": strings.Repeat("c", 40), "ADMIN": "admin-token-0123456789", "PASSWORD": "alice-password",
		"APP1_SECRET": "app1-secret-0123456789", "SSF_AUTH": "Bearer x",
	})
	code, body := get(t, http.DefaultClient, base+"/readyz")
	var ready struct {
		Status    string            `json:"status"`
		Upstreams map[string]string `json:"upstreams"`
	}
	if err := json.Unmarshal([]byte(body), &ready); err != nil || code != http.StatusOK || ready.Status != "degraded" ||
		!strings.HasPrefix(ready.Upstreams["corp"], "unavailable") {
		t.Fatalf("/readyz with the upstream down: %d %s", code, body)
	}
}

// TestRootPageAndFavicon: the bridge's root answers a page naming its
// discovery and metadata URLs (not a JSON 404), and /favicon.ico is not
// a 404 either.
func TestRootPageAndFavicon(t *testing.T) {
	doc := strings.NewReplacer("{{DB}}", filepath.Join(t.TempDir(), "root.db"), "{{RP}}", "http://127.0.0.1:1", "{{SSF}}", "http://127.0.0.1:2").
		Replace(wiringConfig)
	_, base := startApp(t, doc, map[string]string{
		"COOKIE": strings.Repeat("c", 40), "ADMIN": "admin-token-0123456789", "PASSWORD": "alice-password",
		"APP1_SECRET": "app1-secret-0123456789", "SSF_AUTH": "Bearer x",
	})
	code, body := get(t, http.DefaultClient, base+"/")
	if code != http.StatusOK || !strings.Contains(body, base+"/.well-known/openid-configuration") || !strings.Contains(body, "/readyz") {
		t.Fatalf("root page (%d):\n%s", code, body)
	}
	if code, _ := get(t, http.DefaultClient, base+"/favicon.ico"); code != http.StatusNoContent {
		t.Fatalf("/favicon.ico answered %d", code)
	}
}

// TestUpstreamsWarnOfExpiringCertificate: the admin API shows when an
// upstream's metadata was read and when its signing certificate expires,
// with a warning 30 days ahead.
func TestUpstreamsWarnOfExpiringCertificate(t *testing.T) {
	key, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	notAfter := time.Now().Add(10 * 24 * time.Hour).UTC().Truncate(time.Second)
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(7), Subject: pkix.Name{CommonName: "expiring IdP"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: notAfter, KeyUsage: x509.KeyUsageDigitalSignature}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	raw, err := os.ReadFile("testdata/upstream-metadata.xml")
	if err != nil {
		t.Fatal(err)
	}
	md := regexp.MustCompile(`<ds:X509Certificate>[^<]+</ds:X509Certificate>`).ReplaceAllString(string(raw),
		"<ds:X509Certificate>"+base64.StdEncoding.EncodeToString(der)+"</ds:X509Certificate>")
	mdFile := filepath.Join(t.TempDir(), "expiring.xml")
	if err := os.WriteFile(mdFile, []byte(md), 0o600); err != nil {
		t.Fatal(err)
	}
	doc := strings.NewReplacer("{{DB}}", filepath.Join(t.TempDir(), "exp.db"), "{{RP}}", "http://127.0.0.1:1", "{{SSF}}", "http://127.0.0.1:2").
		Replace(wiringConfig)
	doc = strings.Replace(doc, "  type: static\n", "  type: saml\n", 1) + `
saml:
  sp:
    cert_file: testdata/bridge-sp.crt
    key_file: testdata/bridge-sp.key
    upstreams:
      - name: corp
        metadata_file: ` + mdFile + "\n"
	_, base := startApp(t, doc, map[string]string{
		"COOKIE": strings.Repeat("c", 40), "ADMIN": "admin-token-0123456789", "PASSWORD": "alice-password",
		"APP1_SECRET": "app1-secret-0123456789", "SSF_AUTH": "Bearer x",
	})
	got := adminJSON(t, base, "admin-token-0123456789", "GET", "/admin/v1/upstreams", "", http.StatusOK)
	ups, _ := got["upstreams"].([]any)
	if len(ups) != 1 {
		t.Fatalf("upstreams: %v", got)
	}
	u := ups[0].(map[string]any)
	warnings := fmt.Sprint(u["warnings"])
	if u["certificate_not_after"] != notAfter.Format(time.RFC3339) || u["metadata_loaded_at"] == nil ||
		!strings.Contains(warnings, "its signing certificate expires on "+notAfter.Format(time.DateOnly)) {
		t.Fatalf("upstream %v: want the certificate's expiry and a warning", u)
	}
}
