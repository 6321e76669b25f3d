package main

import (
	"context"
	"errors"
)

// runDemo is a placeholder until cmd/slobridge/demo.go lands (owned by the
// demo's author, who deletes this file).
func runDemo(ctx context.Context, args []string) error {
	_, _ = ctx, args
	return errors.New("demo not built yet")
}
