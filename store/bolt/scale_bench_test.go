package bolt

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"runtime/debug"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	bbolt "go.etcd.io/bbolt"

	"github.com/slobridge/slobridge/store"
)

// Scale benchmarks (issue 19): what a login, a logout's store write and
// the admin "sessions of a user" query cost as the file grows, what a
// sweep of a large backlog does to logins waiting behind it, and whether
// the file stays bounded under login/logout churn. The sizes come from the
// environment so that `go test -bench .` stays quick:
//
//	SLOBRIDGE_BENCH_SCALE=10000,1000000      sessions in the file (half active)
//	SLOBRIDGE_BENCH_BACKLOG=500000           ended sessions the sweep removes
//	SLOBRIDGE_BENCH_CHURN=100000,1000000     login/logout cycles
//
// Commands and figures are in BENCHMARKS.md.

// benchSizes reads a comma-separated list of sizes from env.
func benchSizes(b *testing.B, env, def string) []int {
	v := os.Getenv(env)
	if v == "" {
		v = def
	}
	var out []int
	for _, f := range strings.Split(v, ",") {
		n, err := strconv.Atoi(strings.TrimSpace(f))
		if err != nil || n <= 0 {
			b.Fatalf("%s: %q is not a positive number", env, f)
		}
		out = append(out, n)
	}
	return out
}

// fillDirect writes n sessions with three participants each straight into
// the file in large transactions (fixtures: far faster than logins).
// Sessions with an odd number are ended at now; the others are active.
// Every user has two sessions.
func fillDirect(b *testing.B, db *DB, n int, now time.Time) {
	b.Helper()
	const chunk = 5000
	for from := 0; from < n; from += chunk {
		err := db.bolt.Update(func(tx *bbolt.Tx) error {
			setFillPercents(tx)
			pb := tx.Bucket([]byte(bkParticipants))
			for i := from; i < min(from+chunk, n); i++ {
				s := store.Session{
					ID: fmt.Sprintf("s%021d", i), UserID: fmt.Sprintf("user-%08d", i/2), Upstream: "corp-idp",
					NameID:     store.NameID{Value: fmt.Sprintf("user-%08d@example.com", i/2)},
					Attributes: map[string][]string{"email": {fmt.Sprintf("user-%08d@example.com", i/2)}},
					CreatedAt:  now.Add(-time.Duration(n-i) * time.Millisecond), AuthTime: now.Add(-time.Hour),
					ExpiresAt: now.Add(8 * time.Hour),
				}
				if i%2 == 1 {
					s.EndedAt = now
				}
				if err := putSession(tx, nil, s); err != nil {
					return err
				}
				for j := range 3 {
					p := store.Participant{SessionID: s.ID, Key: fmt.Sprintf("oidc:app-%d", j), Kind: "oidc", AppID: fmt.Sprintf("app-%d", j),
						Channels: store.ChannelBack, BackChannelURL: fmt.Sprintf("https://app-%d.example.com/bc", j), JoinedAt: s.CreatedAt}
					v, err := encodeParticipant(pb, p)
					if err != nil {
						return err
					}
					if err := pb.Put(key(prefix(s.ID), []byte(p.Key)), v); err != nil {
						return err
					}
				}
			}
			return nil
		})
		if err != nil {
			b.Fatal(err)
		}
	}
}

// rssAnonMB reads the process's anonymous resident memory (RssAnon: heap
// and stacks, not the mapped file) in MiB, after a GC returned what it can.
func rssAnonMB(b *testing.B) float64 {
	runtime.GC()
	debug.FreeOSMemory()
	return readRssAnonMB(b)
}

// readRssAnonMB reads RssAnon without collecting first.
func readRssAnonMB(b *testing.B) float64 {
	st, err := os.ReadFile("/proc/self/status")
	if err != nil {
		b.Skipf("no /proc/self/status: %v", err)
	}
	for _, line := range strings.Split(string(st), "\n") {
		if v, ok := strings.CutPrefix(line, "RssAnon:"); ok {
			kb, _ := strconv.Atoi(strings.TrimSuffix(strings.TrimSpace(v), " kB"))
			return float64(kb) / 1024
		}
	}
	b.Skip("no RssAnon in /proc/self/status")
	return 0
}

// pct returns the p-th percentile of ds in milliseconds.
func pct(ds []time.Duration, p int) float64 {
	if len(ds) == 0 {
		return 0
	}
	s := slices.Clone(ds)
	slices.Sort(s)
	return float64(s[min(len(s)-1, len(s)*p/100)].Microseconds()) / 1000
}

// login is a new session and its first participant, as an OIDC login
// writes them (two synced commits when alone).
func login(ctx context.Context, db *DB, id string, now time.Time) error {
	s := store.Session{ID: id, UserID: "user-" + id, Upstream: "corp-idp", CreatedAt: now, AuthTime: now, ExpiresAt: now.Add(8 * time.Hour)}
	if err := db.CreateSession(ctx, s); err != nil {
		return err
	}
	_, err := db.AddParticipant(ctx, store.Participant{SessionID: id, Key: "oidc:app", Kind: "oidc", AppID: "app", Channels: store.ChannelBack,
		BackChannelURL: "https://app.example.com/bc", JoinedAt: now})
	return err
}

// BenchmarkScale measures, with fsync on, in files of each size: a login
// alone (p50), the store part of a logout to 100 participants, the
// sessions of a user (p50) and the process's anonymous memory.
func BenchmarkScale(b *testing.B) {
	for _, n := range benchSizes(b, "SLOBRIDGE_BENCH_SCALE", "10000") {
		b.Run(fmt.Sprintf("sessions=%d", n), func(b *testing.B) {
			ctx := context.Background()
			now := time.Now()
			path := filepath.Join(b.TempDir(), "scale.db")
			db, err := Open(path, Options{NoSync: true})
			if err != nil {
				b.Fatal(err)
			}
			fillDirect(b, db, n, now)
			if err := db.Close(); err != nil {
				b.Fatal(err)
			}
			if db, err = Open(path, Options{}); err != nil {
				b.Fatal(err)
			}
			defer db.Close()
			// The user query runs over 1,000 users spread over the file:
			// the first query of each touches its pages for the first time
			// (the cold figure: minor page faults of the memory map), the
			// later ones find them mapped (warm).
			var logins, cold, warm, logouts []time.Duration
			i := 0
			for b.Loop() {
				for range 50 {
					i++
					id := fmt.Sprintf("new-%d", i)
					t0 := time.Now()
					if err := login(ctx, db, id, now); err != nil {
						b.Fatal(err)
					}
					logins = append(logins, time.Since(t0))
					user := fmt.Sprintf("user-%08d", ((i%1000)*7919)%(n/2))
					t0 = time.Now()
					ss, err := db.ListSessionsByUser(ctx, user)
					if err != nil || len(ss) != 2 {
						b.Fatalf("sessions of %s: %d, %v", user, len(ss), err)
					}
					if i <= 1000 {
						cold = append(cold, time.Since(t0))
					} else {
						warm = append(warm, time.Since(t0))
					}
				}
				// A session with 100 participants, then its logout.
				i++
				id := fmt.Sprintf("fan-%d", i)
				if err := login(ctx, db, id, now); err != nil {
					b.Fatal(err)
				}
				for j := range 99 {
					if _, err := db.AddParticipant(ctx, store.Participant{SessionID: id, Key: fmt.Sprint("oidc:rp-", j), Kind: "oidc",
						AppID: fmt.Sprint("rp-", j), Channels: store.ChannelBack, BackChannelURL: fmt.Sprintf("https://rp-%d.example.com/bc", j)}); err != nil {
						b.Fatal(err)
					}
				}
				d := 0
				t0 := time.Now()
				_, ds, err := db.EndSessions(ctx, store.LogoutSpec{LogoutID: "lo-" + id, SessionIDs: []string{id}, Now: now,
					Initiator: store.Initiator{Kind: store.InitiatorAdmin}, NewDeliveryID: func() string { d++; return fmt.Sprintf("d-%s-%d", id, d) }})
				if err != nil || len(ds) != 100 {
					b.Fatalf("logout: %d deliveries, %v", len(ds), err)
				}
				logouts = append(logouts, time.Since(t0))
			}
			b.ReportMetric(pct(logins, 50), "login-p50-ms")
			b.ReportMetric(pct(cold, 50)*1000, "user-query-cold-p50-µs")
			b.ReportMetric(pct(warm, 50)*1000, "user-query-warm-p50-µs")
			b.ReportMetric(pct(logouts, 50), "logout100-p50-ms")
			b.ReportMetric(rssAnonMB(b), "RssAnon-MB")
		})
	}
}

// BenchmarkSweepBacklog sweeps a backlog of ended sessions (with fsync on)
// while one caller logs in again and again: the longest a login waited,
// the sweep's duration, the peak anonymous memory and the file's growth.
func BenchmarkSweepBacklog(b *testing.B) {
	n := benchSizes(b, "SLOBRIDGE_BENCH_BACKLOG", "20000")[0]
	ctx := context.Background()
	now := time.Now()
	var maxWait, sweepTime time.Duration
	var peak, grew float64
	var loginsDuring int
	for b.Loop() {
		path := filepath.Join(b.TempDir(), "backlog.db")
		db, err := Open(path, Options{NoSync: true})
		if err != nil {
			b.Fatal(err)
		}
		// Half ended at now, half expiring at now+8h: at now+48h with an
		// hour's retention all n are due.
		fillDirect(b, db, n, now)
		if err := db.Close(); err != nil {
			b.Fatal(err)
		}
		if db, err = Open(path, Options{}); err != nil {
			b.Fatal(err)
		}
		before, _ := os.Stat(path)
		runtime.GC()
		base := rssAnonMB(b)
		var stop atomic.Bool
		var wg sync.WaitGroup
		var waits []time.Duration
		wg.Go(func() {
			for i := 0; !stop.Load(); i++ {
				t0 := time.Now()
				if err := login(ctx, db, fmt.Sprint("during-", i), now.Add(48*time.Hour)); err != nil {
					b.Error(err)
					return
				}
				waits = append(waits, time.Since(t0))
			}
		})
		var peakMB atomic.Uint64
		wg.Go(func() {
			for !stop.Load() {
				if mb := uint64(readRssAnonMB(b)); mb > peakMB.Load() {
					peakMB.Store(mb)
				}
				time.Sleep(20 * time.Millisecond)
			}
		})
		t0 := time.Now()
		res, err := db.Sweep(ctx, now.Add(48*time.Hour), time.Hour)
		sweepTime = time.Since(t0)
		stop.Store(true)
		wg.Wait()
		if err != nil {
			b.Fatal(err)
		}
		if res.Sessions != n {
			b.Fatalf("swept %d sessions, want %d", res.Sessions, n)
		}
		after, _ := os.Stat(path)
		grew = float64(after.Size()-before.Size()) / (1 << 20)
		maxWait = slices.Max(append(waits, 0))
		loginsDuring = len(waits)
		peak = float64(peakMB.Load()) - base
		_ = db.Close()
	}
	b.ReportMetric(sweepTime.Seconds(), "sweep-s")
	b.ReportMetric(float64(maxWait.Microseconds())/1000, "max-login-wait-ms")
	b.ReportMetric(float64(loginsDuring), "logins-during-sweep")
	b.ReportMetric(peak, "RssAnon-rise-MB")
	b.ReportMetric(grew, "file-growth-MB")
}

// BenchmarkChurn runs login/logout cycles (a session, a participant, the
// logout and its delivery marked delivered) with the sweeper on (retain
// 0, every 10,000 cycles), eight at a time, and reports the file size at
// each checkpoint (NoSync: the file's growth does not depend on fsync).
func BenchmarkChurn(b *testing.B) {
	checkpoints := benchSizes(b, "SLOBRIDGE_BENCH_CHURN", "20000,100000")
	ctx := context.Background()
	for b.Loop() {
		path := filepath.Join(b.TempDir(), "churn.db")
		db, err := Open(path, Options{NoSync: true})
		if err != nil {
			b.Fatal(err)
		}
		var next atomic.Int64
		done := 0
		for _, cp := range checkpoints {
			var wg sync.WaitGroup
			for range 8 {
				wg.Go(func() {
					for {
						i := next.Add(1)
						if i > int64(cp) {
							return
						}
						if err := churnCycle(ctx, db, int(i)); err != nil {
							b.Error(err)
							return
						}
						if i%10000 == 0 {
							if _, err := db.Sweep(ctx, time.Now(), 0); err != nil {
								b.Error(err)
							}
						}
					}
				})
			}
			wg.Wait()
			next.Store(int64(cp))
			done = cp
			fi, _ := os.Stat(path)
			b.ReportMetric(float64(fi.Size())/(1<<20), fmt.Sprintf("file-MB@%d", done))
		}
		_ = db.Close()
	}
}

// churnCycle is one login and its logout, the delivery attempted.
func churnCycle(ctx context.Context, db *DB, i int) error {
	now := time.Now()
	id := fmt.Sprint("c-", i)
	if err := login(ctx, db, id, now); err != nil {
		return err
	}
	_, ds, err := db.EndSessions(ctx, store.LogoutSpec{LogoutID: "lo-" + id, SessionIDs: []string{id}, Now: now,
		Initiator: store.Initiator{Kind: store.InitiatorAdmin}, NewDeliveryID: func() string { return "d-" + id }})
	if err != nil {
		return err
	}
	if len(ds) != 1 {
		return fmt.Errorf("logout of %s: %d deliveries", id, len(ds))
	}
	// Claim whatever is due (another cycle's delivery, maybe) and
	// deliver it, as a worker would.
	claimed, err := db.ClaimDueDeliveries(ctx, "w-"+id, now, time.Minute, 1)
	if err != nil {
		return err
	}
	for _, d := range claimed {
		if _, err := db.CompleteAttempt(ctx, d.ID, "w-"+id, store.Attempt{At: now, OK: true, StatusCode: 200}, store.DeliveryDelivered, time.Time{}); err != nil {
			return err
		}
	}
	return nil
}
