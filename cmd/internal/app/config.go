package app

import (
	"bytes"
	"errors"
	"fmt"
	"github.com/slobridge/slobridge/store/bolt"
	"io"
	"net/url"
	"os"
	"time"

	"gopkg.in/yaml.v3"

	"github.com/slobridge/slobridge/oidc"
	"github.com/slobridge/slobridge/saml/idp"
	"github.com/slobridge/slobridge/saml/sp"
)

// Config is the whole configuration file of `slobridge serve`. Every key is
// documented in the README's configuration reference; defaults are set in
// one place, setDefaults.
type Config struct {
	Server   ServerConfig   `yaml:"server"`
	Log      LogConfig      `yaml:"log"`
	Store    StoreConfig    `yaml:"store"`
	Delivery DeliveryConfig `yaml:"delivery"`
	Session  SessionConfig  `yaml:"session"`
	Admin    AdminConfig    `yaml:"admin"`
	OIDC     OIDCConfig     `yaml:"oidc"`
	SSF      SSFConfig      `yaml:"ssf"`
	Upstream UpstreamConfig `yaml:"upstream"`
	SAML     SAMLConfig     `yaml:"saml"`

	// literalSecrets lists the secret keys written in the YAML itself.
	literalSecrets []string
	// finished is set by a successful Finish.
	finished bool
}

// LiteralSecrets returns the keys of secrets written in the configuration
// file itself rather than taken from the environment or a file; serve
// warns about each (acceptable for development only).
func (c Config) LiteralSecrets() []string { return append([]string(nil), c.literalSecrets...) }

// SAMLConfig is the SAML side of the bridge.
type SAMLConfig struct {
	// SP is the bridge as SAML service provider toward the upstream IdPs
	// (used when upstream.type is saml).
	SP sp.Config `yaml:"sp"`
	// IdP is the SAML identity provider toward downstream SPs.
	IdP SAMLIdPConfig `yaml:"idp"`
}

// SAMLIdPConfig enables and configures the SAML IdP. Its other keys are
// those of idp.Config (entity_id, service_providers, lifetimes …).
type SAMLIdPConfig struct {
	// Enabled serves the IdP at /saml/idp/…; default false.
	Enabled bool `yaml:"enabled"`
	// CertificateFile is the PEM certificate published in the metadata.
	CertificateFile string `yaml:"certificate_file"`
	// Key is the PEM private key of the certificate (a secret: use
	// {file: …} or ${ENV}).
	Key Secret `yaml:"key"`
	// PairwiseSecret keys pairwise persistent NameIDs (at least 32
	// bytes); default derived from session.cookie_secret.
	PairwiseSecret Secret `yaml:"pairwise_secret"`
	idp.Config     `yaml:",inline"`
}

// ServerConfig is the HTTP listener.
type ServerConfig struct {
	// Listen is the TCP address to listen on; default 127.0.0.1:8080.
	Listen string `yaml:"listen"`
	// BaseURL is the public URL of the bridge: the OIDC issuer and the
	// prefix of every URL it hands out. https, or http on a loopback host.
	// Default http://<listen>.
	BaseURL string `yaml:"base_url"`
	// ReadHeaderTimeout bounds reading request headers; default 10s.
	ReadHeaderTimeout time.Duration `yaml:"read_header_timeout"`
	// ReadTimeout bounds reading a whole request, body included; default
	// 60s (a client trickling a body cannot hold a connection forever).
	ReadTimeout time.Duration `yaml:"read_timeout"`
	// MaxHeaderBytes caps the request line and headers; default 64 KiB
	// (SAML HTTP-Redirect messages travel in the query).
	MaxHeaderBytes int `yaml:"max_header_bytes"`
	// IdleTimeout closes idle keep-alive connections; default 120s.
	IdleTimeout time.Duration `yaml:"idle_timeout"`
	// ShutdownTimeout bounds a graceful shutdown; default 30s.
	ShutdownTimeout time.Duration `yaml:"shutdown_timeout"`
	// MaxBodyBytes caps every request body; default 1 MiB. Endpoints cap
	// lower where they know better (admin API: 64 KiB).
	MaxBodyBytes int64 `yaml:"max_body_bytes"`
	// TLSCertFile and TLSKey make the listener serve HTTPS (PEM
	// certificate chain and its private key, a secret); unset serves plain
	// HTTP (behind a TLS-terminating proxy, or on loopback).
	TLSCertFile string `yaml:"tls_cert_file"`
	TLSKey      Secret `yaml:"tls_key"`
	// TrustedProxies lists the proxy addresses or CIDRs whose
	// X-Forwarded-For is believed for the client address in logs; default
	// none (the peer address is logged).
	TrustedProxies []string `yaml:"trusted_proxies"`
}

// LogConfig is the process log.
type LogConfig struct {
	// Format is json (default) or text.
	Format string `yaml:"format"`
	// Level is debug, info (default), warn or error.
	Level string `yaml:"level"`
}

// StoreConfig selects and configures the storage backend.
type StoreConfig struct {
	// Driver is bolt (default) or postgres.
	Driver   string         `yaml:"driver"`
	Bolt     BoltConfig     `yaml:"bolt"`
	Postgres PostgresConfig `yaml:"postgres"`
	// SweepInterval is how often expired sessions, logouts, records and
	// keys are deleted; default 10m.
	SweepInterval time.Duration `yaml:"sweep_interval"`
	// Retain keeps ended sessions and finished logouts this long for the
	// admin API and status pages; default 168h (7 days).
	Retain time.Duration `yaml:"retain"`
}

// BoltConfig is the embedded bbolt backend.
type BoltConfig struct {
	// Path of the database file; default slobridge.db.
	Path string `yaml:"path"`
	// LockTimeout is how long start-up waits for the file lock held by
	// another process before it fails with "database locked"; default 1s.
	LockTimeout time.Duration `yaml:"lock_timeout"`
	// ReserveBytes is the disk space kept for logouts (a ballast file
	// beside the database): new logins are refused first when the disk
	// fills. Default 32 MiB; -1 turns it off.
	ReserveBytes int64 `yaml:"reserve_bytes"`
	// VolatileLimitBytes is the memory the logins in progress (their
	// authorization requests, codes and SAML request state, kept in
	// memory) may take; past it new logins are refused. Default 256 MiB;
	// -1 means no limit.
	VolatileLimitBytes int64 `yaml:"volatile_limit_bytes"`
}

// PostgresConfig is the PostgreSQL backend.
type PostgresConfig struct {
	// DSN is the connection string (a secret: it may hold a password).
	DSN Secret `yaml:"dsn"`
	// Schema, when set, is the search_path of every connection.
	Schema string `yaml:"schema"`
	// MaxConns caps the pool; 0 keeps the driver default.
	MaxConns int32 `yaml:"max_conns"`
	// SkipMigrations makes serve check the schema version instead of
	// migrating (run `slobridge migrate` separately).
	SkipMigrations bool `yaml:"skip_migrations"`
}

// DeliveryConfig tunes the back-channel delivery workers.
type DeliveryConfig struct {
	// Workers bounds concurrent attempts; default 1024.
	Workers int `yaml:"workers"`
	// PerHost bounds concurrent attempts to one receiver host; default 64.
	PerHost int `yaml:"per_host"`
	// AttemptTimeout bounds one attempt; default 10s.
	AttemptTimeout time.Duration `yaml:"attempt_timeout"`
	// BackoffBase is the first retry delay (doubled per attempt, full
	// jitter); default 1s.
	BackoffBase time.Duration `yaml:"backoff_base"`
	// BackoffMax caps the retry delay; default 5m.
	BackoffMax time.Duration `yaml:"backoff_max"`
	// GiveUpAfter is the age after which a failing delivery is marked
	// failed; default 24h.
	GiveUpAfter time.Duration `yaml:"give_up_after"`
	// PollInterval is how often the outbox is polled; default 1s.
	PollInterval time.Duration `yaml:"poll_interval"`
	// Lease is how long a claimed delivery is reserved for this process;
	// default attempt_timeout + 30s. After a crash, deliveries this
	// process had claimed are retried when their lease ends.
	Lease time.Duration `yaml:"lease"`
	// Owner names this process in delivery leases; default random per
	// start. Deliveries a crashed process had claimed are attempted again
	// when their lease (delivery.lease) ends.
	Owner string `yaml:"owner"`
	// AllowLoopback lets back-channel requests reach 127.0.0.0/8 and ::1
	// (receivers on the same host, tests); default false.
	AllowLoopback bool `yaml:"allow_loopback"`
	// AllowPrivate lets them reach private (RFC 1918/4193) addresses;
	// default false.
	AllowPrivate bool `yaml:"allow_private"`
}

// SessionConfig is the bridge session and its cookie.
type SessionConfig struct {
	// CookieSecret keys the HMAC of the session cookie; at least 32 bytes.
	// Required.
	CookieSecret Secret `yaml:"cookie_secret"`
	// Lifetime caps a bridge session; default 8h.
	Lifetime time.Duration `yaml:"lifetime"`
	// SecureCookie sets the cookie's Secure attribute; default true when
	// base_url is https.
	SecureCookie *bool `yaml:"secure_cookie"`
}

// AdminConfig is the admin API.
type AdminConfig struct {
	// Token is the bearer token of the admin API (at least 16 characters).
	// Without it the admin API is not served.
	Token Secret `yaml:"token"`
	// TokenName names the operator in logout records; default "admin".
	TokenName string `yaml:"token_name"`
	// Listen, when set, serves the admin API and /metrics on this address
	// only (for example 127.0.0.1:9090), not on server.listen; /healthz
	// and /readyz are served on both. Plain HTTP: keep it on loopback or
	// a private network.
	Listen string `yaml:"listen"`
	// Console admits operators to the web console under /admin/.
	Console ConsoleConfig `yaml:"console"`
}

// ConsoleConfig says who may use the operator console. Operators sign in
// through the bridge's own upstream login; with neither list set the
// console is off.
type ConsoleConfig struct {
	// AllowedUsers are bridge user IDs admitted as operators.
	AllowedUsers []string `yaml:"allowed_users"`
	// AllowedGroups admit every user whose GroupAttribute (default
	// "groups") holds one of them.
	AllowedGroups  []string `yaml:"allowed_groups"`
	GroupAttribute string   `yaml:"group_attribute"`
}

// OIDCConfig is the OpenID Provider toward downstream apps.
type OIDCConfig struct {
	// RegistrationToken protects dynamic client registration (RFC 7591);
	// unset disables registration.
	RegistrationToken Secret `yaml:"registration_token"`
	// AllowLoopbackHTTP allows http:// redirect and logout URIs on
	// loopback hosts (development).
	AllowLoopbackHTTP bool `yaml:"allow_loopback_http"`
	// AllowPrivateBackchannel allows back-channel logout URIs on private or
	// loopback addresses.
	AllowPrivateBackchannel bool `yaml:"allow_private_backchannel"`
	// Token lifetimes; zero keeps the provider defaults (code 60s, ID
	// token 1h, access token 5m, refresh token 24h, key rotation 720h).
	CodeTTL         time.Duration `yaml:"code_ttl"`
	IDTokenTTL      time.Duration `yaml:"id_token_ttl"`
	AccessTokenTTL  time.Duration `yaml:"access_token_ttl"`
	RefreshTokenTTL time.Duration `yaml:"refresh_token_ttl"`
	KeyRotation     time.Duration `yaml:"key_rotation"`
	// SigningAlg signs ID tokens and logout tokens (of clients that did
	// not register id_token_signed_response_alg), access tokens unless
	// AccessTokenAlg says otherwise, and SSF events: RS256 (default),
	// ES256, PS256 or EdDSA.
	SigningAlg string `yaml:"signing_alg"`
	// AccessTokenAlg signs access tokens; default SigningAlg.
	AccessTokenAlg string `yaml:"access_token_alg"`
	// Clients are the static clients.
	Clients []OIDCClientConfig `yaml:"clients"`
}

// OIDCClientConfig is one static OIDC client: its registration metadata
// (RFC 7591 / OIDC Registration field names) and its secret.
type OIDCClientConfig struct {
	oidc.ClientMetadata `yaml:",inline"`
	// ClientSecret is the secret of a confidential client; leave unset
	// for a public client (token_endpoint_auth_method: none).
	ClientSecret Secret `yaml:"client_secret"`
}

// SSFConfig is the Shared Signals transmitter.
type SSFConfig struct {
	// AllowHTTP permits http:// push URLs (loopback deployments, tests).
	AllowHTTP bool `yaml:"allow_http"`
	// Receivers are resource servers that get a CAEP session-revoked SET
	// (RFC 8935 push) when a session they joined ends. Every receiver
	// joins every session created while it is registered.
	Receivers []ReceiverConfig `yaml:"receivers"`
}

// ReceiverConfig is one SSF event receiver.
type ReceiverConfig struct {
	ID       string   `yaml:"id"`
	Name     string   `yaml:"name"`
	PushURL  string   `yaml:"push_url"`
	Audience []string `yaml:"audience"`
	// Authorization is sent as the Authorization header of every push.
	Authorization Secret `yaml:"authorization"`
}

// UpstreamConfig is how users authenticate.
type UpstreamConfig struct {
	// Type is saml (the upstream SAML IdPs of saml.sp.upstreams), oidc
	// (the OpenID Providers of upstream.oidc), saml+oidc (both lists, one
	// chooser) or static (development only: fixed users with passwords
	// and a login form).
	Type   string       `yaml:"type"`
	Static StaticConfig `yaml:"static"`
	// OIDC lists the upstream OpenID Providers (upstream.type oidc or
	// saml+oidc).
	OIDC []OIDCUpstreamConfig `yaml:"oidc"`
}

// UsesSAML reports whether users log in at upstream SAML IdPs.
func (u UpstreamConfig) UsesSAML() bool { return u.Type == "saml" || u.Type == "saml+oidc" }

// UsesOIDC reports whether users log in at upstream OpenID Providers.
func (u UpstreamConfig) UsesOIDC() bool { return u.Type == "oidc" || u.Type == "saml+oidc" }

// OIDCUpstreamConfig is one upstream OpenID Provider (oidc/upstream).
type OIDCUpstreamConfig struct {
	// Name identifies the upstream in sessions, paths, logs and idp_hint.
	Name string `yaml:"name"`
	// DisplayName is shown on the chooser page; default Name.
	DisplayName string `yaml:"display_name"`
	// Domains send a login whose login_hint is an address in one of them
	// here; Clients are the downstream apps (OIDC client IDs, SAML SP
	// entity IDs) whose logins come here by default; AllowedClients, when
	// set, are the only ones that may log in here.
	Domains        []string `yaml:"domains"`
	Clients        []string `yaml:"clients"`
	AllowedClients []string `yaml:"allowed_clients"`
	// Issuer is the OP's issuer URL (discovery).
	Issuer string `yaml:"issuer"`
	// ClientID and ClientSecret are the bridge's registration at the OP
	// (client_secret_basic).
	ClientID     string `yaml:"client_id"`
	ClientSecret Secret `yaml:"client_secret"`
	// TokenEndpointAuthMethod is client_secret_basic (default) or
	// private_key_jwt, which signs a client assertion with PrivateKey (a
	// PEM RSA ≥ 2048, P-256 or Ed25519 key) instead of sending a secret.
	TokenEndpointAuthMethod string `yaml:"token_endpoint_auth_method"`
	PrivateKey              Secret `yaml:"private_key"`
	// Scopes besides openid; default email and profile.
	Scopes []string `yaml:"scopes"`
	// UserIDClaim becomes the bridge user ID (default sub), after
	// UserIDPrefix.
	UserIDClaim  string `yaml:"user_id_claim"`
	UserIDPrefix string `yaml:"user_id_prefix"`
	// Attributes maps bridge attributes to ID token claims; default email,
	// name, preferred_username, groups.
	Attributes map[string]string `yaml:"attributes"`
	// SigningAlgs is the allow-list of ID and logout token algorithms;
	// default RS256, ES256, PS256, EdDSA.
	SigningAlgs []string `yaml:"signing_algs"`
	// ACRValues are asked for as acr_values at every login; an ID token
	// naming another acr is refused.
	ACRValues []string `yaml:"acr_values"`
	// SkipUserInfo never asks the OP's UserInfo endpoint for the claims
	// the ID token lacks.
	SkipUserInfo bool `yaml:"skip_userinfo"`
	// SkipEndSession does not send the browser to the OP's
	// end_session_endpoint at logout (the status then says the upstream
	// session was not ended).
	SkipEndSession bool `yaml:"skip_end_session"`
}

// StaticConfig is the development-only static authenticator.
type StaticConfig struct {
	Users []StaticUser `yaml:"users"`
}

// StaticUser is one user of the static authenticator.
type StaticUser struct {
	// Username is typed into the login form.
	Username string `yaml:"username"`
	// Password is required (from env or file in anything but a test).
	Password Secret `yaml:"password"`
	// Subject is the stable user ID (OIDC sub); default the username.
	Subject string   `yaml:"subject"`
	Email   string   `yaml:"email"`
	Name    string   `yaml:"name"`
	Groups  []string `yaml:"groups"`
}

// Load reads, resolves and validates the configuration file at path.
// Secrets are read from the environment and files it names. The error
// lists every problem, each with its key.
func Load(path string) (Config, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return Config{}, fmt.Errorf("config: %w", err)
	}
	return Parse(b, os.LookupEnv)
}

// Parse decodes a configuration document strictly (unknown keys are
// errors), applies defaults, resolves secrets with lookup and validates.
func Parse(doc []byte, lookup func(string) (string, bool)) (Config, error) {
	var c Config
	dec := yaml.NewDecoder(bytes.NewReader(doc))
	dec.KnownFields(true)
	if err := dec.Decode(&c); err != nil && !errors.Is(err, io.EOF) {
		return Config{}, annotateYAMLError(doc, err)
	}
	if err := c.Finish(lookup); err != nil {
		return Config{}, err
	}
	return c, nil
}

// Finish applies defaults, resolves secrets and validates a Config built
// in code; Parse calls it.
func (c *Config) Finish(lookup func(string) (string, bool)) error {
	c.setDefaults()
	var p problems
	c.resolveSecrets(lookup, &p)
	c.validate(&p)
	if len(p) == 0 {
		// What serve or the first logout would trip on; only once every
		// key is valid on its own, so that each problem is said once.
		c.validateDeploy(&p, time.Now())
	}
	if err := p.err(); err != nil {
		return err
	}
	c.finished = true
	return nil
}

// problems collects configuration errors with their key paths.
type problems []string

func (p *problems) add(key, format string, args ...any) {
	*p = append(*p, key+": "+fmt.Sprintf(format, args...))
}

func (p problems) err() error {
	if len(p) == 0 {
		return nil
	}
	errs := make([]error, len(p))
	for i, s := range p {
		errs[i] = errors.New("config: " + s)
	}
	return errors.Join(errs...)
}

func setDur(d *time.Duration, v time.Duration) {
	if *d == 0 {
		*d = v
	}
}

func setStr(s *string, v string) {
	if *s == "" {
		*s = v
	}
}

// setDefaults writes every default, in one place.
func (c *Config) setDefaults() {
	setStr(&c.Server.Listen, "127.0.0.1:8080")
	setStr(&c.Server.BaseURL, "http://"+c.Server.Listen)
	setDur(&c.Server.ReadHeaderTimeout, 10*time.Second)
	setDur(&c.Server.ReadTimeout, time.Minute)
	setDur(&c.Server.IdleTimeout, 120*time.Second)
	setDur(&c.Server.ShutdownTimeout, 30*time.Second)
	if c.Server.MaxBodyBytes == 0 {
		c.Server.MaxBodyBytes = 1 << 20
	}
	if c.Server.MaxHeaderBytes == 0 {
		c.Server.MaxHeaderBytes = 64 << 10
	}
	setStr(&c.Log.Format, "json")
	setStr(&c.Log.Level, "info")
	setStr(&c.Store.Driver, "bolt")
	setStr(&c.Store.Bolt.Path, "slobridge.db")
	setDur(&c.Store.Bolt.LockTimeout, time.Second)
	if c.Store.Bolt.ReserveBytes == 0 {
		c.Store.Bolt.ReserveBytes = bolt.DefaultReserve
	}
	setDur(&c.Store.SweepInterval, 10*time.Minute)
	setDur(&c.Store.Retain, 7*24*time.Hour)
	d := &c.Delivery
	if d.Workers == 0 {
		d.Workers = 1024
	}
	if d.PerHost == 0 {
		d.PerHost = 64
	}
	setDur(&d.AttemptTimeout, 10*time.Second)
	setDur(&d.BackoffBase, time.Second)
	setDur(&d.BackoffMax, 5*time.Minute)
	setDur(&d.GiveUpAfter, 24*time.Hour)
	setDur(&d.PollInterval, time.Second)
	setDur(&d.Lease, d.AttemptTimeout+30*time.Second)
	setDur(&c.Session.Lifetime, 8*time.Hour)
	setStr(&c.Admin.TokenName, "admin")
	setStr(&c.Upstream.Type, "saml")
	if c.Session.SecureCookie == nil {
		u, err := url.Parse(c.Server.BaseURL)
		secure := err != nil || u.Scheme != "http"
		c.Session.SecureCookie = &secure
	}
}

// resolveSecrets reads every Secret from its source.
func (c *Config) resolveSecrets(lookup func(string) (string, bool), p *problems) {
	c.literalSecrets = nil
	res := func(key string, s *Secret) {
		if err := s.resolve(lookup); err != nil {
			p.add(key, "%v", err)
		}
		if s.inYAML {
			c.literalSecrets = append(c.literalSecrets, key)
		}
	}
	res("server.tls_key", &c.Server.TLSKey)
	res("store.postgres.dsn", &c.Store.Postgres.DSN)
	res("session.cookie_secret", &c.Session.CookieSecret)
	res("admin.token", &c.Admin.Token)
	res("oidc.registration_token", &c.OIDC.RegistrationToken)
	for i := range c.OIDC.Clients {
		res(fmt.Sprintf("oidc.clients[%d].client_secret", i), &c.OIDC.Clients[i].ClientSecret)
	}
	for i := range c.SSF.Receivers {
		res(fmt.Sprintf("ssf.receivers[%d].authorization", i), &c.SSF.Receivers[i].Authorization)
	}
	res("saml.idp.key", &c.SAML.IdP.Key)
	res("saml.idp.pairwise_secret", &c.SAML.IdP.PairwiseSecret)
	for i := range c.Upstream.Static.Users {
		res(fmt.Sprintf("upstream.static.users[%d].password", i), &c.Upstream.Static.Users[i].Password)
	}
	for i := range c.Upstream.OIDC {
		res(fmt.Sprintf("upstream.oidc[%d].client_secret", i), &c.Upstream.OIDC[i].ClientSecret)
		res(fmt.Sprintf("upstream.oidc[%d].private_key", i), &c.Upstream.OIDC[i].PrivateKey)
	}
}
