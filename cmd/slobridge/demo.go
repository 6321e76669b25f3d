package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"

	"github.com/slobridge/slobridge/cmd/internal/app"
	"github.com/slobridge/slobridge/cmd/internal/demo"
)

// runDemo implements `slobridge demo`: the bridge, an upstream IdP, demo
// apps and a demo API on 127.0.0.1, with no configuration. It prints the
// URLs and what to click, and runs until ctx ends (Ctrl-C).
func runDemo(ctx context.Context, args []string) error {
	return demoMain(ctx, args, os.Stdout, os.Stderr)
}

// envDemoOIDCSecret holds the demo bridge's client secret at the
// upstream OpenID Provider (a secret stays out of the process list).
const envDemoOIDCSecret = "SLOBRIDGE_DEMO_OIDC_CLIENT_SECRET"

// demoMain is runDemo with its output streams.
func demoMain(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := newFlagSet("demo", stderr)
	listen := fs.String("listen", demo.DefaultListen, "the bridge's address; the demo parts take the next 5 ports")
	db := fs.String("db", "", "bbolt database file (default: a temporary file removed on exit)")
	logLevel := fs.String("log-level", "warn", "log level of every part: debug, info, warn or error")
	late := fs.Duration("upstream-late", 0, "start the upstream IdP this long after the bridge (the bridge starts without it and picks it up)")
	opIssuer := fs.String("upstream-oidc-issuer", "", "use this OpenID Provider as the upstream instead of the demo SAML IdP (its client secret in $"+envDemoOIDCSecret+")")
	opClient := fs.String("upstream-oidc-client-id", "", "the bridge's client_id at --upstream-oidc-issuer")
	if _, err := parseFlags(fs, args); err != nil {
		return err
	}
	opts := demo.Options{Listen: *listen, DBPath: *db, UpstreamLate: *late}
	if *opIssuer != "" {
		if *opClient == "" {
			return errors.New("demo: --upstream-oidc-issuer needs --upstream-oidc-client-id")
		}
		opts.UpstreamOIDC = &demo.UpstreamOIDC{Issuer: *opIssuer, ClientID: *opClient, ClientSecret: os.Getenv(envDemoOIDCSecret)}
	}
	log, err := app.NewLogger(app.LogConfig{Format: "text", Level: *logLevel}, stderr)
	if err != nil {
		return err
	}
	opts.Logger = log
	d, err := demo.Start(ctx, opts)
	if err != nil {
		return err
	}
	d.Instructions(stdout)
	<-ctx.Done()
	fmt.Fprintln(stdout, "\nstopping the demo…")
	if err := d.Close(); err != nil && !errors.Is(err, context.Canceled) {
		return err
	}
	return nil
}
