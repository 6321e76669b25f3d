package app

import (
	"context"
	"crypto/x509"
	"fmt"
	"net/http"
	"net/netip"
	"net/url"
	"os"
	"slices"
	"strings"
	"time"

	"github.com/slobridge/slobridge"
	"github.com/slobridge/slobridge/oidc"
	"github.com/slobridge/slobridge/saml"
	"github.com/slobridge/slobridge/saml/idp"
	"github.com/slobridge/slobridge/saml/sp"
)

// certWarnAhead is how long before a certificate expires check warns.
const certWarnAhead = 30 * 24 * time.Hour

// minClientSecret is the shortest static client secret the OpenID
// Provider accepts (oidc.StaticClient).
const minClientSecret = 16

// validateDeploy checks what serve, or the first logout, would trip on
// beyond each key's own rules: files that must exist and parse, secrets
// the protocol packages refuse, certificates past their date, and
// back-channel URIs the delivery policy would refuse for ever. Load runs
// it, so `slobridge check` and `serve` agree.
func (c *Config) validateDeploy(p *problems, now time.Time) {
	for i, cl := range c.OIDC.Clients {
		key := fmt.Sprintf("oidc.clients[%d]", i)
		if cl.TokenEndpointAuthMethod != oidc.AuthNone && cl.ClientSecret.IsSet() && len(cl.ClientSecret.Value()) < minClientSecret {
			p.add(key+".client_secret", "must be at least %d characters (got %d)", minClientSecret, len(cl.ClientSecret.Value()))
		}
		for j, r := range cl.RedirectURIs {
			if u, err := url.Parse(r); err != nil || !u.IsAbs() || u.Host == "" || u.Fragment != "" {
				p.add(fmt.Sprintf("%s.redirect_uris[%d]", key, j), "must be an absolute URI without a fragment, not %q", r)
			}
		}
		if why := c.undeliverable(cl.BackchannelLogoutURI); why != "" {
			p.add(key+".backchannel_logout_uri", "%s", why)
		}
	}
	for i, r := range c.SSF.Receivers {
		if why := c.undeliverable(r.PushURL); why != "" {
			p.add(fmt.Sprintf("ssf.receivers[%d].push_url", i), "%s", why)
		}
	}
	if c.Upstream.UsesSAML() {
		for i, u := range c.SAML.SP.Upstreams {
			if _, err := sp.CheckMetadata(context.Background(), nil, u, now); err != nil {
				p.add(fmt.Sprintf("saml.sp.upstreams[%d].metadata_file", i), "%v", err)
			}
		}
		checkCertFile(p, "saml.sp.cert_file", c.SAML.SP.CertFile, now)
	}
	if c.SAML.IdP.Enabled {
		for i, s := range c.SAML.IdP.ServiceProviders {
			if s.MetadataFile == "" {
				continue
			}
			if _, err := idp.CheckSP(context.Background(), nil, s); err != nil {
				p.add(fmt.Sprintf("saml.idp.service_providers[%d].metadata_file", i), "%v", err)
			}
		}
		checkCertFile(p, "saml.idp.certificate_file", c.SAML.IdP.CertificateFile, now)
	}
	if c.Server.TLSCertFile != "" {
		checkCertFile(p, "server.tls_cert_file", c.Server.TLSCertFile, now)
	}
}

// undeliverable says why the back channel can never reach raw under the
// delivery policy (delivery.allow_loopback, delivery.allow_private), or ""
// when it can or only DNS will tell (the dialer checks each address it
// connects to with the same policy).
func (c *Config) undeliverable(raw string) string {
	if raw == "" {
		return ""
	}
	u, err := url.Parse(raw)
	if err != nil || u.Host == "" {
		return ""
	}
	var ip netip.Addr
	switch host := u.Hostname(); {
	case host == "localhost":
		ip = netip.MustParseAddr("127.0.0.1")
	default:
		if ip, err = netip.ParseAddr(host); err != nil {
			return ""
		}
	}
	pol := slobridge.AddressPolicy{AllowLoopback: c.Delivery.AllowLoopback, AllowPrivate: c.Delivery.AllowPrivate}
	if pol.Check(ip) == nil {
		return ""
	}
	switch class, name := slobridge.ClassifyAddress(ip); class {
	case slobridge.ClassLoopback:
		return fmt.Sprintf("%s is a loopback address and delivery.allow_loopback is false: every logout delivery to it would be refused", raw)
	case slobridge.ClassPrivate:
		return fmt.Sprintf("%s is a private address and delivery.allow_private is false: every logout delivery to it would be refused", raw)
	default:
		return fmt.Sprintf("%s is %s, which the back channel never reaches", raw, name)
	}
}

// checkCertFile adds a problem when the PEM certificate in file has
// expired or is not valid yet (files that do not load are reported by the
// key's own check).
func checkCertFile(p *problems, key, file string, now time.Time) {
	cert, err := readCert(file)
	if err != nil {
		return
	}
	switch {
	case now.After(cert.NotAfter):
		p.add(key, "the certificate expired on %s", cert.NotAfter.UTC().Format(time.DateOnly))
	case now.Before(cert.NotBefore):
		p.add(key, "the certificate is not valid before %s", cert.NotBefore.UTC().Format(time.RFC3339))
	}
}

// readCert reads the first PEM certificate of file.
func readCert(file string) (*x509.Certificate, error) {
	if file == "" {
		return nil, os.ErrNotExist
	}
	data, err := os.ReadFile(file)
	if err != nil {
		return nil, err
	}
	certs, err := saml.ParseCertificatesPEM(data)
	if err != nil {
		return nil, err
	}
	return certs[0], nil
}

// Warnings lists what will work but is likely not what the operator
// wants: certificates that expire within 30 days, registrations the
// delivery policy cannot reach, user IDs that change at every login.
// `slobridge check` prints them; serve logs them.
func (c Config) Warnings(now time.Time) []string {
	var out []string
	for _, x := range []struct{ key, file string }{
		{"saml.sp.cert_file", c.SAML.SP.CertFile}, {"saml.idp.certificate_file", c.SAML.IdP.CertificateFile},
		{"server.tls_cert_file", c.Server.TLSCertFile},
	} {
		if cert, err := readCert(x.file); err == nil && now.Before(cert.NotAfter) && cert.NotAfter.Sub(now) < certWarnAhead {
			out = append(out, fmt.Sprintf("%s: the certificate expires on %s", x.key, cert.NotAfter.UTC().Format(time.DateOnly)))
		}
	}
	if (c.OIDC.AllowLoopbackHTTP || c.OIDC.AllowPrivateBackchannel) && !c.Delivery.AllowLoopback {
		out = append(out, "oidc.allow_loopback_http / oidc.allow_private_backchannel: clients may register loopback back-channel logout URIs, "+
			"but delivery.allow_loopback is false, so logouts never reach them")
	}
	if c.OIDC.AllowPrivateBackchannel && !c.Delivery.AllowPrivate {
		out = append(out, "oidc.allow_private_backchannel: clients may register private back-channel logout URIs, "+
			"but delivery.allow_private is false, so logouts never reach them")
	}
	if c.Upstream.UsesSAML() {
		for i, u := range c.SAML.SP.Upstreams {
			if attrs, err := sp.CheckMetadata(context.Background(), nil, u, now); err == nil && len(attrs) > 0 && u.UserIDAttribute != "" &&
				!slices.Contains(attrs, u.UserIDAttribute) {
				out = append(out, fmt.Sprintf("saml.sp.upstreams[%d].user_id_attribute: %q is not among the attributes the IdP's metadata lists (%s): "+
					"every login would be refused", i, u.UserIDAttribute, strings.Join(attrs, ", ")))
			}
			if u.NameIDFormat == nameIDTransient && u.UserIDAttribute == "" {
				out = append(out, fmt.Sprintf("saml.sp.upstreams[%d]: name_id_format is transient and user_id_attribute is unset: "+
					"the user ID would change at every login; set user_id_attribute", i))
			}
		}
	}
	return out
}

// nameIDTransient is the SAML transient NameID format.
const nameIDTransient = "urn:oasis:names:tc:SAML:2.0:nameid-format:transient"

// CheckOnline fetches what only the network tells (slobridge check
// --online): each SAML upstream's and SP's metadata URL must answer with
// metadata that parses. It returns one line per problem, naming the key.
func CheckOnline(ctx context.Context, c Config) []string {
	client := &http.Client{Timeout: 20 * time.Second}
	var p problems
	now := time.Now()
	if c.Upstream.UsesSAML() {
		for i, u := range c.SAML.SP.Upstreams {
			if u.MetadataURL == "" {
				continue
			}
			if _, err := sp.CheckMetadata(ctx, client, u, now); err != nil {
				p.add(fmt.Sprintf("saml.sp.upstreams[%d].metadata_url", i), "%v", err)
			}
		}
	}
	if c.SAML.IdP.Enabled {
		for i, s := range c.SAML.IdP.ServiceProviders {
			if s.MetadataURL == "" {
				continue
			}
			if _, err := idp.CheckSP(ctx, client, s); err != nil {
				p.add(fmt.Sprintf("saml.idp.service_providers[%d].metadata_url", i), "%v", err)
			}
		}
	}
	return p
}
