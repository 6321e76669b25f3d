package idp

import (
	"errors"
	"fmt"
	"net/url"
	"slices"
	"time"

	bsaml "github.com/slobridge/slobridge/saml"
)

// NameID policies an SP can be configured with (SPConfig.NameID).
const (
	// NameIDPersistent is a pairwise persistent identifier (SAML Core
	// §8.3.7): stable for one user at one SP, different at every SP, so SPs
	// cannot correlate users. The default.
	NameIDPersistent = "persistent"
	// NameIDEmail is the user's email address (the "email" attribute of the
	// bridge session).
	NameIDEmail = "email"
	// NameIDTransient is an opaque identifier fresh for each bridge session
	// (SAML Core §8.3.8).
	NameIDTransient = "transient"
)

// NameID Format URIs (SAML Core §8.3).
const (
	FormatPersistent  = "urn:oasis:names:tc:SAML:2.0:nameid-format:persistent"
	FormatTransient   = "urn:oasis:names:tc:SAML:2.0:nameid-format:transient"
	FormatEmail       = "urn:oasis:names:tc:SAML:1.1:nameid-format:emailAddress"
	FormatUnspecified = bsaml.NameIDFormatUnspecified
)

// Logout channels an SP can be configured with (SPConfig.LogoutChannels).
const (
	// ChannelFront notifies the SP through the browser: the logout page
	// loads an iframe that carries the LogoutRequest (Redirect or POST).
	ChannelFront = "front"
	// ChannelBack notifies the SP server to server with a SOAP
	// LogoutRequest (SAML Bindings §3.2), retried by the engine.
	ChannelBack = "back"
)

// Front-channel bindings (SPConfig.FrontChannelBinding).
const (
	BindingRedirect = "redirect"
	BindingPOST     = "post"
)

// Config is the YAML-taggable configuration of the SAML IdP. Zero values
// take the defaults documented on each field.
type Config struct {
	// EntityID is the IdP's entity ID; default the metadata URL
	// (<base URL>/saml/idp/metadata).
	EntityID string `yaml:"entity_id"`
	// RequireSignedAuthnRequests requires a valid signature on every
	// AuthnRequest, whatever the SP's metadata says. Without it, a
	// signature is required from SPs whose metadata has
	// AuthnRequestsSigned="true" or whose SPConfig requires it; a signature
	// that is present is always verified.
	RequireSignedAuthnRequests bool `yaml:"require_signed_authn_requests"`
	// AssertionLifetime bounds the assertion's Conditions and its
	// SubjectConfirmationData; default 5m.
	AssertionLifetime time.Duration `yaml:"assertion_lifetime"`
	// ClockSkew is the tolerance on IssueInstant of incoming messages;
	// default 3m.
	ClockSkew time.Duration `yaml:"clock_skew"`
	// MaxMessageAge is how old an incoming request may be (IssueInstant);
	// default 10m.
	MaxMessageAge time.Duration `yaml:"max_message_age"`
	// SOAPLogoutWait is how long a SOAP LogoutRequest from an SP waits for
	// the back-channel deliveries before it answers (Success or
	// PartialLogout); default 10s. The upstream IdP's leg (SOAP through
	// the outbox) is one of those deliveries, so an SP's SOAP client should
	// allow a little longer than this.
	SOAPLogoutWait time.Duration `yaml:"soap_logout_wait"`
	// BrowserLogoutWait is how long the answer to a browser LogoutRequest
	// waits, after the logout page, for back-channel deliveries still in
	// flight; default 5s.
	BrowserLogoutWait time.Duration `yaml:"browser_logout_wait"`
	// FrameAnswerTimeout is the deadline of an SP's answer to a
	// LogoutRequest sent in an iframe of the logout page; default 15s (the
	// page itself stops waiting for its iframes after 5s). An answer after
	// it counts as failed: the logout went on without it.
	FrameAnswerTimeout time.Duration `yaml:"frame_answer_timeout"`
	// TopLevelStepTimeout is the deadline of one step of the top-level
	// redirect chain (FrontChannelTopLevel): an SP that has not sent the
	// browser back with its answer by then is failed with that reason, and
	// when the person comes back to the bridge (the back button, the
	// logout page) the chain goes on with the next step, the upstream IdP
	// and the answer to the initiator (PartialLogout). Default 30s.
	TopLevelStepTimeout time.Duration `yaml:"top_level_step_timeout"`
	// MetadataValidity is the validUntil of the IdP metadata, from now;
	// default 7 days.
	MetadataValidity time.Duration `yaml:"metadata_validity"`
	// MetadataRefresh is how often Run fetches the metadata of SPs
	// registered by URL again (new keys, endpoints); default 6h. A failed
	// fetch keeps the last good copy.
	MetadataRefresh time.Duration `yaml:"metadata_refresh"`
	// ServiceProviders are the SPs registered from the configuration.
	ServiceProviders []SPConfig `yaml:"service_providers"`
}

// SPConfig registers one service provider.
type SPConfig struct {
	// MetadataFile is a path to the SP's metadata (an EntityDescriptor).
	MetadataFile string `yaml:"metadata_file"`
	// MetadataURL is where the SP's metadata is fetched from at start-up
	// (https, or http on loopback in development).
	MetadataURL string `yaml:"metadata_url"`
	// EntityID, when set, must equal the entityID of the metadata.
	EntityID string `yaml:"entity_id"`
	// Name is shown on the logout status page; default the entity ID.
	Name string `yaml:"name"`
	// NameID is the NameID policy: "persistent" (pairwise), "email" or
	// "transient". Unset, the SP gets the first NameIDFormat of its
	// metadata the bridge issues (persistent when none), and an
	// AuthnRequest may ask for any format the bridge issues (as Apache
	// mod_auth_mellon asks for transient); set, it is the only one.
	NameID string `yaml:"name_id"`
	// LogoutChannels says how the SP is told about a logout: "back" (SOAP),
	// "front" (browser) or both. Default: "back" when the metadata has a
	// SOAP SingleLogoutService, else "front" when it has a Redirect or POST
	// one, else none.
	LogoutChannels []string `yaml:"logout_channels"`
	// FrontChannelBinding is "redirect" or "post"; default the first of
	// the two in the metadata's SingleLogoutService order.
	FrontChannelBinding string `yaml:"front_channel_binding"`
	// FrontChannelTopLevel notifies this front-channel SP by a top-level
	// redirect chain instead of an iframe, for SPs whose session cookie a
	// browser does not send in a third-party iframe. The chain runs in the
	// logout page's continue step of every browser logout (before the
	// upstream logout and the final redirect, or the answer to an SP that
	// started it); a logout without a browser cannot reach the SP.
	FrontChannelTopLevel bool `yaml:"front_channel_top_level"`
	// AllowSHA1 accepts RSA-SHA1 signatures and SHA-1 digests from this SP
	// (older SPs, and crewjam's samlsp by default, sign with them). Off by
	// default.
	AllowSHA1 bool `yaml:"allow_sha1"`
	// RequireSignedAuthnRequests requires signed AuthnRequests from this
	// SP even when its metadata does not say AuthnRequestsSigned.
	RequireSignedAuthnRequests bool `yaml:"require_signed_authn_requests"`
	// Attributes lists the bridge session attributes sent to this SP;
	// default all of them.
	Attributes []string `yaml:"attributes"`
}

// withDefaults returns c with every zero duration replaced by its default.
func (c Config) withDefaults() Config {
	def := func(d *time.Duration, v time.Duration) {
		if *d <= 0 {
			*d = v
		}
	}
	def(&c.AssertionLifetime, 5*time.Minute)
	def(&c.ClockSkew, 3*time.Minute)
	def(&c.MaxMessageAge, 10*time.Minute)
	def(&c.SOAPLogoutWait, 10*time.Second)
	def(&c.BrowserLogoutWait, 5*time.Second)
	def(&c.FrameAnswerTimeout, 15*time.Second)
	def(&c.TopLevelStepTimeout, 30*time.Second)
	def(&c.MetadataValidity, 7*24*time.Hour)
	def(&c.MetadataRefresh, 6*time.Hour)
	return c
}

// Validate returns every problem of the configuration, each with its key
// path (joined with errors.Join), or nil.
func (c Config) Validate() error {
	var errs []error
	if c.EntityID != "" {
		if u, err := url.Parse(c.EntityID); err != nil || !u.IsAbs() {
			errs = append(errs, fmt.Errorf("entity_id: %q is not an absolute URI", c.EntityID))
		}
	}
	for i, sp := range c.ServiceProviders {
		if err := sp.validate(); err != nil {
			errs = append(errs, fmt.Errorf("service_providers[%d]: %w", i, err))
		}
	}
	return errors.Join(errs...)
}

// validate checks one SP registration without loading its metadata.
func (s SPConfig) validate() error {
	var errs []error
	switch {
	case s.MetadataFile == "" && s.MetadataURL == "":
		errs = append(errs, errors.New("metadata_file or metadata_url is required"))
	case s.MetadataFile != "" && s.MetadataURL != "":
		errs = append(errs, errors.New("metadata_file and metadata_url are exclusive"))
	}
	return errors.Join(append(errs, s.validateOptions())...)
}

// validateOptions checks a registration apart from where its metadata
// comes from (metadata pasted by an operator has no source to name).
func (s SPConfig) validateOptions() error {
	var errs []error
	if s.MetadataURL != "" {
		if u, err := url.Parse(s.MetadataURL); err != nil || (u.Scheme != "https" && u.Scheme != "http") || u.Host == "" {
			errs = append(errs, fmt.Errorf("metadata_url: %q is not an http(s) URL", s.MetadataURL))
		}
	}
	switch s.NameID {
	case "", NameIDPersistent, NameIDEmail, NameIDTransient:
	default:
		errs = append(errs, fmt.Errorf("name_id: %q is not persistent, email or transient", s.NameID))
	}
	for _, ch := range s.LogoutChannels {
		if ch != ChannelFront && ch != ChannelBack {
			errs = append(errs, fmt.Errorf("logout_channels: %q is not front or back", ch))
		}
	}
	if s.FrontChannelBinding != "" && !slices.Contains([]string{BindingRedirect, BindingPOST}, s.FrontChannelBinding) {
		errs = append(errs, fmt.Errorf("front_channel_binding: %q is not redirect or post", s.FrontChannelBinding))
	}
	return errors.Join(errs...)
}
