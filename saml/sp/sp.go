package sp

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/gin-gonic/gin"

	"github.com/slobridge/slobridge"
	"github.com/slobridge/slobridge/saml"
)

// Paths mounted by SP.Mount, relative to the router it is given.
const (
	PathMetadata = "/saml/sp/metadata"
	PathLogin    = "/saml/sp/login"
	PathACS      = "/saml/sp/acs"
	PathSLO      = "/saml/sp/slo"
	PathSLOSOAP  = "/saml/sp/slo/soap"
	// PathSLOComplete + "/:logout_id" answers an upstream's front-channel
	// LogoutRequest once the logout page has run.
	PathSLOComplete = "/saml/sp/slo/complete"
)

// Options configure an SP. Zero values take the documented defaults.
type Options struct {
	// Engine creates and ends bridge sessions. Required.
	Engine *slobridge.Engine
	// Cookies writes the bridge session cookie. Required (Secret).
	Cookies slobridge.SessionCookies
	// BaseURL is the bridge's external URL ("https://bridge.example.com",
	// with a path prefix if it is mounted under one). Required; endpoint
	// URLs in metadata and Destination checks are built from it.
	BaseURL string
	// EntityID is the SP entity ID; default BaseURL + PathMetadata.
	EntityID string
	// Signer signs AuthnRequests, LogoutRequests and LogoutResponses and
	// is published in metadata. Required.
	Signer *saml.Signer
	// Upstreams are the upstream IdPs. At least one.
	Upstreams []UpstreamConfig
	// HTTPClient fetches metadata; default a client with a 30s timeout.
	HTTPClient *http.Client
	// BackChannelClient sends SOAP LogoutRequests to upstreams; default
	// HTTPClient. Use slobridge.NewBackChannelClient.
	BackChannelClient *http.Client
	// LogoutPageURL returns the URL of the logout page of a logout;
	// default BaseURL + slobridge.LogoutPagePath(id).
	LogoutPageURL func(logoutID string) string
	// Logger defaults to slog.Default().
	Logger *slog.Logger
	// Now is the clock of logout message validation and sessions; default
	// the engine's clock. (crewjam validates SSO Responses with its own
	// clock, time.Now.)
	Now func() time.Time
	// MetadataRefresh, SessionMaxAge, ClockSkew, SOAPLogoutWait: see
	// Config.
	MetadataRefresh time.Duration
	SessionMaxAge   time.Duration
	ClockSkew       time.Duration
	SOAPLogoutWait  time.Duration
	// RetryFirst is the first wait before an unavailable upstream's
	// metadata is read again (it doubles up to 5 minutes); default 5s.
	RetryFirst time.Duration
	// Limits caps incoming SAML messages.
	Limits saml.Limits
}

// SP is the bridge as SAML service provider toward its upstream IdPs. It
// implements slobridge.Authenticator and slobridge.UpstreamLogout.
type SP struct {
	opts      Options
	log       *slog.Logger
	reg       atomic.Pointer[registry]
	validator *saml.Validator
	// router picks the upstream of a login and serves the chooser.
	router *slobridge.LoginRouter
	// missing remembers the (upstream, claim) pairs whose mapped
	// attribute an assertion lacked, so that each is logged once.
	missing sync.Map
}

var (
	_ slobridge.Authenticator  = (*SP)(nil)
	_ slobridge.UpstreamLogout = (*SP)(nil)
)

// New checks opts, loads every upstream's metadata (a URL that cannot be
// fetched falls back to the last good copy in the store; with none, New
// fails) and returns the SP.
func New(ctx context.Context, opts Options) (*SP, error) {
	if opts.Engine == nil {
		return nil, errors.New("sp: an engine is required")
	}
	if len(opts.Cookies.Secret) < 32 {
		return nil, errors.New("sp: the session cookie secret must have at least 32 bytes")
	}
	if _, err := opts.Signer.SigAlg(); err != nil {
		return nil, fmt.Errorf("sp: signer: %w", err)
	}
	u, err := url.Parse(opts.BaseURL)
	if err != nil || (u.Scheme != "https" && u.Scheme != "http") || u.Host == "" {
		return nil, fmt.Errorf("sp: base URL %q is not an absolute http(s) URL", opts.BaseURL)
	}
	opts.BaseURL = strings.TrimSuffix(opts.BaseURL, "/")
	if opts.EntityID == "" {
		opts.EntityID = opts.BaseURL + PathMetadata
	}
	if len(opts.Upstreams) == 0 {
		return nil, errors.New("sp: at least one upstream IdP is required")
	}
	if opts.HTTPClient == nil {
		opts.HTTPClient = &http.Client{Timeout: 30 * time.Second}
	}
	if opts.BackChannelClient == nil {
		opts.BackChannelClient = opts.HTTPClient
	}
	if opts.LogoutPageURL == nil {
		base := opts.BaseURL
		opts.LogoutPageURL = func(id string) string { return base + slobridge.LogoutPagePath(id) }
	}
	if opts.Logger == nil {
		opts.Logger = slog.Default()
	}
	if opts.Now == nil {
		opts.Now = opts.Engine.Now
	}
	if opts.RetryFirst <= 0 {
		opts.RetryFirst = 5 * time.Second
	}
	cfg := Config{MetadataRefresh: opts.MetadataRefresh, SessionMaxAge: opts.SessionMaxAge,
		ClockSkew: opts.ClockSkew, SOAPLogoutWait: opts.SOAPLogoutWait, Upstreams: opts.Upstreams}
	cfg.ApplyDefaults()
	opts.MetadataRefresh, opts.SessionMaxAge, opts.ClockSkew, opts.SOAPLogoutWait, opts.Upstreams =
		cfg.MetadataRefresh, cfg.SessionMaxAge, cfg.ClockSkew, cfg.SOAPLogoutWait, cfg.Upstreams
	sp := &SP{
		opts: opts,
		log:  opts.Logger,
		validator: &saml.Validator{Store: opts.Engine.Store(), Now: opts.Now, Skew: opts.ClockSkew,
			// Upstreams may encrypt the NameID to the key our metadata offers
			// for encryption (the signing key, when it is RSA).
			DecryptionKey: opts.Signer.Key},
	}
	reg, err := sp.loadAll(ctx, nil)
	if err != nil {
		return nil, err
	}
	sp.reg.Store(reg)
	sp.router, err = slobridge.NewLoginRouter(slobridge.LoginRouterOptions{Engine: opts.Engine, Upstreams: sp.LoginUpstreams,
		ClientsOf: clientsOf, ChooserPath: PathLogin, ChooserURL: sp.url(PathLogin), Logger: opts.Logger})
	if err != nil {
		return nil, err
	}
	return sp, nil
}

// EntityID returns the SP entity ID.
func (sp *SP) EntityID() string { return sp.opts.EntityID }

func (sp *SP) url(path string) string { return sp.opts.BaseURL + path }

// Mount registers the SP's routes: metadata, login and chooser, ACS, and
// the single-logout endpoints (Redirect and POST on PathSLO, SOAP on
// PathSLOSOAP).
func (sp *SP) Mount(r gin.IRouter) {
	r.GET(PathMetadata, sp.handleMetadata)
	sp.router.Mount(r)
	r.POST(PathACS, sp.handleACS)
	r.GET(PathSLO, sp.handleSLO)
	r.POST(PathSLO, sp.handleSLO)
	r.POST(PathSLOSOAP, sp.handleSLOSOAP)
	r.GET(PathSLOComplete+"/:logout_id", sp.handleSLOComplete)
}

// Run refreshes URL metadata every MetadataRefresh until ctx ends; while
// an upstream is unavailable (Unavailable) it tries again sooner, after
// retryFirst doubling up to retryMax. (The upstream legs of logouts
// without a browser need no watcher: they are deliveries in the engine's
// outbox, UpstreamLegs and Notify.)
func (sp *SP) Run(ctx context.Context) error {
	retry := sp.opts.RetryFirst
	for {
		wait := sp.opts.MetadataRefresh
		if len(sp.reg.Load().down) > 0 {
			wait = min(wait, retry)
			retry = min(2*retry, retryMax)
		} else {
			retry = sp.opts.RetryFirst
		}
		t := time.NewTimer(wait)
		select {
		case <-ctx.Done():
			t.Stop()
			return nil
		case <-t.C:
			sp.Refresh(ctx)
		}
	}
}

// retryMax caps the wait between two attempts to read an unavailable
// upstream's metadata.
const retryMax = 5 * time.Minute

// Refresh reloads every upstream's metadata now, keeping the last good
// copy of any that fails.
func (sp *SP) Refresh(ctx context.Context) {
	reg, err := sp.loadAll(ctx, sp.reg.Load())
	if err != nil {
		sp.log.WarnContext(ctx, "refresh SAML upstream metadata", "error", err)
		return
	}
	sp.reg.Store(reg)
}

// badRequest answers a person with a plain 400 page; detail goes to the
// log only.
func (sp *SP) badRequest(c *gin.Context, what string, err error) {
	sp.log.WarnContext(c.Request.Context(), "saml sp: "+what, "error", err)
	sp.page(c, http.StatusBadRequest, "The request could not be processed: "+what+".")
}

// failPage renders a failure of the bridge: 503 with the store's reason
// when slobridge.Unavailable recognises err, else 500 with msg.
func (sp *SP) failPage(c *gin.Context, err error, msg string) {
	status := slobridge.FailureStatus(c.Writer.Header(), err)
	if why, ok := slobridge.Unavailable(err); ok {
		msg = why
	}
	sp.page(c, status, msg)
}

func (sp *SP) page(c *gin.Context, status int, msg string) {
	c.Header("Cache-Control", "no-store")
	c.Header("Content-Security-Policy", "default-src 'none'")
	c.Header("Content-Type", "text/html; charset=utf-8")
	c.Status(status)
	_ = msgPage.Execute(c.Writer, msg)
}
