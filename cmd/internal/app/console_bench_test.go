package app

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/slobridge/slobridge"
	"github.com/slobridge/slobridge/oidc"
	"github.com/slobridge/slobridge/saml/idp"
	"github.com/slobridge/slobridge/store"
	"github.com/slobridge/slobridge/store/bolt"
	"github.com/slobridge/slobridge/store/postgres"
	"github.com/slobridge/slobridge/store/postgres/pgtest"
)

// BenchmarkConsolePages (issue 16) measures each page of the operator
// console, served by the whole bridge, over a store that holds many
// sessions (three participants each, half of them ended by logouts with
// deliveries, some failing) and many registered apps (half OIDC clients,
// half SAML SPs). The sizes come from SLOBRIDGE_BENCH_CONSOLE
// ("sessions,apps", default 10000,1000 so that -bench . stays quick; the
// issue's figure is 100000,1000). PostgreSQL runs when
// SLOBRIDGE_TEST_POSTGRES_DSN is set. Figures are in BENCHMARKS.md.
func BenchmarkConsolePages(b *testing.B) {
	sessions, apps := 10000, 1000
	if v := os.Getenv("SLOBRIDGE_BENCH_CONSOLE"); v != "" {
		f := strings.Split(v, ",")
		var err1, err2 error
		if len(f) == 2 {
			sessions, err1 = strconv.Atoi(f[0])
			apps, err2 = strconv.Atoi(f[1])
		}
		if len(f) != 2 || err1 != nil || err2 != nil || sessions < 2000 || apps < 2 {
			b.Fatalf("SLOBRIDGE_BENCH_CONSOLE=%q: want sessions,apps with at least 2000 sessions and 2 apps", v)
		}
	}
	b.Run("bolt", func(b *testing.B) {
		path := filepath.Join(b.TempDir(), "console.db")
		db, err := bolt.Open(path, bolt.Options{NoSync: true})
		if err != nil {
			b.Fatal(err)
		}
		fixture := seedConsole(b, db, sessions)
		if err := db.Close(); err != nil {
			b.Fatal(err)
		}
		benchConsolePages(b, "store:\n  bolt:\n    path: "+path+"\n", nil, fixture, apps)
	})
	b.Run("postgres", func(b *testing.B) {
		if os.Getenv(pgtest.DSNEnv) == "" {
			b.Skipf("PostgreSQL: set %s to run it", pgtest.DSNEnv)
		}
		dsn, schema := pgtest.DSN(b), pgtest.NewSchema(b)
		// The fixture is written without waiting for the WAL flush (a
		// runtime parameter of the seeding connections only).
		sep := "?"
		if strings.Contains(dsn, "?") {
			sep = "&"
		}
		db, err := postgres.Open(context.Background(), dsn+sep+"synchronous_commit=off", postgres.Options{Schema: schema})
		if err != nil {
			b.Fatal(err)
		}
		fixture := seedConsole(b, db, sessions)
		_ = db.Close()
		benchConsolePages(b, "store:\n  driver: postgres\n  postgres:\n    dsn: ${DSN}\n    schema: "+schema+"\n",
			map[string]string{"DSN": dsn}, fixture, apps)
	})
}

// consoleFixture names what the pages look up.
type consoleFixture struct {
	user, email, logoutID, deliveryID string
}

// seedConsole writes n sessions of n/2 users through the store's own
// operations, from 8 writers: three participants each (among 1,000
// receiver hosts); a tenth of the users logged out everywhere, with every
// third delivery failed and every third retrying.
func seedConsole(b *testing.B, st store.Store, n int) consoleFixture {
	b.Helper()
	ctx := context.Background()
	now := time.Now()
	var wg sync.WaitGroup
	errs := make(chan error, 8)
	for w := range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := w; i < n; i += 8 {
				user := fmt.Sprintf("user-%07d", i/2)
				s := store.Session{ID: fmt.Sprintf("s-%07d", i), UserID: user, Upstream: "static",
					Attributes: map[string][]string{"email": {user + "@example.com"}, "name": {"User " + user}},
					CreatedAt:  now.Add(-time.Hour), AuthTime: now.Add(-time.Hour), ExpiresAt: now.Add(8 * time.Hour)}
				if err := st.CreateSession(ctx, s); err != nil {
					errs <- err
					return
				}
				for j := range 3 {
					app := (i*3 + j) % 1000
					p := store.Participant{SessionID: s.ID, Key: fmt.Sprintf("oidc:app-%d", app), Kind: "oidc", AppID: fmt.Sprintf("app-%d", app),
						Name: fmt.Sprintf("App %d", app), Channels: store.ChannelBack, BackChannelURL: fmt.Sprintf("https://app-%d.example.com/bc", app), JoinedAt: now}
					if _, err := st.AddParticipant(ctx, p); err != nil {
						errs <- err
						return
					}
				}
			}
		}()
	}
	wg.Wait()
	close(errs)
	if err := <-errs; err != nil {
		b.Fatalf("seed sessions: %v", err)
	}
	var f consoleFixture
	for u := 0; u < n/2; u += 10 {
		user := fmt.Sprintf("user-%07d", u)
		seq := 0
		lo, ds, err := st.EndSessions(ctx, store.LogoutSpec{LogoutID: "lo-" + user, UserID: user, Now: now,
			Initiator:     store.Initiator{Kind: store.InitiatorAdmin, ID: "bench"},
			NewDeliveryID: func() string { seq++; return fmt.Sprintf("lo-%s.%d", user, seq) }})
		if err != nil {
			b.Fatalf("seed logouts: %v", err)
		}
		claimed, err := st.ClaimDueDeliveries(ctx, "seed", now, time.Minute, len(ds))
		if err != nil {
			b.Fatalf("seed claims: %v", err)
		}
		for i, d := range claimed {
			a := store.Attempt{At: now, Duration: time.Millisecond, OK: true, StatusCode: 200}
			state, next := store.DeliveryDelivered, time.Time{}
			switch i % 3 {
			case 1:
				a, state = store.Attempt{At: now, Duration: time.Millisecond, StatusCode: 503, Error: "HTTP 503"}, store.DeliveryFailed
			case 2:
				a, state, next = store.Attempt{At: now, Duration: time.Millisecond, Error: "connection refused"}, store.DeliveryRetrying, now.Add(24*time.Hour)
			}
			if _, err := st.CompleteAttempt(ctx, d.ID, "seed", a, state, next); err != nil {
				b.Fatalf("seed attempts: %v", err)
			}
			if state == store.DeliveryFailed {
				f.deliveryID = d.ID
			}
		}
		f.logoutID = lo.ID
	}
	f.user = fmt.Sprintf("user-%07d", n/2-1) // active
	f.email = f.user + "@example.com"
	return f
}

// spMetadata is the metadata of a benchmark SAML SP.
func spMetadata(i int) string {
	return fmt.Sprintf(`<md:EntityDescriptor xmlns:md="urn:oasis:names:tc:SAML:2.0:metadata" entityID="https://sp-%[1]d.example.com/saml">
<md:SPSSODescriptor protocolSupportEnumeration="urn:oasis:names:tc:SAML:2.0:protocol">
<md:SingleLogoutService Binding="urn:oasis:names:tc:SAML:2.0:bindings:SOAP" Location="https://sp-%[1]d.example.com/slo"/>
<md:AssertionConsumerService Binding="urn:oasis:names:tc:SAML:2.0:bindings:HTTP-POST" Location="https://sp-%[1]d.example.com/acs" index="0"/>
</md:SPSSODescriptor></md:EntityDescriptor>`, i)
}

// benchConsolePages serves the bridge over the seeded store, registers the
// apps and measures each console page as the operator bob.
func benchConsolePages(b *testing.B, storeDoc string, env map[string]string, f consoleFixture, apps int) {
	doc := `
server:
  base_url: {{BASE}}
` + storeDoc + `session:
  cookie_secret: ${COOKIE}
admin:
  token: ${ADMIN}
  console:
    allowed_users: [bob]
upstream:
  type: static
  static:
    users:
      - username: bob
        subject: bob
        email: bob@example.com
        password: {env: PASSWORD}
oidc:
  allow_loopback_http: true
  allow_private_backchannel: true
saml:
  idp:
    enabled: true
    certificate_file: testdata/idp.crt
    key: {file: testdata/idp.key}
`
	vars := map[string]string{"COOKIE": strings.Repeat("c", 40), "ADMIN": "admin-token-0123456789", "PASSWORD": "bob-password"}
	for k, v := range env {
		vars[k] = v
	}
	a, base := startAppLog(b, doc, vars, slog.New(slog.NewTextHandler(io.Discard, nil)))
	ctx := context.Background()
	dir := b.TempDir()
	for i := range apps {
		if i%2 == 0 {
			_, err := a.Provider().Register(ctx, oidc.ClientMetadata{ClientName: fmt.Sprintf("Client %d", i),
				RedirectURIs: []string{fmt.Sprintf("https://client-%d.example.com/cb", i)}, TokenEndpointAuthMethod: oidc.AuthNone,
				BackchannelLogoutURI: fmt.Sprintf("http://127.0.0.1:1/client-%d/bc", i)})
			if err != nil {
				b.Fatalf("register client %d: %v", i, err)
			}
			continue
		}
		md := filepath.Join(dir, fmt.Sprintf("sp-%d.xml", i))
		if err := os.WriteFile(md, []byte(spMetadata(i)), 0o600); err != nil {
			b.Fatal(err)
		}
		if _, err := a.SAMLIdP().Register(ctx, idp.SPConfig{MetadataFile: md, Name: fmt.Sprintf("SP %d", i)}); err != nil {
			b.Fatalf("register SP %d: %v", i, err)
		}
	}
	bob, err := a.Engine().CreateSession(ctx, store.Session{UserID: "bob", ExpiresAt: time.Now().Add(time.Hour)})
	if err != nil {
		b.Fatal(err)
	}
	rec := httptest.NewRecorder()
	slobridge.SessionCookies{Secret: []byte(vars["COOKIE"]), Path: "/"}.Set(rec, bob.ID, bob.ExpiresAt)
	cookie := rec.Result().Cookies()[0]

	pages := []struct{ name, path string }{
		{"sessions-by-email", "/admin/?q=" + url.QueryEscape(f.email)},
		{"sessions-by-user", "/admin/?q=" + f.user},
		{"sessions-by-app", "/admin/?by=app&q=app-500"},
		{"sessions-by-upstream", "/admin/?by=upstream&q=static"},
		{"logout-confirm", "/admin/logout?user=" + f.user},
		{"logouts", "/admin/logouts"},
		{"logout-status", "/admin/logouts/" + f.logoutID},
		{"deliveries", "/admin/deliveries"},
		{"delivery", "/admin/deliveries/" + f.deliveryID},
		{"apps", "/admin/apps"},
		{"apps-last-page", "/admin/apps?from=" + strconv.Itoa((apps-1)/100*100)},
		{"upstreams", "/admin/upstreams"},
	}
	client := &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	for _, p := range pages {
		b.Run(p.name, func(b *testing.B) {
			req, _ := http.NewRequest("GET", base+p.path, nil)
			req.AddCookie(cookie)
			for b.Loop() {
				resp, err := client.Do(req)
				if err != nil {
					b.Fatal(err)
				}
				_, _ = io.Copy(io.Discard, resp.Body)
				_ = resp.Body.Close()
				if resp.StatusCode != http.StatusOK {
					b.Fatalf("GET %s: %d", p.path, resp.StatusCode)
				}
			}
			b.ReportMetric(float64(b.Elapsed().Microseconds())/float64(b.N)/1000, "ms/page")
		})
	}
}
