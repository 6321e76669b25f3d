package app

import (
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/slobridge/slobridge/store/postgres/pgtest"

	"github.com/slobridge/slobridge"
	"github.com/slobridge/slobridge/oidc"
	"github.com/slobridge/slobridge/store"
)

// replicaConfig is the configuration both replicas share: one database
// schema, one public base URL (A's; a load balancer would stand in front
// of both), the static upstream and one OIDC client with a back-channel
// logout URI.
const replicaConfig = `
server:
  base_url: {{PUBLIC}}
store:
  driver: postgres
  postgres:
    dsn: ${DSN}
    schema: {{SCHEMA}}
delivery:
  allow_loopback: true
  backoff_base: 10ms
  backoff_max: 100ms
  poll_interval: 50ms
session:
  cookie_secret: ${COOKIE}
admin:
  token: ${ADMIN}
upstream:
  type: static
  static:
    users:
      - username: alice
        subject: user-alice
        password: {env: PASSWORD}
oidc:
  allow_loopback_http: true
  allow_private_backchannel: true
  clients:
    - client_id: app1
      redirect_uris: [{{RP}}/cb]
      backchannel_logout_uri: {{RP}}/backchannel
      backchannel_logout_session_required: true
      client_secret: {env: APP1_SECRET}
`

// TestReplicasShareEvents runs two Apps on one PostgreSQL schema. A
// token issued by replica A is introspected there (and cached as active);
// an operator ends the session through replica B's admin API. The change
// feed brings the logout to A's engine subscribers as a remote event, and
// from then on A's introspection answers active:false, without waiting for
// its session cache to expire. The client is notified exactly once.
func TestReplicasShareEvents(t *testing.T) {
	dsn := pgtest.DSN(t)
	ctx := context.Background()
	schema := pgtest.NewSchema(t)
	// The client holds its back-channel request until A's introspection
	// has been checked, so that no delivery completed by A (which A would
	// publish itself) can be what clears A's session cache.
	rp := &inbox{status: http.StatusOK}
	hold := make(chan struct{})
	var releaseOnce sync.Once
	release := func() { releaseOnce.Do(func() { close(hold) }) }
	t.Cleanup(release)
	rpURL := newLoopbackServer(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		<-hold
		rp.ServeHTTP(w, r)
	}))
	env := map[string]string{"DSN": dsn, "COOKIE": strings.Repeat("c", 40), "ADMIN": "admin-token-0123456789",
		"PASSWORD": "alice-password", "APP1_SECRET": "app1-secret-0123456789"}
	doc := strings.NewReplacer("{{SCHEMA}}", schema, "{{RP}}", rpURL).Replace(replicaConfig)
	a, baseA := startApp(t, strings.ReplaceAll(doc, "{{PUBLIC}}", "{{BASE}}"), env)
	_, baseB := startApp(t, strings.ReplaceAll(doc, "{{PUBLIC}}", baseA), env)

	// Login at A: a session, an authorization code and its exchange.
	s, err := a.Engine().CreateSession(ctx, store.Session{UserID: "user-alice", AuthTime: time.Now(),
		ExpiresAt: time.Now().Add(time.Hour)})
	if err != nil {
		t.Fatal(err)
	}
	code, err := a.Provider().IssueCode(ctx, oidc.AuthRequest{ClientID: "app1", RedirectURI: rpURL + "/cb",
		ResponseType: "code", Scope: "openid", Nonce: "n-1", MaxAge: -1}, s, time.Now())
	if err != nil {
		t.Fatal(err)
	}
	var tok struct {
		AccessToken string `json:"access_token"`
	}
	postApp1(t, baseA+oidc.PathToken, url.Values{"grant_type": {"authorization_code"}, "code": {code},
		"redirect_uri": {rpURL + "/cb"}}, &tok)
	if tok.AccessToken == "" {
		t.Fatal("no access token from the code exchange")
	}
	introspect := func() oidc.Introspection {
		t.Helper()
		var in oidc.Introspection
		postApp1(t, baseA+oidc.PathIntrospect, url.Values{"token": {tok.AccessToken}}, &in)
		return in
	}
	if in := introspect(); !in.Active || in.SID != s.ID {
		t.Fatalf("introspection at A before the logout: %+v, want active for session %s", in, s.ID)
	}

	events, unsubscribe := a.Engine().Subscribe(256)
	defer unsubscribe()
	lo := adminJSON(t, baseB, env["ADMIN"], "POST", "/admin/v1/logouts", `{"session_id":"`+s.ID+`"}`, http.StatusCreated)
	logoutID := lo["logout"].(map[string]any)["id"].(string)
	// B's deliveries are held by the client: the first remote event is the
	// new logout.
	if ev := waitRemoteEvent(t, events, logoutID); ev.Logout != nil || ev.Delivery != nil || ev.Remote.DeliveryID != "" {
		t.Fatalf("A's first remote event of B's logout: %+v (%+v), want the new logout", ev, ev.Remote)
	}
	if in := introspect(); in.Active {
		t.Fatalf("introspection at A after B's logout reached A: %+v, want active:false", in)
	}
	release()

	st := waitDone(t, baseB, env["ADMIN"], logoutID)
	for _, p := range st["participants"].([]any) {
		if row := p.(map[string]any); row["state"] != "delivered" {
			t.Errorf("participant %v: %v", row["key"], row["state"])
		}
	}
	if bodies, _ := rp.got(); len(bodies) != 1 {
		t.Fatalf("the client got %d back-channel logouts, want 1", len(bodies))
	}
}

// waitRemoteEvent returns the first engine event of logout id made by
// another replica.
func waitRemoteEvent(t *testing.T, events <-chan slobridge.Event, id string) slobridge.Event {
	t.Helper()
	timeout := time.After(waitTimeout)
	for {
		select {
		case ev := <-events:
			if ev.LogoutID == id && ev.Remote != nil {
				return ev
			}
		case <-timeout:
			t.Fatalf("no remote event of logout %s", id)
		}
	}
}

// postApp1 posts a form to u as the client app1 and decodes the JSON
// answer, failing unless it is 200.
func postApp1(t *testing.T, u string, form url.Values, out any) {
	t.Helper()
	req, _ := http.NewRequest("POST", u, strings.NewReader(form.Encode()))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.SetBasicAuth("app1", "app1-secret-0123456789")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != http.StatusOK || json.Unmarshal(b, out) != nil {
		t.Fatalf("POST %s: %d %s", u, resp.StatusCode, b)
	}
}

// BenchmarkReplicaEvent measures how long a logout made by one replica
// takes to reach an engine subscriber of another replica sharing the
// PostgreSQL schema (commit, NOTIFY, the change-feed read, the relay). It
// reports the Logout on the other replica (ms-logout/op) and the median
// and 90th percentile of the time from its return to the event here:
//
//	SLOBRIDGE_TEST_POSTGRES_DSN=postgres://postgres@127.0.0.1:5432/test?sslmode=disable \
//	  go test -run '^$' -bench ReplicaEvent ./cmd/internal/app/
func BenchmarkReplicaEvent(b *testing.B) {
	dsn := pgtest.DSN(b)
	schema := pgtest.NewSchema(b)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	env := map[string]string{"DSN": dsn, "COOKIE": strings.Repeat("c", 40), "ADMIN": "admin-token-0123456789",
		"PASSWORD": "alice-password", "APP1_SECRET": "app1-secret-0123456789"}
	doc := strings.NewReplacer("{{SCHEMA}}", schema, "{{RP}}", "http://127.0.0.1:1", "{{PUBLIC}}", "http://127.0.0.1:8080").Replace(replicaConfig)
	cfg, err := Parse([]byte(doc), func(k string) (string, bool) { v, ok := env[k]; return v, ok })
	if err != nil {
		b.Fatal(err)
	}
	log := slog.New(slog.DiscardHandler)
	replicas := make([]*App, 2)
	for i := range replicas {
		if replicas[i], err = New(ctx, cfg, log); err != nil {
			b.Fatal(err)
		}
		defer replicas[i].Close()
	}
	a, other := replicas[0], replicas[1]
	done := make(chan struct{})
	go func() { defer close(done); a.followChanges(ctx) }()
	defer func() { cancel(); <-done }()
	events, unsubscribe := a.Engine().Subscribe(256)
	defer unsubscribe()
	// logout is the time of Logout on the other replica; relays are the
	// times from its return to the event here.
	var logout time.Duration
	var relays []time.Duration
	for b.Loop() {
		b.StopTimer()
		s, err := other.Engine().CreateSession(ctx, store.Session{UserID: "bench", ExpiresAt: time.Now().Add(time.Hour)})
		if err != nil {
			b.Fatal(err)
		}
		b.StartTimer()
		start := time.Now()
		lo, err := other.Engine().Logout(ctx, slobridge.LogoutRequest{SessionIDs: []string{s.ID},
			Initiator: store.Initiator{Kind: store.InitiatorAdmin}})
		if err != nil {
			b.Fatal(err)
		}
		committed := time.Now()
		for ev := range events {
			if ev.LogoutID == lo.ID {
				break
			}
		}
		logout += committed.Sub(start)
		relays = append(relays, time.Since(committed))
	}
	slices.Sort(relays)
	ms := func(d time.Duration) float64 { return float64(d.Microseconds()) / 1000 }
	b.ReportMetric(ms(logout)/float64(b.N), "ms-logout/op")
	b.ReportMetric(ms(relays[len(relays)/2]), "ms-relay-p50")
	b.ReportMetric(ms(relays[len(relays)*9/10]), "ms-relay-p90")
}
