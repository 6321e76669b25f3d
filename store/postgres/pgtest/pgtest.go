// Package pgtest gives tests a PostgreSQL database to run against: the
// server named by SLOBRIDGE_TEST_POSTGRES_DSN and a schema of their own that
// is dropped when the test ends. Without the variable a test is skipped
// with a message saying how to run it, except under CI=true, where it
// fails: CI must not pass by skipping.
package pgtest

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"os"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
)

// DSNEnv names the variable that holds the DSN of the test server.
const DSNEnv = "SLOBRIDGE_TEST_POSTGRES_DSN"

// DSN returns the DSN of the test server, or skips the test (fails it
// under CI=true) when DSNEnv is not set.
func DSN(tb testing.TB) string {
	tb.Helper()
	dsn := os.Getenv(DSNEnv)
	if dsn == "" {
		msg := DSNEnv + " is not set: set it to a PostgreSQL DSN, for example " +
			"postgres://postgres@127.0.0.1:5432/test?sslmode=disable, to run the PostgreSQL tests"
		if os.Getenv("CI") == "true" {
			tb.Fatal(msg + " (CI=true requires them)")
		}
		tb.Skip(msg)
	}
	return dsn
}

// NewSchema returns the name of a schema no other test uses (it is not
// created: the store's migrations create it) and drops it, with
// everything in it, when the test ends.
func NewSchema(tb testing.TB) string {
	tb.Helper()
	dsn := DSN(tb)
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
