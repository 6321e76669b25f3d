package app

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"sync"
	"time"
)

// Run listens on server.listen and serves until ctx is done (see Serve).
func (a *App) Run(ctx context.Context) error {
	ln, err := net.Listen("tcp", a.cfg.Server.Listen)
	if err != nil {
		return fmt.Errorf("app: listen on %s (server.listen): %w", a.cfg.Server.Listen, err)
	}
	return a.Serve(ctx, ln)
}

// Serve serves HTTP on ln and runs the delivery workers and the expiry
// sweeper until ctx is done or the server fails. Shutdown is graceful:
// the listener closes, in-flight requests finish (within
// server.shutdown_timeout), then the delivery workers stop claiming and
// let attempts already started finish and be recorded; deliveries not yet
// attempted stay pending in the store for the next start.
func (a *App) Serve(ctx context.Context, ln net.Listener) error {
	srv := &http.Server{
		Handler:           a.handler,
		ReadHeaderTimeout: a.cfg.Server.ReadHeaderTimeout,
		ReadTimeout:       a.cfg.Server.ReadTimeout,
		MaxHeaderBytes:    a.cfg.Server.MaxHeaderBytes,
		IdleTimeout:       a.cfg.Server.IdleTimeout,
		ErrorLog:          slog.NewLogLogger(a.log.Handler(), slog.LevelWarn),
		BaseContext:       func(net.Listener) context.Context { return context.WithoutCancel(ctx) },
	}
	if a.cfg.Server.TLSCertFile != "" {
		cert, err := a.cfg.Server.tlsCertificate()
		if err != nil {
			_ = ln.Close()
			return fmt.Errorf("app: server.tls_cert_file: %w", err)
		}
		srv.TLSConfig = &tls.Config{MinVersion: tls.VersionTLS12, Certificates: []tls.Certificate{cert}}
		ln = tls.NewListener(ln, srv.TLSConfig)
	}
	var adminSrv *http.Server
	var adminLn net.Listener
	if a.adminHandler != nil {
		var err error
		if adminLn, err = net.Listen("tcp", a.cfg.Admin.Listen); err != nil {
			_ = ln.Close()
			return fmt.Errorf("app: listen on %s (admin.listen): %w", a.cfg.Admin.Listen, err)
		}
		adminSrv = &http.Server{
			Handler: a.adminHandler, ReadHeaderTimeout: srv.ReadHeaderTimeout, ReadTimeout: srv.ReadTimeout,
			MaxHeaderBytes: srv.MaxHeaderBytes,
			IdleTimeout:    srv.IdleTimeout, ErrorLog: srv.ErrorLog, BaseContext: srv.BaseContext,
		}
		a.adminAddr.Store(adminLn.Addr().String())
	}
	bg, stopBG := context.WithCancel(context.WithoutCancel(ctx))
	defer stopBG()
	var wg sync.WaitGroup
	engErr := make(chan error, 1)
	wg.Add(2)
	go func() { defer wg.Done(); engErr <- a.eng.Run(bg) }()
	go func() { defer wg.Done(); a.sweep(bg) }()
	// Other replicas' changes, when the store is shared (PostgreSQL).
	wg.Add(1)
	go func() { defer wg.Done(); a.followChanges(bg) }()
	if a.samlIdP != nil {
		// Refreshes the metadata of SPs registered by URL.
		wg.Add(1)
		go func() {
			defer wg.Done()
			if err := a.samlIdP.Run(bg); err != nil {
				a.log.ErrorContext(bg, "saml idp", "err", err)
			}
		}()
	}
	for _, rp := range a.oidcRPs {
		// Discovery of the upstream OpenID Provider, retried until it
		// answers.
		wg.Add(1)
		go func() { defer wg.Done(); rp.Run(bg) }()
	}
	if a.samlSP != nil {
		// Metadata refresh and SOAP logouts toward the upstream for
		// logouts without a browser (admin, system).
		wg.Add(1)
		go func() {
			defer wg.Done()
			if err := a.samlSP.Run(bg); err != nil {
				a.log.ErrorContext(bg, "saml sp", "err", err)
			}
		}()
	}

	srvErr := make(chan error, 2)
	go func() { srvErr <- srv.Serve(ln) }()
	if adminSrv != nil {
		go func() { srvErr <- adminSrv.Serve(adminLn) }()
		a.log.InfoContext(ctx, "admin API serving", "addr", adminLn.Addr().String())
	}
	a.log.InfoContext(ctx, "slobridge serving", "addr", ln.Addr().String(), "base_url", a.BaseURL(), "store", a.cfg.Store.Driver)

	var err error
	select {
	case <-ctx.Done():
	case err = <-srvErr:
		err = fmt.Errorf("app: serve: %w", err)
	case err = <-engErr:
		err = fmt.Errorf("app: delivery workers: %w", err)
	}
	a.log.InfoContext(ctx, "slobridge shutting down")
	sctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), a.cfg.Server.ShutdownTimeout)
	defer cancel()
	if serr := srv.Shutdown(sctx); serr != nil && !errors.Is(serr, http.ErrServerClosed) {
		a.log.WarnContext(ctx, "http shutdown", "err", serr)
	}
	if adminSrv != nil {
		if serr := adminSrv.Shutdown(sctx); serr != nil && !errors.Is(serr, http.ErrServerClosed) {
			a.log.WarnContext(ctx, "admin http shutdown", "err", serr)
		}
	}
	stopBG()
	wg.Wait()
	a.log.InfoContext(ctx, "slobridge stopped")
	return err
}

// sweep deletes expired data every store.sweep_interval.
func (a *App) sweep(ctx context.Context) {
	t := time.NewTicker(a.cfg.Store.SweepInterval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		res, err := a.st.Sweep(ctx, a.eng.Now(), a.cfg.Store.Retain)
		if err != nil {
			if ctx.Err() == nil {
				a.log.ErrorContext(ctx, "expiry sweep", "err", err)
			}
			continue
		}
		a.log.InfoContext(ctx, "expiry sweep", "sessions", res.Sessions, "logouts", res.Logouts,
			"deliveries", res.Deliveries, "records", res.Records, "replay", res.Replay, "keys", res.Keys)
	}
}

// Close releases the store. It is safe to call more than once.
func (a *App) Close() error {
	a.closeOnce.Do(func() { a.closeErr = a.st.Close() })
	return a.closeErr
}
