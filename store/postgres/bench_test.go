package postgres

import (
	"context"
	"fmt"
	"path/filepath"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/slobridge/slobridge/store"
	"github.com/slobridge/slobridge/store/bolt"
)

// The benchmarks run each case on PostgreSQL and, for comparison, on the
// bbolt backend (a real file, fsync on), through the store.Store interface:
//
//	SLOBRIDGE_TEST_POSTGRES_DSN=postgres://postgres@127.0.0.1:5432/test?sslmode=disable \
//	  go test -run '^$' -bench . -benchtime 2000x ./store/postgres/
//
// (BenchmarkEndSessions1000 runs b.N logouts of 1,000 participants each:
// give it its own, smaller count, e.g. -bench EndSessions -benchtime 20x.)

// backend opens a fresh store of one kind.
type backend struct {
	name string
	open func(b *testing.B) store.Store
}

// backends returns PostgreSQL (a fresh schema) and bbolt (a temp file).
func backends() []backend {
	return []backend{
		{"postgres", func(b *testing.B) store.Store { return openTemp(b) }},
		{"bolt", func(b *testing.B) store.Store {
			db, err := bolt.Open(filepath.Join(b.TempDir(), "slobridge.db"), bolt.Options{})
			if err != nil {
				b.Fatal(err)
			}
			b.Cleanup(func() { _ = db.Close() })
			return db
		}},
	}
}

// forEachBackend runs fn as a sub-benchmark per backend.
func forEachBackend(b *testing.B, fn func(b *testing.B, s store.Store)) {
	testDSN(b)
	for _, be := range backends() {
		b.Run("backend="+be.name, func(b *testing.B) { fn(b, be.open(b)) })
	}
}

// benchParticipant is participant i of session sid.
func benchParticipant(sid string, i int) store.Participant {
	app := fmt.Sprintf("app%05d", i)
	return store.Participant{SessionID: sid, Key: "oidc:" + app, Kind: "oidc", AppID: app, Name: "App " + app,
		Channels: store.ChannelBack, BackChannelURL: "https://" + app + ".example.org/backchannel-logout",
		Data: map[string]string{"sid_required": "true"}, JoinedAt: t0}
}

// benchSession is a session as a SAML login creates it.
func benchSession(id string) store.Session {
	return store.Session{ID: id, UserID: "user-" + id, Upstream: "idp",
		NameID:       store.NameID{Value: id + "@example.org", Format: "urn:oasis:names:tc:SAML:1.1:nameid-format:emailAddress"},
		SessionIndex: "si-" + id, Attributes: map[string][]string{"email": {id + "@example.org"}},
		AuthTime: t0, CreatedAt: t0, ExpiresAt: t0.Add(8 * time.Hour)}
}

// addParticipants adds participants 0..n-1 to session sid from 16
// goroutines, as concurrent logins would (bbolt batches those commits).
func addParticipants(b *testing.B, s store.Store, sid string, n int) {
	b.Helper()
	var next atomic.Int64
	var wg sync.WaitGroup
	for range 16 {
		wg.Go(func() {
			for {
				i := int(next.Add(1)) - 1
				if i >= n {
					return
				}
				if _, err := s.AddParticipant(context.Background(), benchParticipant(sid, i)); err != nil {
					b.Error(err)
					return
				}
			}
		})
	}
	wg.Wait()
	if b.Failed() {
		b.FailNow()
	}
}

// BenchmarkLogin measures logins per second from concurrent goroutines: a
// login is what the bridge stores for one: the upstream assertion's ID
// checked against replay, a new session, and the first app joining it.
func BenchmarkLogin(b *testing.B) {
	forEachBackend(b, func(b *testing.B, s store.Store) {
		var n atomic.Int64
		b.SetParallelism(4)
		b.ResetTimer()
		b.RunParallel(func(pb *testing.PB) {
			ctx := context.Background()
			for pb.Next() {
				id := fmt.Sprintf("s%07d", n.Add(1))
				if err := s.CheckReplay(ctx, "saml-assertion", "a-"+id, t0.Add(time.Hour), t0); err != nil {
					b.Error(err)
					return
				}
				if err := s.CreateSession(ctx, benchSession(id)); err != nil {
					b.Error(err)
					return
				}
				if _, err := s.AddParticipant(ctx, benchParticipant(id, 0)); err != nil {
					b.Error(err)
					return
				}
			}
		})
		b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "logins/s")
	})
}

// BenchmarkAddParticipant measures participant adds per second from
// concurrent goroutines, spread over 64 sessions.
func BenchmarkAddParticipant(b *testing.B) {
	forEachBackend(b, func(b *testing.B, s store.Store) {
		const sessions = 64
		for i := range sessions {
			if err := s.CreateSession(context.Background(), benchSession(fmt.Sprintf("s%02d", i))); err != nil {
				b.Fatal(err)
			}
		}
		var n atomic.Int64
		b.SetParallelism(4)
		b.ResetTimer()
		b.RunParallel(func(pb *testing.PB) {
			for pb.Next() {
				i := int(n.Add(1))
				added, err := s.AddParticipant(context.Background(), benchParticipant(fmt.Sprintf("s%02d", i%sessions), i))
				if err != nil || !added {
					b.Errorf("AddParticipant: added %v, %v", added, err)
					return
				}
			}
		})
		b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "adds/s")
	})
}

// BenchmarkEndSessions1000 measures the logout transaction for one session
// with 1,000 back-channel participants: end the session, snapshot the
// participants and queue 1,000 deliveries.
func BenchmarkEndSessions1000(b *testing.B) {
	const participants = 1000
	forEachBackend(b, func(b *testing.B, s store.Store) {
		ctx := context.Background()
		b.ResetTimer()
		for i := range b.N {
			b.StopTimer()
			sid := fmt.Sprintf("s%05d", i)
			if err := s.CreateSession(ctx, benchSession(sid)); err != nil {
				b.Fatal(err)
			}
			addParticipants(b, s, sid, participants)
			var seq int
			spec := store.LogoutSpec{LogoutID: "lo-" + sid, SessionIDs: []string{sid},
				Initiator: store.Initiator{Kind: store.InitiatorUser}, Now: t0,
				NewDeliveryID: func() string { seq++; return fmt.Sprintf("d-%s-%04d", sid, seq) }}
			b.StartTimer()
			_, ds, err := s.EndSessions(ctx, spec)
			if err != nil || len(ds) != participants {
				b.Fatalf("EndSessions: %d deliveries, %v", len(ds), err)
			}
		}
		b.ReportMetric(float64(b.Elapsed().Milliseconds())/float64(b.N), "ms/logout")
	})
}

// BenchmarkClaimComplete measures outbox throughput: four workers claim
// due deliveries in batches of 50 and record one successful attempt on
// each, until the outbox is empty. Reported as deliveries per second.
func BenchmarkClaimComplete(b *testing.B) {
	forEachBackend(b, func(b *testing.B, s store.Store) {
		ctx := context.Background()
		const perLogout = 500
		b.StopTimer()
		for i := 0; i*perLogout < b.N; i++ {
			sid := fmt.Sprintf("s%05d", i)
			if err := s.CreateSession(ctx, benchSession(sid)); err != nil {
				b.Fatal(err)
			}
			addParticipants(b, s, sid, min(perLogout, b.N-i*perLogout))
			var seq int
			_, _, err := s.EndSessions(ctx, store.LogoutSpec{LogoutID: "lo-" + sid, SessionIDs: []string{sid},
				Initiator: store.Initiator{Kind: store.InitiatorUser}, Now: t0,
				NewDeliveryID: func() string { seq++; return fmt.Sprintf("d-%s-%04d", sid, seq) }})
			if err != nil {
				b.Fatal(err)
			}
		}
		var done atomic.Int64
		var wg sync.WaitGroup
		b.ResetTimer()
		b.StartTimer()
		for w := range 4 {
			owner := fmt.Sprintf("w%d", w)
			wg.Go(func() {
				for {
					ds, err := s.ClaimDueDeliveries(ctx, owner, t0.Add(time.Second), time.Minute, 50)
					if err != nil {
						b.Error(err)
						return
					}
					if len(ds) == 0 {
						return
					}
					for _, d := range ds {
						_, err := s.CompleteAttempt(ctx, d.ID, owner, store.Attempt{At: t0.Add(time.Second), OK: true, StatusCode: 200},
							store.DeliveryDelivered, time.Time{})
						if err != nil {
							b.Error(err)
							return
						}
						done.Add(1)
					}
				}
			})
		}
		wg.Wait()
		b.StopTimer()
		if int(done.Load()) != b.N {
			b.Fatalf("completed %d deliveries, want %d", done.Load(), b.N)
		}
		b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "deliveries/s")
	})
}
