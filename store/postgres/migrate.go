package postgres

import (
	"context"
	"embed"
	"errors"
	"fmt"
	"io/fs"
	"path"
	"slices"
	"strconv"
	"strings"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgxpool"
)

// migrationFS holds the schema migrations, one file per version, named
// NNNN_description.sql. They are forward-only: a released file is never
// edited, a change is a new file.
//
//go:embed migrations/*.sql
var migrationFS embed.FS

// migrationsTable records the applied migrations.
const migrationsTable = "slobridge_schema_migrations"

// migrationLockKey names the advisory lock that serialises migrations of
// one schema: it is hashed together with current_schema(), so tests that
// migrate different schemas of one database do not wait for each other.
const migrationLockKey = "slobridge: schema migration"

// ErrSchemaVersion reports a database schema that is behind this binary
// (with Options.SkipMigrations) or ahead of it (migrated by a newer
// release).
var ErrSchemaVersion = errors.New("postgres: database schema version does not match this binary")

// migration is one embedded schema change.
type migration struct {
	version int
	name    string
	sql     string
}

// loadMigrations reads the embedded migrations in version order and checks
// that versions run 1, 2, 3 ... without gaps or duplicates.
func loadMigrations() ([]migration, error) {
	entries, err := fs.ReadDir(migrationFS, "migrations")
	if err != nil {
		return nil, fmt.Errorf("read embedded migrations: %w", err)
	}
	var out []migration
	for _, e := range entries {
		num, _, ok := strings.Cut(e.Name(), "_")
		v, err := strconv.Atoi(num)
		if !ok || err != nil || v <= 0 {
			return nil, fmt.Errorf("migration %s: name must start with a positive number and '_'", e.Name())
		}
		body, err := migrationFS.ReadFile(path.Join("migrations", e.Name()))
		if err != nil {
			return nil, fmt.Errorf("read migration %s: %w", e.Name(), err)
		}
		out = append(out, migration{version: v, name: e.Name(), sql: string(body)})
	}
	slices.SortFunc(out, func(a, b migration) int { return a.version - b.version })
	for i, m := range out {
		if m.version != i+1 {
			return nil, fmt.Errorf("migration %s: expected version %d", m.name, i+1)
		}
	}
	return out, nil
}

// LatestVersion is the schema version this binary migrates to.
func LatestVersion() int {
	ms, err := loadMigrations()
	if err != nil || len(ms) == 0 {
		return 0
	}
	return ms[len(ms)-1].version
}

// Migrate brings the schema of the database at dsn (in opts.Schema when
// set) to the latest version and returns the versions it applied, none
// when it was already current. It is safe to run from several processes
// at once: each migration is applied exactly once. It is what Open does
// first; a "slobridge migrate" command calls it on its own.
func Migrate(ctx context.Context, dsn string, opts Options) ([]int, error) {
	pool, err := newPool(ctx, dsn, opts)
	if err != nil {
		return nil, err
	}
	defer pool.Close()
	applied, err := migrate(ctx, pool, opts.Schema)
	if err != nil {
		return nil, fmt.Errorf("postgres: migrate: %w", err)
	}
	return applied, nil
}

// migrate applies the missing migrations in one transaction that first
// takes a transaction-scoped advisory lock: a second replica starting at
// the same moment waits for the lock, then finds the migrations recorded
// and applies nothing. Either every missing migration is applied or none.
// When schema is set it is created if missing (under the same lock).
func migrate(ctx context.Context, pool *pgxpool.Pool, schema string) ([]int, error) {
	ms, err := loadMigrations()
	if err != nil {
		return nil, err
	}
	var applied []int
	err = pgx.BeginTxFunc(ctx, pool, pgx.TxOptions{}, func(tx pgx.Tx) error {
		applied = nil
		// The lock is per schema; current_schema() is NULL while the
		// configured schema does not exist yet, hence the schema name.
		if _, err := tx.Exec(ctx, "SELECT pg_advisory_xact_lock(hashtext($1 || ':' || coalesce(nullif($2, ''), current_schema(), '')))",
			migrationLockKey, schema); err != nil {
			return fmt.Errorf("take the migration lock: %w", err)
		}
		if schema != "" {
			if _, err := tx.Exec(ctx, "CREATE SCHEMA IF NOT EXISTS "+pgx.Identifier{schema}.Sanitize()); err != nil {
				return fmt.Errorf("create schema %q: %w", schema, err)
			}
		}
		if _, err := tx.Exec(ctx, `CREATE TABLE IF NOT EXISTS `+migrationsTable+` (
			version    integer PRIMARY KEY,
			name       text NOT NULL,
			applied_at timestamptz NOT NULL DEFAULT now())`); err != nil {
			return fmt.Errorf("create %s: %w", migrationsTable, err)
		}
		current, err := schemaVersion(ctx, tx)
		if err != nil {
			return err
		}
		if current > len(ms) {
			return fmt.Errorf("%w: the database is at version %d, this binary knows up to %d", ErrSchemaVersion, current, len(ms))
		}
		for _, m := range ms[current:] {
			if _, err := tx.Exec(ctx, m.sql); err != nil {
				return fmt.Errorf("apply migration %s: %w", m.name, err)
			}
			if _, err := tx.Exec(ctx, "INSERT INTO "+migrationsTable+" (version, name) VALUES ($1, $2)", m.version, m.name); err != nil {
				return fmt.Errorf("record migration %s: %w", m.name, err)
			}
			applied = append(applied, m.version)
		}
		return nil
	})
	if err != nil {
		return nil, dbError(err)
	}
	return applied, nil
}

// schemaVersion returns the highest applied migration, 0 for none.
func schemaVersion(ctx context.Context, q pgx.Tx) (int, error) {
	var v int
	if err := q.QueryRow(ctx, "SELECT coalesce(max(version), 0) FROM "+migrationsTable).Scan(&v); err != nil {
		return 0, fmt.Errorf("read schema version: %w", err)
	}
	return v, nil
}

// checkVersion fails with ErrSchemaVersion unless the schema is at exactly
// the version this binary migrates to.
func checkVersion(ctx context.Context, pool *pgxpool.Pool) error {
	want := LatestVersion()
	var got int
	err := pool.QueryRow(ctx, "SELECT coalesce(max(version), 0) FROM "+migrationsTable).Scan(&got)
	var pgErr *pgconn.PgError
	if errors.As(err, &pgErr) && pgErr.Code == codeUndefinedTable {
		return fmt.Errorf("%w: the database has no slobridge schema (run \"slobridge migrate\" first)", ErrSchemaVersion)
	}
	if err != nil {
		return fmt.Errorf("read schema version (run migrations first?): %w", dbError(err))
	}
	if got != want {
		return fmt.Errorf("%w: the database is at version %d, this binary needs %d", ErrSchemaVersion, got, want)
	}
	return nil
}
