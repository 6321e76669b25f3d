package app

import (
	"context"
	"errors"
	"fmt"

	"github.com/slobridge/slobridge/store"
	"github.com/slobridge/slobridge/store/bolt"
)

// openBolt opens the embedded bbolt store. A file held by another process
// fails after store.bolt.lock_timeout with an error wrapping
// store.ErrLocked.
func openBolt(c BoltConfig) (store.Store, error) {
	db, err := bolt.Open(c.Path, bolt.Options{Timeout: c.LockTimeout})
	if err != nil {
		if errors.Is(err, store.ErrLocked) {
			return nil, fmt.Errorf("app: store.bolt.path: %w (is another slobridge running on this file?)", err)
		}
		return nil, fmt.Errorf("app: store.bolt.path: %w", err)
	}
	return db, nil
}

// ErrPostgresNotBuilt reports a configuration that selects the PostgreSQL
// backend in a binary built before that backend was finished.
var ErrPostgresNotBuilt = errors.New("the postgres store is not built into this binary yet; use store.driver: bolt")

// openPostgres opens the PostgreSQL store.
func openPostgres(ctx context.Context, c PostgresConfig) (store.Store, error) {
	_ = ctx
	return nil, fmt.Errorf("app: store.driver: %w", ErrPostgresNotBuilt)
}

// Migrate brings the PostgreSQL schema to the version this binary expects
// and returns the versions it applied.
func Migrate(ctx context.Context, c PostgresConfig) ([]int, error) {
	_ = ctx
	return nil, fmt.Errorf("app: migrate: %w", ErrPostgresNotBuilt)
}
