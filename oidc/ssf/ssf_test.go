package ssf

import (
	"context"
	"crypto/rand"
	"crypto/rsa"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/gin-gonic/gin"
	jose "github.com/go-jose/go-jose/v4"

	"github.com/slobridge/slobridge"
	"github.com/slobridge/slobridge/store"
	"github.com/slobridge/slobridge/store/bolt"
)

// testSigner signs with one RSA key through go-jose, as the bridge's key
// manager does.
type testSigner struct {
	key *rsa.PrivateKey
	kid string
}

func (s testSigner) SignJWT(_ context.Context, typ string, claims any) (string, error) {
	sig, err := jose.NewSigner(jose.SigningKey{Algorithm: jose.RS256, Key: jose.JSONWebKey{Key: s.key, KeyID: s.kid}},
		(&jose.SignerOptions{}).WithType(jose.ContentType(typ)))
	if err != nil {
		return "", err
	}
	b, err := json.Marshal(claims)
	if err != nil {
		return "", err
	}
	jws, err := sig.Sign(b)
	if err != nil {
		return "", err
	}
	return jws.CompactSerialize()
}

func newSigner(t *testing.T) testSigner {
	t.Helper()
	k, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	return testSigner{key: k, kid: "k1"}
}

var t0 = time.Date(2026, 11, 25, 10, 0, 0, 0, time.UTC)

func openStore(t *testing.T) store.Store {
	t.Helper()
	db, err := bolt.Open(filepath.Join(t.TempDir(), "ssf.db"), bolt.Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	return db
}

// verifySET checks a SET with go-jose alone, independently of this
// package's types: signature, typ, iss, aud, events and subject.
func verifySET(t *testing.T, raw string, pub *rsa.PublicKey, iss, aud, sid, sub string) map[string]any {
	t.Helper()
	jws, err := jose.ParseSigned(raw, []jose.SignatureAlgorithm{jose.RS256})
	if err != nil {
		t.Fatalf("parse SET: %v", err)
	}
	if typ := jws.Signatures[0].Protected.ExtraHeaders[jose.HeaderType]; typ != "secevent+jwt" {
		t.Fatalf("typ = %v, want secevent+jwt", typ)
	}
	payload, err := jws.Verify(pub)
	if err != nil {
		t.Fatalf("SET signature does not verify: %v", err)
	}
	var c map[string]any
	if err := json.Unmarshal(payload, &c); err != nil {
		t.Fatal(err)
	}
	if c["iss"] != iss {
		t.Errorf("iss = %v, want %s", c["iss"], iss)
	}
	if a, _ := c["aud"].([]any); len(a) != 1 || a[0] != aud {
		t.Errorf("aud = %v, want [%s]", c["aud"], aud)
	}
	if c["jti"] == "" || c["iat"] == nil {
		t.Errorf("jti/iat missing: %v", c)
	}
	for _, forbidden := range []string{"exp", "sub", "nonce"} {
		if _, ok := c[forbidden]; ok {
			t.Errorf("a SET must not carry %s (SSF 1.0 §4.1): %v", forbidden, c)
		}
	}
	if txn, _ := c["txn"].(string); txn == "" {
		t.Errorf("txn missing (SSF 1.0 §4.1.9): %v", c)
	}
	ev, _ := c["events"].(map[string]any)
	if len(ev) != 1 {
		t.Fatalf("events = %v, want exactly one", c["events"])
	}
	p, ok := ev[EventSessionRevoked].(map[string]any)
	if !ok {
		t.Fatalf("no session-revoked event: %v", ev)
	}
	if p["event_timestamp"] == nil || p["initiating_entity"] == nil {
		t.Errorf("event payload incomplete: %v", p)
	}
	subID, _ := c["sub_id"].(map[string]any)
	user, _ := subID["user"].(map[string]any)
	sess, _ := subID["session"].(map[string]any)
	if subID["format"] != "complex" || user["format"] != "iss_sub" || user["sub"] != sub || user["iss"] != iss ||
		sess["format"] != "opaque" || sess["id"] != sid {
		t.Errorf("sub_id = %v, want user %s session %s", subID, sub, sid)
	}
	return c
}

func TestSessionRevokedSETVerifiesWithGoJose(t *testing.T) {
	s := newSigner(t)
	sess := store.Session{ID: "sid-1", UserID: "alice"}
	lo := store.Logout{ID: "lo-1", CreatedAt: t0, Initiator: store.Initiator{Kind: store.InitiatorAdmin}}
	raw, err := s.SignJWT(context.Background(), TokenType, NewSessionRevoked("https://bridge.test", []string{"api"}, "d-1", sess, lo, t0))
	if err != nil {
		t.Fatal(err)
	}
	c := verifySET(t, raw, &s.key.PublicKey, "https://bridge.test", "api", "sid-1", "alice")
	ev := c["events"].(map[string]any)[EventSessionRevoked].(map[string]any)
	if c["txn"] != "lo-1" {
		t.Errorf("txn = %v, want the logout ID lo-1", c["txn"])
	}
	if ev["initiating_entity"] != "admin" || ev["event_timestamp"].(float64) != float64(t0.Unix()) {
		t.Errorf("event payload = %v", ev)
	}
}

func TestPushOutcome(t *testing.T) {
	tests := []struct {
		name      string
		status    int
		body      string
		wantErr   bool
		permanent bool
	}{
		{"accepted", 202, "", false, false},
		{"ok tolerated", 200, "", false, false},
		{"invalid_request is permanent", 400, `{"err":"invalid_request","description":"x"}`, true, true},
		{"invalid_key is permanent", 400, `{"err":"invalid_key","description":"x"}`, true, true},
		{"invalid_issuer is permanent", 400, `{"err":"invalid_issuer","description":"x"}`, true, true},
		{"invalid_audience is permanent", 400, `{"err":"invalid_audience","description":"x"}`, true, true},
		{"authentication_failed is retried", 400, `{"err":"authentication_failed"}`, true, false},
		{"access_denied is retried", 400, `{"err":"access_denied","description":"not yet"}`, true, false},
		{"unknown err is retried", 400, `{"err":"something_new"}`, true, false},
		{"400 without JSON is retried", 400, `oops`, true, false},
		{"401 retried", 401, ``, true, false},
		{"500 retried", 500, ``, true, false},
		{"redirect is a failure", 302, ``, true, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := pushOutcome(tt.status, []byte(tt.body))
			if (err != nil) != tt.wantErr {
				t.Fatalf("err = %v, wantErr %v", err, tt.wantErr)
			}
			var de *slobridge.DeliveryError
			if err != nil && (!errors.As(err, &de) || de.Permanent != tt.permanent || de.StatusCode != tt.status) {
				t.Fatalf("err = %#v, want permanent=%v status=%d", err, tt.permanent, tt.status)
			}
		})
	}
}

func TestReceiverValidate(t *testing.T) {
	tests := []struct {
		r         Receiver
		allowHTTP bool
		ok        bool
	}{
		{Receiver{ID: "api", PushURL: "https://api.example/events"}, false, true},
		{Receiver{ID: "api", PushURL: "http://127.0.0.1:9/events"}, true, true},
		{Receiver{ID: "api", PushURL: "http://api.example/events"}, false, false},
		{Receiver{ID: "", PushURL: "https://api.example/events"}, false, false},
		{Receiver{ID: "api", PushURL: "/events"}, false, false},
		{Receiver{ID: "api", PushURL: "https://api.example/events#frag"}, false, false},
	}
	for _, tt := range tests {
		if err := tt.r.Validate(tt.allowHTTP); (err == nil) != tt.ok {
			t.Errorf("Validate(%+v, %v) = %v, want ok=%v", tt.r, tt.allowHTTP, err, tt.ok)
		}
	}
}

// TestPushThroughEngine runs the whole path: a receiver joins a session,
// the session is logged out, the engine's outbox pushes the SET; a
// receiver that is down at first gets it after it comes back.
func TestPushThroughEngine(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	st := openStore(t)
	s := newSigner(t)

	var mu sync.Mutex
	var got []string
	var auth, ids []string
	down := true
	rcv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		defer mu.Unlock()
		ids = append(ids, r.Header.Get(slobridge.DeliveryIDHeader))
		if down {
			w.WriteHeader(http.StatusServiceUnavailable)
			down = false // back on the next attempt
			return
		}
		if r.Header.Get("Content-Type") != ContentType || r.Header.Get("Accept") != "application/json" {
			w.WriteHeader(http.StatusBadRequest)
			return
		}
		b, _ := io.ReadAll(r.Body)
		got = append(got, string(b))
		auth = append(auth, r.Header.Get("Authorization"))
		w.WriteHeader(http.StatusAccepted)
	}))
	defer rcv.Close()

	if err := PutReceiver(ctx, st, Receiver{ID: "api", Name: "Demo API", PushURL: rcv.URL + "/events", Authorization: "Bearer push-secret"}, true, true, t0); err != nil {
		t.Fatal(err)
	}
	eng, err := slobridge.NewEngine(slobridge.Options{Store: st, BackoffBase: 5 * time.Millisecond, BackoffMax: 20 * time.Millisecond, PollInterval: 10 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	eng.SetNotifier(Kind, &Pusher{Issuer: "https://bridge.test", Store: st, Signer: s,
		Client: slobridge.NewBackChannelClient(slobridge.ClientOptions{AllowLoopback: true})})
	tr := &Transmitter{Issuer: "https://bridge.test", JWKSURI: "https://bridge.test/jwks", Store: st}
	sess, err := eng.CreateSession(ctx, store.Session{UserID: "alice", ExpiresAt: time.Now().Add(time.Hour)})
	if err != nil {
		t.Fatal(err)
	}
	if err := tr.JoinSession(ctx, eng, sess); err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- eng.Run(ctx) }()
	lo, err := eng.Logout(ctx, slobridge.LogoutRequest{SessionIDs: []string{sess.ID}, Initiator: store.Initiator{Kind: store.InitiatorUser}})
	if err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(60 * time.Second) // generous: never fail because the machine is slow
	for {
		status, err := eng.Status(ctx, lo.ID)
		if err != nil {
			t.Fatal(err)
		}
		if status.Done {
			if len(status.Participants) != 1 || status.Participants[0].State != "delivered" || status.Participants[0].Attempts != 2 {
				t.Fatalf("status = %+v, want one receiver delivered after 2 attempts", status.Participants)
			}
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("SET not delivered: %+v", status)
		}
		time.Sleep(10 * time.Millisecond)
	}
	mu.Lock()
	defer mu.Unlock()
	if len(ids) < 2 || ids[0] == "" || ids[0] != ids[len(ids)-1] {
		t.Fatalf("Slobridge-Delivery-Id of the attempts: %q, want one stable ID on each", ids)
	}
	if len(got) != 1 || auth[0] != "Bearer push-secret" {
		t.Fatalf("receiver got %d SETs (auth %v), want 1 with its credential", len(got), auth)
	}
	verifySET(t, got[0], &s.key.PublicKey, "https://bridge.test", "api", sess.ID, "alice")
	cancel()
	<-done
}

func TestTransmitterMetadata(t *testing.T) {
	tr := &Transmitter{Issuer: "https://bridge.test", JWKSURI: "https://bridge.test/jwks"}
	md := tr.Metadata()
	if md.SpecVersion != "1_0" || md.Issuer != "https://bridge.test" || md.JWKSURI == "" ||
		len(md.DeliveryMethodsSupported) != 1 || md.DeliveryMethodsSupported[0] != DeliveryPush {
		t.Fatalf("metadata = %+v", md)
	}
}

// TestTransmitterMetadataHTTP: GET /.well-known/ssf-configuration answers
// JSON with exactly the SSF 1.0 §7.1 member names and values the bridge
// serves, and advertises no stream-management endpoint it lacks.
func TestTransmitterMetadataHTTP(t *testing.T) {
	gin.SetMode(gin.ReleaseMode)
	r := gin.New()
	tr := &Transmitter{Issuer: "https://bridge.test", JWKSURI: "https://bridge.test/oidc/jwks"}
	tr.Mount(r)
	srv := httptest.NewServer(r)
	t.Cleanup(srv.Close)
	resp, err := http.Get(srv.URL + "/.well-known/ssf-configuration")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK || !strings.HasPrefix(resp.Header.Get("Content-Type"), "application/json") {
		t.Fatalf("HTTP %d %s", resp.StatusCode, resp.Header.Get("Content-Type"))
	}
	var md map[string]any
	if err := json.NewDecoder(resp.Body).Decode(&md); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		member string
		want   any
	}{
		{"spec_version", "1_0"},
		{"issuer", "https://bridge.test"},
		{"jwks_uri", "https://bridge.test/oidc/jwks"},
		{"delivery_methods_supported", []any{"urn:ietf:rfc:8935"}},
	}
	for _, tc := range tests {
		got, _ := json.Marshal(md[tc.member])
		want, _ := json.Marshal(tc.want)
		if string(got) != string(want) {
			t.Errorf("%s = %s, want %s", tc.member, got, want)
		}
	}
	if len(md) != len(tests) {
		t.Errorf("metadata %v has members beyond %d served ones (no stream management endpoints exist)", md, len(tests))
	}
}
