package idp

import (
	"bytes"
	"context"
	"crypto/x509"
	"encoding/json"
	"encoding/xml"
	"errors"
	"fmt"
	"net/http"
	"slices"
	"strings"

	"github.com/crewjam/saml"

	bsaml "github.com/slobridge/slobridge/saml"
	"github.com/slobridge/slobridge/store"
)

// ClientKind is the store.Client Kind (and the participant Kind) of SAML
// service providers.
const ClientKind = "saml"

// maxMetadataBytes caps an SP metadata document.
const maxMetadataBytes = 1 << 20

// SAML binding URIs (SAML Bindings §3).
const (
	URIRedirect = "urn:oasis:names:tc:SAML:2.0:bindings:HTTP-Redirect"
	URIPOST     = "urn:oasis:names:tc:SAML:2.0:bindings:HTTP-POST"
	URISOAP     = "urn:oasis:names:tc:SAML:2.0:bindings:SOAP"
)

// ErrUnknownSP reports an entity ID that is not a registered SP.
var ErrUnknownSP = errors.New("saml idp: unknown service provider")

// ErrDisabledSP reports an SP an operator disabled: it may not sign
// anyone in.
var ErrDisabledSP = errors.New("saml idp: service provider is disabled")

// SP is a registered service provider, parsed from its metadata.
type SP struct {
	// EntityID is the SP's entity ID.
	EntityID string
	// Name is the human name (SPConfig.Name or the entity ID).
	Name string
	// Config is the registration.
	Config SPConfig
	// Descriptor is the SP's SPSSODescriptor.
	Descriptor saml.SPSSODescriptor
	// SigningCerts are the certificates of the metadata's signing keys
	// (KeyDescriptor use="signing" or without use).
	SigningCerts []*x509.Certificate
	// NameIDPolicy is the SP's NameID policy: SPConfig.NameID when set,
	// else the first NameIDFormat of its metadata the bridge issues
	// (persistent, transient or email), else persistent. When the
	// registration leaves it open, an AuthnRequest's NameIDPolicy may ask
	// for another format the bridge issues.
	NameIDPolicy string
	// Disabled is set on a run-time registration an operator disabled:
	// the SP can no longer sign anyone in, and its sessions are still
	// logged out like any other.
	Disabled bool
}

// storedSP is the store.Client Metadata of an SP registered at run time.
type storedSP struct {
	Config   SPConfig `json:"config"`
	Metadata []byte   `json:"metadata"`
	Disabled bool     `json:"disabled,omitempty"`
}

// parseSP parses SP metadata and applies the registration.
func parseSP(cfg SPConfig, raw []byte) (*SP, error) {
	if err := cfg.validateOptions(); err != nil {
		return nil, err
	}
	if len(raw) > maxMetadataBytes {
		return nil, fmt.Errorf("metadata is larger than %d bytes", maxMetadataBytes)
	}
	if err := bsaml.CheckXML(raw); err != nil {
		return nil, fmt.Errorf("metadata: %w", err)
	}
	var ed saml.EntityDescriptor
	if err := xml.Unmarshal(raw, &ed); err != nil {
		return nil, fmt.Errorf("metadata is not an EntityDescriptor: %w", err)
	}
	if ed.EntityID == "" {
		return nil, errors.New("metadata has no entityID")
	}
	if cfg.EntityID != "" && cfg.EntityID != ed.EntityID {
		return nil, fmt.Errorf("metadata entityID %q is not the configured %q", ed.EntityID, cfg.EntityID)
	}
	if len(ed.SPSSODescriptors) != 1 {
		return nil, fmt.Errorf("metadata of %s has %d SPSSODescriptors, want 1", ed.EntityID, len(ed.SPSSODescriptors))
	}
	sp := &SP{EntityID: ed.EntityID, Name: cfg.Name, Config: cfg, Descriptor: ed.SPSSODescriptors[0]}
	if sp.Name == "" {
		sp.Name = sp.EntityID
	}
	for _, kd := range sp.Descriptor.KeyDescriptors {
		if kd.Use != "" && kd.Use != "signing" {
			continue
		}
		for _, xc := range kd.KeyInfo.X509Data.X509Certificates {
			c, err := bsaml.ParseCertificateBase64(xc.Data)
			if err != nil {
				return nil, fmt.Errorf("metadata of %s: signing certificate: %w", sp.EntityID, err)
			}
			sp.SigningCerts = append(sp.SigningCerts, c)
		}
	}
	var acs int
	for _, e := range sp.Descriptor.AssertionConsumerServices {
		if e.Binding == URIPOST {
			acs++
		}
	}
	if acs == 0 {
		return nil, fmt.Errorf("metadata of %s has no HTTP-POST AssertionConsumerService", sp.EntityID)
	}
	sp.NameIDPolicy = sp.Config.NameID
	if sp.NameIDPolicy == "" {
		sp.NameIDPolicy = NameIDPersistent
		for _, f := range ed.SPSSODescriptors[0].NameIDFormats {
			if p, ok := policyOf(string(f)); ok {
				sp.NameIDPolicy = p
				break
			}
		}
	}
	if sp.Config.FrontChannelBinding == "" {
		sp.Config.FrontChannelBinding = sp.defaultFrontBinding()
	}
	if sp.Config.LogoutChannels == nil {
		sp.Config.LogoutChannels = sp.defaultChannels()
	}
	for _, ch := range sp.Config.LogoutChannels {
		if ch == ChannelBack && sp.SLOLocation(URISOAP) == "" {
			return nil, fmt.Errorf("%s: logout channel back needs a SOAP SingleLogoutService in the metadata", sp.EntityID)
		}
		if ch == ChannelFront && sp.SLOLocation(bindingURI(sp.Config.FrontChannelBinding)) == "" {
			return nil, fmt.Errorf("%s: logout channel front needs a %s SingleLogoutService in the metadata", sp.EntityID, sp.Config.FrontChannelBinding)
		}
	}
	return sp, nil
}

func bindingURI(b string) string {
	if b == BindingPOST {
		return URIPOST
	}
	return URIRedirect
}

// defaultFrontBinding is the first browser binding of the SP's
// SingleLogoutServices.
func (sp *SP) defaultFrontBinding() string {
	for _, e := range sp.Descriptor.SingleLogoutServices {
		switch e.Binding {
		case URIRedirect:
			return BindingRedirect
		case URIPOST:
			return BindingPOST
		}
	}
	return BindingRedirect
}

// defaultChannels is back (SOAP) when offered, else front when offered.
func (sp *SP) defaultChannels() []string {
	switch {
	case sp.SLOLocation(URISOAP) != "":
		return []string{ChannelBack}
	case sp.SLOLocation(URIRedirect) != "" || sp.SLOLocation(URIPOST) != "":
		return []string{ChannelFront}
	}
	return []string{}
}

// SLOLocation returns the SP's SingleLogoutService location for a binding
// URI, or "".
func (sp *SP) SLOLocation(binding string) string {
	for _, e := range sp.Descriptor.SingleLogoutServices {
		if e.Binding == binding {
			return e.Location
		}
	}
	return ""
}

// SLOResponseLocation returns where LogoutResponses go for a binding: the
// ResponseLocation when set (SAML Metadata §2.2.2), else the Location.
func (sp *SP) SLOResponseLocation(binding string) string {
	for _, e := range sp.Descriptor.SingleLogoutServices {
		if e.Binding == binding {
			if e.ResponseLocation != "" {
				return e.ResponseLocation
			}
			return e.Location
		}
	}
	return ""
}

// channels returns the store channel set of the SP's logout channels.
func (sp *SP) channels() store.Channel {
	var c store.Channel
	for _, ch := range sp.Config.LogoutChannels {
		switch ch {
		case ChannelBack:
			c |= store.ChannelBack
		case ChannelFront:
			c |= store.ChannelFront
		}
	}
	return c
}

// wantsSignedAuthnRequests reports whether this SP's AuthnRequests must be
// signed.
func (sp *SP) wantsSignedAuthnRequests(global bool) bool {
	md := sp.Descriptor.AuthnRequestsSigned != nil && *sp.Descriptor.AuthnRequestsSigned
	return global || md || sp.Config.RequireSignedAuthnRequests
}

// sendsAttribute reports whether a session attribute goes to this SP.
func (sp *SP) sendsAttribute(name string) bool {
	return sp.Config.Attributes == nil || slices.Contains(sp.Config.Attributes, name)
}

// loadMetadata reads an SP's metadata from its file or URL.
func (idp *IdP) loadMetadata(ctx context.Context, cfg SPConfig) ([]byte, error) {
	return bsaml.ReadMetadata(ctx, idp.opts.MetadataClient, cfg.MetadataFile, cfg.MetadataURL, maxMetadataBytes)
}

// Register loads an SP's metadata (file or URL), validates it and stores
// the registration, replacing a previous run-time registration of the same
// entity ID. SPs from the configuration cannot be replaced. It returns the
// registered SP.
func (idp *IdP) Register(ctx context.Context, cfg SPConfig) (*SP, error) {
	if err := cfg.validate(); err != nil {
		return nil, fmt.Errorf("saml idp: register SP: %w", err)
	}
	raw, err := idp.loadMetadata(ctx, cfg)
	if err != nil {
		return nil, fmt.Errorf("saml idp: register SP: %w", err)
	}
	return idp.RegisterMetadata(ctx, cfg, raw)
}

// RegisterMetadata is Register with the SP's metadata given (pasted by an
// operator); cfg's metadata file and URL are not read and may be empty.
func (idp *IdP) RegisterMetadata(ctx context.Context, cfg SPConfig, raw []byte) (*SP, error) {
	sp, err := parseSP(cfg, raw)
	if err != nil {
		return nil, fmt.Errorf("saml idp: register SP: %w", err)
	}
	if _, ok := idp.staticSP(sp.EntityID); ok {
		return nil, fmt.Errorf("saml idp: register SP: %s is configured statically", sp.EntityID)
	}
	val, err := json.Marshal(storedSP{Config: cfg, Metadata: raw})
	if err != nil {
		return nil, fmt.Errorf("saml idp: register SP: %w", err)
	}
	now := idp.now()
	err = idp.st.PutClient(ctx, store.Client{
		ID: sp.EntityID, Kind: ClientKind, Name: sp.Name, Metadata: val, CreatedAt: now, UpdatedAt: now,
	})
	if err != nil {
		return nil, fmt.Errorf("saml idp: register SP %s: %w", sp.EntityID, err)
	}
	idp.log.InfoContext(ctx, "saml sp registered", "sp", sp.EntityID)
	return sp, nil
}

// ServiceProvider returns the registered SP with an entity ID: from the
// configuration, else from the store. An unknown SP yields an error
// wrapping ErrUnknownSP.
func (idp *IdP) ServiceProvider(ctx context.Context, entityID string) (*SP, error) {
	if sp, ok := idp.staticSP(entityID); ok {
		return sp, nil
	}
	if entityID == "" {
		return nil, fmt.Errorf("%w: no issuer", ErrUnknownSP)
	}
	c, err := idp.st.GetClient(ctx, entityID)
	if errors.Is(err, store.ErrNotFound) || (err == nil && c.Kind != ClientKind) {
		return nil, fmt.Errorf("%w: %q", ErrUnknownSP, entityID)
	}
	if err != nil {
		return nil, fmt.Errorf("saml idp: look up SP %q: %w", entityID, err)
	}
	return idp.registeredSP(c)
}

// registeredSP is the SP of a run-time registration as stored, parsed
// once per stored version.
func (idp *IdP) registeredSP(c store.Client) (*SP, error) {
	idp.mu.RLock()
	cached, ok := idp.registered[c.ID]
	idp.mu.RUnlock()
	if ok && bytes.Equal(cached.stored, c.Metadata) {
		return cached.sp, nil
	}
	var s storedSP
	if err := json.Unmarshal(c.Metadata, &s); err != nil {
		return nil, fmt.Errorf("saml idp: decode registration of %q: %w", c.ID, err)
	}
	sp, err := parseSP(s.Config, s.Metadata)
	if err != nil {
		return nil, fmt.Errorf("saml idp: registration of %q: %w", c.ID, err)
	}
	sp.Disabled = s.Disabled
	idp.mu.Lock()
	if idp.registered == nil {
		idp.registered = map[string]parsedSP{}
	}
	idp.registered[c.ID] = parsedSP{stored: c.Metadata, sp: sp}
	idp.mu.Unlock()
	return sp, nil
}

// parsedSP is a run-time registration parsed once: the stored
// store.Client Metadata it came from and the SP. ServiceProvider still
// reads the registration on every call (so that a removal or an update by
// another bridge instance counts at once) but parses the metadata and its
// certificates again only when the stored bytes changed.
type parsedSP struct {
	stored []byte
	sp     *SP
}

// staticSP returns an SP from the configuration.
// ServiceProviders returns every SP: the configured ones, then those
// registered at run time, each group by entity ID.
func (idp *IdP) ServiceProviders(ctx context.Context) ([]*SP, error) {
	idp.mu.RLock()
	out := make([]*SP, 0, len(idp.static))
	for _, sp := range idp.static {
		out = append(out, sp)
	}
	idp.mu.RUnlock()
	slices.SortFunc(out, func(a, b *SP) int { return strings.Compare(a.EntityID, b.EntityID) })
	stored, err := idp.st.ListClients(ctx, ClientKind)
	if err != nil {
		return nil, fmt.Errorf("saml idp: list SPs: %w", err)
	}
	for _, c := range stored {
		if _, static := idp.staticSP(c.ID); static {
			continue
		}
		sp, err := idp.registeredSP(c)
		if err != nil {
			return nil, err
		}
		out = append(out, sp)
	}
	return out, nil
}

// SetDisabled disables (or enables again) an SP registered at run time.
// SPs from the configuration are changed there; an unknown SP yields an
// error wrapping ErrUnknownSP.
func (idp *IdP) SetDisabled(ctx context.Context, entityID string, disabled bool) error {
	if _, ok := idp.staticSP(entityID); ok {
		return fmt.Errorf("saml idp: %s is configured in the configuration file: change it there", entityID)
	}
	err := idp.st.UpdateClient(ctx, entityID, func(c store.Client) (store.Client, error) {
		if c.Kind != ClientKind {
			return c, fmt.Errorf("%w: %q", ErrUnknownSP, entityID)
		}
		var s storedSP
		if err := json.Unmarshal(c.Metadata, &s); err != nil {
			return c, fmt.Errorf("decode registration of %q: %w", entityID, err)
		}
		s.Disabled = disabled
		raw, err := json.Marshal(s)
		if err != nil {
			return c, err
		}
		c.Metadata, c.UpdatedAt = raw, idp.now()
		return c, nil
	})
	if errors.Is(err, store.ErrNotFound) {
		return fmt.Errorf("%w: %q", ErrUnknownSP, entityID)
	}
	if err != nil {
		return fmt.Errorf("saml idp: disable SP: %w", err)
	}
	idp.log.InfoContext(ctx, "saml sp disabled", "sp", entityID, "disabled", disabled)
	return nil
}

// Channels names the SP's logout channels ("back", "front",
// "back+front" or "none").
func (sp *SP) Channels() string { return sp.channels().String() }

// Configured reports whether the SP comes from the configuration file
// (and is changed there, not at run time).
func (idp *IdP) Configured(entityID string) bool {
	_, ok := idp.staticSP(entityID)
	return ok
}

func (idp *IdP) staticSP(entityID string) (*SP, bool) {
	idp.mu.RLock()
	defer idp.mu.RUnlock()
	sp, ok := idp.static[entityID]
	return sp, ok
}

// CheckSP loads and checks an SP registration as New does (slobridge
// check): its metadata file, or with client its metadata URL (check
// --online; nil: a URL is not fetched), must parse and agree with the
// registration. It returns the SP, nil when its metadata was not read.
func CheckSP(ctx context.Context, client *http.Client, cfg SPConfig) (*SP, error) {
	if cfg.MetadataFile == "" && client == nil {
		return nil, cfg.validate()
	}
	if cfg.MetadataFile != "" {
		client = nil
	}
	raw, err := bsaml.ReadMetadata(ctx, client, cfg.MetadataFile, cfg.MetadataURL, maxMetadataBytes)
	if err != nil {
		return nil, err
	}
	return parseSP(cfg, raw)
}
