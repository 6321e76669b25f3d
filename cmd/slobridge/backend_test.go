package main

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/slobridge/slobridge/store"
	"github.com/slobridge/slobridge/store/bolt"
	"github.com/slobridge/slobridge/store/postgres"
	"github.com/slobridge/slobridge/store/postgres/pgtest"
)

// backend is a store the binary under test runs on: its configuration and
// a way for the test to open the same store to seed and inspect it (never
// while a bbolt file is held by the bridge).
type backend struct {
	name string
	// config is the path of the bridge's configuration file.
	config string
	open   func(t *testing.T) store.Store
}

// backends returns the stores the process tests run on: bbolt always,
// PostgreSQL when SLOBRIDGE_TEST_POSTGRES_DSN is set (required in CI).
func backends(t *testing.T) []backend {
	t.Helper()
	out := []backend{boltBackend(t, filepath.Join(t.TempDir(), "bridge.db"))}
	dsn := os.Getenv("SLOBRIDGE_TEST_POSTGRES_DSN")
	switch {
	case dsn != "":
		out = append(out, postgresBackend(t, dsn))
	case os.Getenv("CI") == "true":
		t.Fatal("SLOBRIDGE_TEST_POSTGRES_DSN is not set (CI=true requires PostgreSQL)")
	default:
		t.Log("PostgreSQL variant skipped: set SLOBRIDGE_TEST_POSTGRES_DSN=postgres://postgres@127.0.0.1:5432/test?sslmode=disable to run it")
	}
	return out
}

func boltBackend(t *testing.T, db string) backend {
	return backend{name: "bolt", config: writeConfig(t, db), open: func(t *testing.T) store.Store {
		t.Helper()
		st, err := bolt.Open(db, bolt.Options{})
		if err != nil {
			t.Fatal(err)
		}
		return st
	}}
}

func postgresBackend(t *testing.T, dsn string) backend {
	t.Helper()
	schema := pgtest.NewSchema(t) // created by the migrations, dropped at the end
	doc := strings.Replace(fmt.Sprintf(baseConfig, "unused.db"), "store:\n",
		"store:\n  driver: postgres\n  postgres:\n    dsn: ${SLOBRIDGE_TEST_POSTGRES_DSN}\n    schema: "+schema+"\n", 1)
	path := filepath.Join(t.TempDir(), "slobridge-pg.yaml")
	if err := os.WriteFile(path, []byte(doc), 0o600); err != nil {
		t.Fatal(err)
	}
	return backend{name: "postgres", config: path, open: func(t *testing.T) store.Store {
		t.Helper()
		st, err := postgres.Open(context.Background(), dsn, postgres.Options{Schema: schema})
		if err != nil {
			t.Fatal(err)
		}
		return st
	}}
}
