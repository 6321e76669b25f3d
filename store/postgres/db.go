package postgres

import (
	"context"
	"fmt"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/slobridge/slobridge/store"
)

// Defaults for the zero Options.
const (
	defaultConnectTimeout = 5 * time.Second
	defaultMaxConns       = 16
)

// Options configure Open. The zero value is ready to use.
type Options struct {
	// Schema, when set, is the search_path of every connection: the schema
	// the tables live in, created by the migrations when missing. Empty
	// keeps the server's search_path (normally "$user", public). Tests
	// give each run a schema of its own.
	Schema string
	// Password, when set, replaces the password of the DSN, so that the
	// DSN can live in the configuration file and the password in a secret
	// (an environment variable or a file the caller reads). The libpq
	// variables PGPASSWORD and PGPASSFILE are honoured as well.
	Password string
	// MaxConns caps the connections of the pool; zero keeps the
	// pool_max_conns parameter of the DSN, else 16. The delivery workers
	// commit one attempt each: a pool of a few connections would queue
	// them, while PostgreSQL flushes concurrent commits together.
	MaxConns int32
	// ConnectTimeout bounds each attempt to connect; zero means 5s, or the
	// connect_timeout parameter of the DSN when that is set.
	ConnectTimeout time.Duration
	// SkipMigrations makes Open check that the schema is at the version
	// this binary expects instead of migrating it, for deployments whose
	// runtime role may not change the schema (run Migrate separately).
	SkipMigrations bool
	// Now is the wall clock, used only where the Store contract passes no
	// time (PutRecord judges whether an existing record is still live).
	// Nil means time.Now.
	Now func() time.Time
}

// DB is a store.Store backed by a PostgreSQL connection pool. It is safe
// for concurrent use, from one process or many.
type DB struct {
	pool   *pgxpool.Pool
	schema string
	now    func() time.Time
	// channel is the NOTIFY channel of the schema's change feed.
	channel  string
	notifier *notifier
}

var _ store.Store = (*DB)(nil)

// Open connects to the database at dsn (a postgres:// URL or a libpq
// key=value string), migrates its schema to the latest version (or, with
// opts.SkipMigrations, checks that it is there) and returns the store.
// When the server cannot be reached the error wraps store.ErrUnavailable.
func Open(ctx context.Context, dsn string, opts Options) (*DB, error) {
	pool, err := newPool(ctx, dsn, opts)
	if err != nil {
		return nil, err
	}
	if opts.SkipMigrations {
		err = checkVersion(ctx, pool)
	} else {
		_, err = migrate(ctx, pool, opts.Schema)
	}
	var channel string
	if err == nil {
		err = pool.QueryRow(ctx, channelSQL).Scan(&channel)
		err = dbError(err)
	}
	if err != nil {
		pool.Close()
		return nil, fmt.Errorf("postgres: open: %w", err)
	}
	now := opts.Now
	if now == nil {
		now = time.Now
	}
	return &DB{pool: pool, schema: opts.Schema, now: now, channel: channel,
		notifier: startNotifier(pool, channel)}, nil
}

// newPool parses dsn, applies opts and makes the pool. The pool connects
// lazily; the first query finds out whether the server is there.
func newPool(ctx context.Context, dsn string, opts Options) (*pgxpool.Pool, error) {
	cfg, err := pgxpool.ParseConfig(dsn)
	if err != nil {
		// The parse error may quote the DSN, password included.
		return nil, fmt.Errorf("postgres: open: %w: cannot parse the DSN", store.ErrInvalid)
	}
	if opts.Password != "" {
		cfg.ConnConfig.Password = opts.Password
	}
	switch {
	case opts.MaxConns > 0:
		cfg.MaxConns = opts.MaxConns
	case !strings.Contains(dsn, "pool_max_conns"):
		cfg.MaxConns = defaultMaxConns
	}
	if opts.ConnectTimeout > 0 {
		cfg.ConnConfig.ConnectTimeout = opts.ConnectTimeout
	} else if cfg.ConnConfig.ConnectTimeout == 0 {
		cfg.ConnConfig.ConnectTimeout = defaultConnectTimeout
	}
	if opts.Schema != "" {
		cfg.ConnConfig.RuntimeParams["search_path"] = pgx.Identifier{opts.Schema}.Sanitize()
	}
	pool, err := pgxpool.NewWithConfig(ctx, cfg)
	if err != nil {
		return nil, fmt.Errorf("postgres: open: %w", dbError(err))
	}
	return pool, nil
}

// Schema returns the schema the store was opened in (Options.Schema), ""
// for the server's search_path.
func (db *DB) Schema() string { return db.schema }

// Pool returns the connection pool, for callers that need the database
// for something the Store does not cover (and for tests).
func (db *DB) Pool() *pgxpool.Pool { return db.pool }

// Close closes every connection of the pool. It waits for connections in
// use to be released.
func (db *DB) Close() error {
	db.notifier.close()
	db.pool.Close()
	return nil
}

// Ping checks that the server answers a query (readiness). An unreachable
// server yields an error wrapping store.ErrUnavailable.
func (db *DB) Ping(ctx context.Context) error {
	if _, err := db.pool.Exec(ctx, "SELECT 1"); err != nil {
		return fmt.Errorf("postgres: ping: %w", dbError(err))
	}
	return nil
}

// txAttempts bounds how often inTx runs a transaction that PostgreSQL
// aborted for a deadlock or a serialization failure (both safe to retry:
// nothing was committed).
const txAttempts = 3

// inTx runs fn in a read-committed transaction, committing when fn returns
// nil and rolling back otherwise; a transaction aborted by a deadlock or a
// serialization failure is run again. Errors are wrapped with op.
func (db *DB) inTx(ctx context.Context, op string, fn func(tx pgx.Tx) error) error {
	var err error
	for range txAttempts {
		err = pgx.BeginTxFunc(ctx, db.pool, pgx.TxOptions{}, fn)
		if !retryable(err) {
			break
		}
	}
	if err != nil {
		return fmt.Errorf("postgres: %s: %w", op, dbError(err))
	}
	return nil
}
