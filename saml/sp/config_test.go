package sp

import (
	"path/filepath"
	"testing"
	"time"

	"gopkg.in/yaml.v3"
)

const exampleYAML = `
entity_id: https://bridge.example.com/saml/sp/metadata
cert_file: ../testdata/sp.crt
key_file: ../testdata/sp.key
metadata_refresh: 30m
soap_logout_wait: 5s
upstreams:
  - name: corp
    display_name: Corporate login
    metadata_url: https://idp.example.com/metadata
    clients: [hr-app]
    user_id_attribute: uid
    user_id_prefix: "corp:"
    attributes:
      email: mail
      name: cn
      groups: eduPersonAffiliation
  - name: partner
    metadata_file: /etc/slobridge/partner-idp.xml
    allow_sha1: true
`

func TestConfigYAML(t *testing.T) {
	var c Config
	if err := yaml.Unmarshal([]byte(exampleYAML), &c); err != nil {
		t.Fatal(err)
	}
	if c.MetadataRefresh != 30*time.Minute || c.SOAPLogoutWait != 5*time.Second || len(c.Upstreams) != 2 ||
		c.Upstreams[0].Attributes["groups"] != "eduPersonAffiliation" || !c.Upstreams[1].AllowSHA1 ||
		c.Upstreams[0].UserIDPrefix != "corp:" {
		t.Fatalf("decoded %+v", c)
	}
	opts, err := c.Options()
	if err != nil {
		t.Fatal(err)
	}
	if opts.Signer == nil || opts.SessionMaxAge != defaultMaxAge || opts.ClockSkew <= 0 ||
		opts.Upstreams[1].NameIDFormat != nameIDPersistent || opts.EntityID != c.EntityID {
		t.Fatalf("options %+v", opts)
	}
	c.KeyFile = filepath.Join("..", "testdata", "other.key")
	if _, err := c.Options(); err == nil {
		t.Fatal("a key that does not match the certificate was accepted")
	}
}
