package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"sync"
	"sync/atomic"
	"time"

	jose "github.com/go-jose/go-jose/v4"

	"github.com/slobridge/slobridge/oidc"
)

// netDialer is the dialer of the tool's HTTP transport.
var netDialer = net.Dialer{Timeout: 5 * time.Second, KeepAlive: 30 * time.Second}

// arrival is what the receivers saw of one (session, receiver) pair.
type arrival struct {
	First     time.Time // when the first logout token for it arrived
	Count     int       // how many requests carried it (retries, duplicates)
	Delivered time.Time // when it was first answered 200 (zero: never)
	OK        int       // how many requests for it were answered 200
}

type arrivalKey struct {
	SID string
	Rcv int
}

// receivers are the apps' Back-Channel Logout endpoints: one listener per
// app on its own 127.0.0.1 port (so the bridge's per-host limit applies per
// app, as with apps on distinct hosts). Each verifies the logout token's
// signature against the bridge's JWKS and its event claim, records the
// session, waits its delay and answers 200, or 500 while failing.
type receivers struct {
	keysMu sync.Mutex
	keys   *jose.JSONWebKeySet
	// fetchKeys reloads the JWKS, as relying parties do when a token
	// names a key they have not seen (a key the bridge created later).
	fetchKeys func() (*jose.JSONWebKeySet, error)
	srvs      []*http.Server
	urls      []string

	delay   atomic.Int64 // nanoseconds
	failing []atomic.Bool
	failed  atomic.Int64 // requests answered 500
	bad     atomic.Int64 // requests whose token did not verify

	mu   sync.Mutex
	seen map[arrivalKey]*arrival
	// seenBy and okBy count, per session, the receivers that saw it and
	// the receivers that acknowledged it, so that waiting is O(1).
	seenBy map[string]int
	okBy   map[string]int
}

// startReceivers starts n receivers. The JWKS is set later (setKeys),
// once the bridge is known.
func startReceivers(n int) (*receivers, error) {
	rs := &receivers{failing: make([]atomic.Bool, n), seen: map[arrivalKey]*arrival{},
		seenBy: map[string]int{}, okBy: map[string]int{}}
	for i := range n {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			rs.Close()
			return nil, fmt.Errorf("receiver %d: listen: %w (raise the open-file limit?)", i, err)
		}
		srv := &http.Server{Handler: rs.handler(i), ReadHeaderTimeout: 10 * time.Second}
		go func() { _ = srv.Serve(ln) }()
		rs.srvs = append(rs.srvs, srv)
		rs.urls = append(rs.urls, "http://"+ln.Addr().String()+"/backchannel-logout")
	}
	return rs, nil
}

// Close stops every receiver.
func (rs *receivers) Close() {
	for _, s := range rs.srvs {
		_ = s.Close()
	}
}

// setKeys fetches the bridge's JWKS, against which tokens are verified,
// and keeps the means to fetch it again.
func (rs *receivers) setKeys(ctx context.Context, l *loader) error {
	rs.fetchKeys = func() (*jose.JSONWebKeySet, error) {
		req, err := http.NewRequestWithContext(ctx, http.MethodGet, l.t.BaseURL+oidc.PathJWKS, nil)
		if err != nil {
			return nil, err
		}
		var ks jose.JSONWebKeySet
		if err := l.doJSON(req, http.StatusOK, &ks); err != nil {
			return nil, fmt.Errorf("JWKS: %w", err)
		}
		return &ks, nil
	}
	ks, err := rs.fetchKeys()
	if err != nil {
		return err
	}
	rs.keys = ks
	return nil
}

// key returns the verification key kid, reloading the JWKS once when it
// is unknown.
func (rs *receivers) key(kid string) (jose.JSONWebKey, error) {
	rs.keysMu.Lock()
	defer rs.keysMu.Unlock()
	if rs.keys == nil {
		return jose.JSONWebKey{}, errors.New("no JWKS yet")
	}
	if ks := rs.keys.Key(kid); len(ks) > 0 {
		return ks[0], nil
	}
	fresh, err := rs.fetchKeys()
	if err != nil {
		return jose.JSONWebKey{}, err
	}
	rs.keys = fresh
	if ks := rs.keys.Key(kid); len(ks) > 0 {
		return ks[0], nil
	}
	return jose.JSONWebKey{}, fmt.Errorf("unknown key %q", kid)
}

func (rs *receivers) handler(i int) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		at := time.Now()
		r.Body = http.MaxBytesReader(w, r.Body, 64<<10)
		if r.Method != http.MethodPost || r.ParseForm() != nil {
			http.Error(w, "want a form POST", http.StatusBadRequest)
			return
		}
		sid, err := rs.verify(r.PostForm.Get("logout_token"))
		if err != nil {
			rs.bad.Add(1)
			http.Error(w, err.Error(), http.StatusBadRequest)
			return
		}
		rs.mu.Lock()
		k := arrivalKey{SID: sid, Rcv: i}
		a := rs.seen[k]
		if a == nil {
			a = &arrival{First: at}
			rs.seen[k] = a
			rs.seenBy[sid]++
		}
		a.Count++
		rs.mu.Unlock()
		if d := time.Duration(rs.delay.Load()); d > 0 {
			time.Sleep(d) // the app's own processing time
		}
		if rs.failing[i].Load() {
			rs.failed.Add(1)
			http.Error(w, "receiver is down", http.StatusInternalServerError)
			return
		}
		rs.mu.Lock()
		if a.Delivered.IsZero() {
			a.Delivered = time.Now()
			rs.okBy[sid]++
		}
		a.OK++
		rs.mu.Unlock()
		w.WriteHeader(http.StatusOK)
	})
}

// verify checks a logout token's RS256 signature against the JWKS, its
// typ and its back-channel logout event, and returns its sid.
func (rs *receivers) verify(raw string) (string, error) {
	jws, err := jose.ParseSigned(raw, []jose.SignatureAlgorithm{jose.RS256, jose.ES256})
	if err != nil || len(jws.Signatures) != 1 {
		return "", errors.New("malformed logout token")
	}
	h := jws.Signatures[0].Header
	if typ, _ := h.ExtraHeaders[jose.HeaderType].(string); typ != "logout+jwt" {
		return "", fmt.Errorf("logout token typ %q", typ)
	}
	k, err := rs.key(h.KeyID)
	if err != nil {
		return "", err
	}
	payload, err := jws.Verify(k)
	if err != nil {
		return "", errors.New("bad logout token signature")
	}
	var c struct {
		SID    string                     `json:"sid"`
		Events map[string]json.RawMessage `json:"events"`
	}
	if err := json.Unmarshal(payload, &c); err != nil {
		return "", errors.New("logout token claims")
	}
	if _, ok := c.Events[oidc.BackchannelLogoutEvent]; !ok || c.SID == "" {
		return "", errors.New("logout token without the event or sid")
	}
	return c.SID, nil
}

// got returns what receiver i saw of session sid.
func (rs *receivers) got(sid string, i int) (arrival, bool) {
	rs.mu.Lock()
	defer rs.mu.Unlock()
	a, ok := rs.seen[arrivalKey{SID: sid, Rcv: i}]
	if !ok {
		return arrival{}, false
	}
	return *a, true
}

// countSeen counts the receivers that saw sid (the tool's receivers
// only ever get the sessions of the apps it logged in to).
func (rs *receivers) countSeen(sid string) int {
	rs.mu.Lock()
	defer rs.mu.Unlock()
	return rs.seenBy[sid]
}

// countOK counts the receivers that acknowledged sid.
func (rs *receivers) countOK(sid string) int {
	rs.mu.Lock()
	defer rs.mu.Unlock()
	return rs.okBy[sid]
}

// drainBody discards and closes a response body.
func drainBody(rc io.ReadCloser) {
	_, _ = io.Copy(io.Discard, io.LimitReader(rc, maxBody))
	_ = rc.Close()
}
