package app

import (
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/gin-gonic/gin"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"

	"github.com/slobridge/slobridge"
	"github.com/slobridge/slobridge/cmd/internal/admin"
	"github.com/slobridge/slobridge/cmd/internal/console"
	"github.com/slobridge/slobridge/oidc"
	"github.com/slobridge/slobridge/oidc/ssf"
	"github.com/slobridge/slobridge/oidc/upstream"
	"github.com/slobridge/slobridge/saml"
	"github.com/slobridge/slobridge/saml/idp"
	"github.com/slobridge/slobridge/saml/sp"
	"github.com/slobridge/slobridge/store"
)

// App is one running bridge: the store, the engine and every HTTP surface.
// Create it with New, serve with Run, release with Close.
type App struct {
	// home is the root page's extra content (SetHome).
	home     homeState
	cfg      Config
	log      *slog.Logger
	st       store.Store
	eng      *slobridge.Engine
	reg      *prometheus.Registry
	provider *oidc.Provider
	ssf      *ssf.Transmitter
	samlIdP  *idp.IdP
	samlSP   *sp.SP
	oidcRPs  []*upstream.RP
	// backChannel sends every server-to-server logout message (OIDC
	// logout tokens, SETs, SAML SOAP): no redirects, checked addresses.
	backChannel *http.Client
	// httpMetrics counts requests by route.
	httpMetrics *httpMetrics
	// adminHandler serves admin.listen, nil when the admin API shares
	// the main listener; adminAddr is its address once listening.
	adminHandler http.Handler
	adminAddr    atomic.Value
	// static is the development authenticator, when upstream.type is static.
	static   *staticAuth
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
	if !cfg.finished {
		return nil, errors.New("app: the configuration was not validated: build it with Load, Parse or Config.Finish")
	}
	base, err := url.Parse(cfg.Server.BaseURL)
	if err != nil {
		return nil, fmt.Errorf("app: server.base_url: %w", err)
	}
	for _, key := range cfg.LiteralSecrets() {
		log.WarnContext(ctx, "secret written in the configuration file; take it from the environment or a file outside development", "key", key)
	}
	for _, w := range cfg.Warnings(time.Now()) {
		log.WarnContext(ctx, "configuration: "+w)
	}
	reg := prometheus.NewRegistry()
	st, err := openStore(ctx, cfg.Store, reserveReporter(log, reg))
	if err != nil {
		return nil, err
	}
	a := &App{cfg: cfg, log: log, st: st, reg: reg,
		basePath: strings.TrimSuffix(base.Path, "/")}
	if err := a.build(ctx); err != nil {
		_ = st.Close()
		return nil, err
	}
	return a, nil
}

// openStore opens the configured backend.
func openStore(ctx context.Context, c StoreConfig, onReserve func(refusing bool, free int64)) (store.Store, error) {
	switch c.Driver {
	case "bolt", "":
		return openBolt(c.Bolt, onReserve)
	case "postgres":
		return openPostgres(ctx, c.Postgres)
	}
	return nil, fmt.Errorf("app: store.driver: unknown driver %q", c.Driver)
}

// build wires the engine, notifiers, provider, transmitter, pages and
// routes.
func (a *App) build(ctx context.Context) error {
	cfg := a.cfg
	issuer := a.BaseURL()
	if err := a.buildEngine(issuer); err != nil {
		return err
	}
	client := slobridge.NewBackChannelClient(slobridge.ClientOptions{
		AllowLoopback: cfg.Delivery.AllowLoopback, AllowPrivate: cfg.Delivery.AllowPrivate,
	})
	a.backChannel = client
	a.eng.SetNotifier("http", &slobridge.HTTPNotifier{Client: client})
	if err := a.registerReceivers(ctx); err != nil {
		return err
	}
	cookies := slobridge.SessionCookies{
		Secret: []byte(cfg.Session.CookieSecret.Value()), Secure: *cfg.Session.SecureCookie, Path: a.basePath + "/",
	}
	auth, upstream, mountUp, err := a.buildUpstream(ctx, cookies)
	if err != nil {
		return err
	}
	provider, err := oidc.New(a.oidcOptions(issuer, cookies, auth))
	if err != nil {
		return fmt.Errorf("app: oidc: %w", err)
	}
	a.provider = provider
	a.eng.SetNotifier(oidc.ParticipantKind, provider.BackChannelNotifier(client))
	a.eng.SetNotifier(ssf.Kind, &ssf.Pusher{Issuer: issuer, Store: a.st, Signer: provider, Client: client, Now: a.eng.Now})
	if cfg.SAML.IdP.Enabled {
		if err := a.buildSAMLIdP(ctx, cookies, auth, client); err != nil {
			return err
		}
	}
	pageOpts := slobridge.LogoutPageOptions{Engine: a.eng, Upstream: upstream, BasePath: a.basePath, Logger: a.log}
	page, err := slobridge.NewLogoutPage(pageOpts)
	if err != nil {
		return fmt.Errorf("app: logout page: %w", err)
	}
	admin, err := a.buildAdmin(ctx)
	if err != nil {
		return err
	}
	cc := cfg.Admin.Console
	con, err := console.New(console.Options{Engine: a.eng, Cookies: cookies, Authenticator: auth, BaseURL: a.BaseURL(),
		BasePath: a.basePath, AllowedUsers: cc.AllowedUsers, AllowedGroups: cc.AllowedGroups, GroupAttribute: cc.GroupAttribute,
		Upstreams: a.upstreamNames(), UpstreamState: a.upstreamState, Apps: a.apps, AppActions: appActions{a}, Logger: a.log})
	if err != nil {
		return fmt.Errorf("app: console: %w", err)
	}
	// The only place routes are wired.
	separate := cfg.Admin.Listen != ""
	opsOptions := func() slobridge.OpsOptions {
		o := slobridge.OpsOptions{Store: a.st, Gatherer: a.reg, Logger: a.log}
		o.Upstreams = a.unavailableUpstreams
		return o
	}
	a.handler = a.router(func(r gin.IRouter) {
		r.GET("/", a.handleHome)
		r.GET("/favicon.ico", handleFavicon)
		ops := opsOptions()
		if separate {
			ops.Gatherer = nil // /metrics is on the admin listener
		}
		slobridge.MountOps(r, ops)
		provider.Mount(r)
		a.ssf.Mount(r)
		page.Mount(r)
		mountUp(r)
		if a.samlIdP != nil {
			a.samlIdP.Mount(r)
		}
		if admin != nil && !separate {
			admin.Mount(r)
		}
		// The console signs operators in through the upstream login, so it
		// lives on the main listener.
		con.Mount(r)
	})
	if separate {
		a.adminHandler = a.router(func(r gin.IRouter) {
			slobridge.MountOps(r, opsOptions())
			if admin != nil {
				admin.Mount(r)
			}
		})
	}
	return nil
}

// buildEngine creates the metrics, the SSF transmitter and the engine.
func (a *App) buildEngine(issuer string) error {
	a.reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	metrics := slobridge.NewMetrics(a.reg)
	a.httpMetrics = newHTTPMetrics(a.reg)
	a.reg.MustRegister(slobridge.NewStoreCollector(a.st, nil))
	a.ssf = &ssf.Transmitter{Issuer: issuer, JWKSURI: issuer + oidc.PathJWKS, Store: a.st}
	d := a.cfg.Delivery
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
	return nil
}

// buildUpstream creates the authenticator upstream.type names, the
// upstream leg of logouts (none for static) and its routes. SAML IdPs and
// OpenID Providers together are chosen among by one login router.
func (a *App) buildUpstream(ctx context.Context, cookies slobridge.SessionCookies) (slobridge.Authenticator, slobridge.UpstreamLogout, func(gin.IRouter), error) {
	u := a.cfg.Upstream
	if u.Type == "static" {
		st := newStaticAuth(a.eng, cookies, u.Static, a.cfg.Session.Lifetime, a.basePath, a.log)
		a.static = st
		return st, nil, st.Mount, nil
	}
	if !u.UsesSAML() && !u.UsesOIDC() {
		return nil, nil, nil, fmt.Errorf("app: upstream.type: unknown type %q", u.Type)
	}
	var logins []slobridge.LoginUpstream
	var logouts slobridge.UpstreamLogouts
	var mounts []func(gin.IRouter)
	if u.UsesSAML() {
		s, err := a.buildSAMLSP(ctx, cookies)
		if err != nil {
			return nil, nil, nil, err
		}
		a.samlSP = s
		if !u.UsesOIDC() {
			// The SP routes among its own IdPs with the same router.
			return s, s, s.Mount, nil
		}
		logins = append(logins, s.LoginUpstreams()...)
		logouts = append(logouts, s)
		mounts = append(mounts, s.Mount)
	}
	for i, c := range u.OIDC {
		rp, err := upstream.New(upstream.Options{Engine: a.eng, Cookies: cookies, BaseURL: a.BaseURL(), BasePath: a.basePath,
			Upstream: oidcUpstream(c, a.cfg.Session.Lifetime), Logger: a.log})
		if err != nil {
			return nil, nil, nil, fmt.Errorf("app: upstream.oidc[%d]: %w", i, err)
		}
		a.oidcRPs = append(a.oidcRPs, rp)
		a.eng.AddUpstreamLegs(rp.UpstreamLegs)
		logins = append(logins, slobridge.LoginUpstream{Name: c.Name, DisplayName: c.DisplayName, Domains: c.Domains,
			Clients: c.Clients, AllowedClients: c.AllowedClients, Start: rp.StartLogin, Unavailable: rp.Unavailable})
		logouts = append(logouts, rp)
		mounts = append(mounts, rp.Mount)
	}
	router, err := slobridge.NewLoginRouter(slobridge.LoginRouterOptions{Engine: a.eng,
		Upstreams: func() []slobridge.LoginUpstream { return logins },
		ClientsOf: sp.ClientsOf, ChooserPath: PathChooseUpstream, ChooserURL: a.basePath + PathChooseUpstream, Logger: a.log})
	if err != nil {
		return nil, nil, nil, err
	}
	mounts = append(mounts, router.Mount)
	return router, logouts, func(r gin.IRouter) {
		for _, m := range mounts {
			m(r)
		}
	}, nil
}

// PathChooseUpstream is the chooser page among upstreams of several
// protocols (upstream.type saml+oidc, or several OpenID Providers).
const PathChooseUpstream = "/login/upstream"

// buildAdmin creates the admin API, or returns nil when no token is set.
func (a *App) buildAdmin(ctx context.Context) (*admin.API, error) {
	tok := a.cfg.Admin.Token.Value()
	if tok == "" {
		a.log.WarnContext(ctx, "admin API disabled: admin.token is not set")
		return nil, nil
	}
	api, err := admin.New(admin.Options{
		Engine: a.eng, Token: tok, TokenName: a.cfg.Admin.TokenName, Logger: a.log,
		SAMLIdP: a.samlIdP, ReceiversAllowHTTP: a.cfg.SSF.AllowHTTP, Upstreams: a.upstreamNames(),
		UpstreamState: a.upstreamState,
	})
	if err != nil {
		return nil, fmt.Errorf("app: admin API: %w", err)
	}
	return api, nil
}

func (a *App) oidcOptions(issuer string, cookies slobridge.SessionCookies, auth slobridge.Authenticator) oidc.Options {
	o := a.cfg.OIDC
	opts := oidc.Options{
		Issuer: issuer, Engine: a.eng, Store: a.st, Cookies: cookies, Authenticator: auth, Logger: a.log,
		RegistrationToken: o.RegistrationToken.Value(),
		AllowLoopbackHTTP: o.AllowLoopbackHTTP, AllowPrivateBackchannel: o.AllowPrivateBackchannel,
		CodeTTL: o.CodeTTL, IDTokenTTL: o.IDTokenTTL, AccessTokenTTL: o.AccessTokenTTL,
		RefreshTokenTTL: o.RefreshTokenTTL, KeyRotation: o.KeyRotation,
		SigningAlg: o.SigningAlg, AccessTokenAlg: o.AccessTokenAlg,
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
	opts := idp.Options{
		Config: ic.Config, BaseURL: a.BaseURL(), Engine: a.eng, Store: a.st, Cookies: cookies,
		Authenticator: auth, Signer: signer, PairwiseSecret: pairwise,
		AllowLoopbackHTTP: a.cfg.OIDC.AllowLoopbackHTTP, Logger: a.log, Registerer: a.reg,
	}
	ip, err := idp.New(ctx, opts)
	if err != nil {
		return fmt.Errorf("app: saml.idp: %w", err)
	}
	a.samlIdP = ip
	a.eng.SetNotifier(idp.ClientKind, ip.Notifier(client))
	// SAML SPs told through the browser answer there (their browser legs);
	// those that need a top-level redirect chain are sent their
	// LogoutRequests by the logout page's continue step.
	a.eng.SetFrontChannel(idp.ClientKind, ip)
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
	// SOAP logouts to the upstream go through the back-channel client,
	// like every other server-to-server logout message.
	opts.BackChannelClient = a.backChannel
	up, err := sp.New(ctx, opts)
	if err != nil {
		return nil, fmt.Errorf("app: saml.sp: %w", err)
	}
	// The upstream leg of a logout without a browser (admin, system, a
	// downstream SOAP LogoutRequest), or toward an upstream without a
	// browser binding, is a delivery of the outbox: SOAP, retried.
	a.eng.SetNotifier(sp.LegKind, up)
	a.eng.AddUpstreamLegs(up.UpstreamLegs)
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

// AdminHandler returns the handler of admin.listen (admin API, metrics,
// probes), nil when admin.listen is not set.
func (a *App) AdminHandler() http.Handler { return a.adminHandler }

// AdminAddr returns the address the admin listener listens on, "" before
// Serve opened it or without admin.listen.
func (a *App) AdminAddr() string {
	s, _ := a.adminAddr.Load().(string)
	return s
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

// apps lists the registered OIDC clients and SAML SPs for the console.
func (a *App) apps(ctx context.Context) ([]console.App, error) {
	cs, err := a.provider.Clients(ctx)
	if err != nil {
		return nil, err
	}
	var out []console.App
	for _, c := range cs {
		out = append(out, oidcApp(c))
	}
	if a.samlIdP == nil {
		return out, nil
	}
	sps, err := a.samlIdP.ServiceProviders(ctx)
	if err != nil {
		return nil, err
	}
	for _, sp := range sps {
		out = append(out, a.samlApp(sp))
	}
	return out, nil
}

// oidcApp is an OIDC client as the console shows it.
func oidcApp(c oidc.Client) console.App {
	m := c.Metadata
	return console.App{Kind: oidc.ClientKind, ID: c.ID, Name: cmp.Or(m.ClientName, c.ID), Channels: m.Channels().String(),
		BackChannel: m.BackchannelLogoutURI, FrontChannel: m.FrontchannelLogoutURI, Static: c.Static, Disabled: c.Disabled}
}

// samlApp is a SAML SP as the console shows it.
func (a *App) samlApp(sp *idp.SP) console.App {
	return console.App{Kind: idp.ClientKind, ID: sp.EntityID, Name: sp.Name, Channels: sp.Channels(),
		BackChannel: sp.SLOLocation(saml.BindingSOAP), FrontChannel: cmp.Or(sp.SLOLocation(saml.BindingRedirect), sp.SLOLocation(saml.BindingPOST)),
		Static: a.samlIdP.Configured(sp.EntityID), Disabled: sp.Disabled}
}

// appActions registers and disables apps from the console's Apps page.
type appActions struct{ a *App }

// operatorError marks err as the operator's to fix (console.ErrInvalidApp)
// unless it is the bridge's storage failing.
func operatorError(err error) error {
	if _, unavailable := slobridge.Unavailable(err); unavailable {
		return err
	}
	return fmt.Errorf("%w: %w", console.ErrInvalidApp, err)
}

// RegisterSAML registers a SAML SP from its metadata URL or its metadata.
func (x appActions) RegisterSAML(ctx context.Context, metadataURL string, metadata []byte, name string) (console.App, error) {
	if x.a.samlIdP == nil {
		return console.App{}, fmt.Errorf("%w: the bridge is no SAML IdP (saml.idp.enabled is false)", console.ErrInvalidApp)
	}
	cfg := idp.SPConfig{MetadataURL: metadataURL, Name: name}
	var sp *idp.SP
	var err error
	if metadata != nil {
		sp, err = x.a.samlIdP.RegisterMetadata(ctx, cfg, metadata)
	} else {
		sp, err = x.a.samlIdP.Register(ctx, cfg)
	}
	if err != nil {
		return console.App{}, operatorError(err)
	}
	return x.a.samlApp(sp), nil
}

// RegisterOIDC registers an OIDC client as dynamic registration does.
func (x appActions) RegisterOIDC(ctx context.Context, f console.OIDCClientForm) (console.App, string, error) {
	md := oidc.ClientMetadata{ClientName: f.Name, RedirectURIs: f.RedirectURIs, PostLogoutRedirectURIs: f.PostLogoutRedirectURIs,
		BackchannelLogoutURI: f.BackChannelLogoutURI, FrontchannelLogoutURI: f.FrontChannelLogoutURI}
	if md.BackchannelLogoutURI != "" {
		md.BackchannelLogoutSessionRequired = true
	}
	if md.FrontchannelLogoutURI != "" {
		md.FrontchannelLogoutSessionRequired = true
	}
	if f.Public {
		md.TokenEndpointAuthMethod = oidc.AuthNone
	}
	resp, err := x.a.provider.Register(ctx, md)
	if err != nil {
		return console.App{}, "", operatorError(err)
	}
	return oidcApp(oidc.Client{ID: resp.ClientID, Metadata: resp.ClientMetadata}), resp.ClientSecret, nil
}

// SetDisabled disables or enables a run-time registration.
func (x appActions) SetDisabled(ctx context.Context, kind, id string, disabled bool) error {
	var err error
	switch {
	case kind == oidc.ClientKind:
		err = x.a.provider.SetDisabled(ctx, id, disabled)
	case kind == idp.ClientKind && x.a.samlIdP != nil:
		err = x.a.samlIdP.SetDisabled(ctx, id, disabled)
	default:
		return fmt.Errorf("%w: no %s app %q", console.ErrInvalidApp, kind, id)
	}
	if err != nil {
		return operatorError(err)
	}
	return nil
}

// unavailableUpstreams names the upstreams the bridge cannot use now,
// with why (/readyz).
func (a *App) unavailableUpstreams() map[string]string {
	out := map[string]string{}
	if a.samlSP != nil {
		maps.Copy(out, a.samlSP.Unavailable())
	}
	for _, rp := range a.oidcRPs {
		if err := rp.Unavailable(); err != nil {
			out[rp.Name()] = err.Error()
		}
	}
	if len(out) == 0 {
		return nil
	}
	return out
}

// upstreamState describes each upstream for the admin API: its source,
// whether it is usable now, and what to register for the bridge there.
func (a *App) upstreamState() []admin.Upstream {
	var out []admin.Upstream
	if a.static != nil {
		return []admin.Upstream{{Name: "static", Type: "static", Available: true}}
	}
	if a.samlSP != nil {
		down := a.samlSP.Unavailable()
		now := a.eng.Now()
		for i, h := range a.samlSP.Health() {
			c := a.cfg.SAML.SP.Upstreams[i]
			u := admin.Upstream{Name: c.Name, Type: "saml", ID: cmp.Or(c.MetadataURL, c.MetadataFile), Available: true,
				Register:         map[string]string{"sp_metadata_url": a.BaseURL() + sp.PathMetadata},
				MetadataLoadedAt: h.Loaded, CertificateNotAfter: h.CertNotAfter}
			if why, ok := down[c.Name]; ok {
				u.Available, u.Error = false, why
			} else if h.RefreshError != "" { // running on a kept copy
				u.Warnings = append(u.Warnings, "the metadata refresh fails ("+h.RefreshError+"); the copy read "+
					h.Loaded.UTC().Format(time.DateTime)+" UTC is in use")
			}
			switch left := h.CertNotAfter.Sub(now); {
			case h.CertNotAfter.IsZero():
			case left <= 0:
				u.Warnings = append(u.Warnings, "its signing certificate expired on "+h.CertNotAfter.UTC().Format(time.DateOnly))
			case left < admin.CertificateWarnAhead:
				u.Warnings = append(u.Warnings, "its signing certificate expires on "+h.CertNotAfter.UTC().Format(time.DateOnly))
			}
			out = append(out, u)
		}
	}
	for i, rp := range a.oidcRPs {
		u := admin.Upstream{Name: rp.Name(), Type: "oidc", ID: a.cfg.Upstream.OIDC[i].Issuer, Available: true,
			MetadataLoadedAt: rp.DiscoveredAt()}
		if err := rp.Unavailable(); err != nil {
			u.Available, u.Error = false, err.Error()
		}
		r := rp.Registration()
		u.Register = map[string]string{"redirect_uri": r.RedirectURI, "backchannel_logout_uri": r.BackchannelLogoutURI,
			"frontchannel_logout_uri": r.FrontchannelLogoutURI, "post_logout_redirect_uri": r.PostLogoutRedirectURI}
		if r.JWKSURI != "" {
			u.Register["jwks_uri"] = r.JWKSURI
		}
		out = append(out, u)
	}
	return out
}

// upstreamNames names the upstreams whose users carry an upstream NameID
// (none for the static upstream).
func (a *App) upstreamNames() []string {
	var out []string
	if a.cfg.Upstream.UsesSAML() {
		for _, u := range a.cfg.SAML.SP.Upstreams {
			out = append(out, u.Name)
		}
	}
	if a.cfg.Upstream.UsesOIDC() {
		for _, u := range a.cfg.Upstream.OIDC {
			out = append(out, u.Name)
		}
	}
	return out
}

// oidcUpstream converts the configuration of an upstream OpenID Provider.
// A private_key_jwt key that does not parse is reported by validation
// (upstream.oidc[].private_key) before this is used for the RP.
func oidcUpstream(u OIDCUpstreamConfig, lifetime time.Duration) upstream.Config {
	c := upstream.Config{
		Name: u.Name, Issuer: u.Issuer, ClientID: u.ClientID, ClientSecret: u.ClientSecret.Value(), Scopes: u.Scopes,
		UserIDClaim: u.UserIDClaim, UserIDPrefix: u.UserIDPrefix, Attributes: u.Attributes, SigningAlgs: u.SigningAlgs,
		NoEndSession: u.SkipEndSession, SkipUserInfo: u.SkipUserInfo, ACRValues: u.ACRValues, SessionLifetime: lifetime,
	}
	if u.TokenEndpointAuthMethod == upstream.AuthPrivateKeyJWT {
		c.ClientSecret = ""
		c.PrivateKey, _ = upstream.ParseClientKey([]byte(u.PrivateKey.Value()))
	}
	return c
}

// OIDCUpstreams returns the relying parties of the upstream OpenID
// Providers, in configuration order.
func (a *App) OIDCUpstreams() []*upstream.RP { return a.oidcRPs }
