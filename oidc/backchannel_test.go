package oidc

import (
	"context"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	gooidc "github.com/coreos/go-oidc/v3/oidc"

	"github.com/slobridge/slobridge"
	"github.com/slobridge/slobridge/store"
)

// backReceiver is a back-channel endpoint that answers with scripted
// statuses and records what it received.
type backReceiver struct {
	srv      *httptest.Server
	mu       sync.Mutex
	statuses []int // answered in order; the last one repeats
	got      []*http.Request
	forms    []url.Values
}

func newBackReceiver(t *testing.T, statuses ...int) *backReceiver {
	t.Helper()
	r := &backReceiver{statuses: statuses}
	r.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		body, _ := io.ReadAll(req.Body)
		form, _ := url.ParseQuery(string(body))
		r.mu.Lock()
		r.got = append(r.got, req)
		r.forms = append(r.forms, form)
		st := r.statuses[min(len(r.got), len(r.statuses))-1]
		r.mu.Unlock()
		if st == http.StatusFound {
			w.Header().Set("Location", "/elsewhere")
		}
		w.WriteHeader(st)
	}))
	t.Cleanup(r.srv.Close)
	return r
}

func (r *backReceiver) count() int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return len(r.got)
}

// TestBackChannelNotify: one attempt POSTs a form with logout_token alone;
// 200 and 204 are success, anything else (400, 5xx, a redirect, which is
// not followed) a failure the engine retries.
func TestBackChannelNotify(t *testing.T) {
	tests := []struct {
		status    int
		ok        bool
		permanent bool
	}{
		{http.StatusOK, true, false},
		{http.StatusNoContent, true, false},
		{http.StatusBadRequest, false, false},
		{http.StatusFound, false, false},
		{http.StatusInternalServerError, false, false},
		{http.StatusServiceUnavailable, false, false},
		{http.StatusNotFound, false, false},
	}
	b := newBridgeEngine(t, quietEngine)
	n := b.p.BackChannelNotifier(slobridge.NewBackChannelClient(slobridge.ClientOptions{AllowLoopback: true}))
	for _, tc := range tests {
		t.Run(http.StatusText(tc.status), func(t *testing.T) {
			rcv := newBackReceiver(t, tc.status)
			d := store.Delivery{ID: "delivery-1", Participant: store.Participant{
				SessionID: "sid-1", Kind: ParticipantKind, AppID: "app", BackChannelURL: rcv.srv.URL + "/bc",
				Data: map[string]string{DataSubject: "alice", DataAlg: "ES256"},
			}}
			err := n.Notify(context.Background(), d)
			var de *slobridge.DeliveryError
			switch {
			case tc.ok && err != nil:
				t.Fatalf("Notify: %v, want success", err)
			case !tc.ok && (!errors.As(err, &de) || de.Permanent != tc.permanent || de.StatusCode != tc.status):
				t.Fatalf("Notify: %#v, want a DeliveryError with status %d, permanent %v", err, tc.status, tc.permanent)
			}
			if rcv.count() != 1 {
				t.Fatalf("receiver hit %d times, want 1 (redirects are not followed)", rcv.count())
			}
			req, form := rcv.got[0], rcv.forms[0]
			if req.Method != http.MethodPost || req.URL.Path != "/bc" ||
				req.Header.Get("Content-Type") != "application/x-www-form-urlencoded" || req.Header.Get(DeliveryIDHeader) != "delivery-1" {
				t.Fatalf("request %s %s, Content-Type %q, delivery id %q", req.Method, req.URL.Path, req.Header.Get("Content-Type"), req.Header.Get(DeliveryIDHeader))
			}
			if len(form) != 1 || form.Get("logout_token") == "" {
				t.Fatalf("form = %v, want logout_token alone", form)
			}
			v := gooidc.NewVerifier(b.p.Issuer(), b.p.keys, &gooidc.Config{ClientID: "app", SupportedSigningAlgs: []string{"ES256"}})
			lt, err := v.VerifyLogout(context.Background(), form.Get("logout_token"))
			if err != nil {
				t.Fatalf("VerifyLogout: %v", err)
			}
			if alg, typ := jwsHeader(t, form.Get("logout_token")); alg != "ES256" || typ != "logout+jwt" {
				t.Fatalf("logout token alg %q typ %q", alg, typ)
			}
			if lt.SessionID != "sid-1" || lt.Subject != "alice" {
				t.Fatalf("logout token sid %q sub %q", lt.SessionID, lt.Subject)
			}
		})
	}
}

// TestBackChannelRetried: a receiver that refuses the first attempt (400)
// and fails the second (503) gets a third from the engine; each attempt
// carries a fresh jti and the same delivery ID, and the delivery ends
// delivered.
func TestBackChannelRetried(t *testing.T) {
	ctx := t.Context()
	b := newBridge(t)
	rcv := newBackReceiver(t, http.StatusBadRequest, http.StatusServiceUnavailable, http.StatusNoContent)
	reg := b.register(t, ClientMetadata{RedirectURIs: []string{"http://127.0.0.1:1/cb"}, BackchannelLogoutURI: rcv.srv.URL + "/bc"})
	cl, err := b.p.client(ctx, reg.ClientID)
	if err != nil {
		t.Fatal(err)
	}
	now := b.clock.Now()
	s, err := b.eng.CreateSession(ctx, store.Session{UserID: "alice", ExpiresAt: now.Add(time.Hour)})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := b.eng.AddParticipant(ctx, participantFor(cl, s, b.p.Issuer())); err != nil {
		t.Fatal(err)
	}
	lo, err := b.eng.Logout(ctx, slobridge.LogoutRequest{SessionIDs: []string{s.ID}, Initiator: store.Initiator{Kind: store.InitiatorAdmin}})
	if err != nil {
		t.Fatal(err)
	}
	var delivered atomic.Bool
	waitFor(t, "the retried delivery", func() bool {
		st, err := b.eng.Status(ctx, lo.ID)
		if err == nil && len(st.Participants) == 1 && st.Participants[0].State == string(store.DeliveryDelivered) {
			delivered.Store(st.Participants[0].Attempts == 3)
			return true
		}
		return false
	})
	if !delivered.Load() || rcv.count() != 3 {
		t.Fatalf("delivered after %d receiver hits, want 3 attempts", rcv.count())
	}
	v := gooidc.NewVerifier(b.p.Issuer(), b.p.keys, &gooidc.Config{ClientID: reg.ClientID})
	var jtis []string
	for i, form := range rcv.forms {
		lt, err := v.VerifyLogout(ctx, form.Get("logout_token"))
		if err != nil {
			t.Fatalf("attempt %d: %v", i+1, err)
		}
		jtis = append(jtis, lt.TokenID)
	}
	if jtis[0] == jtis[1] || jtis[1] == jtis[2] || jtis[0] == jtis[2] {
		t.Fatalf("jti reused across attempts: %v", jtis)
	}
	for _, req := range rcv.got {
		if id := req.Header.Get(DeliveryIDHeader); id == "" || id != rcv.got[0].Header.Get(DeliveryIDHeader) {
			t.Fatalf("delivery ID %q, want one stable ID", id)
		}
	}
}

// TestBackChannelDialChecked: the notifier's client checks the address it
// actually dials, after DNS resolution, so a receiver host that resolves
// to loopback (localhost here, a rebinding name in an attack) is refused
// when loopback is not allowed, and the receiver never sees a request.
func TestBackChannelDialChecked(t *testing.T) {
	b := newBridgeEngine(t, quietEngine)
	n := b.p.BackChannelNotifier(slobridge.NewBackChannelClient(slobridge.ClientOptions{}))
	rcv := newBackReceiver(t, http.StatusOK)
	u, _ := url.Parse(rcv.srv.URL)
	for _, host := range []string{u.Host, "localhost:" + u.Port()} {
		d := store.Delivery{ID: "d", Participant: store.Participant{
			SessionID: "sid-1", Kind: ParticipantKind, AppID: "app", BackChannelURL: "http://" + host + "/bc",
			Data: map[string]string{DataSubject: "alice"},
		}}
		err := n.Notify(context.Background(), d)
		if !errors.Is(err, slobridge.ErrForbiddenDestination) {
			t.Fatalf("Notify to %s: %v, want ErrForbiddenDestination", host, err)
		}
	}
	if rcv.count() != 0 {
		t.Fatalf("the receiver on loopback got %d requests", rcv.count())
	}
}
