package main

import (
	"context"
	"errors"
	"fmt"
	"io"

	"github.com/slobridge/slobridge/cmd/internal/app"
)

// runServe implements `slobridge serve --config FILE`.
func runServe(ctx context.Context, args []string, stderr io.Writer) error {
	fs := newFlagSet("serve", stderr)
	path := fs.String("config", "", "configuration file (YAML)")
	if _, err := parseFlags(fs, args); err != nil {
		return err
	}
	if *path == "" {
		fmt.Fprintln(stderr, "slobridge serve: --config FILE is required")
		return errUsage
	}
	cfg, err := app.Load(*path)
	if err != nil {
		return err
	}
	log, err := app.NewLogger(cfg.Log, stderr)
	if err != nil {
		return err
	}
	log.InfoContext(ctx, "slobridge starting", "version", version(), "config", *path)
	a, err := app.New(ctx, cfg, log)
	if err != nil {
		return err
	}
	runErr := a.Run(ctx)
	return errors.Join(runErr, a.Close())
}
