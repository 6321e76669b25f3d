package bolt

import (
	"bytes"
	"context"
	"encoding/binary"
	"fmt"
	"time"

	bbolt "go.etcd.io/bbolt"

	"github.com/slobridge/slobridge/store"
)

// due reports whether deliveries in state s wait for an attempt.
func due(s store.DeliveryState) bool {
	return s == store.DeliveryPending || s == store.DeliveryRetrying
}

// dueKey is the deliveries_due entry of d.
func dueKey(d store.Delivery) []byte { return key(timeBytes(d.NextAttemptAt), []byte(d.ID)) }

// failingKey is the deliveries_failing entry of d: newest last, so that
// ListFailingDeliveries walks it backwards.
func failingKey(d store.Delivery) []byte { return key(timeBytes(d.CreatedAt), []byte(d.ID)) }

// indexFailingDeliveries builds deliveries_failing from the deliveries (a
// file written before the index existed).
func indexFailingDeliveries(tx *bbolt.Tx) error {
	idx := tx.Bucket([]byte(bkDelFailing))
	return tx.Bucket([]byte(bkDeliveries)).ForEach(func(k, v []byte) error {
		d, err := decodeDelivery(string(k), v)
		if err != nil {
			return err
		}
		if d.State.Failing() {
			return idx.Put(failingKey(d), nil)
		}
		return nil
	})
}

// addCount adds delta to the stored count of deliveries in state s.
func addCount(tx *bbolt.Tx, s store.DeliveryState, delta int64) error {
	b := tx.Bucket([]byte(bkDelCounts))
	var n int64
	if v := b.Get([]byte(s)); len(v) == 8 {
		n = int64(binary.BigEndian.Uint64(v))
	}
	return b.Put([]byte(s), u64(uint64(n+delta)))
}

// putDelivery writes d, keeping the due and failing indexes and the state
// counts in step with the change from old (nil for a new delivery).
func putDelivery(tx *bbolt.Tx, old *store.Delivery, d store.Delivery) error {
	dueB, failB := tx.Bucket([]byte(bkDelDue)), tx.Bucket([]byte(bkDelFailing))
	if old != nil {
		if due(old.State) {
			if err := dueB.Delete(dueKey(*old)); err != nil {
				return err
			}
		}
		if old.State.Failing() && !d.State.Failing() {
			if err := failB.Delete(failingKey(*old)); err != nil {
				return err
			}
		}
		if err := addCount(tx, old.State, -1); err != nil {
			return err
		}
	}
	if due(d.State) {
		if err := dueB.Put(dueKey(d), nil); err != nil {
			return err
		}
	}
	if d.State.Failing() && (old == nil || !old.State.Failing()) {
		if err := failB.Put(failingKey(d), nil); err != nil {
			return err
		}
	}
	if err := addCount(tx, d.State, 1); err != nil {
		return err
	}
	return tx.Bucket([]byte(bkDeliveries)).Put([]byte(d.ID), encodeDelivery(d))
}

// deleteDelivery removes d, its index entries and its count.
func deleteDelivery(tx *bbolt.Tx, d store.Delivery) error {
	if due(d.State) {
		if err := tx.Bucket([]byte(bkDelDue)).Delete(dueKey(d)); err != nil {
			return err
		}
	}
	if d.State.Failing() {
		if err := tx.Bucket([]byte(bkDelFailing)).Delete(failingKey(d)); err != nil {
			return err
		}
	}
	if err := addCount(tx, d.State, -1); err != nil {
		return err
	}
	return tx.Bucket([]byte(bkDeliveries)).Delete([]byte(d.ID))
}

// getDelivery loads one delivery; ErrNotFound when absent.
func getDelivery(tx *bbolt.Tx, id string) (store.Delivery, error) {
	v := tx.Bucket([]byte(bkDeliveries)).Get([]byte(id))
	if v == nil {
		return store.Delivery{}, fmt.Errorf("delivery: %w", store.ErrNotFound)
	}
	return decodeDelivery(id, v)
}

// listDeliveries returns the deliveries of a logout in creation order.
func listDeliveries(tx *bbolt.Tx, logoutID string) ([]store.Delivery, error) {
	var ids []string
	err := scanPrefix(tx.Bucket([]byte(bkDelByLogout)), prefix(logoutID), func(_, v []byte) error {
		ids = append(ids, string(v))
		return nil
	})
	if err != nil {
		return nil, err
	}
	out := make([]store.Delivery, 0, len(ids))
	for _, id := range ids {
		d, err := getDelivery(tx, id)
		if err != nil {
			return nil, fmt.Errorf("index %s points at a missing delivery: %w", bkDelByLogout, err)
		}
		out = append(out, d)
	}
	return out, nil
}

// deleteLogoutDeliveries removes every delivery of a logout.
func deleteLogoutDeliveries(tx *bbolt.Tx, logoutID string) error {
	ds, err := listDeliveries(tx, logoutID)
	if err != nil {
		return err
	}
	for _, d := range ds {
		if err := deleteDelivery(tx, d); err != nil {
			return err
		}
	}
	b := tx.Bucket([]byte(bkDelByLogout))
	var keys [][]byte
	err = scanPrefix(b, prefix(logoutID), func(k, _ []byte) error {
		keys = append(keys, bytes.Clone(k))
		return nil
	})
	if err != nil {
		return err
	}
	for _, k := range keys {
		if err := b.Delete(k); err != nil {
			return err
		}
	}
	return nil
}

// ListDeliveries returns the deliveries of one logout, in creation order.
func (db *DB) ListDeliveries(ctx context.Context, logoutID string) ([]store.Delivery, error) {
	var out []store.Delivery
	err := db.view(ctx, "list deliveries", func(tx *bbolt.Tx) error {
		var err error
		out, err = listDeliveries(tx, logoutID)
		return err
	})
	return out, err
}

// GetDelivery returns one delivery.
func (db *DB) GetDelivery(ctx context.Context, id string) (store.Delivery, error) {
	var d store.Delivery
	err := db.view(ctx, "get delivery", func(tx *bbolt.Tx) error {
		var err error
		d, err = getDelivery(tx, id)
		return err
	})
	return d, err
}

// ClaimDueDeliveries leases up to limit pending or retrying deliveries due
// at or before now to owner until now+lease, earliest due first. A claimed
// delivery's NextAttemptAt moves to the end of its lease: it is due again
// (for any owner) only if the lease runs out before CompleteAttempt.
func (db *DB) ClaimDueDeliveries(ctx context.Context, owner string, now time.Time, lease time.Duration, limit int) ([]store.Delivery, error) {
	if owner == "" {
		return nil, fmt.Errorf("bolt: claim deliveries: %w: empty owner", store.ErrInvalid)
	}
	if limit <= 0 {
		return nil, nil
	}
	var out []store.Delivery
	err := db.update(ctx, "claim deliveries", func(tx *bbolt.Tx) error {
		out = nil
		var ids []string
		err := scanUntil(tx.Bucket([]byte(bkDelDue)), now, func(k []byte) (bool, error) {
			ids = append(ids, tailAfter8(k))
			return len(ids) < limit, nil
		})
		if err != nil {
			return err
		}
		for _, id := range ids {
			d, err := getDelivery(tx, id)
			if err != nil {
				return fmt.Errorf("index %s points at a missing delivery: %w", bkDelDue, err)
			}
			claimed := d
			claimed.LeaseOwner, claimed.LeaseUntil = owner, now.Add(lease)
			claimed.NextAttemptAt = claimed.LeaseUntil
			if err := putDelivery(tx, &d, claimed); err != nil {
				return err
			}
			out = append(out, claimed)
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	return out, nil
}

// CompleteAttempt records attempt a on a delivery leased by owner, moves it
// to state (due again at next when pending or retrying; done at a.At when
// final) and clears the lease. ErrNotFound when the delivery is gone or no
// longer leased by owner.
func (db *DB) CompleteAttempt(ctx context.Context, id, owner string, a store.Attempt, state store.DeliveryState, next time.Time) (store.Delivery, error) {
	if !due(state) && !state.Final() {
		return store.Delivery{}, fmt.Errorf("bolt: complete attempt: %w: unknown state %q", store.ErrInvalid, state)
	}
	// Attempts finish concurrently (one per delivery in a fan-out), and a
	// commit costs two fsyncs, so completions share commits (DB.batch); a
	// delivery no longer leased by owner is a refusal, which does not fail
	// the other completions of the batch.
	var out store.Delivery
	err := db.batch(ctx, "complete attempt", func(tx *bbolt.Tx) error {
		out = store.Delivery{}
		d, err := getDelivery(tx, id)
		if err != nil {
			return err
		}
		if owner == "" || d.LeaseOwner != owner || !due(d.State) {
			return fmt.Errorf("delivery not leased by this owner: %w", store.ErrNotFound)
		}
		out = d
		out.Attempts = append(append([]store.Attempt(nil), d.Attempts...), a)
		out.State = state
		out.LeaseOwner, out.LeaseUntil = "", time.Time{}
		if !a.OK && a.Error != "" {
			out.LastError = a.Error
		}
		if state.Final() {
			out.DoneAt, out.NextAttemptAt = a.At, time.Time{}
		} else {
			out.NextAttemptAt = next
		}
		return putDelivery(tx, &d, out)
	})
	if err != nil {
		return store.Delivery{}, err
	}
	return out, nil
}

// RetryDeliveries resets the failed deliveries of a logout to pending, due
// at now, and returns how many it reset. ErrNotFound for an unknown logout.
func (db *DB) RetryDeliveries(ctx context.Context, logoutID string, now time.Time) (int, error) {
	n := 0
	err := db.update(ctx, "retry deliveries", func(tx *bbolt.Tx) error {
		n = 0
		if _, err := getLogout(tx, logoutID); err != nil {
			return err
		}
		ds, err := listDeliveries(tx, logoutID)
		if err != nil {
			return err
		}
		for _, d := range ds {
			if d.State != store.DeliveryFailed {
				continue
			}
			reset, _ := store.RetryNow(d, now)
			if err := putDelivery(tx, &d, reset); err != nil {
				return err
			}
			n++
		}
		return nil
	})
	return n, err
}

// RetryDelivery makes one delivery due at now (store.RetryNow) and returns
// it with whether it changed. ErrNotFound for an unknown delivery.
func (db *DB) RetryDelivery(ctx context.Context, id string, now time.Time) (store.Delivery, bool, error) {
	var out store.Delivery
	var changed bool
	err := db.update(ctx, "retry delivery", func(tx *bbolt.Tx) error {
		d, err := getDelivery(tx, id)
		if err != nil {
			return err
		}
		out, changed = store.RetryNow(d, now)
		if !changed {
			return nil
		}
		return putDelivery(tx, &d, out)
	})
	if err != nil {
		return store.Delivery{}, false, err
	}
	return out, changed, nil
}

// ListFailingDeliveries returns a page of the deliveries failing now,
// newest first, walking the failing index backwards from the cursor.
func (db *DB) ListFailingDeliveries(ctx context.Context, before store.Cursor, limit int) ([]store.Delivery, error) {
	if limit <= 0 || limit > store.MaxPage {
		return nil, fmt.Errorf("bolt: list failing deliveries: %w: limit %d is not in 1..%d", store.ErrInvalid, limit, store.MaxPage)
	}
	var out []store.Delivery
	err := db.view(ctx, "list failing deliveries", func(tx *bbolt.Tx) error {
		c := tx.Bucket([]byte(bkDelFailing)).Cursor()
		for k := lastBefore(c, nil, before.CreatedAt, before.ID); k != nil && len(out) < limit; k, _ = c.Prev() {
			d, err := getDelivery(tx, string(k[timeLen:]))
			if err != nil {
				return fmt.Errorf("index %s points at a missing delivery: %w", bkDelFailing, err)
			}
			out = append(out, d)
		}
		return nil
	})
	return out, err
}

// NextDueAt returns the earliest NextAttemptAt over pending and retrying
// deliveries (for a leased one, the end of its lease), false when none.
func (db *DB) NextDueAt(ctx context.Context) (time.Time, bool, error) {
	var at time.Time
	var ok bool
	err := db.view(ctx, "next due delivery", func(tx *bbolt.Tx) error {
		k, _ := tx.Bucket([]byte(bkDelDue)).Cursor().First()
		if k != nil {
			at, ok = bytesTime(k[:8]), true
		}
		return nil
	})
	return at, ok, err
}

// CountDeliveries counts deliveries by state (states with none are left
// out).
func (db *DB) CountDeliveries(ctx context.Context) (map[store.DeliveryState]int, error) {
	out := map[store.DeliveryState]int{}
	err := db.view(ctx, "count deliveries", func(tx *bbolt.Tx) error {
		return tx.Bucket([]byte(bkDelCounts)).ForEach(func(k, v []byte) error {
			if n := int64(binary.BigEndian.Uint64(v)); n > 0 {
				out[store.DeliveryState(k)] = int(n)
			}
			return nil
		})
	})
	return out, err
}
