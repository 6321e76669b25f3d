package app

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"net"
	"net/url"
	"os"
	"strings"
	"time"

	"gopkg.in/yaml.v3"

	"github.com/slobridge/slobridge/oidc"
	"github.com/slobridge/slobridge/saml"
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
}

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
	// IdleTimeout closes idle keep-alive connections; default 120s.
	IdleTimeout time.Duration `yaml:"idle_timeout"`
	// ShutdownTimeout bounds a graceful shutdown; default 30s.
	ShutdownTimeout time.Duration `yaml:"shutdown_timeout"`
	// MaxBodyBytes caps every request body; default 1 MiB. Endpoints cap
	// lower where they know better (admin API: 64 KiB).
	MaxBodyBytes int64 `yaml:"max_body_bytes"`
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
	// Workers bounds concurrent attempts; default 256.
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
	// Type is saml (the upstream SAML IdPs) or static (development only:
	// fixed users with passwords and a login form).
	Type   string       `yaml:"type"`
	Static StaticConfig `yaml:"static"`
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
	return p.err()
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
	setDur(&c.Server.IdleTimeout, 120*time.Second)
	setDur(&c.Server.ShutdownTimeout, 30*time.Second)
	if c.Server.MaxBodyBytes == 0 {
		c.Server.MaxBodyBytes = 1 << 20
	}
	setStr(&c.Log.Format, "json")
	setStr(&c.Log.Level, "info")
	setStr(&c.Store.Driver, "bolt")
	setStr(&c.Store.Bolt.Path, "slobridge.db")
	setDur(&c.Store.Bolt.LockTimeout, time.Second)
	setDur(&c.Store.SweepInterval, 10*time.Minute)
	setDur(&c.Store.Retain, 7*24*time.Hour)
	d := &c.Delivery
	if d.Workers == 0 {
		d.Workers = 256
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
	res := func(key string, s *Secret) {
		if err := s.resolve(lookup); err != nil {
			p.add(key, "%v", err)
		}
	}
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
}

// validate checks every key; each problem names its key.
func (c *Config) validate(p *problems) {
	c.validateServer(p)
	switch c.Log.Format {
	case "json", "text":
	default:
		p.add("log.format", "must be json or text, not %q", c.Log.Format)
	}
	if _, err := parseLevel(c.Log.Level); err != nil {
		p.add("log.level", "%v", err)
	}
	c.validateStore(p)
	c.validateDelivery(p)
	if n := len(c.Session.CookieSecret.Value()); n < 32 {
		p.add("session.cookie_secret", "is required and must be at least 32 bytes (got %d); generate one with `openssl rand -base64 48`", n)
	}
	if c.Session.Lifetime < 0 {
		p.add("session.lifetime", "must be positive")
	}
	if c.Admin.Token.IsSet() && len(c.Admin.Token.Value()) < 16 {
		p.add("admin.token", "must be at least 16 characters")
	}
	c.validateOIDC(p)
	c.validateSSF(p)
	c.validateUpstream(p)
	c.validateSAMLIdP(p)
}

func (c *Config) validateSAMLIdP(p *problems) {
	ic := c.SAML.IdP
	if !ic.Enabled {
		return
	}
	if _, err := ic.signer(); err != nil {
		p.add("saml.idp.certificate_file / saml.idp.key", "%v", err)
	}
	if ic.PairwiseSecret.IsSet() && len(ic.PairwiseSecret.Value()) < 32 {
		p.add("saml.idp.pairwise_secret", "must be at least 32 bytes")
	}
	if err := ic.Config.Validate(); err != nil {
		for _, line := range strings.Split(err.Error(), "\n") {
			p.add("saml.idp", "%s", line)
		}
	}
}

// signer loads the IdP's certificate and key.
func (ic SAMLIdPConfig) signer() (*saml.Signer, error) {
	if ic.CertificateFile == "" || ic.Key.Value() == "" {
		return nil, errors.New("certificate_file and key are required when saml.idp.enabled is true")
	}
	cert, err := os.ReadFile(ic.CertificateFile)
	if err != nil {
		return nil, fmt.Errorf("read certificate: %w", err)
	}
	return saml.ParseSigner(cert, []byte(ic.Key.Value()))
}

func (c *Config) validateServer(p *problems) {
	if _, _, err := net.SplitHostPort(c.Server.Listen); err != nil {
		p.add("server.listen", "must be host:port: %v", err)
	}
	u, err := url.Parse(c.Server.BaseURL)
	switch {
	case err != nil || !u.IsAbs() || u.Host == "":
		p.add("server.base_url", "must be an absolute URL, not %q", c.Server.BaseURL)
	case u.RawQuery != "" || u.Fragment != "":
		p.add("server.base_url", "must not have a query or fragment")
	case u.Scheme == "https":
	case u.Scheme == "http" && isLoopback(u.Hostname()):
		if !c.OIDC.AllowLoopbackHTTP {
			p.add("server.base_url", "is plain http on loopback (%s): set oidc.allow_loopback_http: true to allow it (development only), or use https", c.Server.BaseURL)
		}
	default:
		p.add("server.base_url", "must use https (http is allowed only on a loopback host), not %q", c.Server.BaseURL)
	}
	for _, d := range []struct {
		key string
		v   time.Duration
	}{
		{"server.read_header_timeout", c.Server.ReadHeaderTimeout},
		{"server.idle_timeout", c.Server.IdleTimeout},
		{"server.shutdown_timeout", c.Server.ShutdownTimeout},
	} {
		if d.v < 0 {
			p.add(d.key, "must be positive, not %s", d.v)
		}
	}
	if c.Server.MaxBodyBytes < 1024 {
		p.add("server.max_body_bytes", "must be at least 1024, not %d", c.Server.MaxBodyBytes)
	}
}

func (c *Config) validateStore(p *problems) {
	switch c.Store.Driver {
	case "bolt":
		if c.Store.Bolt.LockTimeout < 0 {
			p.add("store.bolt.lock_timeout", "must be positive")
		}
	case "postgres":
		if c.Store.Postgres.DSN.Value() == "" {
			p.add("store.postgres.dsn", "is required when store.driver is postgres")
		}
		if c.Store.Postgres.MaxConns < 0 {
			p.add("store.postgres.max_conns", "must not be negative")
		}
	default:
		p.add("store.driver", "must be bolt or postgres, not %q", c.Store.Driver)
	}
	if c.Store.SweepInterval < 0 {
		p.add("store.sweep_interval", "must be positive")
	}
	if c.Store.Retain < 0 {
		p.add("store.retain", "must be positive")
	}
}

func (c *Config) validateDelivery(p *problems) {
	d := c.Delivery
	if d.Workers < 1 {
		p.add("delivery.workers", "must be at least 1, not %d", d.Workers)
	}
	if d.PerHost < 1 {
		p.add("delivery.per_host", "must be at least 1, not %d", d.PerHost)
	}
	for _, x := range []struct {
		key string
		v   time.Duration
	}{
		{"delivery.attempt_timeout", d.AttemptTimeout},
		{"delivery.backoff_base", d.BackoffBase},
		{"delivery.backoff_max", d.BackoffMax},
		{"delivery.give_up_after", d.GiveUpAfter},
		{"delivery.poll_interval", d.PollInterval},
		{"delivery.lease", d.Lease},
	} {
		if x.v < 0 {
			p.add(x.key, "must be positive, not %s", x.v)
		}
	}
	if d.BackoffMax > 0 && d.BackoffBase > d.BackoffMax {
		p.add("delivery.backoff_base", "must not exceed delivery.backoff_max")
	}
	if d.Lease > 0 && d.AttemptTimeout > 0 && d.Lease <= d.AttemptTimeout {
		p.add("delivery.lease", "must be longer than delivery.attempt_timeout, or an attempt could outlive its lease")
	}
}

func (c *Config) validateOIDC(p *problems) {
	seen := map[string]bool{}
	for i, cl := range c.OIDC.Clients {
		key := fmt.Sprintf("oidc.clients[%d]", i)
		switch {
		case cl.ClientID == "":
			p.add(key+".client_id", "is required")
		case seen[cl.ClientID]:
			p.add(key+".client_id", "%q is used by two clients", cl.ClientID)
		}
		seen[cl.ClientID] = true
		if len(cl.RedirectURIs) == 0 {
			p.add(key+".redirect_uris", "at least one redirect URI is required")
		}
		public := cl.TokenEndpointAuthMethod == oidc.AuthNone
		if public && cl.ClientSecret.IsSet() {
			p.add(key+".client_secret", "must not be set for a public client (token_endpoint_auth_method: none)")
		}
		if !public && cl.ClientSecret.Value() == "" {
			p.add(key+".client_secret", "is required unless token_endpoint_auth_method is none")
		}
	}
	for _, d := range []struct {
		key string
		v   time.Duration
	}{
		{"oidc.code_ttl", c.OIDC.CodeTTL}, {"oidc.id_token_ttl", c.OIDC.IDTokenTTL},
		{"oidc.access_token_ttl", c.OIDC.AccessTokenTTL}, {"oidc.refresh_token_ttl", c.OIDC.RefreshTokenTTL},
		{"oidc.key_rotation", c.OIDC.KeyRotation},
	} {
		if d.v < 0 {
			p.add(d.key, "must be positive, not %s", d.v)
		}
	}
}

func (c *Config) validateSSF(p *problems) {
	seen := map[string]bool{}
	for i, r := range c.SSF.Receivers {
		key := fmt.Sprintf("ssf.receivers[%d]", i)
		if r.ID != "" && seen[r.ID] {
			p.add(key+".id", "%q is used by two receivers", r.ID)
		}
		seen[r.ID] = true
		if err := r.receiver().Validate(c.SSF.AllowHTTP); err != nil {
			p.add(key, "%v", err)
		}
	}
}

func (c *Config) validateUpstream(p *problems) {
	switch c.Upstream.Type {
	case "static":
		if len(c.Upstream.Static.Users) == 0 {
			p.add("upstream.static.users", "at least one user is required for the static upstream")
		}
		seen := map[string]bool{}
		for i, u := range c.Upstream.Static.Users {
			key := fmt.Sprintf("upstream.static.users[%d]", i)
			switch {
			case u.Username == "":
				p.add(key+".username", "is required")
			case seen[u.Username]:
				p.add(key+".username", "%q is used twice", u.Username)
			}
			seen[u.Username] = true
			if len(u.Password.Value()) < 8 {
				p.add(key+".password", "is required and must be at least 8 characters")
			}
		}
	case "saml":
		probs := c.SAML.SP.Validate("saml.sp")
		*p = append(*p, probs...)
		if len(probs) == 0 {
			if _, err := saml.LoadSigner(c.SAML.SP.CertFile, c.SAML.SP.KeyFile); err != nil {
				p.add("saml.sp.cert_file / saml.sp.key_file", "%v", err)
			}
		}
	default:
		p.add("upstream.type", "must be saml or static, not %q", c.Upstream.Type)
	}
}

func isLoopback(host string) bool {
	if host == "localhost" {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}
