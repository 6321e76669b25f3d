package upstream

import (
	"net/http"
	"testing"
)

// BenchmarkLoginThroughUpstreamOP measures one full login of a browser at
// a bridge whose upstream is an OpenID Provider (another slobridge, in
// process, over real HTTP on 127.0.0.1, both on synced bbolt files): the
// bridge parks the login and redirects; the OP authorizes (its own
// upstream signs the user in at once) and issues a code; the bridge
// redeems it (client_secret_basic, PKCE), verifies the ID token, records
// the session and the upstream sid. Both bridges' work is in the figure.
//
// The OP signs an ID token and an access token per login, with RS256 or
// ES256 (its oidc.signing_alg).
//
//	go test ./oidc/upstream -run '^$' -bench LoginThroughUpstreamOP -benchtime 2000x -cpu 1,2
func BenchmarkLoginThroughUpstreamOP(b *testing.B) {
	for _, alg := range []string{"RS256", "ES256"} {
		b.Run(alg, func(b *testing.B) { benchmarkLogin(b, alg) })
	}
}

func benchmarkLogin(b *testing.B, alg string) {
	durable, upperAlg = true, alg
	defer func() { durable, upperAlg = false, "" }()
	up, lo := chain(b)
	// Discovery and the JWKS are fetched once, as in production.
	if _, code, body := get(b, browser(b), lo.srv.URL+"/start"); code != http.StatusOK {
		b.Fatalf("warm-up login: %d %s", code, body)
	}
	_ = up
	b.ReportAllocs()
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			br := browser(b)
			resp, err := br.Get(lo.srv.URL + "/start")
			if err != nil {
				b.Error(err)
				return
			}
			resp.Body.Close()
			if resp.StatusCode != http.StatusOK || resp.Request.URL.Path != "/done" {
				b.Errorf("login ended at %s with %d", resp.Request.URL, resp.StatusCode)
				return
			}
		}
	})
	b.StopTimer()
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "logins/s")
}
