package app

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"time"

	"github.com/gin-gonic/gin"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"

	"github.com/slobridge/slobridge"
	"github.com/slobridge/slobridge/oidc"
	"github.com/slobridge/slobridge/oidc/ssf"
	"github.com/slobridge/slobridge/saml/idp"
	"github.com/slobridge/slobridge/saml/sp"
	"github.com/slobridge/slobridge/store"
)

// App is one running bridge: the store, the engine and every HTTP surface.
// Create it with New, serve with Run, release with Close.
type App struct {
	cfg      Config
	log      *slog.Logger
	st       store.Store
	eng      *slobridge.Engine
	reg      *prometheus.Registry
	provider *oidc.Provider
	ssf      *ssf.Transmitter
	samlIdP  *idp.IdP
	samlSP   *sp.SP
	handler  http.Handler
	basePath string

	closeOnce sync.Once
	closeErr  error
}

// New opens the store and builds every part the configuration describes.
// cfg must have been through Load, Parse or Config.Finish. On error
// nothing is left open.
func New(ctx context.Context, cfg Config, log *slog.Logger) (*App, error) {
	if log == nil {
		log = slog.Default()
	}
	base, err := url.Parse(cfg.Server.BaseURL)
	if err != nil {
		return nil, fmt.Errorf("app: server.base_url: %w", err)
	}
	st, err := openStore(ctx, cfg.Store)
	if err != nil {
		return nil, err
	}
	a := &App{cfg: cfg, log: log, st: st, reg: prometheus.NewRegistry(),
		basePath: strings.TrimSuffix(base.Path, "/")}
	if err := a.build(ctx); err != nil {
		_ = st.Close()
		return nil, err
	}
	return a, nil
}

// openStore opens the configured backend.
func openStore(ctx context.Context, c StoreConfig) (store.Store, error) {
	switch c.Driver {
	case "bolt", "":
		return openBolt(c.Bolt)
	case "postgres":
		return openPostgres(ctx, c.Postgres)
	}
	return nil, fmt.Errorf("app: store.driver: unknown driver %q", c.Driver)
}

// build wires the engine, notifiers, provider, transmitter, pages and
// routes.
func (a *App) build(ctx context.Context) error {
	cfg := a.cfg
	issuer := strings.TrimSuffix(cfg.Server.BaseURL, "/")
	a.reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	metrics := slobridge.NewMetrics(a.reg)
	a.reg.MustRegister(slobridge.NewStoreCollector(a.st, nil))

	a.ssf = &ssf.Transmitter{Issuer: issuer, JWKSURI: issuer + oidc.PathJWKS, Store: a.st}
	d := cfg.Delivery
	eng, err := slobridge.NewEngine(slobridge.Options{
		Store: a.st, Logger: a.log, Metrics: metrics,
		Workers: d.Workers, PerHost: d.PerHost, AttemptTimeout: d.AttemptTimeout,
		BackoffBase: d.BackoffBase, BackoffMax: d.BackoffMax, GiveUpAfter: d.GiveUpAfter,
		PollInterval: d.PollInterval, Lease: d.Lease, Owner: d.Owner,
		// Every new session is joined by every registered SSF receiver, so
		// its logout reaches them through the durable outbox.
		OnSessionCreated: func(ctx context.Context, s store.Session) error {
			return a.ssf.JoinSession(ctx, a.eng, s)
		},
	})
	if err != nil {
		return fmt.Errorf("app: engine: %w", err)
	}
	a.eng = eng
	client := slobridge.NewBackChannelClient(slobridge.ClientOptions{
		AllowLoopback: d.AllowLoopback, AllowPrivate: d.AllowPrivate,
	})
	eng.SetNotifier("http", &slobridge.HTTPNotifier{Client: client})

	if err := a.registerReceivers(ctx); err != nil {
		return err
	}
	cookies := slobridge.SessionCookies{
		Secret: []byte(cfg.Session.CookieSecret.Value()), Secure: *cfg.Session.SecureCookie, Path: a.basePath + "/",
	}
	var (
		auth     slobridge.Authenticator
		upstream slobridge.UpstreamLogout
		mountUp  func(gin.IRouter)
	)
	switch cfg.Upstream.Type {
	case "static":
		st := newStaticAuth(eng, cookies, cfg.Upstream.Static, cfg.Session.Lifetime, a.basePath, a.log)
		auth, mountUp = st, st.Mount
	case "saml":
		up, err := a.buildSAMLSP(ctx, cookies)
		if err != nil {
			return err
		}
		a.samlSP, auth, upstream, mountUp = up, up, up, up.Mount
	default:
		return fmt.Errorf("app: upstream.type: unknown type %q", cfg.Upstream.Type)
	}
	provider, err := oidc.New(a.oidcOptions(issuer, cookies, auth))
	if err != nil {
		return fmt.Errorf("app: oidc: %w", err)
	}
	a.provider = provider
	eng.SetNotifier(oidc.ParticipantKind, provider.BackChannelNotifier(client))
	eng.SetNotifier(ssf.Kind, &ssf.Pusher{Issuer: issuer, Store: a.st, Signer: provider, Client: client, Now: eng.Now})

	if cfg.SAML.IdP.Enabled {
		if err := a.buildSAMLIdP(ctx, cookies, auth, client); err != nil {
			return err
		}
	}
	page, err := slobridge.NewLogoutPage(slobridge.LogoutPageOptions{Engine: eng, Upstream: upstream, BasePath: a.basePath, Logger: a.log})
	if err != nil {
		return fmt.Errorf("app: logout page: %w", err)
	}
	var admin *slobridge.Admin
	if cfg.Admin.Token.Value() != "" {
		admin, err = slobridge.NewAdmin(slobridge.AdminOptions{
			Engine: eng, Token: cfg.Admin.Token.Value(), TokenName: cfg.Admin.TokenName, Logger: a.log,
		})
		if err != nil {
			return fmt.Errorf("app: admin API: %w", err)
		}
	} else {
		a.log.WarnContext(ctx, "admin API disabled: admin.token is not set")
	}
	a.handler = a.router(func(r gin.IRouter) {
		slobridge.MountOps(r, slobridge.OpsOptions{Store: a.st, Gatherer: a.reg})
		provider.Mount(r)
		a.ssf.Mount(r)
		page.Mount(r)
		mountUp(r)
		if a.samlIdP != nil {
			a.samlIdP.Mount(r)
		}
		if admin != nil {
			a.mountAdminRoutes(admin.Mount(r))
		}
	})
	return nil
}

func (a *App) oidcOptions(issuer string, cookies slobridge.SessionCookies, auth slobridge.Authenticator) oidc.Options {
	o := a.cfg.OIDC
	opts := oidc.Options{
		Issuer: issuer, Engine: a.eng, Store: a.st, Cookies: cookies, Authenticator: auth, Logger: a.log,
		RegistrationToken: o.RegistrationToken.Value(),
		AllowLoopbackHTTP: o.AllowLoopbackHTTP, AllowPrivateBackchannel: o.AllowPrivateBackchannel,
		CodeTTL: o.CodeTTL, IDTokenTTL: o.IDTokenTTL, AccessTokenTTL: o.AccessTokenTTL,
		RefreshTokenTTL: o.RefreshTokenTTL, KeyRotation: o.KeyRotation,
	}
	for _, c := range o.Clients {
		opts.Clients = append(opts.Clients, oidc.StaticClient{Metadata: c.ClientMetadata, Secret: c.ClientSecret.Value()})
	}
	return opts
}

// buildSAMLIdP creates the SAML IdP toward downstream SPs (loading the
// configured SPs' metadata) and registers its SOAP notifier.
func (a *App) buildSAMLIdP(ctx context.Context, cookies slobridge.SessionCookies, auth slobridge.Authenticator, client *http.Client) error {
	ic := a.cfg.SAML.IdP
	signer, err := ic.signer()
	if err != nil {
		return fmt.Errorf("app: saml.idp: %w", err)
	}
	var pairwise []byte
	if v := ic.PairwiseSecret.Value(); v != "" {
		pairwise = []byte(v)
	}
	ip, err := idp.New(ctx, idp.Options{
		Config: ic.Config, BaseURL: a.BaseURL(), Engine: a.eng, Store: a.st, Cookies: cookies,
		Authenticator: auth, Signer: signer, PairwiseSecret: pairwise,
		AllowLoopbackHTTP: a.cfg.OIDC.AllowLoopbackHTTP, Logger: a.log,
	})
	if err != nil {
		return fmt.Errorf("app: saml.idp: %w", err)
	}
	a.samlIdP = ip
	a.eng.SetNotifier(idp.ClientKind, ip.Notifier(client))
	return nil
}

// buildSAMLSP creates the SAML service provider toward the upstream IdPs
// (loading their metadata): the authenticator of the OpenID Provider and
// the SAML IdP, and the upstream leg of logouts.
func (a *App) buildSAMLSP(ctx context.Context, cookies slobridge.SessionCookies) (*sp.SP, error) {
	opts, err := a.cfg.SAML.SP.Options()
	if err != nil {
		return nil, fmt.Errorf("app: saml.sp: %w", err)
	}
	opts.Engine, opts.Cookies, opts.BaseURL, opts.Logger = a.eng, cookies, a.BaseURL(), a.log
	up, err := sp.New(ctx, opts)
	if err != nil {
		return nil, fmt.Errorf("app: saml.sp: %w", err)
	}
	return up, nil
}

// SAMLSP returns the SAML service provider, nil unless upstream.type is
// saml.
func (a *App) SAMLSP() *sp.SP { return a.samlSP }

// SAMLIdP returns the SAML IdP, nil when saml.idp.enabled is false.
func (a *App) SAMLIdP() *idp.IdP { return a.samlIdP }

// receiver converts the configuration of a receiver.
func (r ReceiverConfig) receiver() ssf.Receiver {
	return ssf.Receiver{ID: r.ID, Name: r.Name, PushURL: r.PushURL, Audience: r.Audience, Authorization: r.Authorization.Value()}
}

// registerReceivers stores the configured SSF receivers as static
// registrations (replacing earlier versions of them) and removes static
// registrations no longer in the configuration; receivers registered
// through the admin API are kept.
func (a *App) registerReceivers(ctx context.Context) error {
	want := map[string]bool{}
	for i, rc := range a.cfg.SSF.Receivers {
		if err := ssf.PutReceiver(ctx, a.st, rc.receiver(), a.cfg.SSF.AllowHTTP, true, a.eng.Now()); err != nil {
			return fmt.Errorf("app: ssf.receivers[%d]: %w", i, err)
		}
		want[rc.ID] = true
	}
	cs, err := a.st.ListClients(ctx, ssf.Kind)
	if err != nil {
		return fmt.Errorf("app: list SSF receivers: %w", err)
	}
	for _, c := range cs {
		var r ssf.Receiver
		if !c.Static || json.Unmarshal(c.Metadata, &r) != nil || want[r.ID] {
			continue
		}
		if err := ssf.DeleteReceiver(ctx, a.st, r.ID); err != nil {
			return fmt.Errorf("app: remove SSF receiver %s that left the configuration: %w", r.ID, err)
		}
		a.log.InfoContext(ctx, "ssf receiver removed from the configuration", "receiver", r.ID)
	}
	return nil
}

// router builds the gin engine: recovery, request logs, the body cap and
// the routes, under the base URL's path.
func (a *App) router(mount func(gin.IRouter)) http.Handler {
	r := gin.New()
	r.HandleMethodNotAllowed = true
	r.Use(a.recoverer, a.accessLog, a.limitBody)
	var g gin.IRouter = r
	if a.basePath != "" {
		g = r.Group(a.basePath)
	}
	mount(g)
	r.NoRoute(func(c *gin.Context) {
		c.JSON(http.StatusNotFound, gin.H{"error": "not_found", "error_description": "no such endpoint"})
	})
	r.NoMethod(func(c *gin.Context) {
		c.JSON(http.StatusMethodNotAllowed, gin.H{"error": "method_not_allowed", "error_description": "method not allowed on this endpoint"})
	})
	return r
}

// recoverer turns a panic in a handler into a logged 500.
func (a *App) recoverer(c *gin.Context) {
	defer func() {
		if v := recover(); v != nil {
			if v == http.ErrAbortHandler {
				panic(v)
			}
			a.log.ErrorContext(c.Request.Context(), "handler panic", "panic", fmt.Sprint(v), "path", c.Request.URL.Path)
			c.AbortWithStatusJSON(http.StatusInternalServerError, gin.H{"error": "server_error", "error_description": "internal error"})
		}
	}()
	c.Next()
}

// accessLog logs each request. Only the path is logged: queries carry
// codes, tokens and SAML messages. Probes and scrapes log at debug level so
// that they do not drown the rest.
func (a *App) accessLog(c *gin.Context) {
	start := time.Now()
	c.Next()
	level := slog.LevelInfo
	switch strings.TrimPrefix(c.Request.URL.Path, a.basePath) {
	case slobridge.PathHealthz, slobridge.PathReadyz, slobridge.PathMetrics:
		level = slog.LevelDebug
	}
	a.log.LogAttrs(c.Request.Context(), level, "http request",
		slog.String("method", c.Request.Method), slog.String("path", c.Request.URL.Path),
		slog.Int("status", c.Writer.Status()), slog.Duration("duration", time.Since(start)),
		slog.String("remote", c.ClientIP()))
}

// limitBody caps every request body at server.max_body_bytes; a declared
// larger body is refused before any handler runs.
func (a *App) limitBody(c *gin.Context) {
	limit := a.cfg.Server.MaxBodyBytes
	if c.Request.ContentLength > limit {
		c.AbortWithStatusJSON(http.StatusRequestEntityTooLarge, gin.H{"error": "request_too_large",
			"error_description": fmt.Sprintf("request body exceeds %d bytes", limit)})
		return
	}
	if c.Request.Body != nil {
		c.Request.Body = http.MaxBytesReader(c.Writer, c.Request.Body, limit)
	}
	c.Next()
}

// Handler returns the HTTP handler of every route.
func (a *App) Handler() http.Handler { return a.handler }

// Engine returns the logout engine.
func (a *App) Engine() *slobridge.Engine { return a.eng }

// Store returns the store.
func (a *App) Store() store.Store { return a.st }

// Provider returns the OpenID Provider.
func (a *App) Provider() *oidc.Provider { return a.provider }

// Registry returns the Prometheus registry served at /metrics.
func (a *App) Registry() *prometheus.Registry { return a.reg }

// BaseURL returns the public URL of the bridge (the OIDC issuer), without
// a trailing slash.
func (a *App) BaseURL() string { return strings.TrimSuffix(a.cfg.Server.BaseURL, "/") }

// Config returns the configuration the app was built from.
func (a *App) Config() Config { return a.cfg }

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
		IdleTimeout:       a.cfg.Server.IdleTimeout,
		ErrorLog:          slog.NewLogLogger(a.log.Handler(), slog.LevelWarn),
		BaseContext:       func(net.Listener) context.Context { return context.WithoutCancel(ctx) },
	}
	bg, stopBG := context.WithCancel(context.WithoutCancel(ctx))
	defer stopBG()
	var wg sync.WaitGroup
	engErr := make(chan error, 1)
	wg.Add(2)
	go func() { defer wg.Done(); engErr <- a.eng.Run(bg) }()
	go func() { defer wg.Done(); a.sweep(bg) }()
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

	srvErr := make(chan error, 1)
	go func() { srvErr <- srv.Serve(ln) }()
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
