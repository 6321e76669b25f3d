package bolt_test

import (
	"context"
	"crypto/rand"
	"encoding/base64"
	"fmt"
	"path/filepath"
	"sync/atomic"
	"testing"
	"time"

	bbolt "go.etcd.io/bbolt"

	"github.com/slobridge/slobridge/store/bolt"
)

// BenchmarkSessionSizeRandomIDs is BenchmarkSessionSize with the IDs a
// deployment has: random 128-bit session IDs and user IDs in random order,
// so that the sessions, participants and per-user indexes are written at
// random places of their B+trees rather than appended (the fixtures of
// BenchmarkSessionSize number sessions and users in order), and the
// times of each session taken when it is made, so that the indexes keyed by
// time are appended to nearly in order (BenchmarkSessionSize gives every
// session the same times).
func BenchmarkSessionSizeRandomIDs(b *testing.B) {
	const base, n = 1000, 20000
	ctx := context.Background()
	fill := func(db *bolt.DB, count int) error {
		const workers = 64
		errs := make(chan error, workers)
		var next atomic.Int64
		for range workers {
			go func() {
				for {
					i := int(next.Add(1))
					if i > count {
						break
					}
					now := time.Now() // so that keys by time come nearly in order, as in a deployment
					s := sessionFixture(i, now)
					s.ID, s.UserID = randomID(), randomID()
					if err := db.CreateSession(ctx, s); err != nil {
						errs <- fmt.Errorf("session %d: %w", i, err)
						return
					}
					for _, p := range participantFixtures(s.ID, now) {
						if _, err := db.AddParticipant(ctx, p); err != nil {
							errs <- fmt.Errorf("participant of session %d: %w", i, err)
							return
						}
					}
				}
				errs <- nil
			}()
		}
		var first error
		for range workers {
			if err := <-errs; err != nil && first == nil {
				first = err
			}
		}
		return first
	}
	var before, after fileStats
	var allocBefore, allocAfter map[string]int64
	for b.Loop() {
		path := filepath.Join(b.TempDir(), "size.db")
		for step, count := range []int{base, n} {
			db, err := bolt.Open(path, fillOptions)
			if err != nil {
				b.Fatal(err)
			}
			if err := fill(db, count); err != nil {
				b.Fatal(err)
			}
			if err := db.Close(); err != nil {
				b.Fatal(err)
			}
			st, err := readFileStats(path)
			if err != nil {
				b.Fatal(err)
			}
			alloc, err := bucketAlloc(path)
			if err != nil {
				b.Fatal(err)
			}
			if step == 0 {
				before, allocBefore = st, alloc
			} else {
				after, allocAfter = st, alloc
			}
		}
	}
	for name, used := range after.Buckets {
		if d := used - before.Buckets[name]; d > 0 {
			b.Logf("bucket %-22s %7.1f B/session in use, %7.1f B/session of pages", name, float64(d)/n,
				float64(allocAfter[name]-allocBefore[name])/n)
		}
	}
	b.ReportMetric(float64(after.AllocBytes-before.AllocBytes)/n, "alloc-B/session")
	b.ReportMetric(float64(after.FileBytes-before.FileBytes)/n, "file-B/session")
	b.ReportMetric(float64(after.PageBytes-before.PageBytes)/n, "page-B/session")
	b.ReportMetric(float64(after.InuseBytes-before.InuseBytes)/n, "inuse-B/session")
}

// bucketAlloc returns the bytes of the leaf and branch pages of each
// bucket of the closed file at path.
func bucketAlloc(path string) (map[string]int64, error) {
	bdb, err := bbolt.Open(path, 0o600, &bbolt.Options{ReadOnly: true, Timeout: time.Second})
	if err != nil {
		return nil, err
	}
	defer bdb.Close()
	out := map[string]int64{}
	err = bdb.View(func(tx *bbolt.Tx) error {
		return tx.ForEach(func(name []byte, b *bbolt.Bucket) error {
			st := b.Stats()
			out[string(name)] = int64(st.LeafAlloc + st.BranchAlloc)
			return nil
		})
	})
	return out, err
}

// randomID returns a random 128-bit ID in base64url, as the engine makes.
func randomID() string {
	var b [16]byte
	_, _ = rand.Read(b[:])
	return base64.RawURLEncoding.EncodeToString(b[:])
}
