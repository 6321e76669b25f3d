package app

import (
	"crypto/tls"
	"errors"
	"fmt"
	"net"
	"net/url"
	"os"
	"slices"
	"strings"
	"time"

	"github.com/slobridge/slobridge/oidc"
	"github.com/slobridge/slobridge/oidc/upstream"
	"github.com/slobridge/slobridge/saml"
)

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
	if c.Admin.Listen != "" {
		if _, _, err := net.SplitHostPort(c.Admin.Listen); err != nil {
			p.add("admin.listen", "must be host:port: %v", err)
		} else if c.Admin.Listen == c.Server.Listen {
			p.add("admin.listen", "must differ from server.listen")
		}
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
		{"server.read_timeout", c.Server.ReadTimeout},
		{"server.idle_timeout", c.Server.IdleTimeout},
		{"server.shutdown_timeout", c.Server.ShutdownTimeout},
	} {
		if d.v < 0 {
			p.add(d.key, "must be positive, not %s", d.v)
		}
	}
	if (c.Server.TLSCertFile == "") != (c.Server.TLSKey.Value() == "") {
		p.add("server.tls_cert_file", "tls_cert_file and tls_key must be set together")
	} else if c.Server.TLSCertFile != "" {
		if _, err := c.Server.tlsCertificate(); err != nil {
			p.add("server.tls_cert_file / server.tls_key", "%v", err)
		}
	}
	for i, tp := range c.Server.TrustedProxies {
		if net.ParseIP(tp) == nil {
			if _, _, err := net.ParseCIDR(tp); err != nil {
				p.add(fmt.Sprintf("server.trusted_proxies[%d]", i), "%q is neither an IP address nor a CIDR", tp)
			}
		}
	}
	if v := c.Store.Bolt.VolatileLimitBytes; v < -1 || (v > 0 && v < 1<<20) {
		p.add("store.bolt.volatile_limit_bytes", "must be -1 (no limit), 0 (the default, 256 MiB) or at least 1 MiB, not %d", v)
	}
	if c.Store.Bolt.ReserveBytes < -1 {
		p.add("store.bolt.reserve_bytes", "must be -1 (off) or a number of bytes, not %d", c.Store.Bolt.ReserveBytes)
	}
	if c.Server.MaxHeaderBytes < 4096 {
		p.add("server.max_header_bytes", "must be at least 4096, not %d", c.Server.MaxHeaderBytes)
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
	for _, a := range []struct{ key, v string }{{"oidc.signing_alg", c.OIDC.SigningAlg}, {"oidc.access_token_alg", c.OIDC.AccessTokenAlg}} {
		if a.v != "" && !slices.Contains(oidc.SigningAlgorithms(), a.v) {
			p.add(a.key, "%q is not offered: use one of %s", a.v, strings.Join(oidc.SigningAlgorithms(), ", "))
		}
	}
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
		if a := cl.IDTokenSignedResponseAlg; a != "" && !slices.Contains(oidc.SigningAlgorithms(), a) {
			p.add(key+".id_token_signed_response_alg", "%q is not offered: use one of %s", a, strings.Join(oidc.SigningAlgorithms(), ", "))
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
	case "saml", "oidc", "saml+oidc":
		if c.Upstream.UsesSAML() {
			probs := c.SAML.SP.Validate("saml.sp")
			*p = append(*p, probs...)
			if len(probs) == 0 {
				if _, err := saml.LoadSigner(c.SAML.SP.CertFile, c.SAML.SP.KeyFile); err != nil {
					p.add("saml.sp.cert_file / saml.sp.key_file", "%v", err)
				}
			}
		}
		if c.Upstream.UsesOIDC() {
			c.validateOIDCUpstreams(p)
		}
	default:
		p.add("upstream.type", "must be saml, oidc, saml+oidc or static, not %q", c.Upstream.Type)
	}
}

// validateOIDCUpstreams checks upstream.oidc: at least one OP, each
// valid, every upstream name (SAML ones included) used once.
func (c *Config) validateOIDCUpstreams(p *problems) {
	if len(c.Upstream.OIDC) == 0 {
		p.add("upstream.oidc", "at least one OpenID Provider is required when upstream.type is %s", c.Upstream.Type)
	}
	seen := map[string]string{}
	if c.Upstream.UsesSAML() {
		for i, u := range c.SAML.SP.Upstreams {
			seen[u.Name] = fmt.Sprintf("saml.sp.upstreams[%d]", i)
		}
	}
	for i, u := range c.Upstream.OIDC {
		key := fmt.Sprintf("upstream.oidc[%d]", i)
		if err := oidcUpstream(u, 0).Check(); err != nil {
			p.add(key, "%v", err)
		}
		switch u.TokenEndpointAuthMethod {
		case "", upstream.AuthClientSecretBasic:
			if !u.ClientSecret.IsSet() {
				p.add(key+".client_secret", "is required (client_secret_basic)")
			}
			if u.PrivateKey.IsSet() {
				p.add(key+".private_key", "is used only with token_endpoint_auth_method: private_key_jwt")
			}
		case upstream.AuthPrivateKeyJWT:
			if _, err := upstream.ParseClientKey([]byte(u.PrivateKey.Value())); err != nil {
				p.add(key+".private_key", "private_key_jwt needs a PEM private key: %v", err)
			}
			if u.ClientSecret.IsSet() {
				p.add(key+".client_secret", "is not used with private_key_jwt; remove it")
			}
		default:
			p.add(key+".token_endpoint_auth_method", "must be client_secret_basic or private_key_jwt, not %q", u.TokenEndpointAuthMethod)
		}
		if other, ok := seen[u.Name]; ok && u.Name != "" {
			p.add(key+".name", "%q is also the name of %s: every upstream needs its own", u.Name, other)
		}
		seen[u.Name] = key
	}
}

func isLoopback(host string) bool {
	if host == "localhost" {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}

// tlsCertificate loads the listener's certificate and key.
func (s ServerConfig) tlsCertificate() (tls.Certificate, error) {
	cert, err := os.ReadFile(s.TLSCertFile)
	if err != nil {
		return tls.Certificate{}, fmt.Errorf("read certificate: %w", err)
	}
	c, err := tls.X509KeyPair(cert, []byte(s.TLSKey.Value()))
	if err != nil {
		return tls.Certificate{}, fmt.Errorf("load TLS key pair: %w", err)
	}
	return c, nil
}
