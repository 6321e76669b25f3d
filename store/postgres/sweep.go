package postgres

import (
	"context"
	"fmt"
	"time"

	"github.com/slobridge/slobridge/store"
)

// changesRetention is how long change-feed rows are kept. A listener that
// lost the database for longer than this misses changes (it re-reads state
// from the store anyway). Judged at the database clock: the rows are
// stamped by the database, not by callers.
const changesRetention = time.Hour

// sweepBatch is the most rows one sweep statement deletes: a backlog is
// removed in short transactions that hold few row locks and little WAL
// each, between which logins and logouts go on.
const sweepBatch = 2000

// sweepLogoutsSQL deletes up to $2 logouts made at or before $1 whose
// deliveries are all final and done at or before $1, with those
// deliveries, and counts both.
const sweepLogoutsSQL = `WITH gone AS (
	DELETE FROM logouts WHERE id IN (
		SELECT l.id FROM logouts l
		WHERE (l.created_at IS NULL OR l.created_at <= $1)
		  AND NOT EXISTS (
			SELECT 1 FROM deliveries d WHERE d.logout_id = l.id
			  AND (d.state IN ('pending', 'retrying') OR d.done_at > $1))
		LIMIT $2)
	RETURNING id
), dg AS (
	DELETE FROM deliveries WHERE logout_id IN (SELECT id FROM gone) RETURNING 1
)
SELECT (SELECT count(*) FROM gone), (SELECT count(*) FROM dg)`

// sweepSessionsSQL deletes up to $2 sessions expired, or ended, at or
// before $1 (their participants go with them: ON DELETE CASCADE).
const sweepSessionsSQL = `DELETE FROM sessions WHERE id IN (
	SELECT id FROM sessions WHERE CASE WHEN ended_at IS NULL
		THEN expires_at IS NULL OR expires_at <= $1 ELSE ended_at <= $1 END
	LIMIT $2)`

// sweepBatchSQL deletes up to $2 records expired at $1 (recordStatements
// names the table).
const sweepBatchSQL = `DELETE FROM records WHERE ctid IN (
	SELECT ctid FROM records WHERE expires_at IS NULL OR expires_at <= $1 LIMIT $2)`

// sweepReplaySQL deletes up to $2 replay entries expired at $1.
const sweepReplaySQL = `DELETE FROM replay WHERE ctid IN (
	SELECT ctid FROM replay WHERE expires_at IS NULL OR expires_at <= $1 LIMIT $2)`

// Sweep deletes what has expired at now, in statements of at most
// sweepBatch rows each, repeated until nothing is left:
//   - sessions whose ExpiresAt, or EndedAt once ended, is at or before
//     now-retain, with their participants;
//   - logouts created at or before now-retain whose deliveries are all
//     final and done at or before now-retain, with those deliveries;
//   - records (durable and volatile) and replay entries expired at now;
//   - keys whose (non-zero) RetireAt is at or before now;
//   - change-feed rows older than an hour by the database clock (not
//     counted in the result).
//
// A cancelled ctx stops it between statements with what it removed so
// far.
func (db *DB) Sweep(ctx context.Context, now time.Time, retain time.Duration) (store.SweepResult, error) {
	var res store.SweepResult
	cutoff := now.Add(-retain)
	steps := []struct {
		name string
		n    *int
		sql  string
		at   time.Time
	}{
		{"sessions", &res.Sessions, sweepSessionsSQL, cutoff},
		{"records", &res.Records, durableRecordSQL.sweep, now},
		{"volatile records", &res.Records, volatileRecordSQL.sweep, now},
		{"replay", &res.Replay, sweepReplaySQL, now},
	}
	for _, st := range steps {
		for {
			tag, err := db.pool.Exec(ctx, st.sql, st.at, sweepBatch)
			if err != nil {
				return res, fmt.Errorf("postgres: sweep %s: %w", st.name, dbError(err))
			}
			*st.n += int(tag.RowsAffected())
			if tag.RowsAffected() < sweepBatch {
				break
			}
		}
	}
	for {
		var lo, del int
		if err := db.pool.QueryRow(ctx, sweepLogoutsSQL, cutoff, sweepBatch).Scan(&lo, &del); err != nil {
			return res, fmt.Errorf("postgres: sweep logouts: %w", dbError(err))
		}
		res.Logouts += lo
		res.Deliveries += del
		if lo < sweepBatch {
			break
		}
	}
	tag, err := db.pool.Exec(ctx, "DELETE FROM signing_keys WHERE retire_at <= $1", now)
	if err != nil {
		return res, fmt.Errorf("postgres: sweep keys: %w", dbError(err))
	}
	res.Keys = int(tag.RowsAffected())
	if _, err := db.pool.Exec(ctx, "DELETE FROM changes WHERE at < now() - $1::interval", changesRetention); err != nil {
		return res, fmt.Errorf("postgres: sweep changes: %w", dbError(err))
	}
	return res, nil
}
