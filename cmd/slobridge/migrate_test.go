package main

import (
	"bytes"
	"context"
	"path/filepath"
	"strings"
	"testing"

	"github.com/slobridge/slobridge/store/postgres/pgtest"
)

// TestMigrateCommand runs `slobridge migrate` twice on a fresh PostgreSQL
// schema: the first run applies the migrations, the second finds the
// schema current. It needs SLOBRIDGE_TEST_POSTGRES_DSN.
func TestMigrateCommand(t *testing.T) {
	dsn := pgtest.DSN(t)
	ctx := context.Background()
	cfg := postgresBackend(t, dsn).config // a fresh schema the first run creates
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
