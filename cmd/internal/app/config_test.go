package app

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"math/big"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// testEnv is the environment the config tests resolve secrets from.
var testEnv = map[string]string{
	"COOKIE":   "0123456789abcdef0123456789abcdef-cookie",
	"ADMIN":    "admin-token-0123456789",
	"PASSWORD": "correct horse battery",
	"EMPTY":    "",
}

func lookup(name string) (string, bool) {
	v, ok := testEnv[name]
	return v, ok
}

// validBase is a minimal valid configuration; cases append to it or
// replace parts of it.
const validBase = `
oidc:
  allow_loopback_http: true
session:
  cookie_secret: ${COOKIE}
upstream:
  type: static
  static:
    users:
      - username: alice
        password: {env: PASSWORD}
`

func TestParseValidConfigAppliesDefaults(t *testing.T) {
	c, err := Parse([]byte(validBase+"admin:\n  token: ${ADMIN}\n"), lookup)
	if err != nil {
		t.Fatalf("Parse: %v", err)
	}
	checks := []struct {
		key       string
		got, want any
	}{
		{"server.listen", c.Server.Listen, "127.0.0.1:8080"},
		{"server.base_url", c.Server.BaseURL, "http://127.0.0.1:8080"},
		{"server.shutdown_timeout", c.Server.ShutdownTimeout, 30 * time.Second},
		{"log.format", c.Log.Format, "json"},
		{"store.driver", c.Store.Driver, "bolt"},
		{"store.bolt.lock_timeout", c.Store.Bolt.LockTimeout, time.Second},
		{"delivery.give_up_after", c.Delivery.GiveUpAfter, 24 * time.Hour},
		{"delivery.lease", c.Delivery.Lease, 40 * time.Second},
		{"session.secure_cookie", *c.Session.SecureCookie, false},
		{"session.cookie_secret", c.Session.CookieSecret.Value(), testEnv["COOKIE"]},
		{"admin.token", c.Admin.Token.Value(), testEnv["ADMIN"]},
		{"upstream.static.users[0].password", c.Upstream.Static.Users[0].Password.Value(), testEnv["PASSWORD"]},
	}
	for _, ch := range checks {
		if ch.got != ch.want {
			t.Errorf("%s = %v, want %v", ch.key, ch.got, ch.want)
		}
	}
}

// TestOIDCUpstreamSecretsResolve: an upstream OP's client secret and
// private key come from the environment or a file like every secret.
func TestOIDCUpstreamSecretsResolve(t *testing.T) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	der, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		t.Fatal(err)
	}
	keyFile := filepath.Join(t.TempDir(), "op-key.pem")
	if err := os.WriteFile(keyFile, pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: der}), 0o600); err != nil {
		t.Fatal(err)
	}
	doc := strings.Replace(validBase, "  type: static\n", "  type: oidc\n  oidc:\n"+
		"    - {name: a, issuer: https://a.example, client_id: x, client_secret: {env: PASSWORD}}\n"+
		"    - {name: b, issuer: https://b.example, client_id: y, token_endpoint_auth_method: private_key_jwt, private_key: {file: "+keyFile+"}}\n", 1)
	c, err := Parse([]byte(doc), lookup)
	if err != nil {
		t.Fatalf("Parse: %v", err)
	}
	if got := c.Upstream.OIDC[0].ClientSecret.Value(); got != testEnv["PASSWORD"] {
		t.Fatalf("upstream.oidc[0].client_secret = %q", got)
	}
	u := oidcUpstream(c.Upstream.OIDC[1], time.Hour)
	if u.PrivateKey == nil || u.ClientSecret != "" || !u.PrivateKey.Public().(*ecdsa.PublicKey).Equal(&key.PublicKey) {
		t.Fatalf("upstream.oidc[1]: private key %v, secret %q", u.PrivateKey, u.ClientSecret)
	}
}

func TestLiteralSecretsAreListed(t *testing.T) {
	doc := strings.Replace(validBase, "${COOKIE}", "literal-cookie-secret-0123456789abcdef", 1) + "admin:\n  token: {env: ADMIN}\n"
	c, err := Parse([]byte(doc), lookup)
	if err != nil {
		t.Fatal(err)
	}
	if got := c.LiteralSecrets(); len(got) != 1 || got[0] != "session.cookie_secret" {
		t.Fatalf("LiteralSecrets = %v, want [session.cookie_secret]", got)
	}
}

func TestSecretFromFile(t *testing.T) {
	path := filepath.Join(t.TempDir(), "cookie")
	if err := os.WriteFile(path, []byte("file-secret-0123456789abcdef0123456789\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	doc := strings.Replace(validBase, "${COOKIE}", "{file: "+path+"}", 1)
	c, err := Parse([]byte(doc), lookup)
	if err != nil {
		t.Fatalf("Parse: %v", err)
	}
	if got := c.Session.CookieSecret.Value(); got != "file-secret-0123456789abcdef0123456789" {
		t.Fatalf("secret from file = %q (trailing newline must be trimmed)", got)
	}
	if s := c.Session.CookieSecret.String(); strings.Contains(s, "file-secret") {
		t.Fatalf("Secret.String leaks the value: %q", s)
	}
}

func TestConfigErrorsNameTheKey(t *testing.T) {
	tests := []struct {
		name string
		doc  string
		// want are substrings every one of which the error must contain.
		want []string
	}{
		{"unknown top-level key", validBase + "colour: blue\n", []string{"field colour not found"}},
		{"unknown nested key", validBase + "store:\n  bolt:\n    pth: x.db\n", []string{"field pth not found"}},
		{"missing cookie secret", strings.Replace(validBase, "cookie_secret: ${COOKIE}", "lifetime: 1h", 1), []string{"session.cookie_secret: is required"}},
		{"short cookie secret", strings.Replace(validBase, "${COOKIE}", "short", 1), []string{"session.cookie_secret", "at least 32 bytes"}},
		{"unset env secret", strings.Replace(validBase, "${COOKIE}", "${NOPE}", 1), []string{"session.cookie_secret: environment variable NOPE is not set"}},
		{"empty env secret", strings.Replace(validBase, "${COOKIE}", "{env: EMPTY}", 1), []string{"session.cookie_secret: environment variable EMPTY is empty"}},
		{"missing secret file", strings.Replace(validBase, "${COOKIE}", "{file: /nonexistent/secret}", 1), []string{"session.cookie_secret: read secret file"}},
		{"secret with env and file", strings.Replace(validBase, "${COOKIE}", "{env: COOKIE, file: /x}", 1), []string{"exactly one of env and file"}},
		{"secret with unknown field", strings.Replace(validBase, "${COOKIE}", "{vault: x}", 1), []string{`unknown secret field "vault"`}},
		{"bad log format", validBase + "log:\n  format: xml\n", []string{`log.format: must be json or text, not "xml"`}},
		{"bad log level", validBase + "log:\n  level: loud\n", []string{"log.level: must be debug, info, warn or error"}},
		{"bad driver", validBase + "store:\n  driver: mysql\n", []string{`store.driver: must be bolt or postgres, not "mysql"`}},
		{"postgres without dsn", validBase + "store:\n  driver: postgres\n", []string{"store.postgres.dsn: is required"}},
		{"bad listen", validBase + "server:\n  listen: nowhere\n", []string{"server.listen: must be host:port"}},
		{"http base url off loopback", validBase + "server:\n  base_url: http://bridge.example.com\n", []string{"server.base_url: must use https"}},
		{"base url with query", validBase + "server:\n  base_url: https://bridge.example.com/?a=b\n", []string{"server.base_url: must not have a query"}},
		{"relative base url", validBase + "server:\n  base_url: /bridge\n", []string{"server.base_url: must be an absolute URL"}},
		{"bad duration", validBase + "delivery:\n  attempt_timeout: soon\n", []string{"attempt_timeout"}},
		{"negative duration", validBase + "delivery:\n  give_up_after: -1h\n", []string{"delivery.give_up_after: must be positive"}},
		{"zero workers", validBase + "delivery:\n  workers: -1\n", []string{"delivery.workers: must be at least 1"}},
		{"lease shorter than attempt", validBase + "delivery:\n  attempt_timeout: 10s\n  lease: 5s\n", []string{"delivery.lease: must be longer than delivery.attempt_timeout"}},
		{"backoff base above max", validBase + "delivery:\n  backoff_base: 10m\n  backoff_max: 1m\n", []string{"delivery.backoff_base: must not exceed delivery.backoff_max"}},
		{"short admin token", validBase + "admin:\n  token: short\n", []string{"admin.token: must be at least 16 characters"}},
		{"loopback http without opt-in", strings.Replace(validBase, "allow_loopback_http: true", "allow_loopback_http: false", 1), []string{"server.base_url: is plain http on loopback"}},
		{"small body cap", validBase + "server:\n  max_body_bytes: 10\n", []string{"server.max_body_bytes: must be at least 1024"}},
		{"unknown signing algorithms", strings.Replace(validBase, "oidc:\n  allow_loopback_http: true\n", "", 1) + "oidc:\n  allow_loopback_http: true\n  signing_alg: HS256\n  access_token_alg: none\n  clients:\n    - {client_id: app, redirect_uris: [https://app.example.com/cb], token_endpoint_auth_method: none, id_token_signed_response_alg: ES384}\n",
			[]string{`oidc.signing_alg: "HS256" is not offered: use one of RS256, ES256, PS256, EdDSA`, `oidc.access_token_alg: "none" is not offered`, `oidc.clients[0].id_token_signed_response_alg: "ES384" is not offered`}},
		{"oidc upstream without issuer or secret", strings.Replace(validBase, "  type: static\n", "  type: oidc\n  oidc:\n    - {name: corp, client_id: bridge}\n", 1),
			[]string{`upstream.oidc[0]: issuer "" must be an absolute URL`, "upstream.oidc[0].client_secret: is required"}},
		{"two oidc upstreams of one name", strings.Replace(validBase, "  type: static\n", "  type: oidc\n  oidc:\n    - {name: a, issuer: https://a.example, client_id: x, client_secret: {env: PASSWORD}}\n    - {name: a, issuer: https://b.example, client_id: x, client_secret: {env: PASSWORD}}\n", 1),
			[]string{`upstream.oidc[1].name: "a" is also the name of upstream.oidc[0]: every upstream needs its own`}},
		{"private_key_jwt without a key, with a secret", strings.Replace(validBase, "  type: static\n", "  type: oidc\n  oidc:\n    - {name: a, issuer: https://a.example, client_id: x, token_endpoint_auth_method: private_key_jwt, client_secret: {env: PASSWORD}}\n", 1),
			[]string{"upstream.oidc[0].private_key: private_key_jwt needs a PEM private key", "upstream.oidc[0].client_secret: is not used with private_key_jwt"}},
		{"unknown client authentication", strings.Replace(validBase, "  type: static\n", "  type: oidc\n  oidc:\n    - {name: a, issuer: https://a.example, client_id: x, token_endpoint_auth_method: client_secret_post}\n", 1),
			[]string{`upstream.oidc[0].token_endpoint_auth_method: must be client_secret_basic or private_key_jwt, not "client_secret_post"`}},
		{"a private key with client_secret_basic", strings.Replace(validBase, "  type: static\n", "  type: oidc\n  oidc:\n    - {name: a, issuer: https://a.example, client_id: x, client_secret: {env: PASSWORD}, private_key: {env: PASSWORD}}\n", 1),
			[]string{"upstream.oidc[0].private_key: is used only with token_endpoint_auth_method: private_key_jwt"}},
		{"oidc without an OP", strings.Replace(validBase, "  type: static\n", "  type: oidc\n", 1),
			[]string{"upstream.oidc: at least one OpenID Provider is required when upstream.type is oidc"}},
		{"client without id", strings.Replace(validBase, "oidc:\n  allow_loopback_http: true\n", "", 1) + "oidc:\n  allow_loopback_http: true\n  clients:\n    - redirect_uris: [https://app.example.com/cb]\n      token_endpoint_auth_method: none\n", []string{"oidc.clients[0].client_id: is required"}},
		{"client without redirect", strings.Replace(validBase, "oidc:\n  allow_loopback_http: true\n", "", 1) + "oidc:\n  allow_loopback_http: true\n  clients:\n    - client_id: app\n      token_endpoint_auth_method: none\n", []string{"oidc.clients[0].redirect_uris"}},
		{"confidential client without secret", strings.Replace(validBase, "oidc:\n  allow_loopback_http: true\n", "", 1) + "oidc:\n  allow_loopback_http: true\n  clients:\n    - client_id: app\n      redirect_uris: [https://app.example.com/cb]\n", []string{"oidc.clients[0].client_secret: is required"}},
		{"duplicate client", strings.Replace(validBase, "oidc:\n  allow_loopback_http: true\n", "", 1) + "oidc:\n  allow_loopback_http: true\n  clients:\n    - {client_id: app, redirect_uris: [https://a/cb], token_endpoint_auth_method: none}\n    - {client_id: app, redirect_uris: [https://a/cb], token_endpoint_auth_method: none}\n", []string{`oidc.clients[1].client_id: "app" is used by two clients`}},
		{"receiver http push", validBase + "ssf:\n  receivers:\n    - id: rs\n      push_url: http://rs.example.com/events\n", []string{"ssf.receivers[0]", "push_url must use https"}},
		{"receiver without id", validBase + "ssf:\n  receivers:\n    - push_url: https://rs.example.com/events\n", []string{"ssf.receivers[0]", "id is required"}},
		{"bad upstream type", strings.Replace(validBase, "type: static", "type: ldap", 1), []string{`upstream.type: must be saml, oidc, saml+oidc or static, not "ldap"`}},
		{"static without users", strings.Replace(validBase, "    users:\n      - username: alice\n        password: {env: PASSWORD}\n", "    users: []\n", 1), []string{"upstream.static.users: at least one user"}},
		{"static user short password", strings.Replace(validBase, "{env: PASSWORD}", "pw", 1), []string{"upstream.static.users[0].password: is required and must be at least 8"}},
		{"saml idp without key", validBase + "saml:\n  idp:\n    enabled: true\n    certificate_file: testdata/idp.crt\n", []string{"saml.idp.certificate_file / saml.idp.key: certificate_file and key are required"}},
		{"saml idp key mismatch", validBase + "saml:\n  idp:\n    enabled: true\n    certificate_file: testdata/idp.crt\n    key: {file: testdata/sp.key}\n", []string{"saml.idp.certificate_file / saml.idp.key", "does not match"}},
		{"saml idp bad sp", validBase + "saml:\n  idp:\n    enabled: true\n    certificate_file: testdata/idp.crt\n    key: {file: testdata/idp.key}\n    service_providers:\n      - name: x\n", []string{"saml.idp: service_providers[0]: metadata_file or metadata_url is required"}},
		{"saml upstream without sp", strings.Replace(validBase, "type: static", "type: saml", 1), []string{"saml.sp.cert_file: required", "saml.sp.upstreams: at least one upstream IdP is required"}},
		{"saml upstream bad key", strings.Replace(validBase, "type: static", "type: saml", 1) + "saml:\n  sp:\n    cert_file: testdata/bridge-sp.crt\n    key_file: testdata/sp.key\n    upstreams:\n      - {name: corp, metadata_file: testdata/upstream-metadata.xml}\n", []string{"saml.sp.cert_file / saml.sp.key_file", "does not match"}},
		{"saml upstream bad name", strings.Replace(validBase, "type: static", "type: saml", 1) + "saml:\n  sp:\n    cert_file: testdata/bridge-sp.crt\n    key_file: testdata/bridge-sp.key\n    upstreams:\n      - {name: Corp IdP, metadata_file: testdata/upstream-metadata.xml}\n", []string{"saml.sp.upstreams[0].name: use only a-z 0-9 . _ -"}},
		{"tls cert without key", validBase + "server:\n  tls_cert_file: testdata/tls.crt\n", []string{"server.tls_cert_file: tls_cert_file and tls_key must be set together"}},
		{"tls key mismatch", validBase + "server:\n  tls_cert_file: testdata/tls.crt\n  tls_key: {file: testdata/idp.key}\n", []string{"server.tls_cert_file / server.tls_key: load TLS key pair"}},
		{"bad trusted proxy", validBase + "server:\n  trusted_proxies: [10.0.0.0/8, proxy.example.com]\n", []string{`server.trusted_proxies[1]: "proxy.example.com" is neither`}},
		// What serve or the first logout would trip on (validateDeploy).
		{"upstream metadata file missing", strings.Replace(validBase, "type: static", "type: saml", 1) + "saml:\n  sp:\n    cert_file: testdata/bridge-sp.crt\n    key_file: testdata/bridge-sp.key\n    upstreams:\n      - {name: corp, metadata_file: testdata/no-such-metadata.xml}\n", []string{"saml.sp.upstreams[0].metadata_file", "no such file"}},
		{"upstream metadata not metadata", strings.Replace(validBase, "type: static", "type: saml", 1) + "saml:\n  sp:\n    cert_file: testdata/bridge-sp.crt\n    key_file: testdata/bridge-sp.key\n    upstreams:\n      - {name: corp, metadata_file: testdata/sp-metadata.xml}\n", []string{"saml.sp.upstreams[0].metadata_file", "no IDPSSODescriptor"}},
		{"saml idp sp metadata file missing", validBase + "saml:\n  idp:\n    enabled: true\n    certificate_file: testdata/idp.crt\n    key: {file: testdata/idp.key}\n    service_providers:\n      - metadata_file: testdata/no-such-sp.xml\n", []string{"saml.idp.service_providers[0].metadata_file", "no such file"}},
		{"saml idp sp metadata not an SP", validBase + "saml:\n  idp:\n    enabled: true\n    certificate_file: testdata/idp.crt\n    key: {file: testdata/idp.key}\n    service_providers:\n      - metadata_file: testdata/upstream-metadata.xml\n", []string{"saml.idp.service_providers[0].metadata_file"}},
		{"short client secret", strings.Replace(validBase, "oidc:\n  allow_loopback_http: true\n", "", 1) + "oidc:\n  allow_loopback_http: true\n  allow_private_backchannel: true\n  clients:\n    - {client_id: app, redirect_uris: [https://a.example.com/cb], client_secret: twelve-chars}\n", []string{"oidc.clients[0].client_secret: must be at least 16 characters (got 12)"}},
		{"loopback back-channel not deliverable", strings.Replace(validBase, "oidc:\n  allow_loopback_http: true\n", "", 1) + "oidc:\n  allow_loopback_http: true\n  allow_private_backchannel: true\n  clients:\n    - {client_id: app, redirect_uris: [https://a.example.com/cb], token_endpoint_auth_method: none, backchannel_logout_uri: http://127.0.0.1:9000/bc}\n", []string{"oidc.clients[0].backchannel_logout_uri", "delivery.allow_loopback is false"}},
		{"localhost back-channel not deliverable", strings.Replace(validBase, "oidc:\n  allow_loopback_http: true\n", "", 1) + "oidc:\n  allow_loopback_http: true\n  allow_private_backchannel: true\n  clients:\n    - {client_id: app, redirect_uris: [https://a.example.com/cb], token_endpoint_auth_method: none, backchannel_logout_uri: http://localhost:9000/bc}\n", []string{"oidc.clients[0].backchannel_logout_uri", "delivery.allow_loopback is false"}},
		{"private back-channel not deliverable", strings.Replace(validBase, "oidc:\n  allow_loopback_http: true\n", "", 1) + "oidc:\n  allow_loopback_http: true\n  allow_private_backchannel: true\n  clients:\n    - {client_id: app, redirect_uris: [https://a.example.com/cb], token_endpoint_auth_method: none, backchannel_logout_uri: https://10.1.2.3/bc}\n", []string{"oidc.clients[0].backchannel_logout_uri", "delivery.allow_private is false"}},
		{"metadata-service back-channel", strings.Replace(validBase, "oidc:\n  allow_loopback_http: true\n", "", 1) + "oidc:\n  allow_loopback_http: true\n  allow_private_backchannel: true\n  clients:\n    - {client_id: app, redirect_uris: [https://a.example.com/cb], token_endpoint_auth_method: none, backchannel_logout_uri: http://169.254.169.254/bc}\n", []string{"oidc.clients[0].backchannel_logout_uri", "never reaches"}},
		{"redirect uri with fragment", strings.Replace(validBase, "oidc:\n  allow_loopback_http: true\n", "", 1) + "oidc:\n  allow_loopback_http: true\n  allow_private_backchannel: true\n  clients:\n    - {client_id: app, redirect_uris: [\"https://a.example.com/cb#x\"], token_endpoint_auth_method: none}\n", []string{"oidc.clients[0].redirect_uris[0]: must be an absolute URI without a fragment"}},
		{"relative redirect uri", strings.Replace(validBase, "oidc:\n  allow_loopback_http: true\n", "", 1) + "oidc:\n  allow_loopback_http: true\n  allow_private_backchannel: true\n  clients:\n    - {client_id: app, redirect_uris: [/cb], token_endpoint_auth_method: none}\n", []string{"oidc.clients[0].redirect_uris[0]: must be an absolute URI"}},
		{"loopback receiver not deliverable", validBase + "ssf:\n  receivers:\n    - id: rs\n      push_url: https://127.0.0.1:8443/events\n", []string{"ssf.receivers[0].push_url", "delivery.allow_loopback is false"}},
		{"several problems at once", "log:\n  format: xml\nstore:\n  driver: mysql\n", []string{"log.format", "store.driver", "session.cookie_secret", "saml.sp.upstreams"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := Parse([]byte(tt.doc), lookup)
			if err == nil {
				t.Fatalf("Parse accepted:\n%s", tt.doc)
			}
			for _, w := range tt.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error does not contain %q:\n%v", w, err)
				}
			}
			for _, secret := range []string{testEnv["COOKIE"], testEnv["PASSWORD"]} {
				if strings.Contains(err.Error(), secret) {
					t.Errorf("error leaks a secret: %v", err)
				}
			}
		})
	}
}

func TestLoadMissingFile(t *testing.T) {
	_, err := Load(filepath.Join(t.TempDir(), "absent.yaml"))
	if err == nil || !strings.Contains(err.Error(), "absent.yaml") {
		t.Fatalf("Load of a missing file: %v", err)
	}
}

// writeCertPair writes a self-signed certificate valid from notBefore to
// notAfter and its key into dir, returning their paths.
func writeCertPair(t *testing.T, dir, name string, notBefore, notAfter time.Time) (string, string) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: name},
		NotBefore: notBefore, NotAfter: notAfter, DNSNames: []string{"localhost"}}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	kd, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		t.Fatal(err)
	}
	crt, kf := filepath.Join(dir, name+".crt"), filepath.Join(dir, name+".key")
	if err := os.WriteFile(crt, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(kf, pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: kd}), 0o600); err != nil {
		t.Fatal(err)
	}
	return crt, kf
}

// TestCertificateDates: an expired certificate is refused with its key
// named; one that expires within 30 days is a warning.
func TestCertificateDates(t *testing.T) {
	dir := t.TempDir()
	now := time.Now()
	oldCrt, oldKey := writeCertPair(t, dir, "old", now.Add(-48*time.Hour), now.Add(-time.Hour))
	_, err := Parse([]byte(validBase+"server:\n  tls_cert_file: "+oldCrt+"\n  tls_key: {file: "+oldKey+"}\n"), lookup)
	if err == nil || !strings.Contains(err.Error(), "server.tls_cert_file: the certificate expired on") {
		t.Fatalf("expired TLS certificate: %v", err)
	}
	soonCrt, soonKey := writeCertPair(t, dir, "soon", now.Add(-time.Hour), now.Add(10*24*time.Hour))
	c, err := Parse([]byte(validBase+"server:\n  tls_cert_file: "+soonCrt+"\n  tls_key: {file: "+soonKey+"}\n"), lookup)
	if err != nil {
		t.Fatal(err)
	}
	if w := strings.Join(c.Warnings(now), "\n"); !strings.Contains(w, "server.tls_cert_file: the certificate expires on") {
		t.Fatalf("warnings %q, want the expiry ahead", w)
	}
}

// TestWarnsOnUserIDAttributeTheIdPDoesNotList: an upstream whose metadata
// lists the attributes it releases, and a user_id_attribute not among
// them, is warned about (every login would be refused).
func TestWarnsOnUserIDAttributeTheIdPDoesNotList(t *testing.T) {
	md, err := os.ReadFile("testdata/upstream-metadata.xml")
	if err != nil {
		t.Fatal(err)
	}
	listed := strings.Replace(string(md), "</md:IDPSSODescriptor>",
		`<saml:Attribute xmlns:saml="urn:oasis:names:tc:SAML:2.0:assertion" Name="urn:oid:0.9.2342.19200300.100.1.3" FriendlyName="mail"/></md:IDPSSODescriptor>`, 1)
	f := filepath.Join(t.TempDir(), "md.xml")
	if err := os.WriteFile(f, []byte(listed), 0o600); err != nil {
		t.Fatal(err)
	}
	doc := func(attr string) string {
		return strings.Replace(validBase, "type: static", "type: saml", 1) + "saml:\n  sp:\n    cert_file: testdata/bridge-sp.crt\n    key_file: testdata/bridge-sp.key\n    upstreams:\n      - {name: corp, metadata_file: " + f + ", user_id_attribute: " + attr + "}\n"
	}
	c, err := Parse([]byte(doc("employeeNumber")), lookup)
	if err != nil {
		t.Fatal(err)
	}
	if w := strings.Join(c.Warnings(time.Now()), "\n"); !strings.Contains(w, `saml.sp.upstreams[0].user_id_attribute: "employeeNumber" is not among`) {
		t.Fatalf("warnings: %q", w)
	}
	if c, err = Parse([]byte(doc("mail")), lookup); err != nil || strings.Contains(strings.Join(c.Warnings(time.Now()), "\n"), "user_id_attribute") {
		t.Fatalf("a listed attribute: %v, warnings %q", err, c.Warnings(time.Now()))
	}
}
