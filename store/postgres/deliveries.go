package postgres

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/slobridge/slobridge/store"
)

// deliveryColumns are the columns scanDelivery reads, in order.
const deliveryColumns = `id, logout_id, participant, state, created_at, next_attempt_at,
	coalesce(lease_owner, ''), lease_until, attempts, last_error, done_at`

// scanDelivery reads one row of deliveryColumns, followed by the extra
// destinations.
func scanDelivery(row rowScanner, extra ...any) (store.Delivery, error) {
	var d store.Delivery
	var state string
	var part, attempts []byte
	var created, next, leaseUntil, done *time.Time
	dest := append([]any{&d.ID, &d.LogoutID, &part, &state, &created, &next, &d.LeaseOwner,
		&leaseUntil, &attempts, &d.LastError, &done}, extra...)
	if err := row.Scan(dest...); err != nil {
		return store.Delivery{}, err
	}
	d.State = store.DeliveryState(state)
	d.CreatedAt, d.NextAttemptAt = fromTZ(created), fromTZ(next)
	d.LeaseUntil, d.DoneAt = fromTZ(leaseUntil), fromTZ(done)
	if err := decodeJSON(part, &d.Participant, "delivery participant"); err != nil {
		return store.Delivery{}, err
	}
	if err := decodeJSON(attempts, &d.Attempts, "delivery attempts"); err != nil {
		return store.Delivery{}, err
	}
	if len(d.Attempts) == 0 {
		d.Attempts = nil
	}
	return d, nil
}

// collectDeliveries scans every row of a deliveryColumns query.
func collectDeliveries(rows pgx.Rows) ([]store.Delivery, error) {
	return pgx.CollectRows(rows, func(r pgx.CollectableRow) (store.Delivery, error) { return scanDelivery(r) })
}

// ListDeliveries returns the deliveries of one logout, in creation order.
func (db *DB) ListDeliveries(ctx context.Context, logoutID string) ([]store.Delivery, error) {
	if checkIDs("logout ID", logoutID) != nil {
		return nil, nil
	}
	rows, err := db.pool.Query(ctx, "SELECT "+deliveryColumns+
		" FROM deliveries WHERE logout_id = $1 ORDER BY ord", logoutID)
	if err == nil {
		var out []store.Delivery
		if out, err = collectDeliveries(rows); err == nil {
			return out, nil
		}
	}
	return nil, fmt.Errorf("postgres: list deliveries: %w", dbError(err))
}

// GetDelivery returns one delivery.
func (db *DB) GetDelivery(ctx context.Context, id string) (store.Delivery, error) {
	if checkIDs("delivery ID", id) != nil {
		return store.Delivery{}, fmt.Errorf("postgres: get delivery: %w", store.ErrNotFound)
	}
	d, err := scanDelivery(db.pool.QueryRow(ctx, "SELECT "+deliveryColumns+" FROM deliveries WHERE id = $1", id))
	if errors.Is(err, pgx.ErrNoRows) {
		return store.Delivery{}, fmt.Errorf("postgres: get delivery %q: %w", id, store.ErrNotFound)
	}
	if err != nil {
		return store.Delivery{}, fmt.Errorf("postgres: get delivery: %w", dbError(err))
	}
	return d, nil
}

// claimSQL leases due deliveries. SKIP LOCKED passes over rows another
// replica is claiming or completing at this moment, so replicas never
// wait for each other and never claim the same row: a row whose claim has
// committed has its next_attempt_at moved to the end of the lease and no
// longer matches until that lease runs out. Due deliveries always have a
// next_attempt_at (the zero time is stored as year 1), so the scan follows
// the partial index deliveries_due_idx and stops at now.
const claimSQL = `WITH due AS (
	SELECT id, next_attempt_at AS due_at FROM deliveries
	WHERE state IN ('pending', 'retrying')
	  AND next_attempt_at <= $1
	  AND (lease_until IS NULL OR lease_until <= $1)
	ORDER BY next_attempt_at, id
	LIMIT $2
	FOR UPDATE SKIP LOCKED
)
UPDATE deliveries d SET lease_owner = $3, lease_until = $4, next_attempt_at = $4
FROM due WHERE d.id = due.id
RETURNING ` + qualifiedDeliveryColumns + `, due.due_at`

// qualifiedDeliveryColumns is deliveryColumns for a query that joins
// deliveries (as d) with another table.
const qualifiedDeliveryColumns = `d.id, d.logout_id, d.participant, d.state, d.created_at,
	d.next_attempt_at, coalesce(d.lease_owner, ''), d.lease_until, d.attempts, d.last_error, d.done_at`

// ClaimDueDeliveries leases up to limit pending or retrying deliveries due
// at or before now (and not under a running lease) to owner until
// now+lease, earliest due first. A claimed delivery's NextAttemptAt moves
// to the end of its lease: it is due again, for any owner on any replica,
// only if the lease runs out before CompleteAttempt.
func (db *DB) ClaimDueDeliveries(ctx context.Context, owner string, now time.Time, lease time.Duration, limit int) ([]store.Delivery, error) {
	if err := checkIDs("lease owner", owner); err != nil {
		return nil, fmt.Errorf("postgres: claim deliveries: %w", err)
	}
	if limit <= 0 {
		return nil, nil
	}
	type claimed struct {
		d     store.Delivery
		dueAt time.Time
	}
	rows, err := db.pool.Query(ctx, claimSQL, now, limit, owner, now.Add(lease))
	var got []claimed
	if err == nil {
		got, err = pgx.CollectRows(rows, func(r pgx.CollectableRow) (claimed, error) {
			var c claimed
			var due *time.Time
			var err error
			c.d, err = scanDelivery(r, &due)
			c.dueAt = fromTZ(due)
			return c, err
		})
	}
	if err != nil {
		return nil, fmt.Errorf("postgres: claim deliveries: %w", dbError(err))
	}
	// UPDATE ... RETURNING has no order: restore the claim order.
	slices.SortFunc(got, func(a, b claimed) int {
		if c := a.dueAt.Compare(b.dueAt); c != 0 {
			return c
		}
		return strings.Compare(a.d.ID, b.d.ID)
	})
	out := make([]store.Delivery, len(got))
	for i, c := range got {
		out[i] = c.d
	}
	return out, nil
}

// completeSQL records an attempt on a delivery leased by $2 and announces
// the new state on the change feed, in one statement.
const completeSQL = `WITH u AS (
	UPDATE deliveries SET
		attempts = attempts || jsonb_build_array($3::jsonb),
		state = $4,
		lease_owner = NULL,
		lease_until = NULL,
		last_error = CASE WHEN $5 THEN $6 ELSE last_error END,
		next_attempt_at = $7,
		done_at = $8
	WHERE id = $1 AND lease_owner = $2 AND state IN ('pending', 'retrying')
	RETURNING *
), c AS (
	INSERT INTO changes (logout_id, delivery_id, state) SELECT logout_id, id, state FROM u
)
SELECT ` + deliveryColumns + ` FROM u`

// CompleteAttempt records attempt a on a delivery leased by owner, moves it
// to state (due again at next when pending or retrying; done at a.At when
// final) and clears the lease. ErrNotFound when the delivery is gone or no
// longer leased by owner (its lease ran out and another owner, on this
// replica or another, claimed it).
func (db *DB) CompleteAttempt(ctx context.Context, id, owner string, a store.Attempt, state store.DeliveryState, next time.Time) (store.Delivery, error) {
	if !due(state) && !state.Final() {
		return store.Delivery{}, fmt.Errorf("postgres: complete attempt: %w: unknown state %q", store.ErrInvalid, state)
	}
	if checkIDs("delivery ID", id, "lease owner", owner) != nil {
		return store.Delivery{}, fmt.Errorf("postgres: complete attempt: delivery not leased by this owner: %w", store.ErrNotFound)
	}
	attempt, err := nullJSON(a, false)
	if err != nil {
		return store.Delivery{}, fmt.Errorf("postgres: complete attempt: %w", err)
	}
	var nextAt, doneAt any
	if state.Final() {
		doneAt = tz(a.At)
	} else {
		nextAt = next
	}
	d, err := scanDelivery(db.pool.QueryRow(ctx, completeSQL, id, owner, attempt, string(state),
		!a.OK && a.Error != "", a.Error, nextAt, doneAt))
	if errors.Is(err, pgx.ErrNoRows) {
		return store.Delivery{}, fmt.Errorf("postgres: complete attempt: delivery %q not leased by this owner: %w", id, store.ErrNotFound)
	}
	if err != nil {
		return store.Delivery{}, fmt.Errorf("postgres: complete attempt: %w", dbError(err))
	}
	db.notifier.poke()
	return d, nil
}

// due reports whether deliveries in state s wait for an attempt.
func due(s store.DeliveryState) bool {
	return s == store.DeliveryPending || s == store.DeliveryRetrying
}

// retrySQL resets a logout's failed deliveries and announces each on the
// change feed; it reports whether the logout exists and how many it reset.
const retrySQL = `WITH lo AS (
	SELECT id FROM logouts WHERE id = $1
), u AS (
	UPDATE deliveries SET state = 'pending', next_attempt_at = $2, done_at = NULL,
		lease_owner = NULL, lease_until = NULL
	WHERE logout_id IN (SELECT id FROM lo) AND state = 'failed'
	RETURNING logout_id, id, state
), c AS (
	INSERT INTO changes (logout_id, delivery_id, state) SELECT logout_id, id, state FROM u
)
SELECT (SELECT count(*) FROM lo), (SELECT count(*) FROM u)`

// RetryDeliveries resets the failed deliveries of a logout to pending, due
// at now, and returns how many it reset. ErrNotFound for an unknown logout.
func (db *DB) RetryDeliveries(ctx context.Context, logoutID string, now time.Time) (int, error) {
	if checkIDs("logout ID", logoutID) != nil {
		return 0, fmt.Errorf("postgres: retry deliveries: logout: %w", store.ErrNotFound)
	}
	var found, n int
	if err := db.pool.QueryRow(ctx, retrySQL, logoutID, now).Scan(&found, &n); err != nil {
		return 0, fmt.Errorf("postgres: retry deliveries: %w", dbError(err))
	}
	if found == 0 {
		return 0, fmt.Errorf("postgres: retry deliveries: logout %q: %w", logoutID, store.ErrNotFound)
	}
	if n > 0 {
		db.notifier.poke()
	}
	return n, nil
}

// RetryDelivery makes one delivery due at now (store.RetryNow) and returns
// it with whether it changed, in one transaction that holds the row, so a
// worker's claim or completion waits for it or it for them. ErrNotFound for
// an unknown delivery.
func (db *DB) RetryDelivery(ctx context.Context, id string, now time.Time) (store.Delivery, bool, error) {
	if checkIDs("delivery ID", id) != nil {
		return store.Delivery{}, false, fmt.Errorf("postgres: retry delivery: %w", store.ErrNotFound)
	}
	var out store.Delivery
	var changed bool
	err := db.inTx(ctx, "retry delivery", func(tx pgx.Tx) error {
		d, err := scanDelivery(tx.QueryRow(ctx, "SELECT "+deliveryColumns+" FROM deliveries WHERE id = $1 FOR UPDATE", id))
		if errors.Is(err, pgx.ErrNoRows) {
			return fmt.Errorf("delivery %q: %w", id, store.ErrNotFound)
		} else if err != nil {
			return err
		}
		if out, changed = store.RetryNow(d, now); !changed {
			return nil
		}
		b := &pgx.Batch{}
		b.Queue(`UPDATE deliveries SET state = $2, next_attempt_at = $3, done_at = $4,
			lease_owner = NULL, lease_until = NULL WHERE id = $1`, id, string(out.State), out.NextAttemptAt, tz(out.DoneAt))
		b.Queue("INSERT INTO changes (logout_id, delivery_id, state) VALUES ($1, $2, $3)", out.LogoutID, id, string(out.State))
		return tx.SendBatch(ctx, b).Close()
	})
	if err != nil {
		return store.Delivery{}, false, err
	}
	if changed {
		db.notifier.poke()
	}
	return out, changed, nil
}

// ListFailingDeliveries returns a page of the deliveries failing now,
// newest first, from the partial index deliveries_failing_idx.
func (db *DB) ListFailingDeliveries(ctx context.Context, before store.Cursor, limit int) ([]store.Delivery, error) {
	if limit <= 0 || limit > store.MaxPage {
		return nil, fmt.Errorf("postgres: list failing deliveries: %w: limit %d is not in 1..%d", store.ErrInvalid, limit, store.MaxPage)
	}
	const q = "SELECT " + deliveryColumns + " FROM deliveries WHERE state IN ('retrying', 'failed')"
	var rows pgx.Rows
	var err error
	if before.CreatedAt.IsZero() {
		rows, err = db.pool.Query(ctx, q+" ORDER BY created_at DESC, id DESC LIMIT $1", limit)
	} else {
		rows, err = db.pool.Query(ctx, q+" AND (created_at, id) < ($1, $2) ORDER BY created_at DESC, id DESC LIMIT $3",
			before.CreatedAt.UTC(), before.ID, limit)
	}
	if err == nil {
		var out []store.Delivery
		if out, err = collectDeliveries(rows); err == nil {
			return out, nil
		}
	}
	return nil, fmt.Errorf("postgres: list failing deliveries: %w", dbError(err))
}

// NextDueAt returns the earliest NextAttemptAt over pending and retrying
// deliveries (for a leased one, the end of its lease), false when none.
func (db *DB) NextDueAt(ctx context.Context) (time.Time, bool, error) {
	var first *time.Time
	err := db.pool.QueryRow(ctx, `SELECT min(next_attempt_at) FROM deliveries
		WHERE state IN ('pending', 'retrying')`).Scan(&first)
	if err != nil {
		return time.Time{}, false, fmt.Errorf("postgres: next due delivery: %w", dbError(err))
	}
	if first == nil {
		return time.Time{}, false, nil
	}
	return first.UTC(), true, nil
}

// CountDeliveries counts deliveries by state (states with none are left
// out).
func (db *DB) CountDeliveries(ctx context.Context) (map[store.DeliveryState]int, error) {
	rows, err := db.pool.Query(ctx, "SELECT state, count(*) FROM deliveries GROUP BY state")
	if err != nil {
		return nil, fmt.Errorf("postgres: count deliveries: %w", dbError(err))
	}
	out := map[store.DeliveryState]int{}
	var state string
	var n int
	_, err = pgx.ForEachRow(rows, []any{&state, &n}, func() error {
		out[store.DeliveryState(state)] = n
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("postgres: count deliveries: %w", dbError(err))
	}
	return out, nil
}
