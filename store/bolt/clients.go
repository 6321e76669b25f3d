package bolt

import (
	"context"
	"fmt"

	bbolt "go.etcd.io/bbolt"

	"github.com/slobridge/slobridge/store"
)

// getClient loads one client; ErrNotFound when absent.
func getClient(tx *bbolt.Tx, id string) (store.Client, error) {
	var c store.Client
	ok, err := getJSON(tx.Bucket([]byte(bkClients)), []byte(id), &c)
	if err != nil {
		return store.Client{}, err
	}
	if !ok {
		return store.Client{}, fmt.Errorf("client %q: %w", id, store.ErrNotFound)
	}
	return c, nil
}

// PutClient creates or replaces a client registration.
func (db *DB) PutClient(ctx context.Context, c store.Client) error {
	if err := checkIDs("client ID", c.ID); err != nil {
		return fmt.Errorf("bolt: put client: %w", err)
	}
	return db.update(ctx, "put client", func(tx *bbolt.Tx) error {
		return putJSON(tx.Bucket([]byte(bkClients)), []byte(c.ID), c)
	})
}

// GetClient returns one client.
func (db *DB) GetClient(ctx context.Context, id string) (store.Client, error) {
	var c store.Client
	err := db.view(ctx, "get client", func(tx *bbolt.Tx) error {
		var err error
		c, err = getClient(tx, id)
		return err
	})
	return c, err
}

// UpdateClient reads a client, passes it to update and writes the result,
// all in one transaction. An error from update aborts the change; update
// may not change the ID.
func (db *DB) UpdateClient(ctx context.Context, id string, update func(store.Client) (store.Client, error)) error {
	return db.update(ctx, "update client", func(tx *bbolt.Tx) error {
		old, err := getClient(tx, id)
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
		return putJSON(tx.Bucket([]byte(bkClients)), []byte(id), c)
	})
}

// DeleteClient removes a client; ErrNotFound when absent.
func (db *DB) DeleteClient(ctx context.Context, id string) error {
	return db.update(ctx, "delete client", func(tx *bbolt.Tx) error {
		b := tx.Bucket([]byte(bkClients))
		if b.Get([]byte(id)) == nil {
			return fmt.Errorf("client %q: %w", id, store.ErrNotFound)
		}
		return b.Delete([]byte(id))
	})
}

// ListClients returns every client of a kind ("" for all), ordered by ID.
func (db *DB) ListClients(ctx context.Context, kind string) ([]store.Client, error) {
	var out []store.Client
	err := db.view(ctx, "list clients", func(tx *bbolt.Tx) error {
		return tx.Bucket([]byte(bkClients)).ForEach(func(k, _ []byte) error {
			c, err := getClient(tx, string(k))
			if err != nil {
				return err
			}
			if kind == "" || c.Kind == kind {
				out = append(out, c)
			}
			return nil
		})
	})
	return out, err
}
