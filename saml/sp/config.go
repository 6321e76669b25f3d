package sp

import (
	"fmt"
	"net/url"
	"strings"
	"time"

	"github.com/slobridge/slobridge/saml"
)

// Config is the YAML configuration of the SAML service provider (the
// `saml_sp:` section of the bridge configuration).
type Config struct {
	// EntityID is the bridge's SP entity ID; default
	// <base URL>/saml/sp/metadata.
	EntityID string `yaml:"entity_id"`
	// CertFile and KeyFile hold the SP signing certificate and its private
	// key (PEM; RSA for RSA-SHA256, or EC P-256). Required.
	CertFile string `yaml:"cert_file"`
	KeyFile  string `yaml:"key_file"`
	// Upstreams are the upstream IdPs. At least one.
	Upstreams []UpstreamConfig `yaml:"upstreams"`
	// MetadataRefresh is how often metadata fetched by URL is refreshed;
	// default 1h.
	MetadataRefresh time.Duration `yaml:"metadata_refresh"`
	// MetadataRetry is the first wait before the metadata URL of an
	// upstream that could not be read is tried again (it doubles up to
	// 5 minutes); default 5s.
	MetadataRetry time.Duration `yaml:"metadata_retry"`
	// SessionMaxAge caps a bridge session when the upstream sets no
	// earlier SessionNotOnOrAfter; default 8h.
	SessionMaxAge time.Duration `yaml:"session_max_age"`
	// ClockSkew is the allowed clock difference with IdPs; default 3m.
	ClockSkew time.Duration `yaml:"clock_skew"`
	// SOAPLogoutWait bounds how long a SOAP LogoutRequest from an IdP
	// waits for the back-channel deliveries before it is answered; default
	// 10s.
	SOAPLogoutWait time.Duration `yaml:"soap_logout_wait"`
}

// UpstreamConfig configures one upstream IdP.
type UpstreamConfig struct {
	// Name keys the upstream in sessions and URLs ([a-z0-9._-]). Required.
	Name string `yaml:"name"`
	// DisplayName is shown on the chooser page; default Name.
	DisplayName string `yaml:"display_name"`
	// MetadataURL or MetadataFile locates the IdP metadata (exactly one).
	// URL metadata is fetched at start-up and refreshed; the last good
	// copy is kept (in memory and in the store) when a fetch fails.
	MetadataURL  string `yaml:"metadata_url"`
	MetadataFile string `yaml:"metadata_file"`
	// MetadataCertFile, when set, names a PEM file of certificates one of
	// which must have signed the metadata (an enveloped signature on its
	// root): required when the metadata comes over a channel that does not
	// authenticate its publisher, such as a federation aggregate.
	MetadataCertFile string `yaml:"metadata_cert_file"`
	// AllowSHA1 accepts RSA-SHA1 signatures from this IdP. Off by default.
	AllowSHA1 bool `yaml:"allow_sha1"`
	// Clients lists the OIDC client IDs (and SAML SP entity IDs) that log
	// in at this upstream without the chooser page.
	Clients []string `yaml:"clients"`
	// Domains send a login whose login_hint is an address in one of them
	// to this upstream.
	Domains []string `yaml:"domains"`
	// AllowedClients, when set, are the only OIDC clients and SAML SPs
	// that may log in through this upstream.
	AllowedClients []string `yaml:"allowed_clients"`
	// NameIDFormat is requested in the AuthnRequest's NameIDPolicy;
	// default persistent.
	NameIDFormat string `yaml:"name_id_format"`
	// UserIDAttribute names the assertion attribute that is the user's
	// stable ID at the bridge; default: the NameID value.
	UserIDAttribute string `yaml:"user_id_attribute"`
	// UserIDPrefix is put before the user ID (keeps users of several
	// upstreams apart), e.g. "corp:".
	UserIDPrefix string `yaml:"user_id_prefix"`
	// Attributes maps a bridge claim (email, name, groups ...) to the SAML
	// attribute Name (or FriendlyName) that carries it.
	Attributes map[string]string `yaml:"attributes"`
}

const (
	defaultRefresh   = time.Hour
	defaultMaxAge    = 8 * time.Hour
	defaultSOAPWait  = 10 * time.Second
	nameIDPersistent = "urn:oasis:names:tc:SAML:2.0:nameid-format:persistent"
)

// ApplyDefaults fills the zero fields with their defaults.
func (c *Config) ApplyDefaults() {
	if c.MetadataRefresh <= 0 {
		c.MetadataRefresh = defaultRefresh
	}
	if c.SessionMaxAge <= 0 {
		c.SessionMaxAge = defaultMaxAge
	}
	if c.ClockSkew <= 0 {
		c.ClockSkew = saml.DefaultSkew
	}
	if c.SOAPLogoutWait <= 0 {
		c.SOAPLogoutWait = defaultSOAPWait
	}
	for i := range c.Upstreams {
		if c.Upstreams[i].NameIDFormat == "" {
			c.Upstreams[i].NameIDFormat = nameIDPersistent
		}
	}
}

// Validate returns every problem of the configuration, each prefixed with
// its key path under prefix (e.g. "saml_sp").
func (c *Config) Validate(prefix string) []string {
	var p []string
	add := func(key, format string, args ...any) {
		p = append(p, prefix+"."+key+": "+fmt.Sprintf(format, args...))
	}
	if c.CertFile == "" {
		add("cert_file", "required")
	}
	if c.KeyFile == "" {
		add("key_file", "required")
	}
	if c.EntityID != "" {
		if u, err := url.Parse(c.EntityID); err != nil || u.Scheme == "" {
			add("entity_id", "must be an absolute URI")
		}
	}
	if len(c.Upstreams) == 0 {
		add("upstreams", "at least one upstream IdP is required")
	}
	seen := map[string]bool{}
	for i, u := range c.Upstreams {
		k := fmt.Sprintf("upstreams[%d]", i)
		switch {
		case u.Name == "":
			add(k+".name", "required")
		case strings.Trim(u.Name, "abcdefghijklmnopqrstuvwxyz0123456789._-") != "":
			add(k+".name", "use only a-z 0-9 . _ -")
		case seen[u.Name]:
			add(k+".name", "duplicate upstream %q", u.Name)
		}
		seen[u.Name] = true
		if (u.MetadataURL == "") == (u.MetadataFile == "") {
			add(k, "set exactly one of metadata_url and metadata_file")
		}
		if u.MetadataURL != "" {
			if mu, err := url.Parse(u.MetadataURL); err != nil || (mu.Scheme != "https" && mu.Scheme != "http") || mu.Host == "" {
				add(k+".metadata_url", "must be an absolute http(s) URL")
			}
		}
	}
	return p
}

// Options turns the configuration into SP options: it loads the signing
// key. The caller adds Engine, Cookies, BaseURL, the HTTP clients and the
// logger.
func (c Config) Options() (Options, error) {
	c.ApplyDefaults()
	if probs := c.Validate("saml_sp"); len(probs) > 0 {
		return Options{}, fmt.Errorf("sp: configuration: %s", strings.Join(probs, "; "))
	}
	signer, err := saml.LoadSigner(c.CertFile, c.KeyFile)
	if err != nil {
		return Options{}, fmt.Errorf("sp: signing key: %w", err)
	}
	return Options{
		EntityID:        c.EntityID,
		Signer:          signer,
		Upstreams:       c.Upstreams,
		MetadataRefresh: c.MetadataRefresh,
		RetryFirst:      c.MetadataRetry,
		SessionMaxAge:   c.SessionMaxAge,
		ClockSkew:       c.ClockSkew,
		SOAPLogoutWait:  c.SOAPLogoutWait,
	}, nil
}
