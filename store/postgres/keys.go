package postgres

import (
	"context"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/slobridge/slobridge/store"
)

// PutKey stores a signing key, creating or replacing it.
func (db *DB) PutKey(ctx context.Context, k store.Key) error {
	err := checkIDs("key ID", k.ID)
	if err == nil {
		err = checkText("key use", k.Use, "key algorithm", k.Algorithm)
	}
	if err != nil {
		return fmt.Errorf("postgres: put key: %w", err)
	}
	var pem any
	if k.PrivatePEM != nil {
		pem = k.PrivatePEM
	}
	_, err = db.pool.Exec(ctx, `INSERT INTO signing_keys (id, use, algorithm, private_pem, created_at,
		not_before, not_after, retire_at) VALUES ($1, $2, $3, $4, $5, $6, $7, $8)
		ON CONFLICT (id) DO UPDATE SET use = excluded.use, algorithm = excluded.algorithm,
			private_pem = excluded.private_pem, created_at = excluded.created_at,
			not_before = excluded.not_before, not_after = excluded.not_after,
			retire_at = excluded.retire_at`,
		k.ID, k.Use, k.Algorithm, pem, tz(k.CreatedAt), tz(k.NotBefore), tz(k.NotAfter), tz(k.RetireAt))
	if err != nil {
		return fmt.Errorf("postgres: put key: %w", dbError(err))
	}
	return nil
}

// ListKeys returns the keys of a use ("" for all), oldest first (by
// CreatedAt, then ID).
func (db *DB) ListKeys(ctx context.Context, use string) ([]store.Key, error) {
	rows, err := db.pool.Query(ctx, `SELECT id, use, algorithm, private_pem, created_at, not_before,
		not_after, retire_at FROM signing_keys WHERE $1 = '' OR use = $1
		ORDER BY created_at NULLS FIRST, id`, use)
	if err == nil {
		var out []store.Key
		out, err = pgx.CollectRows(rows, func(r pgx.CollectableRow) (store.Key, error) {
			var k store.Key
			var created, nbf, naf, retire *time.Time
			if err := r.Scan(&k.ID, &k.Use, &k.Algorithm, &k.PrivatePEM, &created, &nbf, &naf, &retire); err != nil {
				return store.Key{}, err
			}
			k.CreatedAt, k.NotBefore, k.NotAfter, k.RetireAt = fromTZ(created), fromTZ(nbf), fromTZ(naf), fromTZ(retire)
			if len(k.PrivatePEM) == 0 {
				k.PrivatePEM = nil
			}
			return k, nil
		})
		if err == nil {
			return out, nil
		}
	}
	return nil, fmt.Errorf("postgres: list keys: %w", dbError(err))
}

// DeleteKey removes a signing key; ErrNotFound when absent.
func (db *DB) DeleteKey(ctx context.Context, id string) error {
	if checkIDs("key ID", id) != nil {
		return fmt.Errorf("postgres: delete key %q: %w", id, store.ErrNotFound)
	}
	tag, err := db.pool.Exec(ctx, "DELETE FROM signing_keys WHERE id = $1", id)
	if err != nil {
		return fmt.Errorf("postgres: delete key: %w", dbError(err))
	}
	if tag.RowsAffected() == 0 {
		return fmt.Errorf("postgres: delete key %q: %w", id, store.ErrNotFound)
	}
	return nil
}
