package app

import (
	"bufio"
	"context"
	"encoding/base64"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"net/url"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/gin-gonic/gin"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
)

// malformedConfig serves every protocol at once: the OIDC provider with a
// client, the SAML SP toward an upstream, the SAML IdP with an SP, SSF and
// the admin API on the main listener.
func malformedConfig(t *testing.T) string {
	doc := strings.NewReplacer("{{DB}}", filepath.Join(t.TempDir(), "m.db"), "{{RP}}", "http://127.0.0.1:1", "{{SSF}}", "http://127.0.0.1:2").
		Replace(wiringConfig)
	return strings.Replace(doc, "  type: static\n", "  type: saml\n", 1) + `
saml:
  sp:
    cert_file: testdata/bridge-sp.crt
    key_file: testdata/bridge-sp.key
    upstreams:
      - name: corp
        metadata_file: testdata/upstream-metadata.xml
  idp:
    enabled: true
    certificate_file: testdata/idp.crt
    key: {file: testdata/idp.key}
    service_providers:
      - metadata_file: testdata/sp-metadata.xml
        name: Test SP
`
}

// malformedBodies are what an attacker posts: broken encodings, broken
// XML, SOAP envelopes with nothing or garbage inside, forged SAML and JSON.
func malformedBodies() []struct{ contentType, body string } {
	b64 := func(s string) string { return base64.StdEncoding.EncodeToString([]byte(s)) }
	resp := `<samlp:Response xmlns:samlp="urn:oasis:names:tc:SAML:2.0:protocol" xmlns:saml="urn:oasis:names:tc:SAML:2.0:assertion" ID="_r" Version="2.0" IssueInstant="2026-01-01T00:00:00Z">` +
		`<saml:EncryptedAssertion><xenc:EncryptedData xmlns:xenc="http://www.w3.org/2001/04/xmlenc#"><xenc:EncryptionMethod Algorithm="http://www.w3.org/2009/xmlenc11#aes128-gcm"/>` +
		`<xenc:CipherData><xenc:CipherValue>AAAA</xenc:CipherValue></xenc:CipherData></xenc:EncryptedData></saml:EncryptedAssertion></samlp:Response>`
	lr := `<samlp:LogoutRequest xmlns:samlp="urn:oasis:names:tc:SAML:2.0:protocol" xmlns:saml="urn:oasis:names:tc:SAML:2.0:assertion" ID="_l" Version="2.0" IssueInstant="2026-01-01T00:00:00Z"><saml:Issuer>x</saml:Issuer><saml:EncryptedID/></samlp:LogoutRequest>`
	soap := func(inner string) string {
		return `<s:Envelope xmlns:s="http://schemas.xmlsoap.org/soap/envelope/"><s:Body>` + inner + `</s:Body></s:Envelope>`
	}
	form := url.Values{
		"SAMLRequest": {"%%%not-base64"}, "SAMLResponse": {b64(resp)}, "RelayState": {strings.Repeat("r", 100)},
		"SigAlg": {"http://www.w3.org/2000/09/xmldsig#rsa-sha1"}, "Signature": {"!!"},
		"grant_type": {"authorization_code"}, "code": {"x"}, "refresh_token": {"x"}, "token": {"a.b.c"},
		"client_id": {"app1"}, "client_secret": {"x"}, "redirect_uri": {"javascript:alert(1)"}, "code_verifier": {"x"},
		"logout_token": {"a.b.c"}, "id_token_hint": {"eyJhbGciOiJub25lIn0.e30."}, "csrf": {"x"}, "confirm": {"yes"},
	}
	return []struct{ contentType, body string }{
		{"application/x-www-form-urlencoded", form.Encode()},
		{"application/x-www-form-urlencoded", "SAMLResponse=" + url.QueryEscape(b64("<x>")) + "&RelayState=a"},
		{"application/x-www-form-urlencoded", "SAMLRequest=" + url.QueryEscape(b64(lr)) + "&RelayState=a"},
		{"application/x-www-form-urlencoded", "%zz=%zz&a"},
		{"text/xml", soap(lr)},
		{"text/xml", soap("")},
		{"text/xml", `<!DOCTYPE x [<!ENTITY a "aaaa">]><x>&a;</x>`},
		{"text/xml", "<s:Envelope"},
		{"text/xml", soap(resp)},
		{"application/json", `{"a":`},
		{"application/json", `[]`},
		{"application/json", `{"redirect_uris":[1],"client_name":{},"reason":7,"user_id":["x"]}`},
		{"application/json", `{"metadata_xml":"<x/>","metadata_url":"http://169.254.169.254/"}`},
		{"application/secevent+jwt", "a.b.c"},
		{"", ""},
	}
}

// TestNoInputMakesAHandlerFail throws the malformed inputs at every route
// of a bridge that serves every protocol, with and without credentials:
// none is answered 5xx (SOAP faults excepted, which SOAP 1.1 §6.2 sends
// with HTTP 500) and slobridge_http_panics_total stays 0.
func TestNoInputMakesAHandlerFail(t *testing.T) {
	const admin = "admin-token-0123456789"
	a, base := startApp(t, malformedConfig(t), map[string]string{
		"COOKIE": strings.Repeat("c", 40), "ADMIN": admin, "PASSWORD": "alice-password",
		"APP1_SECRET": "app1-secret-0123456789", "SSF_AUTH": "Bearer x",
	})
	eng, ok := a.Handler().(*gin.Engine)
	if !ok {
		t.Fatalf("handler is %T, not a gin engine", a.Handler())
	}
	routes := eng.Routes()
	if len(routes) < 30 {
		t.Fatalf("only %d routes", len(routes))
	}
	client := &http.Client{Timeout: 10 * time.Second, CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	query := "?SAMLRequest=%25%25&SAMLResponse=AAAA&RelayState=x&SigAlg=x&Signature=x&client_id=app1&response_type=code" +
		"&scope=openid&redirect_uri=javascript:alert(1)&state=x&nonce=x&id_token_hint=a.b.c&post_logout_redirect_uri=x" +
		"&prompt=none&max_age=-1&code_challenge=x&code_challenge_method=plain&request=a.b.c&user=%00&limit=-5&after=x"
	auths := []string{"", "Bearer " + admin, "Bearer a.b.c", "Basic " + base64.StdEncoding.EncodeToString([]byte("app1:wrong"))}
	n, codes := 0, map[int]int{}
	for _, r := range routes {
		path := r.Path
		for _, seg := range strings.Split(path, "/") {
			if strings.HasPrefix(seg, ":") || strings.HasPrefix(seg, "*") {
				path = strings.Replace(path, seg, "JUNK0ID%00", 1)
			}
		}
		for _, auth := range auths {
			reqs := []*http.Request{}
			switch r.Method {
			case http.MethodGet, http.MethodDelete, http.MethodHead:
				req, _ := http.NewRequest(r.Method, base+path+query, nil)
				reqs = append(reqs, req)
			default:
				for _, b := range malformedBodies() {
					req, _ := http.NewRequest(r.Method, base+path+query, strings.NewReader(b.body))
					if b.contentType != "" {
						req.Header.Set("Content-Type", b.contentType)
					}
					reqs = append(reqs, req)
				}
			}
			for _, req := range reqs {
				if auth != "" {
					req.Header.Set("Authorization", auth)
				}
				req.Header.Set("Cookie", "slobridge_session=junk; __Host-x=y")
				n++
				resp, err := client.Do(req)
				if err != nil {
					t.Errorf("%s %s: %v", req.Method, r.Path, err)
					continue
				}
				body, _ := io.ReadAll(io.LimitReader(resp.Body, 4096))
				resp.Body.Close()
				codes[resp.StatusCode]++
				if resp.StatusCode < 500 {
					continue
				}
				if resp.StatusCode == http.StatusInternalServerError && strings.Contains(r.Path, "soap") && strings.Contains(string(body), "Fault") {
					continue
				}
				t.Errorf("%s %s (%s, auth %.10q): %d %s", req.Method, r.Path, req.Header.Get("Content-Type"), auth, resp.StatusCode, body)
			}
		}
	}
	// A series exists once a route has panicked.
	if p := testutil.CollectAndCount(a.httpMetrics.panics); p != 0 {
		t.Fatalf("handler panics on %d routes over %d requests", p, n)
	}
	t.Logf("%d requests over %d routes; answers by status: %v", n, len(routes), codes)
}

// TestPanicIsLoggedAndCounted: a handler that panics answers 500, the
// access log records the request with status 500 and its route, and
// slobridge_http_panics_total counts it.
func TestPanicIsLoggedAndCounted(t *testing.T) {
	var logs strings.Builder
	reg := prometheus.NewRegistry()
	a := &App{log: slog.New(slog.NewJSONHandler(&logs, nil)), httpMetrics: newHTTPMetrics(reg),
		cfg: Config{Server: ServerConfig{MaxBodyBytes: 1 << 20}}}
	h := a.router(func(r gin.IRouter) {
		r.GET("/boom/:id", func(*gin.Context) { var m map[string]int; m["x"]++ })
	})
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, httptest.NewRequestWithContext(context.Background(), http.MethodGet, "/boom/1", nil))
	if rec.Code != http.StatusInternalServerError {
		t.Fatalf("panic answered %d", rec.Code)
	}
	if p := testutil.ToFloat64(a.httpMetrics.panics.WithLabelValues("/boom/:id")); p != 1 {
		t.Fatalf("panics counter %v, want 1", p)
	}
	if c := testutil.ToFloat64(a.httpMetrics.requests.WithLabelValues("/boom/:id", "GET", "500")); c != 1 {
		t.Fatalf("requests_total{code=500} %v, want 1", c)
	}
	out := logs.String()
	if !strings.Contains(out, `"msg":"handler panic"`) || !strings.Contains(out, `"msg":"http request"`) || !strings.Contains(out, `"status":500`) {
		t.Fatalf("logs:\n%s", out)
	}
}

// TestStatusStreamOutlivesReadTimeout: with server.read_timeout at 1s, the
// live status stream of a logout whose delivery takes 3s stays open and
// delivers the final status, while a request whose headers exceed
// server.max_header_bytes is refused with 431.
func TestStatusStreamOutlivesReadTimeout(t *testing.T) {
	rp := newLoopbackServer(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/backchannel" {
			time.Sleep(3 * time.Second)
		}
		w.WriteHeader(http.StatusOK)
	}))
	env := map[string]string{
		"COOKIE": strings.Repeat("c", 40), "ADMIN": "admin-token-0123456789", "PASSWORD": "alice-password",
		"APP1_SECRET": "app1-secret-0123456789", "SSF_AUTH": "Bearer x",
	}
	doc := strings.NewReplacer("{{DB}}", filepath.Join(t.TempDir(), "s.db"), "{{RP}}", rp, "{{SSF}}", rp).Replace(wiringConfig)
	doc = strings.Replace(doc, "server:\n", "server:\n  read_timeout: 1s\n  max_header_bytes: 8192\n", 1)
	_, base := startApp(t, doc, env)
	sid := browserLogin(t, base, rp)
	lo := adminJSON(t, base, env["ADMIN"], "POST", "/admin/v1/logouts", `{"session_id":"`+sid+`"}`, http.StatusCreated)
	id := lo["logout"].(map[string]any)["id"].(string)
	resp, err := http.Get(base + "/logout/events/" + id)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	start := time.Now()
	sc := bufio.NewScanner(resp.Body)
	done := false
	for sc.Scan() {
		if strings.HasPrefix(sc.Text(), "data: ") && strings.Contains(sc.Text(), `"done":true`) {
			done = true
			break
		}
	}
	if !done {
		t.Fatalf("the stream ended after %s without the final status (%v)", time.Since(start), sc.Err())
	}
	req, _ := http.NewRequest(http.MethodGet, base+"/healthz", nil)
	req.Header.Set("X-Big", strings.Repeat("a", 16<<10))
	r, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	r.Body.Close()
	if r.StatusCode != http.StatusRequestHeaderFieldsTooLarge {
		t.Fatalf("16 KiB header: HTTP %d, want 431", r.StatusCode)
	}
}
