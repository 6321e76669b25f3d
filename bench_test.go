package slobridge

import (
	"context"
	"fmt"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"

	"github.com/slobridge/slobridge/store"
)

// receiverLatency is how long each benchmark receiver takes to answer.
const receiverLatency = 50 * time.Millisecond

// BenchmarkFanout measures the time from Logout to every back-channel
// delivery recorded as delivered, for one session with n participants. Each
// participant has its own receiver (its own httptest server, so its own
// host:port), as real apps are on distinct hosts and PerHost is not the
// binding limit; every receiver answers 200 after 50 ms. The engine runs
// with its default Workers and PerHost on a real bbolt file (fsync on).
// Reported as ms/logout.
func BenchmarkFanout(b *testing.B) {
	for _, n := range []int{10, 100, 1000} {
		b.Run(fmt.Sprintf("participants=%d", n), func(b *testing.B) { benchFanout(b, n) })
	}
}

func benchFanout(b *testing.B, n int) {
	urls := make([]string, n)
	for i := range urls {
		srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			time.Sleep(receiverLatency) // the receiver's own processing time
		}))
		b.Cleanup(srv.Close)
		urls[i] = srv.URL + "/bc"
	}
	st := openStore(b, b.TempDir()+"/slobridge.db")
	opts := testOptions(st)
	opts.AttemptTimeout = 10 * time.Second
	if w := benchWorkers; w > 0 {
		opts.Workers = w
	}
	opts.Notifiers["http"] = &HTTPNotifier{Client: NewBackChannelClient(ClientOptions{AllowLoopback: true})}
	e, _ := runEngine(b, opts)
	events, unsubscribe := e.Subscribe(4 * n)
	defer unsubscribe()

	ps := make([]store.Participant, n)
	for i := range ps {
		ps[i] = backParticipant(fmt.Sprintf("app%04d", i), urls[i])
	}
	var total time.Duration
	b.ResetTimer()
	for range b.N {
		b.StopTimer()
		s := newSession(b, e, "bench", ps...)
		b.StartTimer()
		start := time.Now()
		lo, err := e.Logout(context.Background(), LogoutRequest{SessionIDs: []string{s.ID}, Initiator: store.Initiator{Kind: store.InitiatorUser}})
		if err != nil {
			b.Fatal(err)
		}
		waitDelivered(b, events, lo.ID, n)
		total += time.Since(start)
		b.StopTimer()
		if st, err := e.Status(context.Background(), lo.ID); err != nil || !st.Done {
			b.Fatalf("status after all delivered events: done=%v, %v", st.Done, err)
		}
		b.StartTimer()
	}
	b.ReportMetric(float64(total.Milliseconds())/float64(b.N), "ms/logout")
}

// waitDelivered waits for n delivered events of a logout.
func waitDelivered(b *testing.B, events <-chan Event, logoutID string, n int) {
	b.Helper()
	timeout := time.After(time.Minute)
	for got := 0; got < n; {
		select {
		case ev := <-events:
			if ev.LogoutID != logoutID || ev.Delivery == nil {
				continue
			}
			switch ev.Delivery.State {
			case store.DeliveryDelivered:
				got++
			case store.DeliveryFailed:
				b.Fatalf("delivery %s failed: %s", ev.Delivery.ID, ev.Delivery.LastError)
			}
		case <-timeout:
			b.Fatalf("%d of %d delivered after a minute", got, n)
		}
	}
}

var benchWorkers = 0
