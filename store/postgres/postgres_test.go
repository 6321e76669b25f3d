package postgres

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"os"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/slobridge/slobridge/store"
	"github.com/slobridge/slobridge/store/storetest"
)

// dsnEnv names the variable that holds the DSN of the test server.
const dsnEnv = "SLOBRIDGE_TEST_POSTGRES_DSN"

// testDSN returns the DSN of the test server. Without one the test is
// skipped, except under CI=true, where it fails.
func testDSN(tb testing.TB) string {
	tb.Helper()
	dsn := os.Getenv(dsnEnv)
	if dsn == "" {
		msg := dsnEnv + " is not set: set it to a PostgreSQL DSN, for example " +
			"postgres://postgres@127.0.0.1:5432/test?sslmode=disable, to run the PostgreSQL tests"
		if os.Getenv("CI") == "true" {
			tb.Fatal(msg + " (CI=true requires them)")
		}
		tb.Skip(msg)
	}
	return dsn
}

// newSchema returns the name of a schema no other test uses and drops it
// (with everything in it) when the test ends. The migrations create it.
func newSchema(tb testing.TB) string {
	tb.Helper()
	dsn := testDSN(tb)
	var b [6]byte
	if _, err := rand.Read(b[:]); err != nil {
		tb.Fatal(err)
	}
	name := "slobridge_test_" + hex.EncodeToString(b[:])
	tb.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		cfg, err := pgxpool.ParseConfig(dsn) // accepts the pool_* parameters too
		var conn *pgx.Conn
		if err == nil {
			conn, err = pgx.ConnectConfig(ctx, cfg.ConnConfig)
		}
		if err != nil {
			tb.Errorf("drop test schema %s: %v", name, err)
			return
		}
		defer conn.Close(ctx)
		if _, err := conn.Exec(ctx, "DROP SCHEMA IF EXISTS "+pgx.Identifier{name}.Sanitize()+" CASCADE"); err != nil {
			tb.Errorf("drop test schema %s: %v", name, err)
		}
	})
	return name
}

// openSchema opens the store in schema and closes it when the test ends.
func openSchema(tb testing.TB, dsn, schema string, opts Options) *DB {
	tb.Helper()
	opts.Schema = schema
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	db, err := Open(ctx, dsn, opts)
	if err != nil {
		tb.Fatalf("Open: %v", err)
	}
	tb.Cleanup(func() { _ = db.Close() })
	return db
}

// openTemp opens a store in a fresh schema.
func openTemp(tb testing.TB) *DB {
	tb.Helper()
	return openSchema(tb, testDSN(tb), newSchema(tb), Options{})
}

func TestConformance(t *testing.T) {
	testDSN(t)
	storetest.RunTests(t, storetest.Factory{
		New: func(t *testing.T) store.Store { return openTemp(t) },
		Reopen: func(t *testing.T, s store.Store) store.Store {
			db := s.(*DB)
			if err := db.Close(); err != nil {
				t.Fatalf("Close: %v", err)
			}
			return openSchema(t, testDSN(t), db.Schema(), Options{})
		},
	})
}
