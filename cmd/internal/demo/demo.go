package demo

import (
	"cmp"
	"context"
	"crypto/rand"
	"encoding/base32"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/slobridge/slobridge/cmd/internal/app"
	"github.com/slobridge/slobridge/oidc"
	"github.com/slobridge/slobridge/oidc/resource"
	"github.com/slobridge/slobridge/oidc/upstream"
	"github.com/slobridge/slobridge/saml/idp"
	"github.com/slobridge/slobridge/saml/sp"
	"github.com/slobridge/slobridge/store/bolt"
)

// DefaultListen is where the demo's bridge listens unless told otherwise;
// the other parts take the following ports.
const DefaultListen = "127.0.0.1:8080"

// The demo's parts, in port order after the bridge.
const (
	offsetUpstream = 1 + iota
	offsetBackApp
	offsetFrontApp
	offsetSAMLApp
	offsetAPI
	parts
)

// Options configure a demo.
type Options struct {
	// Listen is the bridge's address; default DefaultListen. The other
	// parts listen on the following ports; with port 0 every part gets a
	// free port (tests).
	Listen string
	// DBPath is the bbolt file; default a file in a temporary directory
	// that Close removes.
	DBPath string
	// Logger receives every part's logs; default discards them.
	Logger *slog.Logger
	// BackoffBase and GiveUpAfter tune the bridge's delivery retries;
	// defaults 1s and 2m (a demo participant that is down shows "failed"
	// after two minutes rather than a day).
	BackoffBase, GiveUpAfter time.Duration
	// UpstreamLate starts the upstream IdP this long after the bridge,
	// which then reads its metadata by URL: the bridge starts without it,
	// says so on /readyz and the login page, and picks it up when it
	// comes (slobridge demo --upstream-late 30s).
	UpstreamLate time.Duration
	// UpstreamOIDC, when set, puts an OpenID Provider of the operator's in
	// place of the demo's SAML IdP: users sign in there, its back-channel
	// logouts reach every demo app and a logout in an app ends the session
	// there (RP-Initiated Logout). Register at it the URIs Registration
	// names (slobridge demo --upstream-oidc-issuer ...).
	UpstreamOIDC *UpstreamOIDC
	// PublicHost is the host name in the URLs of the bridge and the parts
	// (default the host of Listen). Browsers keep cookies per host name,
	// not per port: two demos side by side on one machine (one the other's
	// upstream) need different names, e.g. 127.0.0.1 and localhost.
	PublicHost string
	// Clients are OIDC clients registered at the bridge besides the demo
	// apps (another bridge using this one as its upstream, say).
	Clients []app.OIDCClientConfig
}

// UpstreamOIDC is an OpenID Provider to use as the demo's upstream.
type UpstreamOIDC struct {
	// Issuer is the OP's issuer URL (discovery); ClientID and
	// ClientSecret are the bridge's registration there.
	Issuer, ClientID, ClientSecret string
	// DisplayName names the OP on the chooser page.
	DisplayName string
	// AlongsideSAML keeps the demo SAML IdP too (upstream.type
	// saml+oidc): a login then starts at the chooser page.
	AlongsideSAML bool
}

// DemoOperator is the demo user the operator console admits.
const DemoOperator = "bob"

// UpstreamOIDCName names the demo's upstream OpenID Provider in the
// bridge's configuration and paths.
const UpstreamOIDCName = "op"

// User is a demo user of the upstream IdP.
type User struct {
	Username, Password, Email, Name string
}

// AppInfo describes one demo app for the printed instructions and tests.
type AppInfo struct {
	Name, URL, Protocol, Channel string
}

// Demo is a running demo: the bridge and every demo part. Stop it with
// Close.
type Demo struct {
	// BridgeURL is the bridge's base URL (the OIDC issuer).
	BridgeURL string
	// UpstreamURL is the upstream IdP's base URL.
	UpstreamURL string
	// BackApp and FrontApp are the two OIDC apps, SAMLApp the SAML app
	// (empty URL when the bridge has no SAML IdP yet), API the resource
	// server.
	BackApp, FrontApp, SAMLApp AppInfo
	APIURL                     string
	// Users are the upstream IdP's demo users.
	Users []User
	// AdminToken authorizes the bridge's admin API.
	AdminToken string
	// DBPath is the bbolt file in use.
	DBPath string
	// UpstreamKind names the upstream for people: "SAML IdP", or "OpenID
	// Provider" with Options.UpstreamOIDC.
	UpstreamKind string

	bridge  *app.App
	log     *slog.Logger
	servers map[string]*http.Server
	// stopped remembers each part's address and handler (RestartPart).
	stopped map[string]stoppedPart
	tmpDir  string
	closers []func() error
	cancel  context.CancelFunc
	wg      sync.WaitGroup
	mu      sync.Mutex
	errs    []error
}

// Start starts the bridge and every demo part and returns once all of
// them accept connections. ctx bounds start-up only.
func Start(ctx context.Context, opts Options) (d *Demo, err error) {
	opts.defaults()
	lns, err := listen(opts.Listen)
	if err != nil {
		return nil, err
	}
	d = &Demo{log: opts.Logger, servers: map[string]*http.Server{}, stopped: map[string]stoppedPart{}}
	defer func() {
		if err != nil {
			for _, ln := range lns {
				_ = ln.Close()
			}
			_ = d.Close()
			d = nil
		}
	}()
	if err := d.layout(lns, opts); err != nil {
		return d, err
	}
	runCtx, cancel := context.WithCancel(context.WithoutCancel(ctx))
	d.cancel = cancel

	k, err := d.keys()
	if err != nil {
		return d, err
	}
	replay, err := bolt.Open(filepath.Join(d.tmpDir, "demo-parts.db"), bolt.Options{})
	if err != nil {
		return d, fmt.Errorf("demo: replay cache of the demo parts: %w", err)
	}
	d.closers = append(d.closers, replay.Close)
	upstream, err := NewUpstreamIdP(d.UpstreamURL, k.upstream.signer, d.Users, replay, opts.Logger.With("part", "upstream"))
	if err != nil {
		return d, err
	}
	samlApp, err := NewSAMLApp(d.SAMLApp.Name, d.SAMLApp.URL, k.samlApp.signer, replay, opts.Logger.With("part", "saml-app"))
	if err != nil {
		return d, err
	}
	files, err := d.metadataFiles(upstream, samlApp)
	if err != nil {
		return d, err
	}
	pushAuth := "Bearer " + secret()
	rps := []RPConfig{
		{Name: d.BackApp.Name, BaseURL: d.BackApp.URL, Issuer: d.BridgeURL, ClientID: "calendar",
			ClientSecret: secret(), APIURL: d.APIURL, Logger: opts.Logger},
		{Name: d.FrontApp.Name, BaseURL: d.FrontApp.URL, Issuer: d.BridgeURL, ClientID: "chat",
			ClientSecret: secret(), FrontChannel: true, APIURL: d.APIURL, Logger: opts.Logger},
	}
	cfg := d.bridgeConfig(opts, lns[0].Addr().String(), pushAuth, rps...)
	cfg.OIDC.Clients = append(cfg.OIDC.Clients, opts.Clients...)
	oidcOnly := opts.UpstreamOIDC != nil && !opts.UpstreamOIDC.AlongsideSAML
	d.samlConfig(&cfg, k, files, !oidcOnly)
	if o := opts.UpstreamOIDC; o != nil {
		cfg.Upstream.Type = "oidc"
		cfg.Upstream.OIDC = []app.OIDCUpstreamConfig{{Name: UpstreamOIDCName, DisplayName: o.DisplayName, Issuer: o.Issuer,
			ClientID: o.ClientID, ClientSecret: app.LiteralSecret(o.ClientSecret)}}
		if oidcOnly {
			d.UpstreamURL, d.UpstreamKind = o.Issuer, "OpenID Provider"
			_ = lns[offsetUpstream].Close()
		} else {
			cfg.Upstream.Type = "saml+oidc"
		}
	}
	lateAddr := ""
	if opts.UpstreamLate > 0 && opts.UpstreamOIDC == nil {
		cfg.SAML.SP.Upstreams[0].MetadataFile, cfg.SAML.SP.Upstreams[0].MetadataURL = "", d.UpstreamURL+"/metadata"
		cfg.SAML.SP.MetadataRetry = time.Second
		// Nothing listens on the upstream's address until it starts:
		// connections are refused, as for an IdP that is down.
		lateAddr = lns[offsetUpstream].Addr().String()
		_ = lns[offsetUpstream].Close()
	}
	if err := d.startBridge(ctx, runCtx, cfg, lns[0]); err != nil {
		return d, err
	}

	guard, err := resource.New(runCtx, resource.Options{Issuer: d.BridgeURL, Audience: d.BridgeURL, JWKSURL: d.BridgeURL + oidc.PathJWKS,
		PushAuthorization: pushAuth, Logger: opts.Logger.With("part", "api")})
	if err != nil {
		return d, fmt.Errorf("demo: API: %w", err)
	}
	d.serve("api", lns[offsetAPI], (&API{Guard: guard}).Handler())
	for i, ln := range []net.Listener{lns[offsetBackApp], lns[offsetFrontApp]} {
		a, err := NewRP(ctx, rps[i])
		if err != nil {
			return d, err
		}
		d.serve(rps[i].Name, ln, a.Handler())
	}
	// The upstream IdP and the SAML app learn the bridge's metadata from
	// the running bridge, as they would in production.
	switch {
	case oidcOnly:
		// The operator's OP runs elsewhere.
	case lateAddr != "":
		if err := upstream.RegisterSP(ctx, d.BridgeURL+sp.PathMetadata); err != nil {
			return d, err
		}
		late := time.AfterFunc(opts.UpstreamLate, func() {
			ln, err := net.Listen("tcp", lateAddr)
			if err != nil {
				d.fail(fmt.Errorf("upstream: listen again on %s: %w", lateAddr, err))
				return
			}
			d.serve("upstream", ln, upstream.Handler())
		})
		d.closers = append(d.closers, func() error { late.Stop(); return nil })
	default:
		if err := upstream.RegisterSP(ctx, d.BridgeURL+sp.PathMetadata); err != nil {
			return d, err
		}
		d.serve("upstream", lns[offsetUpstream], upstream.Handler())
	}
	if err := samlApp.Connect(ctx, d.BridgeURL+idp.PathMetadata); err != nil {
		return d, err
	}
	d.serve(d.SAMLApp.Name, lns[offsetSAMLApp], samlApp.Handler())
	d.bridge.SetHome(d.home())
	return d, nil
}

// home is what the bridge's root page shows in the demo: its apps, the
// users and what to try.
func (d *Demo) home() app.Home {
	h := app.Home{Intro: "This is the demo: an upstream " + d.UpstreamKind + ", two OpenID Connect apps, a SAML app and an API."}
	for _, a := range []AppInfo{d.BackApp, d.FrontApp, d.SAMLApp} {
		h.Links = append(h.Links, app.HomeLink{Name: a.Name, URL: a.URL, Note: a.Protocol + ", " + a.Channel})
	}
	h.Links = append(h.Links,
		app.HomeLink{Name: "Reports API", URL: strings.TrimSuffix(d.APIURL, "/data") + "/", Note: "a resource server both OIDC apps call"},
		app.HomeLink{Name: "Operator console", URL: d.BridgeURL + "/admin/", Note: "sign in as " + DemoOperator + ": find a user's sessions, log them out, follow and retry deliveries"},
		app.HomeLink{Name: "Upstream " + d.UpstreamKind, URL: d.UpstreamURL, Note: "where the users sign in"})
	var users []string
	for _, u := range d.Users {
		users = append(users, u.Username+" (password "+u.Password+")")
	}
	h.Steps = []string{
		"Open " + d.BackApp.Name + " and click Log in; sign in at the upstream " + d.UpstreamKind + d.signInAs(users) + ".",
		"Open " + d.FrontApp.Name + " and " + d.SAMLApp.Name + " and click Log in: no password this time (single sign-on through the bridge).",
		"Click Log out everywhere in any app: the bridge's logout page shows each app live, then logs you out at the upstream " + d.UpstreamKind + ".",
		"Reload the other apps: each says it is logged out and how it learned it; the API rejects the tokens they still hold.",
	}
	return h
}

// signInAs names the demo users to sign in as; an operator's OpenID
// Provider has its own.
func (d *Demo) signInAs(users []string) string {
	if d.UpstreamKind != "SAML IdP" {
		return ""
	}
	return " as " + strings.Join(users, " or ")
}

// defaults fills in the documented defaults.
func (o *Options) defaults() {
	if o.Listen == "" {
		o.Listen = DefaultListen
	}
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	if o.BackoffBase <= 0 {
		o.BackoffBase = time.Second
	}
	if o.GiveUpAfter <= 0 {
		o.GiveUpAfter = 2 * time.Minute
	}
}

// layout names the parts after their listeners and makes the temporary
// directory, the users and the admin token.
func (d *Demo) layout(lns []net.Listener, opts Options) error {
	urls := make([]string, len(lns))
	for i, ln := range lns {
		a := ln.Addr().(*net.TCPAddr)
		urls[i] = "http://" + net.JoinHostPort(cmp.Or(opts.PublicHost, a.IP.String()), strconv.Itoa(a.Port))
	}
	d.BridgeURL, d.UpstreamURL, d.APIURL = urls[0], urls[offsetUpstream], urls[offsetAPI]+"/data"
	d.BackApp = AppInfo{Name: "Calendar", URL: urls[offsetBackApp], Protocol: "OpenID Connect", Channel: "back-channel logout"}
	d.FrontApp = AppInfo{Name: "Chat", URL: urls[offsetFrontApp], Protocol: "OpenID Connect", Channel: "front-channel logout"}
	d.SAMLApp = AppInfo{Name: "Wiki", URL: urls[offsetSAMLApp], Protocol: "SAML 2.0", Channel: "SAML single logout, front-channel and SOAP"}
	// Keys, metadata files and the demo parts' replay cache live in a
	// temporary directory; the bridge's database too unless --db is given.
	var err error
	if d.tmpDir, err = os.MkdirTemp("", "slobridge-demo-"); err != nil {
		return fmt.Errorf("demo: temporary directory: %w", err)
	}
	if d.DBPath = opts.DBPath; d.DBPath == "" {
		d.DBPath = filepath.Join(d.tmpDir, "slobridge.db")
	}
	d.Users = []User{
		{Username: "alice", Password: password(), Email: "alice@example.org", Name: "Alice Example"},
		{Username: "bob", Password: password(), Email: "bob@example.org", Name: "Bob Example"},
	}
	d.AdminToken = secret()
	d.UpstreamKind = "SAML IdP"
	return nil
}

// startBridge builds the bridge from cfg with app.New, as `slobridge
// serve` does from a file, and serves it on ln until runCtx ends.
func (d *Demo) startBridge(ctx, runCtx context.Context, cfg app.Config, ln net.Listener) error {
	if err := cfg.Finish(func(string) (string, bool) { return "", false }); err != nil {
		return fmt.Errorf("demo: bridge configuration: %w", err)
	}
	b, err := app.New(ctx, cfg, d.log.With("part", "bridge"))
	if err != nil {
		return fmt.Errorf("demo: bridge: %w", err)
	}
	d.bridge = b
	d.wg.Add(1)
	go func() {
		defer d.wg.Done()
		if err := b.Serve(runCtx, ln); err != nil {
			d.fail(fmt.Errorf("bridge: %w", err))
		}
	}()
	return nil
}

// bridgeConfig is the bridge's configuration: what a YAML file would say.
func (d *Demo) bridgeConfig(opts Options, addr, pushAuth string, rps ...RPConfig) app.Config {
	var cfg app.Config
	cfg.Server.Listen = addr
	cfg.Server.BaseURL = d.BridgeURL
	cfg.Server.ShutdownTimeout = 5 * time.Second
	cfg.Store.Driver = "bolt"
	cfg.Store.Bolt.Path = d.DBPath
	// The demo's database lives in a scratch directory: a small write
	// reserve is enough to show the mechanism.
	cfg.Store.Bolt.ReserveBytes = 4 << 20
	cfg.Session.CookieSecret = app.LiteralSecret(secret() + secret())
	cfg.Admin.Token = app.LiteralSecret(d.AdminToken)
	cfg.Admin.TokenName = "demo-admin"
	// bob is the demo's operator: the console at /admin/ admits him.
	cfg.Admin.Console.AllowedUsers = []string{DemoOperator}
	// Every demo part is on 127.0.0.1 over plain HTTP.
	cfg.OIDC.AllowLoopbackHTTP = true
	cfg.OIDC.AllowPrivateBackchannel = true
	cfg.Delivery.AllowLoopback = true
	cfg.Delivery.AttemptTimeout = 5 * time.Second
	cfg.Delivery.BackoffBase = opts.BackoffBase
	cfg.Delivery.BackoffMax = 10 * opts.BackoffBase
	cfg.Delivery.GiveUpAfter = opts.GiveUpAfter
	cfg.Delivery.PollInterval = 500 * time.Millisecond
	cfg.SSF.AllowHTTP = true
	cfg.SSF.Receivers = []app.ReceiverConfig{{ID: "demo-api", Name: "Reports API",
		PushURL: strings.TrimSuffix(d.APIURL, "/data") + "/events", Audience: []string{d.BridgeURL},
		Authorization: app.LiteralSecret(pushAuth)}}
	for _, rp := range rps {
		cfg.OIDC.Clients = append(cfg.OIDC.Clients, app.OIDCClientConfig{
			ClientMetadata: rp.metadata(), ClientSecret: app.LiteralSecret(rp.ClientSecret)})
	}
	return cfg
}

// demoKeys are the throw-away signing keys of the SAML parts.
type demoKeys struct {
	upstream, samlApp, bridgeSP, bridgeIdP *keyPair
}

func (d *Demo) keys() (demoKeys, error) {
	var k demoKeys
	var err error
	for _, p := range []struct {
		kp       **keyPair
		name, cn string
	}{
		{&k.upstream, "upstream-idp", "demo upstream IdP"},
		{&k.samlApp, "saml-app", "demo SAML app"},
		{&k.bridgeSP, "bridge-sp", "slobridge demo SP"},
		{&k.bridgeIdP, "bridge-idp", "slobridge demo IdP"},
	} {
		if *p.kp, err = newKeyPair(d.tmpDir, p.name, p.cn); err != nil {
			return k, err
		}
	}
	return k, nil
}

// metadataPaths are the metadata files the bridge's configuration names.
type metadataPaths struct{ upstream, samlApp string }

func (d *Demo) metadataFiles(up *UpstreamIdP, sa *SAMLApp) (metadataPaths, error) {
	f := metadataPaths{upstream: filepath.Join(d.tmpDir, "upstream-idp-metadata.xml"),
		samlApp: filepath.Join(d.tmpDir, "saml-app-metadata.xml")}
	for path, gen := range map[string]func() ([]byte, error){f.upstream: up.MetadataXML, f.samlApp: sa.MetadataXML} {
		b, err := gen()
		if err != nil {
			return f, err
		}
		if err := os.WriteFile(path, b, 0o644); err != nil {
			return f, fmt.Errorf("demo: write %s: %w", path, err)
		}
	}
	return f, nil
}

// samlConfig adds the bridge's SAML sides: the SP toward the upstream IdP
// (users log in there) when samlUpstream, and the IdP toward the SAML app.
func (d *Demo) samlConfig(cfg *app.Config, k demoKeys, f metadataPaths, samlUpstream bool) {
	if samlUpstream {
		cfg.Upstream.Type = "saml"
		cfg.SAML.SP.CertFile, cfg.SAML.SP.KeyFile = k.bridgeSP.certFile, k.bridgeSP.keyFile
		cfg.SAML.SP.Upstreams = []sp.UpstreamConfig{{
			Name: "demo-idp", DisplayName: "Demo upstream IdP", MetadataFile: f.upstream,
			UserIDAttribute: "uid",
			Attributes:      map[string]string{"email": "mail", "name": "cn", "groups": "eduPersonAffiliation"},
		}}
	}
	cfg.SAML.IdP.Enabled = true
	cfg.SAML.IdP.CertificateFile = k.bridgeIdP.certFile
	cfg.SAML.IdP.Key = app.LiteralSecret(string(k.bridgeIdP.keyPEM))
	// The SAML app is told through the browser (the logout page's iframe)
	// and server to server (SOAP): the back channel is what reaches it when
	// an operator logs a user out and there is no browser. A browser logout
	// uses both; the app takes the second notice as a no-op.
	cfg.SAML.IdP.ServiceProviders = []idp.SPConfig{{MetadataFile: f.samlApp, Name: d.SAMLApp.Name, NameID: idp.NameIDEmail,
		LogoutChannels: []string{idp.ChannelFront, idp.ChannelBack}, FrontChannelBinding: idp.BindingRedirect}}
}

// metadata is the app's registration at the bridge.
func (c RPConfig) metadata() oidc.ClientMetadata {
	m := oidc.ClientMetadata{
		ClientID: c.ClientID, ClientName: c.Name,
		RedirectURIs:            []string{c.BaseURL + "/callback"},
		PostLogoutRedirectURIs:  []string{c.BaseURL + "/logged-out"},
		TokenEndpointAuthMethod: "client_secret_basic",
	}
	if c.FrontChannel {
		m.FrontchannelLogoutURI, m.FrontchannelLogoutSessionRequired = c.BaseURL+"/frontchannel-logout", true
	} else {
		m.BackchannelLogoutURI, m.BackchannelLogoutSessionRequired = c.BaseURL+"/backchannel-logout", true
	}
	return m
}

// listen opens the bridge's listener and one per demo part.
func listen(addr string) ([]net.Listener, error) {
	host, portStr, err := net.SplitHostPort(addr)
	if err != nil {
		return nil, fmt.Errorf("demo: --listen %q: %w", addr, err)
	}
	port, err := strconv.Atoi(portStr)
	if err != nil || port < 0 || port > 65535-parts {
		return nil, fmt.Errorf("demo: --listen %q: bad port", addr)
	}
	var lns []net.Listener
	for i := range parts {
		p := 0
		if port != 0 {
			p = port + i
		}
		ln, err := net.Listen("tcp", net.JoinHostPort(host, strconv.Itoa(p)))
		if err != nil {
			for _, l := range lns {
				_ = l.Close()
			}
			return nil, fmt.Errorf("demo: listen: %w (use --listen to pick other ports; the demo needs %d in a row)", err, parts)
		}
		lns = append(lns, ln)
	}
	return lns, nil
}

// serve runs one demo part's HTTP server until Close.
func (d *Demo) serve(name string, ln net.Listener, h http.Handler) {
	srv := &http.Server{Handler: h, ReadHeaderTimeout: 10 * time.Second,
		ErrorLog: slog.NewLogLogger(d.log.With("part", name).Handler(), slog.LevelWarn)}
	d.mu.Lock()
	d.servers[name] = srv
	d.stopped[name] = stoppedPart{addr: ln.Addr().String(), h: h}
	d.mu.Unlock()
	d.wg.Add(1)
	go func() {
		defer d.wg.Done()
		if err := srv.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
			d.fail(fmt.Errorf("%s: %w", name, err))
		}
	}()
}

// stoppedPart is what RestartPart needs to serve a part again.
type stoppedPart struct {
	addr string
	h    http.Handler
}

// RestartPart serves a part StopPart stopped again, on its address (the
// operator "fixed the receiver").
func (d *Demo) RestartPart(name string) error {
	d.mu.Lock()
	p, ok := d.stopped[name]
	_, running := d.servers[name]
	d.mu.Unlock()
	if !ok || running {
		return fmt.Errorf("demo: no stopped part %q", name)
	}
	ln, err := net.Listen("tcp", p.addr)
	if err != nil {
		return fmt.Errorf("demo: listen again on %s: %w", p.addr, err)
	}
	d.serve(name, ln, p.h)
	return nil
}

// StopPart stops one demo part ("api", "Calendar", "Chat", "upstream",
// "saml-app"), to show what the bridge does when a participant is down.
func (d *Demo) StopPart(name string) error {
	d.mu.Lock()
	srv := d.servers[name]
	delete(d.servers, name)
	d.mu.Unlock()
	if srv == nil {
		return fmt.Errorf("demo: no running part %q", name)
	}
	return srv.Close()
}

func (d *Demo) fail(err error) {
	d.mu.Lock()
	d.errs = append(d.errs, err)
	d.mu.Unlock()
	d.log.Error("demo part stopped", "err", err)
}

// Close stops every part, closes the store and removes the temporary
// directory. It returns the errors the parts stopped with.
func (d *Demo) Close() error {
	if d.cancel != nil {
		d.cancel()
	}
	d.mu.Lock()
	for _, srv := range d.servers {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		_ = srv.Shutdown(ctx)
		cancel()
	}
	d.servers = map[string]*http.Server{}
	d.mu.Unlock()
	d.wg.Wait()
	var errs []error
	d.mu.Lock()
	errs = append(errs, d.errs...)
	d.mu.Unlock()
	if d.bridge != nil {
		errs = append(errs, d.bridge.Close())
	}
	for _, c := range d.closers {
		errs = append(errs, c())
	}
	if d.tmpDir != "" {
		errs = append(errs, os.RemoveAll(d.tmpDir))
	}
	return errors.Join(errs...)
}

// Instructions writes what to open and what to click.
func (d *Demo) Instructions(w io.Writer) {
	fmt.Fprintf(w, `
slobridge demo is running (Ctrl-C stops it).

  Bridge                   %s   (OIDC discovery: %s/.well-known/openid-configuration)
  %-24s %s
  %-24s %s   (%s, %s)
  %-24s %s   (%s, %s)
`, d.BridgeURL, d.BridgeURL, "Upstream "+d.UpstreamKind, d.UpstreamURL,
		d.BackApp.Name, d.BackApp.URL, d.BackApp.Protocol, d.BackApp.Channel,
		d.FrontApp.Name, d.FrontApp.URL, d.FrontApp.Protocol, d.FrontApp.Channel)
	if d.SAMLApp.URL != "" {
		fmt.Fprintf(w, "  %-24s %s   (%s, %s)\n", d.SAMLApp.Name, d.SAMLApp.URL, d.SAMLApp.Protocol, d.SAMLApp.Channel)
	}
	fmt.Fprintf(w, "  %-24s %s   (resource server; both OIDC apps call it; its page says what it accepts)\n", "Reports API", strings.TrimSuffix(d.APIURL, "/data")+"/")
	fmt.Fprintf(w, "  %-24s %s   (sign in as %s)\n", "Operator console", d.BridgeURL+"/admin/", DemoOperator)
	if d.UpstreamKind != "SAML IdP" {
		r := upstream.RegistrationFor(d.BridgeURL, UpstreamOIDCName)
		fmt.Fprintf(w, "\nRegister the bridge at the upstream OpenID Provider (confidential client, code flow):\n"+
			"  redirect URI               %s\n  back-channel logout URI    %s (session required)\n"+
			"  front-channel logout URI   %s\n  post-logout redirect URI   %s\n"+
			"then open %s, click \"Log in\" and sign in there as any of its users; logging out works as in\nthe README's demo walk-through.\n",
			r.RedirectURI, r.BackchannelLogoutURI, r.FrontchannelLogoutURI, r.PostLogoutRedirectURI, d.BackApp.URL)
		return
	}
	fmt.Fprintf(w, "\nDemo users (at the upstream IdP):\n")
	for _, u := range d.Users {
		fmt.Fprintf(w, "  %-8s password %s\n", u.Username, u.Password)
	}
	fmt.Fprintf(w, `
Try it (a fresh browser window, or a private one):
  1. Open %[1]s and click "Log in": the bridge sends you to the upstream
     IdP; sign in as alice.
  2. Open %[2]s and %[3]s and click "Log in": no password this time
     (single sign-on through the bridge, OIDC and SAML alike). The OIDC
     apps show that the Reports API accepts their access tokens.
  3. Click "Log out everywhere" in any app. The bridge's logout page shows
     each participant live (protocol, channel, state), logs you out at the
     upstream IdP, and returns you to the app.
  4. Reload the other apps: each shows "Logged out" and how it learned it
     (back-channel token, front-channel iframe, SAML LogoutRequest); the
     API now rejects the tokens the OIDC apps still hold. %[4]s shows
     no session any more.
  Also try: "Log out here and everywhere" on the upstream IdP's page
  (IdP-initiated), or log alice out as an operator from another shell:
     SLOBRIDGE_URL=%[5]s SLOBRIDGE_ADMIN_TOKEN=%[6]s \
       go run ./cmd/slobridge admin logout --user alice
  With no browser in the loop, the bridge tells %[7]s and the upstream IdP
  by SOAP, Calendar by its logout token; Chat notices at its next check.
  The recent logouts and how each went, then one of them participant by
  participant (LOGOUT_ID from the list, from "admin logout", or the last
  part of the logout page's address, /logout/page/LOGOUT_ID):
     SLOBRIDGE_URL=%[5]s SLOBRIDGE_ADMIN_TOKEN=%[6]s \
       go run ./cmd/slobridge admin status
     SLOBRIDGE_URL=%[5]s SLOBRIDGE_ADMIN_TOKEN=%[6]s \
       go run ./cmd/slobridge admin status LOGOUT_ID
`, d.BackApp.URL, d.FrontApp.URL, d.SAMLApp.URL, d.UpstreamURL, d.BridgeURL, d.AdminToken, d.SAMLApp.Name)
}

// password returns a random demo password that is easy to type.
func password() string {
	var b [10]byte
	if _, err := rand.Read(b[:]); err != nil {
		panic(err)
	}
	return strings.ToLower(base32.StdEncoding.WithPadding(base32.NoPadding).EncodeToString(b[:]))
}

// secret returns 256 random bits, base32.
func secret() string {
	var b [32]byte
	if _, err := rand.Read(b[:]); err != nil {
		panic(err)
	}
	return strings.ToLower(base32.StdEncoding.WithPadding(base32.NoPadding).EncodeToString(b[:]))
}

// notYet answers for a demo part this build does not have.
func notYet(what string) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		http.Error(w, what+" is not part of this build yet", http.StatusNotImplemented)
	})
}
