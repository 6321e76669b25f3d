package postgres

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/slobridge/slobridge/store"
)

// recordSQL holds the record statements of one table: records, or
// volatile_records for the namespaces store.IsVolatile (an UNLOGGED
// table: see migration 0006).
type recordSQL struct {
	put, get, take, grantSelect, grantUse, del, sweep string
}

// durableRecordSQL and volatileRecordSQL are the statements of the two
// tables.
var durableRecordSQL, volatileRecordSQL = recordStatements("records"), recordStatements("volatile_records")

// recordStatements returns the record statements of table.
func recordStatements(table string) recordSQL {
	r := strings.NewReplacer("records", table)
	return recordSQL{
		put: r.Replace(putRecordSQL),
		get: r.Replace(`SELECT namespace, key, value, expires_at FROM records
		WHERE namespace = $1 AND key = $2 AND expires_at > $3 AND NOT used`),
		take: r.Replace(`DELETE FROM records
		WHERE namespace = $1 AND key = $2 AND expires_at > $3 AND NOT used
		RETURNING namespace, key, value, expires_at`),
		grantSelect: r.Replace(`SELECT namespace, key, value, expires_at, used, issued FROM records
			WHERE namespace = $1 AND key = $2 AND expires_at > $3 FOR UPDATE`),
		grantUse: r.Replace(`UPDATE records SET used = true, issued = $3, expires_at = $4
			WHERE namespace = $1 AND key = $2`),
		del:   r.Replace("DELETE FROM records WHERE namespace = $1 AND key = $2"),
		sweep: r.Replace(sweepBatchSQL),
	}
}

// recordsSQL returns the statements of the table that holds namespace.
func recordsSQL(namespace string) *recordSQL {
	if store.IsVolatile(namespace) {
		return &volatileRecordSQL
	}
	return &durableRecordSQL
}

// putRecordSQL inserts a record, replacing one with the same namespace and
// key only when that one has expired at $5: the upsert decides under the
// row lock, so of two concurrent puts of a key at most one succeeds.
const putRecordSQL = `INSERT INTO records (namespace, key, value, expires_at) VALUES ($1, $2, $3, $4)
	ON CONFLICT (namespace, key) DO UPDATE SET value = excluded.value, expires_at = excluded.expires_at,
		used = false, issued = NULL
	WHERE records.expires_at IS NULL OR records.expires_at <= $5`

// PutRecord stores an expiring record; ErrAlreadyExists when a record with
// the same namespace and key is live at the wall clock (Options.Now). An
// expired one is replaced.
func (db *DB) PutRecord(ctx context.Context, r store.Record) error {
	err := checkIDs("record namespace", r.Namespace, "record key", r.Key)
	if err != nil {
		return fmt.Errorf("postgres: put record: %w", err)
	}
	var value any
	if r.Value != nil {
		value = r.Value
	}
	tag, err := db.pool.Exec(ctx, recordsSQL(r.Namespace).put, r.Namespace, r.Key, value, tz(r.ExpiresAt), db.now())
	if err != nil {
		return fmt.Errorf("postgres: put record: %w", dbError(err))
	}
	if tag.RowsAffected() == 0 {
		return fmt.Errorf("postgres: put record in %s: %w", r.Namespace, store.ErrAlreadyExists)
	}
	return nil
}

// scanRecord reads namespace, key, value, expires_at.
func scanRecord(row rowScanner) (store.Record, error) {
	var r store.Record
	var exp *time.Time
	if err := row.Scan(&r.Namespace, &r.Key, &r.Value, &exp); err != nil {
		return store.Record{}, err
	}
	r.ExpiresAt = fromTZ(exp)
	if len(r.Value) == 0 {
		r.Value = nil
	}
	return r, nil
}

// recordResult turns the outcome of a one-record query into the Store's
// errors.
func recordResult(op, namespace string, r store.Record, err error) (store.Record, error) {
	if errors.Is(err, pgx.ErrNoRows) {
		return store.Record{}, fmt.Errorf("postgres: %s: record in %s: %w", op, namespace, store.ErrNotFound)
	}
	if err != nil {
		return store.Record{}, fmt.Errorf("postgres: %s: %w", op, dbError(err))
	}
	return r, nil
}

// GetRecord returns a record live at now.
func (db *DB) GetRecord(ctx context.Context, namespace, key string, now time.Time) (store.Record, error) {
	if checkIDs("record namespace", namespace, "record key", key) != nil {
		return store.Record{}, fmt.Errorf("postgres: get record: record in %s: %w", namespace, store.ErrNotFound)
	}
	r, err := scanRecord(db.pool.QueryRow(ctx, recordsSQL(namespace).get, namespace, key, now))
	return recordResult("get record", namespace, r, err)
}

// TakeRecord deletes and returns a record live at now, in one statement:
// of concurrent takes (on any replica) exactly one gets the row, the others
// find it gone once the winner commits.
func (db *DB) TakeRecord(ctx context.Context, namespace, key string, now time.Time) (store.Record, error) {
	if checkIDs("record namespace", namespace, "record key", key) != nil {
		return store.Record{}, fmt.Errorf("postgres: take record: record in %s: %w", namespace, store.ErrNotFound)
	}
	r, err := scanRecord(db.pool.QueryRow(ctx, recordsSQL(namespace).take, namespace, key, now))
	return recordResult("take record", namespace, r, err)
}

// TakeGrant uses a one-time grant (see store.Store): the row is locked
// (SELECT … FOR UPDATE) so that of concurrent uses on any replica exactly
// one finds it unused and marks it, in the same transaction.
func (db *DB) TakeGrant(ctx context.Context, namespace, key string, issued []byte, keepUntil, now time.Time) (store.GrantUse, error) {
	if checkIDs("record namespace", namespace, "record key", key) != nil {
		return store.GrantUse{}, fmt.Errorf("postgres: take grant: grant in %s: %w", namespace, store.ErrNotFound)
	}
	var u store.GrantUse
	err := db.inTx(ctx, "take grant", func(tx pgx.Tx) error {
		u = store.GrantUse{}
		var used bool
		var prior []byte
		var exp *time.Time
		err := tx.QueryRow(ctx, recordsSQL(namespace).grantSelect, namespace, key, now).
			Scan(&u.Record.Namespace, &u.Record.Key, &u.Record.Value, &exp, &used, &prior)
		if errors.Is(err, pgx.ErrNoRows) {
			return fmt.Errorf("grant in %s: %w", namespace, store.ErrNotFound)
		}
		if err != nil {
			return err
		}
		u.Record.ExpiresAt = fromTZ(exp)
		if len(u.Record.Value) == 0 {
			u.Record.Value = nil
		}
		if used {
			u.Issued = prior
			return nil
		}
		u.First = true
		until := u.Record.ExpiresAt
		if keepUntil.After(until) {
			until = keepUntil
		}
		var iss any
		if issued != nil {
			iss = issued
		}
		_, err = tx.Exec(ctx, recordsSQL(namespace).grantUse, namespace, key, iss, tz(until))
		return err
	})
	if err != nil {
		return store.GrantUse{}, err
	}
	return u, nil
}

// DeleteRecord removes a record; no error when absent.
func (db *DB) DeleteRecord(ctx context.Context, namespace, key string) error {
	if checkIDs("record namespace", namespace, "record key", key) != nil {
		return nil
	}
	if _, err := db.pool.Exec(ctx, recordsSQL(namespace).del, namespace, key); err != nil {
		return fmt.Errorf("postgres: delete record: %w", dbError(err))
	}
	return nil
}

// checkReplaySQL records an identifier unless it is recorded and live at
// $4; the upsert decides under the row lock, so of concurrent checks of one
// identifier exactly one inserts (or renews) it.
const checkReplaySQL = `INSERT INTO replay (namespace, id, expires_at) VALUES ($1, $2, $3)
	ON CONFLICT (namespace, id) DO UPDATE SET expires_at = excluded.expires_at
	WHERE replay.expires_at IS NULL OR replay.expires_at <= $4`

// CheckReplay records a one-time identifier until expiresAt; ErrReplay
// when it is already recorded and not expired at now.
func (db *DB) CheckReplay(ctx context.Context, namespace, id string, expiresAt, now time.Time) error {
	if err := checkIDs("replay namespace", namespace, "identifier", id); err != nil {
		return fmt.Errorf("postgres: check replay: %w", err)
	}
	tag, err := db.pool.Exec(ctx, checkReplaySQL, namespace, id, tz(expiresAt), now)
	if err != nil {
		return fmt.Errorf("postgres: check replay: %w", dbError(err))
	}
	if tag.RowsAffected() == 0 {
		return fmt.Errorf("postgres: check replay: identifier in %s: %w", namespace, store.ErrReplay)
	}
	return nil
}
