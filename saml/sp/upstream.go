package sp

import (
	"context"
	"crypto/x509"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"os"
	"slices"
	"time"

	"github.com/beevik/etree"
	crewjam "github.com/crewjam/saml"
	"github.com/crewjam/saml/samlsp"

	"github.com/slobridge/slobridge/saml"
	"github.com/slobridge/slobridge/store"
)

// metadataNamespace keeps the last good metadata of URL upstreams in the
// store, so that a bridge restarting while an IdP's metadata URL is down
// still starts.
const (
	metadataNamespace = "saml-sp-metadata"
	metadataKeep      = 30 * 24 * time.Hour
	maxMetadata       = 2 << 20
)

// errBadMetadata marks metadata that was read but is not usable.
var errBadMetadata = errors.New("unusable metadata")

// Unavailable returns the upstreams the bridge runs without, by name, with
// why: their metadata URL could not be read at start and no copy is kept.
// Run retries them; /readyz and the chooser page show them.
func (sp *SP) Unavailable() map[string]string {
	reg := sp.reg.Load()
	if len(reg.down) == 0 {
		return nil
	}
	out := make(map[string]string, len(reg.down))
	for _, d := range reg.down {
		out[d.cfg.Name] = d.err
	}
	return out
}

// UpstreamHealth is what an operator needs to know of one upstream's
// metadata.
type UpstreamHealth struct {
	Name string
	// Loaded is when the metadata in use was read; zero while the
	// upstream is unavailable.
	Loaded time.Time
	// RefreshError says why the last refresh failed while an older copy
	// is in use (an upstream without any copy is in Unavailable instead).
	RefreshError string
	// CertNotAfter is when the first of the IdP's signing certificates
	// expires.
	CertNotAfter time.Time
}

// Health reports each configured upstream's metadata, in configuration
// order.
func (sp *SP) Health() []UpstreamHealth {
	reg := sp.reg.Load()
	out := make([]UpstreamHealth, 0, len(sp.opts.Upstreams))
	for _, c := range sp.opts.Upstreams {
		h := UpstreamHealth{Name: c.Name, RefreshError: reg.stale[c.Name]}
		if u := reg.byName[c.Name]; u != nil {
			h.Loaded = u.loaded
			for _, cert := range u.trust.Certs {
				if h.CertNotAfter.IsZero() || cert.NotAfter.Before(h.CertNotAfter) {
					h.CertNotAfter = cert.NotAfter
				}
			}
		}
		out = append(out, h)
	}
	return out
}

// upstream is one IdP with its parsed metadata.
type upstream struct {
	cfg   UpstreamConfig
	raw   []byte
	idp   *crewjam.EntityDescriptor
	trust saml.Trust
	// csp is crewjam's service provider toward this IdP, used for the
	// AuthnRequest and the SSO Response validation.
	csp *crewjam.ServiceProvider
	// loaded is when this metadata was read from its source (or, for a
	// kept copy read back from the store at start, when that happened).
	loaded time.Time
}

// registry is an immutable snapshot of the upstreams, swapped on refresh.
type registry struct {
	byName   map[string]*upstream
	byEntity map[string]*upstream
	order    []*upstream
	// down lists, in configuration order, the upstreams whose metadata URL
	// could not be read and of which no copy is kept: the bridge runs
	// without them and Run retries them.
	down []downUpstream
	// stale names the upstreams running on a kept copy because the last
	// refresh failed, with why.
	stale map[string]string
}

// downUpstream is an upstream the bridge cannot use yet.
type downUpstream struct {
	cfg UpstreamConfig
	err string
}

// loadAll builds a registry from every configured upstream. For an
// upstream whose metadata cannot be loaded it keeps the copy in prev, then
// the one in the store; with neither it fails.
func (sp *SP) loadAll(ctx context.Context, prev *registry) (*registry, error) {
	reg := &registry{byName: map[string]*upstream{}, byEntity: map[string]*upstream{}, stale: map[string]string{}}
	var errs []error
	for _, cfg := range sp.opts.Upstreams {
		u, err := sp.loadUpstream(ctx, cfg)
		if err != nil {
			old := (*upstream)(nil)
			if prev != nil {
				old = prev.byName[cfg.Name]
			}
			if old == nil {
				old, _ = sp.storedUpstream(ctx, cfg)
			}
			if old == nil && cfg.MetadataURL != "" && !errors.Is(err, errBadMetadata) {
				// Unreachable, with no copy: the bridge starts without it
				// (logouts and the other upstreams keep working) and Run
				// retries. A metadata file, or metadata that does not
				// parse, is a configuration error.
				sp.log.WarnContext(ctx, "SAML upstream unavailable: its metadata URL cannot be read; retrying",
					"upstream", cfg.Name, "error", err)
				reg.down = append(reg.down, downUpstream{cfg: cfg, err: err.Error()})
				continue
			}
			if old == nil {
				errs = append(errs, fmt.Errorf("upstream %q: %w", cfg.Name, err))
				continue
			}
			sp.log.WarnContext(ctx, "SAML upstream metadata unavailable, keeping the last good copy",
				"upstream", cfg.Name, "error", err)
			u = old
			reg.stale[cfg.Name] = err.Error()
		}
		if other, dup := reg.byEntity[u.idp.EntityID]; dup {
			errs = append(errs, fmt.Errorf("upstreams %q and %q have the same entity ID %q", other.cfg.Name, cfg.Name, u.idp.EntityID))
			continue
		}
		reg.byName[cfg.Name] = u
		reg.byEntity[u.idp.EntityID] = u
		reg.order = append(reg.order, u)
	}
	if len(errs) > 0 {
		return nil, fmt.Errorf("sp: load upstream metadata: %w", errors.Join(errs...))
	}
	return reg, nil
}

func (sp *SP) loadUpstream(ctx context.Context, cfg UpstreamConfig) (*upstream, error) {
	data, err := saml.ReadMetadata(ctx, sp.opts.HTTPClient, cfg.MetadataFile, cfg.MetadataURL, maxMetadata)
	if err != nil {
		return nil, err
	}
	u, err := sp.buildUpstream(cfg, data)
	if err != nil {
		return nil, fmt.Errorf("%w: %w", errBadMetadata, err)
	}
	if cfg.MetadataURL != "" {
		now := sp.opts.Now()
		_ = sp.opts.Engine.Store().DeleteRecord(ctx, metadataNamespace, cfg.Name)
		if err := sp.opts.Engine.Store().PutRecord(ctx, store.Record{Namespace: metadataNamespace, Key: cfg.Name,
			Value: data, ExpiresAt: now.Add(metadataKeep)}); err != nil {
			sp.log.WarnContext(ctx, "keep SAML upstream metadata", "upstream", cfg.Name, "error", err)
		}
	}
	return u, nil
}

func (sp *SP) storedUpstream(ctx context.Context, cfg UpstreamConfig) (*upstream, error) {
	if cfg.MetadataURL == "" {
		return nil, store.ErrNotFound
	}
	rec, err := sp.opts.Engine.Store().GetRecord(ctx, metadataNamespace, cfg.Name, sp.opts.Now())
	if err != nil {
		return nil, err
	}
	u, err := sp.buildUpstream(cfg, rec.Value)
	if err == nil {
		u.loaded = rec.ExpiresAt.Add(-metadataKeep) // when the copy was kept
	}
	return u, err
}

// parseIdPMetadata checks and parses an upstream's metadata: its
// signature when MetadataCertFile is set (returning the verified bytes),
// an IDPSSODescriptor, validUntil not passed at now, and signing
// certificates.
func parseIdPMetadata(cfg UpstreamConfig, data []byte, now time.Time) ([]byte, *crewjam.EntityDescriptor, []*x509.Certificate, error) {
	if err := saml.CheckXML(data); err != nil {
		return nil, nil, nil, fmt.Errorf("metadata: %w", err)
	}
	if cfg.MetadataCertFile != "" {
		var err error
		if data, err = verifyMetadata(cfg, data); err != nil {
			return nil, nil, nil, err
		}
	}
	ed, err := samlsp.ParseMetadata(data)
	if err != nil {
		return nil, nil, nil, fmt.Errorf("parse metadata: %w", err)
	}
	if len(ed.IDPSSODescriptors) == 0 {
		return nil, nil, nil, fmt.Errorf("metadata of %q has no IDPSSODescriptor", ed.EntityID)
	}
	if !ed.ValidUntil.IsZero() && ed.ValidUntil.Before(now) {
		return nil, nil, nil, fmt.Errorf("metadata of %q expired at %s", ed.EntityID, ed.ValidUntil.Format(time.RFC3339))
	}
	var certs []*x509.Certificate
	for _, kd := range ed.IDPSSODescriptors[0].KeyDescriptors {
		if kd.Use != "" && kd.Use != "signing" {
			continue
		}
		for _, xc := range kd.KeyInfo.X509Data.X509Certificates {
			c, err := saml.ParseCertificateBase64(xc.Data)
			if err != nil {
				return nil, nil, nil, fmt.Errorf("metadata of %q: %w", ed.EntityID, err)
			}
			certs = append(certs, c)
		}
	}
	if len(certs) == 0 {
		return nil, nil, nil, fmt.Errorf("metadata of %q has no signing certificate", ed.EntityID)
	}
	return data, ed, certs, nil
}

// CheckMetadata reads and checks an upstream's metadata as serve would
// (slobridge check): its metadata_file, or with a client its metadata_url
// (check --online; without one a URL is not fetched and nothing is
// checked). It returns the attributes (Name and FriendlyName) the IdP's
// metadata says it releases (saml:Attribute elements of its
// IDPSSODescriptor); none when it says nothing, which most IdPs do.
func CheckMetadata(ctx context.Context, client *http.Client, cfg UpstreamConfig, now time.Time) ([]string, error) {
	if cfg.MetadataFile == "" && client == nil {
		return nil, nil
	}
	data, err := saml.ReadMetadata(ctx, client, cfg.MetadataFile, cfg.MetadataURL, maxMetadata)
	if err != nil {
		return nil, err
	}
	_, ed, _, err := parseIdPMetadata(cfg, data, now)
	if err != nil {
		return nil, err
	}
	var attrs []string
	for _, a := range ed.IDPSSODescriptors[0].Attributes {
		attrs = append(attrs, a.Name)
		if a.FriendlyName != "" {
			attrs = append(attrs, a.FriendlyName)
		}
	}
	return attrs, nil
}

// buildUpstream parses IdP metadata (an EntityDescriptor, or an
// EntitiesDescriptor holding exactly one IdP) and prepares the keys.
func (sp *SP) buildUpstream(cfg UpstreamConfig, data []byte) (*upstream, error) {
	data, ed, certs, err := parseIdPMetadata(cfg, data, sp.opts.Now())
	if err != nil {
		return nil, err
	}
	acs, _ := url.Parse(sp.url(PathACS))
	md, _ := url.Parse(sp.url(PathMetadata))
	slo, _ := url.Parse(sp.url(PathSLO))
	csp := &crewjam.ServiceProvider{
		EntityID:          sp.opts.EntityID,
		Key:               sp.opts.Signer.Key,
		Certificate:       sp.opts.Signer.Cert,
		MetadataURL:       *md,
		AcsURL:            *acs,
		SloURL:            *slo,
		IDPMetadata:       ed,
		AuthnNameIDFormat: crewjam.NameIDFormat(cfg.NameIDFormat),
		AllowIDPInitiated: false,
		HTTPClient:        sp.opts.HTTPClient,
	}
	return &upstream{cfg: cfg, raw: data, idp: ed, csp: csp, loaded: sp.opts.Now(),
		trust: saml.Trust{EntityID: ed.EntityID, Certs: certs, AllowSHA1: cfg.AllowSHA1}}, nil
}

// endpoint returns the first endpoint of the upstream's IdP role among
// services with one of the bindings, in the order of bindings.
func endpoint(eps []crewjam.Endpoint, bindings ...string) (crewjam.Endpoint, bool) {
	for _, b := range bindings {
		for _, e := range eps {
			if e.Binding == b && e.Location != "" {
				return e, true
			}
		}
	}
	return crewjam.Endpoint{}, false
}

func (u *upstream) sso(bindings ...string) (crewjam.Endpoint, bool) {
	return endpoint(u.idp.IDPSSODescriptors[0].SingleSignOnServices, bindings...)
}

func (u *upstream) slo(bindings ...string) (crewjam.Endpoint, bool) {
	return endpoint(u.idp.IDPSSODescriptors[0].SingleLogoutServices, bindings...)
}

// frameOrigins returns the origins of the upstream's front-channel SLO
// endpoints (Location and ResponseLocation of its HTTP-Redirect and
// HTTP-POST SingleLogoutServices): the pages that send the bridge a
// LogoutRequest in an iframe, which may frame the bridge's answer.
func (u *upstream) frameOrigins() []string {
	var out []string
	for _, e := range u.idp.IDPSSODescriptors[0].SingleLogoutServices {
		if e.Binding != saml.BindingRedirect && e.Binding != saml.BindingPOST {
			continue
		}
		for _, l := range []string{e.Location, e.ResponseLocation} {
			if o := saml.Origin(l); o != "" && !slices.Contains(out, o) {
				out = append(out, o)
			}
		}
	}
	return out
}

func (u *upstream) displayName() string {
	if u.cfg.DisplayName != "" {
		return u.cfg.DisplayName
	}
	return u.cfg.Name
}

// verifyMetadata checks the metadata's signature against the configured
// certificates and returns the signed element's verified bytes.
func verifyMetadata(cfg UpstreamConfig, data []byte) ([]byte, error) {
	pemData, err := os.ReadFile(cfg.MetadataCertFile)
	if err != nil {
		return nil, fmt.Errorf("metadata signing certificate: %w", err)
	}
	certs, err := saml.ParseCertificatesPEM(pemData)
	if err != nil {
		return nil, fmt.Errorf("metadata signing certificate: %w", err)
	}
	doc := etree.NewDocument()
	if err := doc.ReadFromBytes(data); err != nil {
		return nil, fmt.Errorf("metadata: %w", err)
	}
	el, err := saml.VerifyMetadata(doc.Root(), saml.Trust{EntityID: cfg.Name + " metadata", Certs: certs, AllowSHA1: cfg.AllowSHA1})
	if err != nil {
		return nil, fmt.Errorf("metadata signature: %w", err)
	}
	out := etree.NewDocument()
	out.SetRoot(el)
	return out.WriteToBytes()
}
