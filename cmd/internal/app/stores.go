package app

import (
	"context"
	"errors"
	"fmt"

	"github.com/slobridge/slobridge/store"
	"github.com/slobridge/slobridge/store/bolt"
	"github.com/slobridge/slobridge/store/postgres"
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

// pgOptions converts the configuration of the PostgreSQL store.
func pgOptions(c PostgresConfig) postgres.Options {
	return postgres.Options{Schema: c.Schema, MaxConns: c.MaxConns, SkipMigrations: c.SkipMigrations}
}

// openPostgres opens the PostgreSQL store (migrating its schema unless
// store.postgres.skip_migrations is set).
func openPostgres(ctx context.Context, c PostgresConfig) (store.Store, error) {
	db, err := postgres.Open(ctx, c.DSN.Value(), pgOptions(c))
	if err != nil {
		return nil, fmt.Errorf("app: store.postgres: %w", err)
	}
	return db, nil
}

// Migrate brings the PostgreSQL schema to the version this binary expects
// and returns the versions it applied.
func Migrate(ctx context.Context, c PostgresConfig) ([]int, error) {
	applied, err := postgres.Migrate(ctx, c.DSN.Value(), pgOptions(c))
	if err != nil {
		return nil, fmt.Errorf("app: migrate store.postgres: %w", err)
	}
	return applied, nil
}
