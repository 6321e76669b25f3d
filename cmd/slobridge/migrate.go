package main

import (
	"context"
	"fmt"
	"io"

	"github.com/slobridge/slobridge/cmd/internal/app"
)

// runMigrate implements `slobridge migrate --config FILE`: it brings the
// PostgreSQL schema of store.postgres to the version this binary expects.
func runMigrate(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := newFlagSet("migrate", stderr)
	path := fs.String("config", "", "configuration file (YAML)")
	if _, err := parseFlags(fs, args); err != nil {
		return err
	}
	if *path == "" {
		fmt.Fprintln(stderr, "slobridge migrate: --config FILE is required")
		return errUsage
	}
	cfg, err := app.Load(*path)
	if err != nil {
		return err
	}
	if cfg.Store.Driver != "postgres" {
		return fmt.Errorf("store.driver is %q: only the postgres store has migrations (bolt needs none)", cfg.Store.Driver)
	}
	applied, err := app.Migrate(ctx, cfg.Store.Postgres)
	if err != nil {
		return err
	}
	if len(applied) == 0 {
		fmt.Fprintln(stdout, "schema is up to date")
		return nil
	}
	fmt.Fprintf(stdout, "applied migrations %v\n", applied)
	return nil
}
