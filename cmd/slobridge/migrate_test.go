package main

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/slobridge/slobridge/store/postgres/pgtest"

	"github.com/jackc/pgx/v5"
)

// TestMigrateCommand runs `slobridge migrate` twice on a fresh PostgreSQL
// schema: the first run applies the migrations, the second finds the
// schema current. It needs SLOBRIDGE_TEST_POSTGRES_DSN.
func TestMigrateCommand(t *testing.T) {
	dsn := pgtest.DSN(t)
	ctx := context.Background()
	schema := fmt.Sprintf("migrate_cli_%d", time.Now().UnixNano())
	conn, err := pgx.Connect(ctx, dsn)
	if err != nil {
		t.Fatalf("connect: %v", err)
	}
	defer conn.Close(ctx)
	if _, err := conn.Exec(ctx, "CREATE SCHEMA "+pgx.Identifier{schema}.Sanitize()); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		_, _ = conn.Exec(context.Background(), "DROP SCHEMA "+pgx.Identifier{schema}.Sanitize()+" CASCADE")
	})

	doc := strings.Replace(fmt.Sprintf(baseConfig, "unused.db"), "store:\n", "store:\n  driver: postgres\n  postgres:\n    dsn: ${SLOBRIDGE_TEST_POSTGRES_DSN}\n    schema: "+schema+"\n", 1)
	cfg := filepath.Join(t.TempDir(), "pg.yaml")
	if err := os.WriteFile(cfg, []byte(doc), 0o600); err != nil {
		t.Fatal(err)
	}
	for _, e := range testEnv {
		k, v, _ := strings.Cut(e, "=")
		t.Setenv(k, v)
	}
	migrate := func() string {
		t.Helper()
		var stdout, stderr bytes.Buffer
		if code := run(ctx, []string{"migrate", "--config", cfg}, &stdout, &stderr); code != 0 {
			t.Fatalf("migrate: exit %d\n%s", code, stderr.String())
		}
		return stdout.String()
	}
	if out := migrate(); !strings.HasPrefix(out, "applied migrations [1") {
		t.Fatalf("first migrate: %q", out)
	}
	if out := migrate(); out != "schema is up to date\n" {
		t.Fatalf("second migrate: %q", out)
	}
}

func TestMigrateRefusesBolt(t *testing.T) {
	cfg := writeConfig(t, filepath.Join(t.TempDir(), "x.db"))
	for _, e := range testEnv {
		k, v, _ := strings.Cut(e, "=")
		t.Setenv(k, v)
	}
	var stdout, stderr bytes.Buffer
	if code := run(context.Background(), []string{"migrate", "--config", cfg}, &stdout, &stderr); code != 1 ||
		!strings.Contains(stderr.String(), "only the postgres store has migrations") {
		t.Fatalf("migrate on bolt: exit %d: %s", code, stderr.String())
	}
}
