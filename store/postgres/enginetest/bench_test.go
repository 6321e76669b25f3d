package enginetest

import (
	"context"
	"net/http"
	"path/filepath"
	"testing"
	"time"

	"github.com/slobridge/slobridge"
	"github.com/slobridge/slobridge/store"
	"github.com/slobridge/slobridge/store/bolt"
)

// BenchmarkFanout1000 measures, like the root package's BenchmarkFanout,
// the time from Logout to every back-channel delivery recorded as
// delivered for one session with 1,000 participants, each with its own
// receiver that answers 200 after 50 ms; the engine runs with its default
// Workers and PerHost. It runs on PostgreSQL and on bbolt (fsync on):
//
//	SLOBRIDGE_TEST_POSTGRES_DSN=postgres://postgres@127.0.0.1:5432/test?sslmode=disable \
//	  go test -run '^$' -bench Fanout1000 -benchtime 3x ./store/postgres/enginetest/
func BenchmarkFanout1000(b *testing.B) {
	const n = 1000
	testDSN(b)
	backends := []struct {
		name string
		open func(b *testing.B) store.Store
	}{
		{"postgres", func(b *testing.B) store.Store { return openReplica(b, newSchema(b)) }},
		{"bolt", func(b *testing.B) store.Store {
			db, err := bolt.Open(filepath.Join(b.TempDir(), "slobridge.db"), bolt.Options{})
			if err != nil {
				b.Fatal(err)
			}
			b.Cleanup(func() { _ = db.Close() })
			return db
		}},
	}
	rcs := make([]*receiver, n)
	for i := range rcs {
		rcs[i] = newReceiver(b, func(_ int, w http.ResponseWriter, _ *http.Request) {
			time.Sleep(50 * time.Millisecond) // the receiver's own processing time
		})
	}
	for _, be := range backends {
		b.Run("backend="+be.name, func(b *testing.B) {
			opts := engineOptions(be.open(b), "bench")
			opts.AttemptTimeout = 10 * time.Second
			r := startEngine(b, opts, true)
			events, unsubscribe := r.e.Subscribe(4 * n)
			defer unsubscribe()
			var total time.Duration
			for range b.N {
				b.StopTimer()
				s := login(b, r.e, "bench", rcs)
				b.StartTimer()
				start := time.Now()
				lo, err := r.e.Logout(context.Background(), slobridge.LogoutRequest{SessionIDs: []string{s.ID},
					Initiator: store.Initiator{Kind: store.InitiatorUser}})
				if err != nil {
					b.Fatal(err)
				}
				waitDelivered(b, events, lo.ID, n)
				total += time.Since(start)
			}
			b.ReportMetric(float64(total.Milliseconds())/float64(b.N), "ms/logout")
		})
	}
}

// waitDelivered waits for n delivered events of a logout, failing after a
// minute.
func waitDelivered(b *testing.B, events <-chan slobridge.Event, logoutID string, n int) {
	b.Helper()
	timeout := time.After(time.Minute)
	for got := 0; got < n; {
		select {
		case ev := <-events:
			if ev.LogoutID == logoutID && ev.Delivery != nil && ev.Delivery.State == store.DeliveryDelivered {
				got++
			}
		case <-timeout:
			b.Fatalf("%d of %d deliveries delivered after a minute", got, n)
		}
	}
}
