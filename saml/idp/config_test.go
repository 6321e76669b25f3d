package idp

import (
	"encoding/base64"
	"encoding/xml"
	"errors"
	"io"
	"net/http"
	"os"
	"strings"
	"testing"

	"github.com/crewjam/saml"

	bsaml "github.com/slobridge/slobridge/saml"
	"github.com/slobridge/slobridge/store"
)

func TestConfigValidate(t *testing.T) {
	for _, tc := range []struct {
		name string
		cfg  Config
		want []string // substrings of the error, each with its key path
	}{
		{name: "empty is valid", cfg: Config{}},
		{name: "file SP", cfg: Config{ServiceProviders: []SPConfig{{MetadataFile: "sp.xml", NameID: NameIDEmail, LogoutChannels: []string{"front", "back"}}}}},
		{name: "every problem with its path", cfg: Config{EntityID: "not a uri", ServiceProviders: []SPConfig{
			{},
			{MetadataFile: "a", MetadataURL: "https://x"},
			{MetadataURL: "ftp://x", NameID: "uuid", LogoutChannels: []string{"side"}, FrontChannelBinding: "artifact"},
		}}, want: []string{
			"entity_id:", "service_providers[0]: metadata_file or metadata_url is required",
			"service_providers[1]: metadata_file and metadata_url are exclusive",
			"service_providers[2]: metadata_url:", "name_id:", "logout_channels:", "front_channel_binding:",
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			err := tc.cfg.Validate()
			if len(tc.want) == 0 {
				if err != nil {
					t.Fatalf("Validate() = %v, want nil", err)
				}
				return
			}
			if err == nil {
				t.Fatal("Validate() = nil, want errors")
			}
			for _, w := range tc.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q does not mention %q", err, w)
				}
			}
		})
	}
}

// spMetadata renders SP metadata with the given SLO endpoints and ACS
// bindings.
func spMetadata(t testing.TB, entity string, slo []saml.Endpoint, acsBinding string) []byte {
	t.Helper()
	return spMetadataKey(t, entity, slo, acsBinding, "sp2")
}

// spMetadataKey is spMetadata with the signing key of testdata/<key>.crt.
func spMetadataKey(t testing.TB, entity string, slo []saml.Endpoint, acsBinding, key string) []byte {
	t.Helper()
	cert := testSigner(t, key).Cert
	ed := saml.EntityDescriptor{EntityID: entity, SPSSODescriptors: []saml.SPSSODescriptor{{
		SSODescriptor: saml.SSODescriptor{
			RoleDescriptor: saml.RoleDescriptor{ProtocolSupportEnumeration: bsaml.NSProtocol,
				KeyDescriptors: []saml.KeyDescriptor{{Use: "signing", KeyInfo: saml.KeyInfo{X509Data: saml.X509Data{
					X509Certificates: []saml.X509Certificate{{Data: base64.StdEncoding.EncodeToString(cert.Raw)}}}}}}},
			SingleLogoutServices: slo,
		},
		AssertionConsumerServices: []saml.IndexedEndpoint{{Binding: acsBinding, Location: "https://sp.test/acs", Index: 0}},
	}}}
	b, err := xml.Marshal(ed)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func TestParseSP(t *testing.T) {
	soap := saml.Endpoint{Binding: URISOAP, Location: "https://sp.test/soap"}
	post := saml.Endpoint{Binding: URIPOST, Location: "https://sp.test/slo-post"}
	redir := saml.Endpoint{Binding: URIRedirect, Location: "https://sp.test/slo"}
	md := func(slo ...saml.Endpoint) []byte { return spMetadata(t, "https://sp.test/md", slo, URIPOST) }
	for _, tc := range []struct {
		name         string
		cfg          SPConfig
		raw          []byte
		wantErr      string
		wantChannels []string
		wantBinding  string
	}{
		{name: "SOAP offered: back channel by default", raw: md(redir, soap), wantChannels: []string{"back"}, wantBinding: BindingRedirect},
		{name: "browser only: front channel, first binding", raw: md(post, redir), wantChannels: []string{"front"}, wantBinding: BindingPOST},
		{name: "no SLO: no channel", raw: md(), wantChannels: []string{}},
		{name: "both configured", cfg: SPConfig{LogoutChannels: []string{"front", "back"}, FrontChannelBinding: "redirect"},
			raw: md(post, redir, soap), wantChannels: []string{"front", "back"}, wantBinding: BindingRedirect},
		{name: "back without SOAP", cfg: SPConfig{LogoutChannels: []string{"back"}}, raw: md(redir), wantErr: "needs a SOAP SingleLogoutService"},
		{name: "front binding not offered", cfg: SPConfig{LogoutChannels: []string{"front"}, FrontChannelBinding: "post"}, raw: md(redir, soap), wantErr: "needs a post SingleLogoutService"},
		{name: "entity ID mismatch", cfg: SPConfig{EntityID: "https://other.test"}, raw: md(), wantErr: "is not the configured"},
		{name: "no POST ACS", raw: spMetadata(t, "https://sp.test/md", nil, URIRedirect), wantErr: "no HTTP-POST AssertionConsumerService"},
		{name: "DTD", raw: append([]byte(`<!DOCTYPE x [<!ENTITY a "b">]>`), md()...), wantErr: "DTD"},
		{name: "not metadata", raw: []byte(`<x/>`), wantErr: "not an EntityDescriptor"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			cfg := tc.cfg
			cfg.MetadataFile = "x.xml"
			sp, err := parseSP(cfg, tc.raw)
			if tc.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
					t.Fatalf("parseSP error %v, want %q", err, tc.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if strings.Join(sp.Config.LogoutChannels, ",") != strings.Join(tc.wantChannels, ",") ||
				(tc.wantBinding != "" && sp.Config.FrontChannelBinding != tc.wantBinding) {
				t.Fatalf("channels %v binding %q, want %v %q", sp.Config.LogoutChannels, sp.Config.FrontChannelBinding, tc.wantChannels, tc.wantBinding)
			}
			if len(sp.SigningCerts) != 1 {
				t.Fatalf("%d signing certificates, want 1", len(sp.SigningCerts))
			}
		})
	}
}

func TestSameNameID(t *testing.T) {
	ip := &IdP{entityID: "https://idp.test"}
	sp := &SP{EntityID: "https://sp.test"}
	issued := bsaml.NameID{Value: "abc", Format: FormatPersistent, NameQualifier: "https://idp.test", SPNameQualifier: "https://sp.test"}
	for _, tc := range []struct {
		name string
		got  bsaml.NameID
		want bool
	}{
		{"exact", issued, true},
		{"value only", bsaml.NameID{Value: "abc"}, true},
		{"other value", bsaml.NameID{Value: "abd"}, false},
		{"other format", bsaml.NameID{Value: "abc", Format: FormatTransient}, false},
		{"unspecified format", bsaml.NameID{Value: "abc", Format: FormatUnspecified}, true},
		{"unspecified format, other value", bsaml.NameID{Value: "abd", Format: FormatUnspecified}, false},
		{"value differs in case", bsaml.NameID{Value: "ABC"}, false},
		{"all defaults spelled out", bsaml.NameID{Value: "abc", Format: FormatPersistent, NameQualifier: "https://idp.test",
			SPNameQualifier: "https://sp.test"}, true},
		{"other NameQualifier", bsaml.NameID{Value: "abc", NameQualifier: "https://evil.test"}, false},
		{"other SPNameQualifier", bsaml.NameID{Value: "abc", SPNameQualifier: "https://sp2.test"}, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			is := issuedFrom(participantWith(issued)).NameID
			if got := ip.sameNameID(sp, is, tc.got); got != tc.want {
				t.Fatalf("sameNameID = %v, want %v", got, tc.want)
			}
		})
	}
	// An email NameID is issued without qualifiers: they default to this
	// IdP and this SP.
	email := issuedFrom(participantWith(bsaml.NameID{Value: "a@b", Format: FormatEmail})).NameID
	if !ip.sameNameID(sp, email, bsaml.NameID{Value: "a@b", NameQualifier: "https://idp.test", SPNameQualifier: "https://sp.test"}) {
		t.Error("default qualifiers not accepted")
	}
}

func participantWith(n bsaml.NameID) store.Participant {
	return store.Participant{Data: map[string]string{
		DataNameID: n.Value, DataNameIDFormat: n.Format, DataNameQualifier: n.NameQualifier, DataSPNameQualifier: n.SPNameQualifier,
	}}
}

func TestRegister(t *testing.T) {
	dir := t.TempDir()
	static, sf := ssoSP(t, dir, "static")
	dyn, df := ssoSP(t, dir, "dynamic")
	b := newBridge(t, bridgeOpts{cfg: Config{ServiceProviders: []SPConfig{{MetadataFile: sf}}}})
	ctx := t.Context()
	if _, err := b.idp.ServiceProvider(ctx, dyn); !errors.Is(err, ErrUnknownSP) {
		t.Fatalf("lookup before Register: %v, want ErrUnknownSP", err)
	}
	if _, err := b.idp.Register(ctx, SPConfig{MetadataFile: sf}); err == nil {
		t.Fatal("Register replaced a configured SP")
	}
	if _, err := b.idp.Register(ctx, SPConfig{MetadataFile: df, EntityID: "https://wrong.test"}); err == nil {
		t.Fatal("Register accepted metadata for another entity ID")
	}
	sp, err := b.idp.Register(ctx, SPConfig{MetadataFile: df, Name: "Dynamic", NameID: NameIDEmail})
	if err != nil || sp.EntityID != dyn {
		t.Fatalf("Register: %+v, %v", sp, err)
	}
	got, err := b.idp.ServiceProvider(ctx, dyn)
	if err != nil || got.Name != "Dynamic" || got.Config.NameID != NameIDEmail {
		t.Fatalf("lookup after Register: %+v, %v", got, err)
	}
	if got, err := b.idp.ServiceProvider(ctx, static); err != nil || got.EntityID != static {
		t.Fatalf("configured SP: %+v, %v", got, err)
	}
}

// TestRegisterPastedMetadataAndDisable: an SP registered from pasted
// metadata signs people in; disabled, its AuthnRequests are refused with
// 403 and it stays registered (its sessions are still logged out); enabled
// again it signs in. A configured SP cannot be disabled here.
func TestRegisterPastedMetadataAndDisable(t *testing.T) {
	dir := t.TempDir()
	static, sf := ssoSP(t, dir, "static")
	dyn, df := ssoSP(t, dir, "pasted")
	raw, err := os.ReadFile(df)
	if err != nil {
		t.Fatal(err)
	}
	b := newBridge(t, bridgeOpts{cfg: Config{ServiceProviders: []SPConfig{{MetadataFile: sf}}}})
	ctx := t.Context()
	if _, err := b.idp.RegisterMetadata(ctx, SPConfig{Name: "Pasted"}, []byte("<not-metadata/>")); err == nil {
		t.Fatal("RegisterMetadata accepted a document that is no EntityDescriptor")
	}
	if _, err := b.idp.RegisterMetadata(ctx, SPConfig{Name: "Pasted"}, raw); err != nil {
		t.Fatalf("RegisterMetadata: %v", err)
	}
	c := newBrowserlessClient()
	if a := sso(t, b, c, authnReq{sp: dyn}, 1); a.infoErr != nil {
		t.Fatalf("login at the pasted SP: %+v", a)
	}
	if err := b.idp.SetDisabled(ctx, dyn, true); err != nil {
		t.Fatal(err)
	}
	u, err := bsaml.RedirectURL(b.srv.URL+PathSSO, bsaml.ParamRequest, authnReq{sp: dyn}.element("_sso-2", b.idp.endpoint(PathSSO)), "r", testSigner(t, "sp2"))
	if err != nil {
		t.Fatal(err)
	}
	resp, err := c.Get(u)
	if err != nil {
		t.Fatal(err)
	}
	page, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusForbidden || !strings.Contains(string(page), "disabled") {
		t.Fatalf("AuthnRequest of a disabled SP: %d %s", resp.StatusCode, page)
	}
	if sp, err := b.idp.ServiceProvider(ctx, dyn); err != nil || !sp.Disabled {
		t.Fatalf("the disabled SP: %+v, %v; want it registered and disabled", sp, err)
	}
	if err := b.idp.SetDisabled(ctx, dyn, false); err != nil {
		t.Fatal(err)
	}
	if a := sso(t, b, c, authnReq{sp: dyn}, 3); a.infoErr != nil {
		t.Fatalf("login at the SP enabled again: %+v", a)
	}
	if err := b.idp.SetDisabled(ctx, static, true); err == nil {
		t.Error("SetDisabled changed a configured SP")
	}
	if err := b.idp.SetDisabled(ctx, "https://unknown.test", true); !errors.Is(err, ErrUnknownSP) {
		t.Errorf("SetDisabled of an unknown SP: %v, want ErrUnknownSP", err)
	}
}
