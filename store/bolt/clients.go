package bolt

import (
	"context"
	"errors"
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

// putClient writes c and keeps the kind index in step with it.
func putClient(tx *bbolt.Tx, c store.Client) error {
	kinds := tx.Bucket([]byte(bkClientsByKind))
	if old, err := getClient(tx, c.ID); err == nil {
		if err := kinds.Delete(key(prefix(old.Kind), []byte(c.ID))); err != nil {
			return err
		}
	} else if !errors.Is(err, store.ErrNotFound) {
		return err
	}
	if err := kinds.Put(key(prefix(c.Kind), []byte(c.ID)), nil); err != nil {
		return err
	}
	return putJSON(tx.Bucket([]byte(bkClients)), []byte(c.ID), c)
}

// indexClientsByKind builds the kind index from the stored clients.
func indexClientsByKind(tx *bbolt.Tx) error {
	kinds := tx.Bucket([]byte(bkClientsByKind))
	return tx.Bucket([]byte(bkClients)).ForEach(func(k, _ []byte) error {
		c, err := getClient(tx, string(k))
		if err != nil {
			return err
		}
		return kinds.Put(key(prefix(c.Kind), []byte(c.ID)), nil)
	})
}

// PutClient creates or replaces a client registration.
func (db *DB) PutClient(ctx context.Context, c store.Client) error {
	if err := checkIDs("client ID", c.ID); err != nil {
		return fmt.Errorf("bolt: put client: %w", err)
	}
	return db.update(ctx, "put client", func(tx *bbolt.Tx) error {
		return putClient(tx, c)
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
		return putClient(tx, c)
	})
}

// DeleteClient removes a client; ErrNotFound when absent.
func (db *DB) DeleteClient(ctx context.Context, id string) error {
	return db.update(ctx, "delete client", func(tx *bbolt.Tx) error {
		old, err := getClient(tx, id)
		if err != nil {
			return err
		}
		if err := tx.Bucket([]byte(bkClientsByKind)).Delete(key(prefix(old.Kind), []byte(id))); err != nil {
			return err
		}
		return tx.Bucket([]byte(bkClients)).Delete([]byte(id))
	})
}

// ListClients returns every client of a kind ("" for all), ordered by ID.
func (db *DB) ListClients(ctx context.Context, kind string) ([]store.Client, error) {
	var out []store.Client
	err := db.view(ctx, "list clients", func(tx *bbolt.Tx) error {
		if kind == "" {
			return tx.Bucket([]byte(bkClients)).ForEach(func(k, _ []byte) error {
				c, err := getClient(tx, string(k))
				if err != nil {
					return err
				}
				out = append(out, c)
				return nil
			})
		}
		// Only the clients of the kind are read (an SSF receiver lookup on
		// every login must not decode every OIDC client); the index keys
		// sort by ID within a kind.
		p := prefix(kind)
		return scanPrefix(tx.Bucket([]byte(bkClientsByKind)), p, func(k, _ []byte) error {
			c, err := getClient(tx, string(k[len(p):]))
			if err != nil {
				return fmt.Errorf("index %s: %w", bkClientsByKind, err)
			}
			out = append(out, c)
			return nil
		})
	})
	return out, err
}
