package bolt

import (
	"context"
	"fmt"
	"slices"
	"strings"

	bbolt "go.etcd.io/bbolt"

	"github.com/slobridge/slobridge/store"
)

// PutKey stores a signing key, creating or replacing it.
func (db *DB) PutKey(ctx context.Context, k store.Key) error {
	if err := checkIDs("key ID", k.ID); err != nil {
		return fmt.Errorf("bolt: put key: %w", err)
	}
	return db.update(ctx, "put key", func(tx *bbolt.Tx) error {
		return putJSON(tx.Bucket([]byte(bkKeys)), []byte(k.ID), k)
	})
}

// allKeys decodes every stored signing key.
func allKeys(tx *bbolt.Tx) ([]store.Key, error) {
	var out []store.Key
	b := tx.Bucket([]byte(bkKeys))
	err := b.ForEach(func(id, _ []byte) error {
		var k store.Key
		if _, err := getJSON(b, id, &k); err != nil {
			return err
		}
		out = append(out, k)
		return nil
	})
	return out, err
}

// ListKeys returns the keys of a use ("" for all), oldest first (by
// CreatedAt, then ID).
func (db *DB) ListKeys(ctx context.Context, use string) ([]store.Key, error) {
	var out []store.Key
	err := db.view(ctx, "list keys", func(tx *bbolt.Tx) error {
		all, err := allKeys(tx)
		for _, k := range all {
			if use == "" || k.Use == use {
				out = append(out, k)
			}
		}
		return err
	})
	slices.SortFunc(out, func(a, b store.Key) int {
		if c := a.CreatedAt.Compare(b.CreatedAt); c != 0 {
			return c
		}
		return strings.Compare(a.ID, b.ID)
	})
	return out, err
}

// DeleteKey removes a signing key; ErrNotFound when absent.
func (db *DB) DeleteKey(ctx context.Context, id string) error {
	return db.update(ctx, "delete key", func(tx *bbolt.Tx) error {
		b := tx.Bucket([]byte(bkKeys))
		if b.Get([]byte(id)) == nil {
			return fmt.Errorf("key %q: %w", id, store.ErrNotFound)
		}
		return b.Delete([]byte(id))
	})
}
