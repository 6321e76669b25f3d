package oidc

import (
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/http/cookiejar"
	"net/url"
	"strings"
	"syscall"
	"testing"
	"time"

	"golang.org/x/oauth2"

	"github.com/slobridge/slobridge/store"
)

// benchClient registers a confidential client for the benchmarks.
func benchClient(b *testing.B, br *bridge, alg string) RegistrationResponse {
	b.Helper()
	return br.register(b, ClientMetadata{
		ClientName: "bench", RedirectURIs: []string{"http://127.0.0.1:1/callback"},
		BackchannelLogoutURI: "http://127.0.0.1:1/backchannel", IDTokenSignedResponseAlg: alg,
	})
}

// codeFlow runs one complete authorization code flow as a new browser:
// authorize (no session: the upstream login creates one), the resume
// endpoint (the code is issued), and the token exchange with PKCE and
// client_secret_basic (the client becomes a participant). It returns an
// error string rather than failing so it can run in parallel goroutines.
func codeFlow(tr http.RoundTripper, br *bridge, reg RegistrationResponse) string {
	jar, _ := cookiejar.New(nil)
	c := &http.Client{Transport: tr, Jar: jar, Timeout: 10 * time.Second,
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	verifier := oauth2.GenerateVerifier()
	q := url.Values{
		"response_type": {"code"}, "client_id": {reg.ClientID}, "scope": {"openid email"},
		"redirect_uri": {reg.RedirectURIs[0]}, "state": {"s"}, "nonce": {"n"},
		"code_challenge": {oauth2.S256ChallengeFromVerifier(verifier)}, "code_challenge_method": {"S256"},
	}
	iss := br.p.Issuer()
	resp, err := c.Get(iss + PathAuthorize + "?" + q.Encode())
	if err != nil {
		return err.Error()
	}
	drain(resp)
	resume := resp.Header.Get("Location")
	if resp.StatusCode != http.StatusFound || !strings.HasPrefix(resume, PathResume) {
		return "authorize: " + resp.Status
	}
	resp, err = c.Get(iss + resume)
	if err != nil {
		return err.Error()
	}
	drain(resp)
	loc, err := url.Parse(resp.Header.Get("Location"))
	if err != nil || loc.Query().Get("code") == "" {
		return "resume: " + resp.Status
	}
	form := url.Values{"grant_type": {"authorization_code"}, "code": {loc.Query().Get("code")},
		"redirect_uri": {reg.RedirectURIs[0]}, "code_verifier": {verifier}}
	req, _ := http.NewRequest(http.MethodPost, iss+PathToken, strings.NewReader(form.Encode()))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.SetBasicAuth(reg.ClientID, reg.ClientSecret)
	resp, err = c.Do(req)
	if err != nil {
		return err.Error()
	}
	defer drain(resp)
	var tr2 TokenResponse
	if err := json.NewDecoder(resp.Body).Decode(&tr2); err != nil || resp.StatusCode != http.StatusOK || tr2.IDToken == "" {
		return "token: " + resp.Status
	}
	return ""
}

// processCPU is the user+system CPU time the process used so far.
func processCPU(tb testing.TB) time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		tb.Fatalf("getrusage: %v", err)
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// reportCPU reports the process CPU time per operation since cpu0: on a
// loaded machine it is steadier than the wall clock.
func reportCPU(b *testing.B, cpu0 time.Duration) {
	b.ReportMetric(float64((processCPU(b)-cpu0).Microseconds())/float64(b.N), "cpu-µs/op")
}

// drain reads the rest of a body so the connection is reused.
func drain(resp *http.Response) {
	_, _ = io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
}

// BenchmarkCodeFlow measures complete code flows per second over HTTP on
// 127.0.0.1 against a real bbolt file: each flow creates a bridge session,
// parks and resumes the authorization request, issues and redeems a code,
// adds the participant, and signs an access token and an ID token. "fsync"
// is the production setting; "nosync" shows what the disk costs.
func BenchmarkCodeFlow(b *testing.B) {
	for _, bc := range []struct {
		name   string
		noSync bool
		alg    string // ID tokens (the client's registration) and access tokens
	}{
		{"fsync/RS256", false, "RS256"},
		{"fsync/ES256", false, "ES256"},
		{"nosync/RS256", true, "RS256"},
		{"nosync/ES256", true, "ES256"},
	} {
		b.Run(bc.name, func(b *testing.B) {
			br := newBridgeStore(b, openStore(b, bc.noSync), quietEngine, func(o *Options) { o.AccessTokenAlg = bc.alg })
			reg := benchClient(b, br, bc.alg)
			tr := &http.Transport{MaxIdleConns: 256, MaxIdleConnsPerHost: 256}
			b.Cleanup(tr.CloseIdleConnections)
			if msg := codeFlow(tr, br, reg); msg != "" { // warm up: keys exist
				b.Fatal(msg)
			}
			// Many browsers at once, as on a busy bridge: 64 flows in flight on
			// 2 cores, so that a store that groups commits can show it.
			b.SetParallelism(32)
			cpu0 := processCPU(b)
			b.ResetTimer()
			b.RunParallel(func(pb *testing.PB) {
				for pb.Next() {
					if msg := codeFlow(tr, br, reg); msg != "" {
						b.Error(msg)
						return
					}
				}
			})
			b.StopTimer()
			b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "flows/s")
			// CPU time of the whole process (bridge and the benchmark's
			// HTTP clients) per flow: on a shared machine this, not the
			// wall clock, tells what 2 idle cores would do (2s / cpu).
			b.ReportMetric(float64((processCPU(b)-cpu0).Microseconds())/float64(b.N), "cpu-µs/flow")
		})
	}
}

// BenchmarkMintIDToken measures signing one ID token (claims, JSON, JWS).
func BenchmarkMintIDToken(b *testing.B) {
	br := newBridgeEngine(b, quietEngine)
	for _, alg := range signingAlgs {
		b.Run(alg, func(b *testing.B) {
			cl := Client{ID: "bench-client", Metadata: ClientMetadata{IDTokenSignedResponseAlg: alg}}
			now := time.Now()
			s := store.Session{ID: "sid-bench", UserID: "alice", AuthTime: now, ExpiresAt: now.Add(time.Hour),
				Attributes: map[string][]string{"email": {"alice@example.com"}}}
			g := grant{ClientID: cl.ID, SessionID: s.ID, UserID: s.UserID, Scope: "openid email", Nonce: "n", AuthTime: now}
			ctx := context.Background()
			if _, err := br.p.mintIDToken(ctx, cl, g, s, "access-token", now); err != nil {
				b.Fatal(err)
			}
			cpu0 := processCPU(b)
			for b.Loop() {
				if _, err := br.p.mintIDToken(ctx, cl, g, s, "access-token", now); err != nil {
					b.Fatal(err)
				}
			}
			reportCPU(b, cpu0)
		})
	}
}

// BenchmarkMintLogoutToken measures signing one logout token, as the
// back-channel notifier does for every attempt.
func BenchmarkMintLogoutToken(b *testing.B) {
	br := newBridgeEngine(b, quietEngine)
	for _, alg := range signingAlgs {
		b.Run(alg, func(b *testing.B) {
			part := store.Participant{SessionID: "sid-bench", AppID: "bench-client",
				Data: map[string]string{DataSubject: "alice", DataAlg: alg}}
			ctx := context.Background()
			if _, err := br.p.MintLogoutToken(ctx, part); err != nil {
				b.Fatal(err)
			}
			cpu0 := processCPU(b)
			for b.Loop() {
				if _, err := br.p.MintLogoutToken(ctx, part); err != nil {
					b.Fatal(err)
				}
			}
			reportCPU(b, cpu0)
		})
	}
}
