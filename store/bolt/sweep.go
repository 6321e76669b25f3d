package bolt

import (
	"context"
	"time"

	bbolt "go.etcd.io/bbolt"

	"github.com/slobridge/slobridge/store"
)

// Sweep deletes what has expired at now, in one transaction:
//   - sessions whose ExpiresAt, or EndedAt once ended, is at or before
//     now-retain, with their participants and index entries;
//   - logouts created at or before now-retain whose deliveries are all
//     final and done at or before now-retain, with those deliveries;
//   - records and replay entries expired at now;
//   - keys whose (non-zero) RetireAt is at or before now.
func (db *DB) Sweep(ctx context.Context, now time.Time, retain time.Duration) (store.SweepResult, error) {
	var res store.SweepResult
	cutoff := now.Add(-retain)
	err := db.update(ctx, "sweep", func(tx *bbolt.Tx) error {
		res = store.SweepResult{}
		var err error
		if res.Sessions, err = sweepSessions(tx, cutoff); err != nil {
			return err
		}
		if res.Logouts, res.Deliveries, err = sweepLogouts(tx, cutoff); err != nil {
			return err
		}
		if res.Records, err = sweepRecords(tx, now); err != nil {
			return err
		}
		if res.Replay, err = sweepReplay(tx, now); err != nil {
			return err
		}
		res.Keys, err = sweepKeys(tx, now)
		return err
	})
	return res, err
}

// expiredIDs collects the IDs of a time-keyed index up to t (exclusive of
// equal times when strict).
func expiredIDs(tx *bbolt.Tx, bucket string, t time.Time) ([]string, error) {
	var ids []string
	err := scanUntil(tx.Bucket([]byte(bucket)), t, func(k []byte) (bool, error) {
		ids = append(ids, tailAfter8(k))
		return true, nil
	})
	return ids, err
}

// sweepSessions removes sessions expired or ended at or before cutoff.
func sweepSessions(tx *bbolt.Tx, cutoff time.Time) (int, error) {
	n := 0
	for _, bucket := range []string{bkSessActive, bkSessEnded} {
		ids, err := expiredIDs(tx, bucket, cutoff)
		if err != nil {
			return n, err
		}
		for _, id := range ids {
			s, err := getSession(tx, id)
			if err != nil {
				return n, err
			}
			if err := deleteSession(tx, s); err != nil {
				return n, err
			}
			n++
		}
	}
	return n, nil
}

// sweepLogouts removes logouts made at or before cutoff whose deliveries
// all reached a final state at or before cutoff.
func sweepLogouts(tx *bbolt.Tx, cutoff time.Time) (logouts, deliveries int, err error) {
	ids, err := expiredIDs(tx, bkLogoutsByTime, cutoff)
	if err != nil {
		return 0, 0, err
	}
	for _, id := range ids {
		ds, err := listDeliveries(tx, id)
		if err != nil {
			return logouts, deliveries, err
		}
		if !allDone(ds, cutoff) {
			continue
		}
		lo, err := getLogout(tx, id)
		if err != nil {
			return logouts, deliveries, err
		}
		if err := deleteLogout(tx, lo); err != nil {
			return logouts, deliveries, err
		}
		logouts++
		deliveries += len(ds)
	}
	return logouts, deliveries, nil
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

// sweepRecords removes records expired at now.
func sweepRecords(tx *bbolt.Tx, now time.Time) (int, error) {
	exp, recs := tx.Bucket([]byte(bkRecordsExp)), tx.Bucket([]byte(bkRecords))
	var keys [][]byte
	err := scanUntil(exp, now, func(k []byte) (bool, error) {
		keys = append(keys, key(k))
		return true, nil
	})
	if err != nil {
		return 0, err
	}
	for _, k := range keys {
		if err := exp.Delete(k); err != nil {
			return 0, err
		}
		if err := recs.Delete(k[8:]); err != nil {
			return 0, err
		}
	}
	return len(keys), nil
}

// sweepReplay removes replay entries expired at now.
func sweepReplay(tx *bbolt.Tx, now time.Time) (int, error) {
	exp, rep := tx.Bucket([]byte(bkReplayExp)), tx.Bucket([]byte(bkReplay))
	var keys [][]byte
	err := scanUntil(exp, now, func(k []byte) (bool, error) {
		keys = append(keys, key(k))
		return true, nil
	})
	if err != nil {
		return 0, err
	}
	for _, k := range keys {
		if err := exp.Delete(k); err != nil {
			return 0, err
		}
		if err := rep.Delete(k[8:]); err != nil {
			return 0, err
		}
	}
	return len(keys), nil
}

// sweepKeys removes signing keys retired at now.
func sweepKeys(tx *bbolt.Tx, now time.Time) (int, error) {
	keys, err := allKeys(tx)
	if err != nil {
		return 0, err
	}
	n := 0
	for _, k := range keys {
		if k.RetireAt.IsZero() || k.RetireAt.After(now) {
			continue
		}
		if err := tx.Bucket([]byte(bkKeys)).Delete([]byte(k.ID)); err != nil {
			return n, err
		}
		n++
	}
	return n, nil
}
