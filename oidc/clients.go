package oidc

import (
	"context"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/netip"
	"net/url"
	"slices"
	"strings"

	"github.com/slobridge/slobridge"
	"github.com/slobridge/slobridge/store"
)

// ClientKind is the store.Client Kind of OIDC clients.
const ClientKind = "oidc"

// Token endpoint authentication methods (RFC 7591 §2).
const (
	AuthSecretBasic = "client_secret_basic"
	AuthSecretPost  = "client_secret_post"
	AuthNone        = "none"
)

// ClientMetadata is an OIDC client registration: RFC 7591 §2 metadata with
// the OpenID Connect Registration, Front-Channel and Back-Channel Logout
// fields. It is stored as store.Client.Metadata.
type ClientMetadata struct {
	ClientID                          string   `json:"client_id,omitempty" yaml:"client_id"`
	ClientName                        string   `json:"client_name,omitempty" yaml:"client_name"`
	RedirectURIs                      []string `json:"redirect_uris" yaml:"redirect_uris"`
	PostLogoutRedirectURIs            []string `json:"post_logout_redirect_uris,omitempty" yaml:"post_logout_redirect_uris"`
	FrontchannelLogoutURI             string   `json:"frontchannel_logout_uri,omitempty" yaml:"frontchannel_logout_uri"`
	FrontchannelLogoutSessionRequired bool     `json:"frontchannel_logout_session_required,omitempty" yaml:"frontchannel_logout_session_required"`
	BackchannelLogoutURI              string   `json:"backchannel_logout_uri,omitempty" yaml:"backchannel_logout_uri"`
	BackchannelLogoutSessionRequired  bool     `json:"backchannel_logout_session_required,omitempty" yaml:"backchannel_logout_session_required"`
	TokenEndpointAuthMethod           string   `json:"token_endpoint_auth_method,omitempty" yaml:"token_endpoint_auth_method"`
	IDTokenSignedResponseAlg          string   `json:"id_token_signed_response_alg,omitempty" yaml:"id_token_signed_response_alg"`
	GrantTypes                        []string `json:"grant_types,omitempty" yaml:"grant_types"`
	ResponseTypes                     []string `json:"response_types,omitempty" yaml:"response_types"`
}

// Client is a registered client as the provider uses it.
type Client struct {
	ID       string
	Metadata ClientMetadata
	// SecretHash is the SHA-256 of the client secret (secrets are 256-bit
	// random values issued by the bridge, or configured; a fast hash is
	// enough for high-entropy secrets). Empty for public clients.
	SecretHash string `json:"secret_hash,omitempty"`
	// Static marks a client from the configuration file.
	Static bool `json:"-"`
	// Disabled is set on a run-time registration an operator disabled: it
	// can no longer sign anyone in nor redeem codes and refresh tokens;
	// its sessions are still logged out like any other.
	Disabled bool `json:"-"`
}

// storedClient is the JSON kept in store.Client.Metadata.
type storedClient struct {
	Metadata   ClientMetadata `json:"metadata"`
	SecretHash string         `json:"secret_hash,omitempty"`
	Disabled   bool           `json:"disabled,omitempty"`
}

// errDisabledClient refuses a client an operator disabled.
func errDisabledClient() error {
	return oauthErr(ErrUnauthorizedClient, http.StatusBadRequest, "the client is disabled at the bridge")
}

// enabled returns the client, or errDisabledClient when it is disabled
// (judged after its credentials, so that only the client learns it).
func (c Client) enabled() (Client, error) {
	if c.Disabled {
		return Client{}, errDisabledClient()
	}
	return c, nil
}

// SetDisabled disables (or enables again) a client registered at run time.
// Clients from the configuration are changed there; an unknown client
// yields an error wrapping store.ErrNotFound.
func (p *Provider) SetDisabled(ctx context.Context, id string, disabled bool) error {
	if _, ok := p.static[id]; ok {
		return fmt.Errorf("oidc: client %s is configured in the configuration file: change it there", id)
	}
	err := p.st.UpdateClient(ctx, id, func(c store.Client) (store.Client, error) {
		if c.Kind != ClientKind {
			return c, fmt.Errorf("client %q: %w", id, store.ErrNotFound)
		}
		var s storedClient
		if err := json.Unmarshal(c.Metadata, &s); err != nil {
			return c, fmt.Errorf("decode client %s: %w", id, err)
		}
		s.Disabled = disabled
		raw, err := json.Marshal(s)
		if err != nil {
			return c, err
		}
		c.Metadata, c.UpdatedAt = raw, p.now()
		return c, nil
	})
	if err != nil {
		return fmt.Errorf("oidc: disable client: %w", err)
	}
	p.log.InfoContext(ctx, "client disabled", "client_id", id, "disabled", disabled)
	return nil
}

// Public reports whether the client has no secret (PKCE is then required).
func (c Client) Public() bool { return c.Metadata.TokenEndpointAuthMethod == AuthNone }

// idTokenAlg is the algorithm of a client's ID tokens and logout tokens
// (Back-Channel Logout §2.4 signs them alike): its registered
// id_token_signed_response_alg, else the provider's SigningAlg.
func (p *Provider) idTokenAlg(registered string) string {
	if registered == "" {
		return p.opts.SigningAlg
	}
	return registered
}

// errUnknownClient reports a client_id that is not registered.
var errUnknownClient = errors.New("oidc: unknown client")

// client looks a client up: static clients first, then the store.
func (p *Provider) client(ctx context.Context, id string) (Client, error) {
	if id == "" {
		return Client{}, errUnknownClient
	}
	if c, ok := p.static[id]; ok {
		return c, nil
	}
	sc, err := p.st.GetClient(ctx, id)
	if errors.Is(err, store.ErrNotFound) {
		return Client{}, errUnknownClient
	}
	if err != nil {
		return Client{}, fmt.Errorf("oidc: get client: %w", err)
	}
	if sc.Kind != ClientKind {
		return Client{}, errUnknownClient
	}
	var s storedClient
	if err := json.Unmarshal(sc.Metadata, &s); err != nil {
		return Client{}, fmt.Errorf("oidc: decode client %s: %w", id, err)
	}
	return Client{ID: sc.ID, Metadata: s.Metadata, SecretHash: s.SecretHash, Disabled: s.Disabled}, nil
}

// Clients returns every client: the configured ones, then those
// registered at run time, each group by client ID.
func (p *Provider) Clients(ctx context.Context) ([]Client, error) {
	out := make([]Client, 0, len(p.static))
	for _, c := range p.static {
		c.Static = true
		out = append(out, c)
	}
	slices.SortFunc(out, func(a, b Client) int { return strings.Compare(a.ID, b.ID) })
	stored, err := p.st.ListClients(ctx, ClientKind)
	if err != nil {
		return nil, fmt.Errorf("oidc: list clients: %w", err)
	}
	for _, sc := range stored {
		if _, static := p.static[sc.ID]; static {
			continue
		}
		var s storedClient
		if err := json.Unmarshal(sc.Metadata, &s); err != nil {
			return nil, fmt.Errorf("oidc: decode client %s: %w", sc.ID, err)
		}
		out = append(out, Client{ID: sc.ID, Metadata: s.Metadata, Disabled: s.Disabled})
	}
	return out, nil
}

// staticClient validates a configured client.
func (p *Provider) staticClient(sc StaticClient) (Client, error) {
	if sc.Metadata.ClientID == "" {
		return Client{}, errors.New("oidc: static client without client_id")
	}
	md, err := p.validateMetadata(context.Background(), sc.Metadata)
	if err != nil {
		return Client{}, fmt.Errorf("oidc: static client %s: %w", sc.Metadata.ClientID, err)
	}
	c := Client{ID: md.ClientID, Metadata: md}
	switch {
	case md.TokenEndpointAuthMethod == AuthNone && sc.Secret != "":
		return Client{}, fmt.Errorf("oidc: static client %s: a public client has no secret", md.ClientID)
	case md.TokenEndpointAuthMethod != AuthNone && len(sc.Secret) < 16:
		return Client{}, fmt.Errorf("oidc: static client %s: secret must be at least 16 characters", md.ClientID)
	case md.TokenEndpointAuthMethod != AuthNone:
		c.SecretHash = hashSecret(sc.Secret)
	}
	return c, nil
}

func hashSecret(s string) string {
	sum := sha256.Sum256([]byte(s))
	return hex.EncodeToString(sum[:])
}

// checkSecret compares a presented secret with the stored hash in constant
// time.
func (c Client) checkSecret(secret string) bool {
	if c.SecretHash == "" || secret == "" {
		return false
	}
	return subtle.ConstantTimeCompare([]byte(hashSecret(secret)), []byte(c.SecretHash)) == 1
}

// validateMetadata checks a registration (RFC 7591 §2, §3.2.2) and fills
// defaults. It returns *Error with invalid_redirect_uri or
// invalid_client_metadata.
func (p *Provider) validateMetadata(ctx context.Context, md ClientMetadata) (ClientMetadata, error) {
	bad := func(code, desc string) error { return oauthErr(code, http.StatusBadRequest, desc) }
	if len(md.RedirectURIs) == 0 {
		return md, bad(ErrInvalidRedirectURI, "redirect_uris is required")
	}
	for _, u := range md.RedirectURIs {
		if err := p.checkURI(u); err != nil {
			return md, bad(ErrInvalidRedirectURI, "redirect_uri "+err.Error())
		}
	}
	for _, u := range md.PostLogoutRedirectURIs {
		if err := p.checkURI(u); err != nil {
			return md, bad(ErrInvalidClientMetadata, "post_logout_redirect_uri "+err.Error())
		}
	}
	if u := md.FrontchannelLogoutURI; u != "" {
		if err := p.checkURI(u); err != nil {
			return md, bad(ErrInvalidClientMetadata, "frontchannel_logout_uri "+err.Error())
		}
	}
	if u := md.BackchannelLogoutURI; u != "" {
		if err := p.checkURI(u); err != nil {
			return md, bad(ErrInvalidClientMetadata, "backchannel_logout_uri "+err.Error())
		}
		if err := p.checkBackchannelHost(ctx, u); err != nil {
			return md, bad(ErrInvalidClientMetadata, "backchannel_logout_uri "+err.Error())
		}
	}
	switch md.TokenEndpointAuthMethod {
	case "":
		md.TokenEndpointAuthMethod = AuthSecretBasic
	case AuthSecretBasic, AuthSecretPost, AuthNone:
	default:
		return md, bad(ErrInvalidClientMetadata, "token_endpoint_auth_method must be client_secret_basic, client_secret_post or none")
	}
	if a := md.IDTokenSignedResponseAlg; a != "" {
		if err := checkAlg(a); err != nil {
			return md, bad(ErrInvalidClientMetadata, "id_token_signed_response_alg "+err.Error())
		}
	}
	if len(md.GrantTypes) == 0 {
		md.GrantTypes = []string{grantAuthorizationCode, grantRefreshToken}
	}
	for _, g := range md.GrantTypes {
		if g != grantAuthorizationCode && g != grantRefreshToken {
			return md, bad(ErrInvalidClientMetadata, "unsupported grant type "+g)
		}
	}
	if len(md.ResponseTypes) == 0 {
		md.ResponseTypes = []string{"code"}
	}
	if !slices.Equal(md.ResponseTypes, []string{"code"}) {
		return md, bad(ErrInvalidClientMetadata, `response_types must be ["code"]`)
	}
	return md, nil
}

// checkURI requires an absolute URI without fragment, https or (when
// allowed) http on a loopback host.
func (p *Provider) checkURI(raw string) error {
	u, err := url.Parse(raw)
	if err != nil || !u.IsAbs() || u.Host == "" {
		return errors.New("must be an absolute URI")
	}
	if u.Fragment != "" || u.RawFragment != "" || containsHash(raw) {
		return errors.New("must not contain a fragment")
	}
	if u.User != nil {
		return errors.New("must not contain user information")
	}
	switch {
	case u.Scheme == "https":
	case u.Scheme == "http" && p.opts.AllowLoopbackHTTP && isLoopbackHost(u.Hostname()):
	default:
		return errors.New("must use https")
	}
	return nil
}

func containsHash(s string) bool { return slices.Contains([]byte(s), '#') }

// checkBackchannelHost resolves the host of a back-channel URI and checks
// every address with the bridge's one address policy
// (slobridge.AddressPolicy): private and loopback addresses only when the
// configuration allows them, cloud metadata and special-purpose ranges
// never. The sending HTTP client checks the dialled address again with the
// same policy, so a DNS answer that changes later does not help.
func (p *Provider) checkBackchannelHost(ctx context.Context, raw string) error {
	policy := slobridge.AddressPolicy{AllowPrivate: p.opts.AllowPrivateBackchannel,
		AllowLoopback: p.opts.AllowPrivateBackchannel || p.opts.AllowLoopbackHTTP}
	u, _ := url.Parse(raw)
	host := u.Hostname()
	var addrs []netip.Addr
	if a, err := netip.ParseAddr(host); err == nil {
		addrs = []netip.Addr{a}
	} else {
		ips, err := p.opts.Resolver.LookupNetIP(ctx, "ip", host)
		if err != nil {
			if policy.AllowPrivate {
				// Internal names may resolve only where the receiver
				// runs; the dialer checks the address it reaches.
				return nil
			}
			return fmt.Errorf("host %q does not resolve", host)
		}
		addrs = ips
	}
	for _, a := range addrs {
		if err := policy.Check(a); err != nil {
			return fmt.Errorf("host %q resolves to an address the back channel may not reach: %v", host, err)
		}
	}
	return nil
}
