package oidc

import (
	"bytes"
	"context"
	"encoding/base64"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"reflect"
	"strconv"
	"strings"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"golang.org/x/oauth2"

	"github.com/slobridge/slobridge"
	"github.com/slobridge/slobridge/store"
)

// caller is how a request to the introspection or revocation endpoint
// authenticates.
type caller struct {
	basicID, basicSecret string     // HTTP Basic when basicID is set
	form                 url.Values // client_id / client_secret in the body
}

func TestIntrospectionAndRevocationBadInput(t *testing.T) {
	env := newTokenEnv(t)
	owner := env.newRPClient(t, "owner")
	other := env.newRPClient(t, "other")
	pub := env.register(t, ClientMetadata{ClientName: "spa", RedirectURIs: []string{unusedCallback}, TokenEndpointAuthMethod: AuthNone})
	_, tok := env.login(t, owner)
	idt, _ := tok.Extra("id_token").(string)

	asOwner := caller{basicID: owner.id, basicSecret: owner.conf.ClientSecret}
	asOther := caller{basicID: other.id, basicSecret: other.conf.ClientSecret}
	inactive := `{"active":false}`
	tests := []struct {
		name       string
		path       string
		who        caller
		token      string
		wantStatus int
		wantError  string // OAuth error code, for 4xx
		wantBody   string // exact JSON body, for 200 answers that must leak nothing
	}{
		// Client authentication (RFC 7662 §2.1, RFC 7009 §2.1).
		{"introspect without authentication", PathIntrospect, caller{}, tok.AccessToken, 401, ErrInvalidClient, ""},
		{"revoke without authentication", PathRevoke, caller{}, tok.RefreshToken, 401, ErrInvalidClient, ""},
		{"introspect with a wrong secret", PathIntrospect, caller{basicID: owner.id, basicSecret: "wrong-secret-0123456789"}, tok.AccessToken, 401, ErrInvalidClient, ""},
		{"revoke with a wrong secret", PathRevoke, caller{basicID: owner.id, basicSecret: "wrong-secret-0123456789"}, tok.RefreshToken, 401, ErrInvalidClient, ""},
		{"introspect as an unknown client", PathIntrospect, caller{basicID: "nobody", basicSecret: "whatever-0123456789"}, tok.AccessToken, 401, ErrInvalidClient, ""},
		{"introspect with client_id only", PathIntrospect, caller{form: url.Values{"client_id": {owner.id}}}, tok.AccessToken, 401, ErrInvalidClient, ""},
		{"introspect as a public client", PathIntrospect, caller{form: url.Values{"client_id": {pub.ClientID}}}, tok.AccessToken, 401, ErrInvalidClient, ""},
		{"introspect with two auth methods", PathIntrospect, caller{basicID: owner.id, basicSecret: owner.conf.ClientSecret,
			form: url.Values{"client_secret": {owner.conf.ClientSecret}}}, tok.AccessToken, 400, ErrInvalidRequest, ""},
		{"introspect with a secret for a public client", PathIntrospect, caller{form: url.Values{"client_id": {pub.ClientID},
			"client_secret": {owner.conf.ClientSecret}}}, tok.AccessToken, 401, ErrInvalidClient, ""},
		{"introspect with a repeated client_secret", PathIntrospect, caller{form: url.Values{"client_id": {rsID}, "client_secret": {rsSecret, "x"}}}, tok.AccessToken, 400, ErrInvalidRequest, ""},
		// The token parameter.
		{"introspect without token", PathIntrospect, asOwner, "", 400, ErrInvalidRequest, ""},
		{"revoke without token", PathRevoke, asOwner, "", 400, ErrInvalidRequest, ""},
		{"introspect with a repeated token", PathIntrospect, caller{basicID: owner.id, basicSecret: owner.conf.ClientSecret,
			form: url.Values{"token": {"x"}}}, tok.AccessToken, 400, ErrInvalidRequest, ""},
		{"introspect a malformed token", PathIntrospect, asOwner, "not-a-token", 200, "", inactive},
		{"introspect a malformed JWT", PathIntrospect, asOwner, "eyJhbGciOiJSUzI1NiJ9.e30.AAAA", 200, "", inactive},
		{"introspect an ID token", PathIntrospect, asOwner, idt, 200, "", inactive},
		{"introspect an access token with a forged signature", PathIntrospect, asOwner, forge(tok.AccessToken), 200, "", inactive},
		{"revoke a malformed token", PathRevoke, asOwner, "not-a-token", 200, "", ""},
		{"revoke a malformed JWT", PathRevoke, asOwner, "a.b.c", 200, "", ""},
		// Another client's tokens: nothing leaks (RFC 7662 §4), nothing changes.
		{"introspect another client's access token", PathIntrospect, asOther, tok.AccessToken, 200, "", inactive},
		{"introspect another client's refresh token", PathIntrospect, asOther, tok.RefreshToken, 200, "", inactive},
		{"resource server introspects a refresh token", PathIntrospect, caller{basicID: rsID, basicSecret: rsSecret}, tok.RefreshToken, 200, "", inactive},
		{"revoke another client's refresh token", PathRevoke, asOther, tok.RefreshToken, 200, "", ""},
		{"revoke another client's access token", PathRevoke, asOther, tok.AccessToken, 200, "", ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			form := url.Values{}
			for k, v := range tt.who.form {
				form[k] = v
			}
			if tt.token != "" {
				form.Add("token", tt.token)
			}
			req, _ := http.NewRequest(http.MethodPost, env.p.Issuer()+tt.path, strings.NewReader(form.Encode()))
			req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
			if tt.who.basicID != "" {
				req.SetBasicAuth(url.QueryEscape(tt.who.basicID), url.QueryEscape(tt.who.basicSecret))
			}
			resp, err := http.DefaultClient.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			defer resp.Body.Close()
			var body bytes.Buffer
			if _, err := body.ReadFrom(resp.Body); err != nil {
				t.Fatal(err)
			}
			if resp.StatusCode != tt.wantStatus {
				t.Fatalf("HTTP %d %s, want %d", resp.StatusCode, body.String(), tt.wantStatus)
			}
			if cc := resp.Header.Get("Cache-Control"); cc != "no-store" {
				t.Errorf("Cache-Control %q, want no-store", cc)
			}
			switch {
			case tt.wantError != "":
				if !strings.Contains(body.String(), `"error":"`+tt.wantError+`"`) {
					t.Fatalf("body %s, want error %s", body.String(), tt.wantError)
				}
				if tt.wantStatus == 401 && !strings.HasPrefix(resp.Header.Get("WWW-Authenticate"), "Basic") {
					t.Errorf("401 without a Basic challenge: %q", resp.Header.Get("WWW-Authenticate"))
				}
			case strings.TrimSpace(body.String()) != tt.wantBody:
				t.Fatalf("body %q, want %q", body.String(), tt.wantBody)
			}
		})
	}

	// Nothing above changed the owner's tokens.
	m := env.introspect(t, owner.id, owner.conf.ClientSecret, tok.AccessToken)
	if m["active"] != true {
		t.Fatalf("owner's access token after the bad requests: %v", m)
	}
	if m := env.introspect(t, owner.id, owner.conf.ClientSecret, tok.RefreshToken); m["active"] != true || m["client_id"] != owner.id {
		t.Fatalf("owner's refresh token after the bad requests: %v", m)
	}
	if code, _ := env.callAPI(t, tok.AccessToken); code != http.StatusOK {
		t.Fatalf("API after the bad requests: HTTP %d", code)
	}
}

// forge flips one byte of a JWS signature.
func forge(jws string) string {
	b := []byte(jws)
	i := len(b) - 5
	if b[i] == 'A' {
		b[i] = 'B'
	} else {
		b[i] = 'A'
	}
	return string(b)
}

func TestIntrospectExpiredAccessToken(t *testing.T) {
	env := newTokenEnv(t)
	rp := env.newRPClient(t, "web")
	_, tok := env.login(t, rp)
	if m := env.introspect(t, rsID, rsSecret, tok.AccessToken); m["active"] != true {
		t.Fatalf("fresh token: %v", m)
	}
	env.clock.Advance(5*time.Minute + time.Second)
	wantInactive(t, "expired access token", env.introspect(t, rsID, rsSecret, tok.AccessToken))
	// Revoking an expired token is accepted and changes nothing.
	if code, _, _ := env.postToken(t, PathRevoke, rp.id, rp.conf.ClientSecret, url.Values{"token": {tok.AccessToken}}); code != http.StatusOK {
		t.Fatalf("revoke expired: HTTP %d", code)
	}
}

func TestIntrospectionSeesLogoutAtOnce(t *testing.T) {
	env := newTokenEnv(t)
	rp := env.newRPClient(t, "web")
	_, tok := env.login(t, rp)
	_, other := env.login(t, rp)
	for range 3 { // warm the session cache
		if m := env.introspect(t, rsID, rsSecret, tok.AccessToken); m["active"] != true {
			t.Fatalf("before logout: %v", m)
		}
	}
	// The logout goes through the engine directly (an admin logout); the
	// very next introspection, with no wait, must see it.
	lo, err := env.eng.Logout(context.Background(), slobridge.LogoutRequest{
		SessionIDs: []string{sidOf(t, env, tok.AccessToken)}, Initiator: store.Initiator{Kind: store.InitiatorAdmin, ID: "ops"}})
	if err != nil || len(lo.SessionIDs) != 1 {
		t.Fatalf("logout: %v %v", lo, err)
	}
	wantInactive(t, "token of the session just ended", env.introspect(t, rsID, rsSecret, tok.AccessToken))
	if m := env.introspect(t, rsID, rsSecret, other.AccessToken); m["active"] != true {
		t.Fatalf("token of another session: %v", m)
	}
}

func TestDiscoveryAdvertisesTokenEndpoints(t *testing.T) {
	env := newTokenEnv(t)
	d := env.p.Discovery()
	iss := env.p.Issuer()
	if d.IntrospectionEndpoint != iss+PathIntrospect || d.RevocationEndpoint != iss+PathRevoke {
		t.Fatalf("endpoints %q %q", d.IntrospectionEndpoint, d.RevocationEndpoint)
	}
	if strings.Join(d.IntrospectionEndpointAuthMethodsSupported, " ") != "client_secret_basic client_secret_post" {
		t.Fatalf("introspection auth methods %v: public clients cannot introspect", d.IntrospectionEndpointAuthMethodsSupported)
	}
	if len(d.RevocationEndpointAuthMethodsSupported) == 0 {
		t.Fatal("no revocation auth methods")
	}
	// A client_secret_post client introspects and revokes its own token
	// with credentials in the body.
	reg := env.register(t, ClientMetadata{ClientName: "post", RedirectURIs: []string{unusedCallback}, TokenEndpointAuthMethod: AuthSecretPost})
	rp := rpClient{id: reg.ClientID, conf: &oauth2.Config{
		ClientID: reg.ClientID, ClientSecret: reg.ClientSecret, RedirectURL: unusedCallback, Scopes: []string{"openid"},
		Endpoint: oauth2.Endpoint{AuthURL: iss + PathAuthorize, TokenURL: iss + PathToken, AuthStyle: oauth2.AuthStyleInParams},
	}}
	_, tok := env.login(t, rp)
	creds := url.Values{"client_id": {reg.ClientID}, "client_secret": {reg.ClientSecret}}
	form := url.Values{"token": {tok.AccessToken}}
	for k, v := range creds {
		form[k] = v
	}
	if code, _, m := env.postToken(t, PathIntrospect, "", "", form); code != http.StatusOK || m["active"] != true {
		t.Fatalf("client_secret_post introspection: HTTP %d %v", code, m)
	}
	if code, _, _ := env.postToken(t, PathRevoke, "", "", form); code != http.StatusOK {
		t.Fatalf("client_secret_post revocation: HTTP %d", code)
	}
	if _, _, m := env.postToken(t, PathIntrospect, "", "", form); len(m) != 1 || m["active"] != false {
		t.Fatalf("after revocation: %v", m)
	}
}

// benchTokens logs in n times through the code flow and returns the access
// tokens, each of its own session.
func benchTokens(b *testing.B, env *tokenEnv, n int) []string {
	b.Helper()
	rp := env.newRPClient(b, "bench")
	toks := make([]string, n)
	for i := range toks {
		_, tok := env.login(b, rp)
		toks[i] = tok.AccessToken
	}
	return toks
}

// BenchmarkIntrospectHTTP measures introspection over real HTTP on
// 127.0.0.1 with the load generator (testdata/loadclient: 16 parallel
// keep-alive clients authenticating as a resource server with HTTP Basic)
// in its own process, so that the server's CPU time per request is
// measured apart from the client's. Client and server share the machine's
// cores; req/s is the wall-clock rate, server-req/s@2cores the rate the
// server's CPU cost per request allows on two cores.
func BenchmarkIntrospectHTTP(b *testing.B) {
	env := newTokenEnv(b)
	toks := benchTokens(b, env, 16)
	dir := b.TempDir()
	gobin, err := exec.LookPath("go")
	if err != nil {
		b.Fatalf("the load generator is built with the go command: %v", err)
	}
	bin := filepath.Join(dir, "loadclient")
	if out, err := exec.Command(gobin, "build", "-o", bin, "./testdata/loadclient").CombinedOutput(); err != nil {
		b.Fatalf("build load generator: %v\n%s", err, out)
	}
	var bodies strings.Builder
	for _, tok := range toks {
		bodies.WriteString(url.Values{"token": {tok}, "token_type_hint": {"access_token"}}.Encode() + "\n")
	}
	bodiesFile := filepath.Join(dir, "bodies")
	if err := os.WriteFile(bodiesFile, []byte(bodies.String()), 0o600); err != nil {
		b.Fatal(err)
	}
	auth := "Basic " + base64.StdEncoding.EncodeToString([]byte(rsID+":"+rsSecret))
	b.ResetTimer()
	cpu0 := cpuTime(b)
	cmd := exec.Command(bin, "-url", env.p.Issuer()+PathIntrospect, "-auth", auth, "-bodies", bodiesFile,
		"-n", strconv.Itoa(b.N), "-c", "16")
	cmd.Stderr = os.Stderr
	out, err := cmd.Output()
	if err != nil {
		b.Fatalf("load generator: %v", err)
	}
	server := cpuTime(b) - cpu0
	b.StopTimer()
	ns, err := strconv.ParseInt(strings.TrimSpace(string(out)), 10, 64)
	if err != nil {
		b.Fatalf("load generator output %q", out)
	}
	client := cmd.ProcessState.UserTime() + cmd.ProcessState.SystemTime()
	perOp := server / time.Duration(b.N)
	b.ReportMetric(float64(b.N)/time.Duration(ns).Seconds(), "req/s")
	b.ReportMetric(float64(perOp.Nanoseconds())/1e3, "server-cpu-µs/req")
	b.ReportMetric(float64((client/time.Duration(b.N)).Nanoseconds())/1e3, "client-cpu-µs/req")
	b.ReportMetric(2*float64(time.Second)/float64(perOp), "server-req/s@2cores")
}

// BenchmarkIntrospectHTTPOneProcess is BenchmarkIntrospectHTTP with the
// clients in the benchmark's own process (16 goroutines, keep-alive): the
// CPU time per request then covers client and server together.
func BenchmarkIntrospectHTTPOneProcess(b *testing.B) {
	env := newTokenEnv(b)
	toks := benchTokens(b, env, 16)
	tr := &http.Transport{MaxIdleConnsPerHost: 256, MaxConnsPerHost: 256}
	defer tr.CloseIdleConnections()
	client := &http.Client{Transport: tr}
	target := env.p.Issuer() + PathIntrospect
	bodies := make([]string, len(toks))
	for i, tok := range toks {
		bodies[i] = url.Values{"token": {tok}, "token_type_hint": {"access_token"}}.Encode()
	}
	auth := "Basic " + base64.StdEncoding.EncodeToString([]byte(rsID+":"+rsSecret))
	var seq atomic.Int64
	b.SetParallelism(8)
	b.ReportAllocs()
	b.ResetTimer()
	start, cpu0 := time.Now(), cpuTime(b)
	b.RunParallel(func(pb *testing.PB) {
		buf := make([]byte, 4096)
		hdr := http.Header{"Content-Type": {"application/x-www-form-urlencoded"}, "Authorization": {auth}}
		for pb.Next() {
			i := seq.Add(1)
			req, _ := http.NewRequest(http.MethodPost, target, strings.NewReader(bodies[i%int64(len(bodies))]))
			req.Header = hdr
			resp, err := client.Do(req)
			if err != nil {
				b.Fatal(err)
			}
			n, _ := io.ReadFull(resp.Body, buf)
			resp.Body.Close()
			if resp.StatusCode != http.StatusOK || !bytes.HasPrefix(buf[:n], []byte(`{"active":true,`)) {
				b.Fatalf("HTTP %d %s", resp.StatusCode, buf[:n])
			}
		}
	})
	reportThroughput(b, start, cpu0)
}

// cpuTime is the CPU time (user + system) this process has used so far.
func cpuTime(tb testing.TB) time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		tb.Fatal(err)
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// reportThroughput reports the measured requests per second, the CPU time
// per request (client and server together, as both run in this process)
// and the rate that CPU cost allows on two dedicated cores: on a shared,
// busy machine the wall-clock rate understates what two cores deliver.
func reportThroughput(b *testing.B, start time.Time, cpu0 time.Duration) {
	wall, cpu := time.Since(start), cpuTime(b)-cpu0
	perOp := cpu / time.Duration(b.N)
	b.ReportMetric(float64(b.N)/wall.Seconds(), "req/s")
	b.ReportMetric(float64(perOp.Nanoseconds())/1e3, "cpu-µs/req")
	b.ReportMetric(2*float64(time.Second)/float64(perOp), "req/s@2cores")
}

// BenchmarkIntrospectInProcess measures Provider.Introspect alone: cached
// signature check, revocation lookup and session lookup in bbolt.
func BenchmarkIntrospectInProcess(b *testing.B) {
	env := newTokenEnv(b)
	toks := benchTokens(b, env, 16)
	rs, err := env.p.client(context.Background(), rsID)
	if err != nil {
		b.Fatal(err)
	}
	var seq atomic.Int64
	b.ReportAllocs()
	b.ResetTimer()
	start, cpu0 := time.Now(), cpuTime(b)
	b.RunParallel(func(pb *testing.PB) {
		ctx := context.Background()
		for pb.Next() {
			i := seq.Add(1)
			res, err := env.p.Introspect(ctx, rs, IntrospectionRequest{Token: toks[i%int64(len(toks))]})
			if err != nil || !res.Active {
				b.Fatalf("introspect: %v %v", res, err)
			}
		}
	})
	reportThroughput(b, start, cpu0)
}

func TestReadForm(t *testing.T) {
	big := "token=" + strings.Repeat("a", maxFormBytes)
	tests := []struct {
		name, contentType, body string
		want                    url.Values
		wantErr                 bool
	}{
		{"plain", "application/x-www-form-urlencoded", "token=abc.def.ghi&token_type_hint=access_token",
			url.Values{"token": {"abc.def.ghi"}, "token_type_hint": {"access_token"}}, false},
		{"escapes", "application/x-www-form-urlencoded; charset=UTF-8", "client_id=a%2Bb&client_secret=x+y%25",
			url.Values{"client_id": {"a+b"}, "client_secret": {"x y%"}}, false},
		{"repeated and empty pairs", "Application/X-WWW-Form-Urlencoded", "token=1&&token=2&flag",
			url.Values{"token": {"1", "2"}, "flag": {""}}, false},
		{"other content type", "application/json", `{"token":"x"}`, url.Values{}, false},
		{"no content type", "", "token=x", url.Values{}, false},
		{"semicolon", "application/x-www-form-urlencoded", "token=x;y", nil, true},
		{"bad escape", "application/x-www-form-urlencoded", "token=%zz", nil, true},
		{"too large", "application/x-www-form-urlencoded", big, nil, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := httptest.NewRequest(http.MethodPost, "/oidc/introspect?token=from-query", strings.NewReader(tt.body))
			if tt.contentType != "" {
				r.Header.Set("Content-Type", tt.contentType)
			}
			got, err := readForm(httptest.NewRecorder(), r)
			if (err != nil) != tt.wantErr {
				t.Fatalf("err = %v, want error %v", err, tt.wantErr)
			}
			if !tt.wantErr && !reflect.DeepEqual(got, tt.want) {
				t.Fatalf("form = %v, want %v", got, tt.want)
			}
		})
	}
}

// TestResourceServerCannotObtainTokens: a resource server authenticates
// like a confidential client but has no redirect URI and no grant, so the
// authorization and token endpoints give it nothing.
func TestResourceServerCannotObtainTokens(t *testing.T) {
	env := newTokenEnv(t)
	q := url.Values{"client_id": {rsID}, "response_type": {"code"}, "scope": {"openid"},
		"redirect_uri": {unusedCallback}, "state": {"s"}}
	resp, err := noFollow(browser(t)).Get(env.p.Issuer() + PathAuthorize + "?" + q.Encode())
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusBadRequest || resp.Header.Get("Location") != "" {
		t.Fatalf("authorize as a resource server: HTTP %d Location %q, want an error page", resp.StatusCode, resp.Header.Get("Location"))
	}
	for _, form := range []url.Values{
		{"grant_type": {"authorization_code"}, "code": {"guessed"}, "redirect_uri": {unusedCallback}},
		{"grant_type": {"refresh_token"}, "refresh_token": {"guessed"}},
		{"grant_type": {"client_credentials"}},
	} {
		code, _, m := env.postToken(t, PathToken, rsID, rsSecret, form)
		if code != http.StatusBadRequest || m["access_token"] != nil {
			t.Fatalf("token endpoint (%s) as a resource server: HTTP %d %v", form.Get("grant_type"), code, m)
		}
	}
}
