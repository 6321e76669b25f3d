package bolt

import (
	"bytes"
	"context"
	"fmt"
	"time"

	bbolt "go.etcd.io/bbolt"

	"github.com/slobridge/slobridge/store"
)

// A sweep works in bounded write transactions so that a backlog (after
// downtime, a shortened retention, or the first time a busy store passes
// its retention) never holds bbolt's one writer for long, nor memory in
// proportion to the backlog: each transaction removes at most
// sweepBatchKeys items or works sweepBatchTime, commits, and lets the
// logins and logouts waiting for the writer go first (sweepPause).
const (
	sweepBatchKeys = 256
	sweepBatchTime = 5 * time.Millisecond
	sweepPause     = time.Millisecond
)

// sweepBudget bounds the work of one sweep transaction.
type sweepBudget struct {
	left     int
	deadline time.Time
}

// spend takes one item from the budget; false when it is spent.
func (b *sweepBudget) spend() bool {
	if b.left <= 0 || (b.left%16 == 0 && time.Now().After(b.deadline)) {
		return false
	}
	b.left--
	return true
}

// sweepPhase removes one kind of expired item, from the index key from
// on, within b; it returns how many it removed (and, for logouts, how
// many deliveries with them) and the key to go on from, nil when done.
type sweepPhase func(tx *bbolt.Tx, from []byte, b *sweepBudget) (n, m int, next []byte, err error)

// Sweep deletes what has expired at now, in bounded transactions (see
// above):
//   - sessions whose ExpiresAt, or EndedAt once ended, is at or before
//     now-retain, with their participants and index entries;
//   - logouts created at or before now-retain whose deliveries are all
//     final and done at or before now-retain, with those deliveries;
//   - records (durable and volatile: those in a pass over the map under
//     its lock) and replay entries expired at now;
//   - keys whose (non-zero) RetireAt is at or before now.
//
// A cancelled ctx stops it between transactions with what it removed so
// far.
func (db *DB) Sweep(ctx context.Context, now time.Time, retain time.Duration) (store.SweepResult, error) {
	var res store.SweepResult
	cutoff := now.Add(-retain)
	phases := []struct {
		name string
		run  sweepPhase
		n, m *int
	}{
		{"sessions", sweepSessionsIn(bkSessActive, cutoff), &res.Sessions, nil},
		{"ended sessions", sweepSessionsIn(bkSessEnded, cutoff), &res.Sessions, nil},
		{"logouts", sweepLogouts(cutoff), &res.Logouts, &res.Deliveries},
		{"records", sweepExpiring(bkRecordsExp, bkRecords, now), &res.Records, nil},
		{"replay", sweepExpiring(bkReplayExp, bkReplay, now), &res.Replay, nil},
		{"keys", sweepKeys(now), &res.Keys, nil},
	}
	res.Records += db.sweepVolatile(now)
	for _, p := range phases {
		var from []byte
		for first := true; first || from != nil; first = false {
			if !first {
				time.Sleep(sweepPause)
			}
			if err := ctx.Err(); err != nil {
				return res, fmt.Errorf("bolt: sweep %s: %w", p.name, err)
			}
			var n, m int
			var next []byte
			err := db.bolt.Update(func(tx *bbolt.Tx) error {
				setFillPercents(tx)
				b := &sweepBudget{left: sweepBatchKeys, deadline: time.Now().Add(sweepBatchTime)}
				var err error
				if n, m, next, err = p.run(tx, from, b); err != nil {
					return err
				}
				if n > 0 {
					tx.OnCommit(db.countCommit)
				}
				return nil
			})
			if err != nil {
				return res, fmt.Errorf("bolt: sweep %s: %w", p.name, dbError(err))
			}
			*p.n += n
			if p.m != nil {
				*p.m += m
			}
			from = next
		}
	}
	return res, nil
}

// scanFrom calls fn for the keys of a time-keyed bucket from the key from
// (or the first) whose time is at or before t, while fn asks for more; it
// returns the key to resume at, nil when the scan reached the end.
func scanFrom(bk *bbolt.Bucket, from []byte, t time.Time, fn func(k []byte) (bool, error)) ([]byte, error) {
	limit := timeBytes(t)
	c := bk.Cursor()
	k, _ := c.First()
	if from != nil {
		k, _ = c.Seek(from)
	}
	for ; k != nil && bytes.Compare(k[:8], limit) <= 0; k, _ = c.Next() {
		more, err := fn(k)
		if err != nil {
			return nil, err
		}
		if !more {
			return bytes.Clone(k), nil
		}
	}
	return nil, nil
}

// collectDue collects, within b, the keys of a time-keyed bucket due at t
// from the key from on; next is where to resume (nil when done).
func collectDue(bk *bbolt.Bucket, from []byte, t time.Time, b *sweepBudget) (keys [][]byte, next []byte, err error) {
	next, err = scanFrom(bk, from, t, func(k []byte) (bool, error) {
		if !b.spend() {
			return false, nil
		}
		keys = append(keys, bytes.Clone(k))
		return true, nil
	})
	return keys, next, err
}

// sweepSessionsIn removes the sessions of a time index (active by expiry,
// or ended by end time) at or before cutoff.
func sweepSessionsIn(bucket string, cutoff time.Time) sweepPhase {
	return func(tx *bbolt.Tx, from []byte, b *sweepBudget) (int, int, []byte, error) {
		keys, next, err := collectDue(tx.Bucket([]byte(bucket)), from, cutoff, b)
		if err != nil {
			return 0, 0, nil, err
		}
		for i, k := range keys {
			s, err := getSession(tx, tailAfter8(k))
			if err != nil {
				return i, 0, nil, err
			}
			if err := deleteSession(tx, s); err != nil {
				return i, 0, nil, err
			}
		}
		return len(keys), 0, next, nil
	}
}

// sweepLogouts removes logouts made at or before cutoff whose deliveries
// all reached a final state at or before cutoff. A logout still waiting
// for a delivery is passed over: the scan goes on after it.
func sweepLogouts(cutoff time.Time) sweepPhase {
	return func(tx *bbolt.Tx, from []byte, b *sweepBudget) (logouts, deliveries int, next []byte, err error) {
		keys, next, err := collectDue(tx.Bucket([]byte(bkLogoutsByTime)), from, cutoff, b)
		if err != nil {
			return 0, 0, nil, err
		}
		for _, k := range keys {
			id := tailAfter8(k)
			ds, err := listDeliveries(tx, id)
			if err != nil {
				return logouts, deliveries, nil, err
			}
			if !allDone(ds, cutoff) {
				continue
			}
			lo, err := getLogout(tx, id)
			if err != nil {
				return logouts, deliveries, nil, err
			}
			if err := deleteLogout(tx, lo); err != nil {
				return logouts, deliveries, nil, err
			}
			logouts++
			deliveries += len(ds)
		}
		return logouts, deliveries, next, nil
	}
}

// allDone reports whether every delivery is final since cutoff or earlier.
func allDone(ds []store.Delivery, cutoff time.Time) bool {
	for _, d := range ds {
		if !d.State.Final() || d.DoneAt.After(cutoff) {
			return false
		}
	}
	return true
}

// sweepExpiring removes the entries of an expiring bucket (records, replay
// entries) expired at now, with their expiry index entries.
func sweepExpiring(expBucket, bucket string, now time.Time) sweepPhase {
	return func(tx *bbolt.Tx, from []byte, b *sweepBudget) (int, int, []byte, error) {
		exp, items := tx.Bucket([]byte(expBucket)), tx.Bucket([]byte(bucket))
		keys, next, err := collectDue(exp, from, now, b)
		if err != nil {
			return 0, 0, nil, err
		}
		for i, k := range keys {
			if err := exp.Delete(k); err != nil {
				return i, 0, nil, err
			}
			if err := items.Delete(k[8:]); err != nil {
				return i, 0, nil, err
			}
		}
		return len(keys), 0, next, nil
	}
}

// sweepKeys removes signing keys retired at now (few: one transaction).
func sweepKeys(now time.Time) sweepPhase {
	return func(tx *bbolt.Tx, _ []byte, _ *sweepBudget) (int, int, []byte, error) {
		keys, err := allKeys(tx)
		if err != nil {
			return 0, 0, nil, err
		}
		n := 0
		for _, k := range keys {
			if k.RetireAt.IsZero() || k.RetireAt.After(now) {
				continue
			}
			if err := tx.Bucket([]byte(bkKeys)).Delete([]byte(k.ID)); err != nil {
				return n, 0, nil, err
			}
			n++
		}
		return n, 0, nil, nil
	}
}
