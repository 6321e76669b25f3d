package app

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"strings"
	"testing"
	"time"

	"github.com/slobridge/slobridge/store/postgres/pgtest"

	"github.com/slobridge/slobridge/store"
)

// TestPostgresDriver runs the wiring on PostgreSQL when
// SLOBRIDGE_TEST_POSTGRES_DSN is set.
func TestPostgresDriver(t *testing.T) {
	dsn := pgtest.DSN(t)
	ctx := context.Background()
	schema := pgtest.NewSchema(t)
	doc := validBase + fmt.Sprintf("store:\n  driver: postgres\n  postgres:\n    dsn: ${DSN}\n    schema: %s\n", schema)
	env := map[string]string{"COOKIE": strings.Repeat("c", 40), "PASSWORD": "alice-password", "DSN": dsn}
	cfg, err := Parse([]byte(doc), func(k string) (string, bool) { v, ok := env[k]; return v, ok })
	if err != nil {
		t.Fatal(err)
	}
	if _, err := Migrate(ctx, cfg.Store.Postgres); err != nil {
		t.Fatalf("Migrate: %v", err)
	}
	a, err := New(ctx, cfg, slog.New(slog.NewTextHandler(io.Discard, nil)))
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	defer a.Close()
	s, err := a.Engine().CreateSession(ctx, store.Session{UserID: "pg-user", ExpiresAt: time.Now().Add(time.Hour)})
	if err != nil {
		t.Fatal(err)
	}
	got, err := a.Store().GetSession(ctx, s.ID)
	if err != nil || got.UserID != "pg-user" {
		t.Fatalf("session round trip through postgres: %+v %v", got, err)
	}
	if err := a.Store().Ping(ctx); err != nil {
		t.Fatalf("Ping: %v", err)
	}
}
