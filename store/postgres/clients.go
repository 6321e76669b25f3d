package postgres

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/slobridge/slobridge/store"
)

// clientColumns are the columns scanClient reads, in order.
const clientColumns = "id, kind, name, static, metadata, created_at, updated_at"

// scanClient reads one row of clientColumns.
func scanClient(row rowScanner) (store.Client, error) {
	var c store.Client
	var created, updated *time.Time
	if err := row.Scan(&c.ID, &c.Kind, &c.Name, &c.Static, &c.Metadata, &created, &updated); err != nil {
		return store.Client{}, err
	}
	c.CreatedAt, c.UpdatedAt = fromTZ(created), fromTZ(updated)
	if len(c.Metadata) == 0 {
		c.Metadata = nil
	}
	return c, nil
}

// putClientSQL creates or replaces a client.
const putClientSQL = `INSERT INTO clients (id, kind, name, static, metadata, created_at, updated_at)
	VALUES ($1, $2, $3, $4, $5, $6, $7)
	ON CONFLICT (id) DO UPDATE SET kind = excluded.kind, name = excluded.name,
		static = excluded.static, metadata = excluded.metadata,
		created_at = excluded.created_at, updated_at = excluded.updated_at`

// checkClient validates what PostgreSQL text columns cannot hold.
func checkClient(c store.Client) error {
	if err := checkIDs("client ID", c.ID); err != nil {
		return err
	}
	return checkText("client kind", c.Kind, "client name", c.Name)
}

// putClient runs putClientSQL.
func putClient(ctx context.Context, q querier, c store.Client) error {
	var meta any
	if c.Metadata != nil {
		meta = c.Metadata
	}
	_, err := q.Exec(ctx, putClientSQL, c.ID, c.Kind, c.Name, c.Static, meta, tz(c.CreatedAt), tz(c.UpdatedAt))
	return err
}

// PutClient creates or replaces a client registration.
func (db *DB) PutClient(ctx context.Context, c store.Client) error {
	if err := checkClient(c); err != nil {
		return fmt.Errorf("postgres: put client: %w", err)
	}
	if err := putClient(ctx, db.pool, c); err != nil {
		return fmt.Errorf("postgres: put client: %w", dbError(err))
	}
	return nil
}

// GetClient returns one client.
func (db *DB) GetClient(ctx context.Context, id string) (store.Client, error) {
	if checkIDs("client ID", id) != nil {
		return store.Client{}, fmt.Errorf("postgres: get client %q: %w", id, store.ErrNotFound)
	}
	c, err := scanClient(db.pool.QueryRow(ctx, "SELECT "+clientColumns+" FROM clients WHERE id = $1", id))
	if errors.Is(err, pgx.ErrNoRows) {
		return store.Client{}, fmt.Errorf("postgres: get client %q: %w", id, store.ErrNotFound)
	}
	if err != nil {
		return store.Client{}, fmt.Errorf("postgres: get client: %w", dbError(err))
	}
	return c, nil
}

// UpdateClient reads a client with its row locked (SELECT ... FOR UPDATE),
// passes it to update and writes the result, all in one transaction:
// concurrent updates, from any replica, run one after the other. An error
// from update aborts the change; update may not change the ID.
func (db *DB) UpdateClient(ctx context.Context, id string, update func(store.Client) (store.Client, error)) error {
	if checkIDs("client ID", id) != nil {
		return fmt.Errorf("postgres: update client %q: %w", id, store.ErrNotFound)
	}
	return db.inTx(ctx, "update client", func(tx pgx.Tx) error {
		old, err := scanClient(tx.QueryRow(ctx, "SELECT "+clientColumns+" FROM clients WHERE id = $1 FOR UPDATE", id))
		if errors.Is(err, pgx.ErrNoRows) {
			return fmt.Errorf("client %q: %w", id, store.ErrNotFound)
		}
		if err != nil {
			return err
		}
		c, err := update(old)
		if err != nil {
			return err
		}
		if c.ID != id {
			return fmt.Errorf("%w: update changed client ID %q to %q", store.ErrInvalid, id, c.ID)
		}
		if err := checkClient(c); err != nil {
			return err
		}
		return putClient(ctx, tx, c)
	})
}

// DeleteClient removes a client; ErrNotFound when absent.
func (db *DB) DeleteClient(ctx context.Context, id string) error {
	if checkIDs("client ID", id) != nil {
		return fmt.Errorf("postgres: delete client %q: %w", id, store.ErrNotFound)
	}
	tag, err := db.pool.Exec(ctx, "DELETE FROM clients WHERE id = $1", id)
	if err != nil {
		return fmt.Errorf("postgres: delete client: %w", dbError(err))
	}
	if tag.RowsAffected() == 0 {
		return fmt.Errorf("postgres: delete client %q: %w", id, store.ErrNotFound)
	}
	return nil
}

// ListClients returns every client of a kind ("" for all), ordered by ID.
func (db *DB) ListClients(ctx context.Context, kind string) ([]store.Client, error) {
	rows, err := db.pool.Query(ctx, "SELECT "+clientColumns+
		" FROM clients WHERE $1 = '' OR kind = $1 ORDER BY id", kind)
	if err == nil {
		var out []store.Client
		out, err = pgx.CollectRows(rows, func(r pgx.CollectableRow) (store.Client, error) { return scanClient(r) })
		if err == nil {
			return out, nil
		}
	}
	return nil, fmt.Errorf("postgres: list clients: %w", dbError(err))
}
