package postgres

import (
	"context"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/slobridge/slobridge/store"
)

// changesRetention is how long change-feed rows are kept. A listener that
// lost the database for longer than this misses changes (it re-reads state
// from the store anyway). Judged at the database clock: the rows are
// stamped by the database, not by callers.
const changesRetention = time.Hour

// sweepLogoutsSQL deletes logouts made at or before $1 whose deliveries are
// all final and done at or before $1, with those deliveries, and counts
// both.
const sweepLogoutsSQL = `WITH gone AS (
	DELETE FROM logouts l
	WHERE (l.created_at IS NULL OR l.created_at <= $1)
	  AND NOT EXISTS (
		SELECT 1 FROM deliveries d WHERE d.logout_id = l.id
		  AND (d.state IN ('pending', 'retrying') OR d.done_at > $1))
	RETURNING l.id
), dg AS (
	DELETE FROM deliveries WHERE logout_id IN (SELECT id FROM gone) RETURNING 1
)
SELECT (SELECT count(*) FROM gone), (SELECT count(*) FROM dg)`

// Sweep deletes what has expired at now, in one transaction:
//   - sessions whose ExpiresAt, or EndedAt once ended, is at or before
//     now-retain, with their participants;
//   - logouts created at or before now-retain whose deliveries are all
//     final and done at or before now-retain, with those deliveries;
//   - records and replay entries expired at now;
//   - keys whose (non-zero) RetireAt is at or before now;
//   - change-feed rows older than an hour by the database clock (not
//     counted in the result).
func (db *DB) Sweep(ctx context.Context, now time.Time, retain time.Duration) (store.SweepResult, error) {
	var res store.SweepResult
	cutoff := now.Add(-retain)
	err := db.inTx(ctx, "sweep", func(tx pgx.Tx) error {
		res = store.SweepResult{}
		tag, err := tx.Exec(ctx, `DELETE FROM sessions WHERE CASE WHEN ended_at IS NULL
			THEN expires_at IS NULL OR expires_at <= $1 ELSE ended_at <= $1 END`, cutoff)
		if err != nil {
			return fmt.Errorf("sessions: %w", err)
		}
		res.Sessions = int(tag.RowsAffected())
		if err := tx.QueryRow(ctx, sweepLogoutsSQL, cutoff).Scan(&res.Logouts, &res.Deliveries); err != nil {
			return fmt.Errorf("logouts: %w", err)
		}
		for _, step := range []struct {
			n   *int
			sql string
		}{
			{&res.Records, "DELETE FROM records WHERE expires_at IS NULL OR expires_at <= $1"},
			{&res.Replay, "DELETE FROM replay WHERE expires_at IS NULL OR expires_at <= $1"},
			{&res.Keys, "DELETE FROM signing_keys WHERE retire_at <= $1"},
		} {
			tag, err := tx.Exec(ctx, step.sql, now)
			if err != nil {
				return err
			}
			*step.n = int(tag.RowsAffected())
		}
		_, err = tx.Exec(ctx, "DELETE FROM changes WHERE at < now() - $1::interval", changesRetention)
		return err
	})
	return res, err
}
