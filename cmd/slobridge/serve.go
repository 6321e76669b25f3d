package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"time"

	"github.com/slobridge/slobridge/cmd/internal/app"
	"github.com/slobridge/slobridge/oidc/upstream"
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

// runCheck implements `slobridge check --config FILE`: it loads and
// validates the configuration, resolving every secret, and starts nothing.
func runCheck(args []string, stdout, stderr io.Writer) error {
	fs := newFlagSet("check", stderr)
	path := fs.String("config", "", "configuration file (YAML)")
	online := fs.Bool("online", false, "also fetch the SAML metadata URLs (upstream IdPs, service providers)")
	if _, err := parseFlags(fs, args); err != nil {
		return err
	}
	if *path == "" {
		fmt.Fprintln(stderr, "slobridge check: --config FILE is required")
		return errUsage
	}
	cfg, err := app.Load(*path)
	if err != nil {
		return err
	}
	if *online {
		if probs := app.CheckOnline(context.Background(), cfg); len(probs) > 0 {
			for _, p := range probs {
				fmt.Fprintln(stderr, "config: "+p)
			}
			return fmt.Errorf("%d problem(s) found online", len(probs))
		}
	}
	for _, key := range cfg.LiteralSecrets() {
		fmt.Fprintf(stdout, "warning: %s is written in the configuration file; take it from the environment or a file outside development\n", key)
	}
	for _, w := range cfg.Warnings(time.Now()) {
		fmt.Fprintln(stdout, "warning: "+w)
	}
	fmt.Fprintf(stdout, "%s: configuration OK\n", *path)
	if cfg.Upstream.UsesOIDC() {
		for _, u := range cfg.Upstream.OIDC {
			reg := upstream.RegistrationFor(cfg.Server.BaseURL, u.Name)
			fmt.Fprintf(stdout, "upstream %s (%s): register at the OpenID Provider, for client_id %s:\n", u.Name, u.Issuer, u.ClientID)
			fmt.Fprintf(stdout, "  redirect URI:              %s\n", reg.RedirectURI)
			fmt.Fprintf(stdout, "  back-channel logout URI:   %s (session required: yes)\n", reg.BackchannelLogoutURI)
			fmt.Fprintf(stdout, "  front-channel logout URI:  %s\n", reg.FrontchannelLogoutURI)
			fmt.Fprintf(stdout, "  post-logout redirect URI:  %s\n", reg.PostLogoutRedirectURI)
			if u.TokenEndpointAuthMethod == upstream.AuthPrivateKeyJWT {
				fmt.Fprintf(stdout, "  JWKS URI (private_key_jwt): %s\n", upstream.JWKSURIFor(cfg.Server.BaseURL, u.Name))
			}
		}
	}
	return nil
}
