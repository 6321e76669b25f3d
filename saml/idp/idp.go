package idp

import (
	"context"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"time"

	"github.com/gin-gonic/gin"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/slobridge/slobridge"
	"github.com/slobridge/slobridge/saml"
	"github.com/slobridge/slobridge/store"
)

// Routes served by the IdP, relative to the base URL. The base URL's path
// (if any) is the prefix of the router group passed to Mount.
const (
	PathMetadata = "/saml/idp/metadata"
	PathSSO      = "/saml/idp/sso"
	PathResume   = "/saml/idp/sso/resume"
	PathSLO      = "/saml/idp/slo"
	PathSLOSOAP  = "/saml/idp/slo/soap"
	// PathFront renders one SP's LogoutRequest inside the logout page's
	// iframe: PathFront + "/" + token.
	PathFront = "/saml/idp/slo/front"
	// PathFinish answers the SP that started a browser logout, after the
	// logout page: PathFinish + "/" + logout ID.
	PathFinish = "/saml/idp/slo/finish"
)

// maxBodyBytes caps request bodies (POST forms, SOAP envelopes).
const maxBodyBytes = 256 << 10

// Options configure an IdP. Zero values take the documented defaults.
type Options struct {
	// Config is the YAML configuration (SPs, lifetimes, policies).
	Config Config
	// BaseURL is the bridge's external URL (https, or http on loopback
	// when AllowLoopbackHTTP is set), without query; the IdP's endpoints
	// are BaseURL + Path*. Mount the IdP, and the root LogoutPage it sends
	// browsers to, on a router group for BaseURL's path. Required.
	BaseURL string
	// Engine is the logout engine. Required.
	Engine *slobridge.Engine
	// Store defaults to Engine.Store().
	Store store.Store
	// Cookies reads the bridge session cookie. Its Secret is required.
	Cookies slobridge.SessionCookies
	// Authenticator logs a browser in upstream. Required.
	Authenticator slobridge.Authenticator
	// Signer signs assertions, responses and LogoutRequests (RSA-SHA256 or
	// ECDSA-SHA256 by its key). Required.
	Signer *saml.Signer
	// PairwiseSecret keys the pairwise persistent NameIDs (HMAC-SHA256);
	// at least 32 bytes. Changing it changes every persistent NameID.
	// Default: derived from Cookies.Secret.
	PairwiseSecret []byte
	// MetadataClient fetches SP metadata URLs; default an http.Client with
	// a 30s timeout.
	MetadataClient *http.Client
	// AllowLoopbackHTTP allows an http base URL on a loopback host.
	AllowLoopbackHTTP bool
	// Registerer, when set, registers the IdP's Prometheus collectors
	// (slobridge_saml_front_channel_responses_total).
	Registerer prometheus.Registerer
	// Now is the clock; default Engine.Now. Rand is the source of IDs;
	// default crypto/rand.Reader. Logger defaults to slog.Default().
	Now    func() time.Time
	Rand   io.Reader
	Logger *slog.Logger
}

// IdP is the SAML identity provider. Create it with New, mount its routes
// with Mount and register Notifier on the engine for kind "saml".
type IdP struct {
	opts     Options
	cfg      Config
	base     *url.URL
	entityID string
	st       store.Store
	eng      *slobridge.Engine
	log      *slog.Logger
	now      func() time.Time
	rand     io.Reader
	// mu guards static, which RefreshMetadata replaces entries of,
	// pending, the configured SPs whose metadata URL failed at start-up,
	// and registered.
	mu      sync.RWMutex
	static  map[string]*SP
	pending []SPConfig
	// registered (also under mu) caches the SPs registered at run time,
	// parsed, by entity ID; see parsedSP.
	registered map[string]parsedSP
	metrics    *idpMetrics
}

// New validates opts, loads the configured SPs' metadata and returns the
// IdP. ctx bounds the metadata fetches. A metadata file that cannot be read
// or parsed is an error; a metadata URL that cannot be fetched is logged
// and retried by RefreshMetadata (the SP is unknown until then).
func New(ctx context.Context, opts Options) (*IdP, error) {
	if opts.Engine == nil {
		return nil, errors.New("saml idp: needs an engine")
	}
	if opts.Authenticator == nil {
		return nil, errors.New("saml idp: needs an authenticator")
	}
	if len(opts.Cookies.Secret) < 32 {
		return nil, errors.New("saml idp: session cookie secret must be at least 32 bytes")
	}
	if _, err := opts.Signer.SigAlg(); err != nil {
		return nil, fmt.Errorf("saml idp: signer: %w", err)
	}
	base, err := url.Parse(strings.TrimSuffix(opts.BaseURL, "/"))
	if err != nil || !base.IsAbs() || base.Host == "" || base.RawQuery != "" || base.Fragment != "" {
		return nil, fmt.Errorf("saml idp: base URL %q must be an absolute URL without query or fragment", opts.BaseURL)
	}
	if base.Scheme != "https" && !(base.Scheme == "http" && opts.AllowLoopbackHTTP && isLoopback(base.Hostname())) {
		return nil, fmt.Errorf("saml idp: base URL %q must use https", opts.BaseURL)
	}
	if err := opts.Config.Validate(); err != nil {
		return nil, fmt.Errorf("saml idp: configuration: %w", err)
	}
	if opts.Store == nil {
		opts.Store = opts.Engine.Store()
	}
	if opts.Now == nil {
		opts.Now = opts.Engine.Now
	}
	if opts.Rand == nil {
		opts.Rand = rand.Reader
	}
	if opts.Logger == nil {
		opts.Logger = slog.Default()
	}
	if opts.MetadataClient == nil {
		opts.MetadataClient = &http.Client{Timeout: 30 * time.Second}
	}
	if len(opts.PairwiseSecret) == 0 {
		m := hmac.New(sha256.New, opts.Cookies.Secret)
		m.Write([]byte("slobridge-saml-pairwise-nameid"))
		opts.PairwiseSecret = m.Sum(nil)
	}
	if len(opts.PairwiseSecret) < 32 {
		return nil, errors.New("saml idp: pairwise secret must be at least 32 bytes")
	}
	idp := &IdP{
		opts: opts, cfg: opts.Config.withDefaults(), base: base,
		st: opts.Store, eng: opts.Engine, log: opts.Logger, now: opts.Now, rand: &lockedReader{r: opts.Rand},
		static: map[string]*SP{},
	}
	if idp.metrics, err = newMetrics(opts.Registerer); err != nil {
		return nil, fmt.Errorf("saml idp: register metrics: %w", err)
	}
	idp.entityID = idp.cfg.EntityID
	if idp.entityID == "" {
		idp.entityID = idp.endpoint(PathMetadata)
	}
	for i, c := range idp.cfg.ServiceProviders {
		raw, err := idp.loadMetadata(ctx, c)
		if err != nil && c.MetadataURL != "" {
			// An SP whose metadata server is down must not keep the bridge
			// from starting: it is unknown until RefreshMetadata loads it.
			idp.log.WarnContext(ctx, "saml sp metadata unavailable; retried by the metadata refresh",
				"metadata_url", c.MetadataURL, "error", err)
			idp.pending = append(idp.pending, c)
			continue
		}
		if err != nil {
			return nil, fmt.Errorf("saml idp: service_providers[%d]: %w", i, err)
		}
		sp, err := parseSP(c, raw)
		if err != nil {
			return nil, fmt.Errorf("saml idp: service_providers[%d]: %w", i, err)
		}
		if _, dup := idp.static[sp.EntityID]; dup {
			return nil, fmt.Errorf("saml idp: service_providers[%d]: %s registered twice", i, sp.EntityID)
		}
		idp.static[sp.EntityID] = sp
	}
	return idp, nil
}

// EntityID returns the IdP's entity ID.
func (idp *IdP) EntityID() string { return idp.entityID }

// endpoint returns the absolute URL of one of the IdP's paths.
func (idp *IdP) endpoint(path string) string { return idp.base.String() + path }

// localPath returns the path of one of the IdP's routes on this host (for
// redirects that stay on the bridge).
func (idp *IdP) localPath(path string) string { return idp.base.Path + path }

// Mount registers the IdP's routes on r: metadata, SSO (Redirect, POST),
// SLO (Redirect, POST, SOAP), the front-channel iframe page and the
// finishing step of a browser logout.
func (idp *IdP) Mount(r gin.IRouter) {
	r.GET(PathMetadata, idp.handleMetadata)
	r.GET(PathSSO, idp.handleSSO)
	r.POST(PathSSO, idp.handleSSO)
	r.GET(PathResume, idp.handleResume)
	r.GET(PathSLO, idp.handleSLO)
	r.POST(PathSLO, idp.handleSLO)
	r.POST(PathSLOSOAP, idp.handleSOAP)
	r.GET(PathFront+"/:token", idp.handleFront)
	r.GET(PathFinish+"/:logout_id", idp.handleFinish)
}

// newID returns an XML ID: a letter first (xs:ID is an NCName), then 128
// random bits.
func (idp *IdP) newID() (string, error) {
	t, err := idp.token(16)
	if err != nil {
		return "", err
	}
	return "_" + t, nil
}

// token returns n random bytes, base64url without padding.
func (idp *IdP) token(n int) (string, error) {
	b := make([]byte, n)
	if _, err := io.ReadFull(idp.rand, b); err != nil {
		return "", fmt.Errorf("saml idp: random source: %w", err)
	}
	return base64.RawURLEncoding.EncodeToString(b), nil
}

func isLoopback(h string) bool {
	if h == "localhost" {
		return true
	}
	ip := net.ParseIP(h)
	return ip != nil && ip.IsLoopback()
}

// lockedReader serializes reads of a random source that may not be safe
// for concurrent use (a seeded generator in tests).
type lockedReader struct {
	mu sync.Mutex
	r  io.Reader
}

// Read implements io.Reader.
func (l *lockedReader) Read(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.r.Read(p)
}
