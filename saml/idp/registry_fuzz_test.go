package idp

import (
	"strings"
	"testing"

	"github.com/crewjam/saml"
)

// FuzzParseSP feeds arbitrary documents to the SP metadata parser: it
// must not panic, and what it accepts must be usable (an entity ID, a POST
// ACS, logout channels backed by endpoints).
func FuzzParseSP(f *testing.F) {
	f.Add(spMetadata(f, "https://sp.test/md", []saml.Endpoint{{Binding: URISOAP, Location: "https://sp.test/soap"}}, URIPOST))
	f.Add(spMetadata(f, "https://sp.test/md", []saml.Endpoint{{Binding: URIRedirect, Location: "https://sp.test/slo"}}, URIPOST))
	f.Add([]byte(`<!DOCTYPE x [<!ENTITY a "aaaa">]><EntityDescriptor xmlns="urn:oasis:names:tc:SAML:2.0:metadata" entityID="&a;"/>`))
	f.Add([]byte(`<EntityDescriptor xmlns="urn:oasis:names:tc:SAML:2.0:metadata" entityID="x"><SPSSODescriptor/></EntityDescriptor>`))
	f.Fuzz(func(t *testing.T, raw []byte) {
		sp, err := parseSP(SPConfig{MetadataFile: "fuzz.xml"}, raw)
		if err != nil {
			return
		}
		if sp.EntityID == "" || !strings.Contains(string(raw), "SPSSODescriptor") {
			t.Fatalf("accepted metadata without an entity or SP role: %+v", sp)
		}
		if _, err := sp.resolveACS(&saml.AuthnRequest{}); err != nil {
			t.Fatalf("accepted metadata without a default ACS: %v", err)
		}
		for _, ch := range sp.Config.LogoutChannels {
			if ch == ChannelBack && sp.SLOLocation(URISOAP) == "" {
				t.Fatal("back channel without a SOAP endpoint")
			}
		}
	})
}
