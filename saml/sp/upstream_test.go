package sp

import (
	"encoding/xml"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/beevik/etree"
	crewjam "github.com/crewjam/saml"

	"github.com/slobridge/slobridge/saml"
)

func TestMetadataRefreshKeepsLastGoodCopy(t *testing.T) {
	var down atomic.Bool
	first := idpMetadata(t, idpEntity, loadSigner(t, "idp").Cert, "https://idp.example.test/sso", allSLO())
	md := first
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if down.Load() {
			http.Error(w, "down", http.StatusServiceUnavailable)
			return
		}
		_, _ = w.Write(md)
	}))
	t.Cleanup(srv.Close)
	b := newBridge(t, bridgeOptions{upstreams: []UpstreamConfig{{Name: "corp", MetadataURL: srv.URL}}})
	if got := b.sp.reg.Load().byName["corp"].idp.EntityID; got != idpEntity {
		t.Fatalf("entity %q", got)
	}

	// A refresh picks up new metadata (a second signing key).
	md = idpMetadata(t, idpEntity, loadSigner(t, "other").Cert, "https://idp.example.test/sso2", allSLO())
	b.sp.Refresh(t.Context())
	u := b.sp.reg.Load().byName["corp"]
	if ep, _ := u.sso(saml.BindingRedirect); ep.Location != "https://idp.example.test/sso2" {
		t.Fatalf("refresh did not load the new metadata: %s", ep.Location)
	}

	// Health says when the metadata was read and when its certificate
	// expires, and no error.
	h := b.sp.Health()
	if len(h) != 1 || h[0].Loaded.IsZero() || !h[0].CertNotAfter.Equal(loadSigner(t, "other").Cert.NotAfter) || h[0].RefreshError != "" {
		t.Fatalf("health after a good refresh: %+v", h)
	}
	loaded := h[0].Loaded

	// The IdP's metadata URL fails: the last good copy stays, and Health
	// says the refresh fails.
	down.Store(true)
	b.sp.Refresh(t.Context())
	if ep, _ := b.sp.reg.Load().byName["corp"].sso(saml.BindingRedirect); ep.Location != "https://idp.example.test/sso2" {
		t.Fatalf("failed refresh dropped the metadata: %s", ep.Location)
	}
	if h := b.sp.Health(); !h[0].Loaded.Equal(loaded) || !strings.Contains(h[0].RefreshError, "503") {
		t.Fatalf("health after a failed refresh: %+v", h)
	}

	// A restart while the URL is down starts from the copy in the store.
	again, err := New(t.Context(), Options{Engine: b.eng, Cookies: b.cookies, BaseURL: b.srv.URL,
		Signer: loadSigner(t, "sp"), Upstreams: []UpstreamConfig{{Name: "corp", MetadataURL: srv.URL}}, Logger: quietLogger()})
	if err != nil {
		t.Fatalf("restart with the metadata URL down: %v", err)
	}
	if ep, _ := again.reg.Load().byName["corp"].sso(saml.BindingRedirect); ep.Location != "https://idp.example.test/sso2" {
		t.Fatalf("restart did not use the stored copy: %s", ep.Location)
	}

	// Without any copy, New starts without that upstream and says so
	// (Run retries it: TestUpstreamUnavailableAtStart).
	other, err := New(t.Context(), Options{Engine: b.eng, Cookies: b.cookies, BaseURL: b.srv.URL,
		Signer: loadSigner(t, "sp"), Upstreams: []UpstreamConfig{{Name: "other", MetadataURL: srv.URL}}, Logger: quietLogger()})
	if err != nil || other.Unavailable()["other"] == "" || other.reg.Load().byName["other"] != nil {
		t.Fatalf("New with an unreachable metadata URL and no copy: %v, unavailable %v", err, other.Unavailable())
	}
	// A metadata file that cannot be read is a configuration error.
	if _, err := New(t.Context(), Options{Engine: b.eng, Cookies: b.cookies, BaseURL: b.srv.URL,
		Signer: loadSigner(t, "sp"), Upstreams: []UpstreamConfig{{Name: "file", MetadataFile: "no-such-metadata.xml"}}, Logger: quietLogger()}); err == nil {
		t.Fatal("New succeeded with a missing metadata file")
	}
}

func TestMetadataRefused(t *testing.T) {
	good := string(idpMetadata(t, idpEntity, loadSigner(t, "idp").Cert, "https://idp.example.test/sso", allSLO()))
	for name, md := range map[string]string{
		"dtd":     `<!DOCTYPE x [<!ENTITY a "b">]>` + good,
		"no idp":  `<EntityDescriptor xmlns="urn:oasis:names:tc:SAML:2.0:metadata" entityID="x"></EntityDescriptor>`,
		"no cert": good[:strings.Index(good, "<KeyDescriptor")] + good[strings.Index(good, "</KeyDescriptor>")+len("</KeyDescriptor>"):],
		"not xml": "hello",
		"expired": strings.Replace(good, `entityID=`, `validUntil="2001-01-01T00:00:00Z" entityID=`, 1),
	} {
		t.Run(name, func(t *testing.T) {
			sp := &SP{opts: Options{Signer: loadSigner(t, "sp"), BaseURL: "https://bridge.example.test", Now: time.Now}}
			_, err := sp.buildUpstream(UpstreamConfig{Name: "x"}, []byte(md))
			if err == nil {
				t.Fatal("metadata accepted")
			}
			t.Log(err)
		})
	}
}

// TestChooser checks that with several upstreams the login goes to the
// one configured for the client, or to the chooser page.
func TestChooser(t *testing.T) {
	md2 := idpMetadata(t, "https://other-idp.example.test/metadata", loadSigner(t, "other").Cert, "https://other-idp.example.test/sso", nil)
	b := newBridge(t, bridgeOptions{upstreams: []UpstreamConfig{
		func() UpstreamConfig { u := corpUpstream(t, allSLO()); u.Clients = []string{"hr-app"}; return u }(),
		{Name: "partner", DisplayName: "Partner & Co", MetadataFile: writeFile(t, "other.xml", md2), Clients: []string{"https://hr.example.test/sp"}},
	}})
	resp := b.get("/test/login?client_id=hr-app")
	if loc := resp.Header.Get("Location"); !strings.HasPrefix(loc, "https://idp.example.test/sso?SAMLRequest=") {
		t.Fatalf("hr-app login went to %q", loc)
	}
	resp = b.get("/test/login?client_id=unknown")
	loc := resp.Header.Get("Location")
	if !strings.HasPrefix(loc, b.sp.url(PathLogin)+"?state=") {
		t.Fatalf("unmapped client went to %q", loc)
	}
	page := readBody(t, b.get(loc))
	if !strings.Contains(page, "Partner &amp; Co") || !strings.Contains(page, "upstream=corp") {
		t.Fatalf("chooser page:\n%s", page)
	}
	// The app asking is named by the request itself: an OIDC client_id,
	// or the Issuer of a SAML AuthnRequest.
	resp = b.get("/test/app-login?client_id=hr-app")
	if l := resp.Header.Get("Location"); !strings.HasPrefix(l, "https://idp.example.test/sso?SAMLRequest=") {
		t.Fatalf("authorize request of hr-app went to %q", l)
	}
	ar := &crewjam.AuthnRequest{ID: "_ar", Version: "2.0", IssueInstant: time.Now(), Issuer: &crewjam.Issuer{Value: "https://hr.example.test/sp"}}
	su, err := saml.RedirectURL(b.srv.URL+"/test/app-login", saml.ParamRequest, ar.Element(), "", nil)
	if err != nil {
		t.Fatal(err)
	}
	resp = b.get(su)
	if l := resp.Header.Get("Location"); !strings.HasPrefix(l, "https://other-idp.example.test/sso?SAMLRequest=") {
		t.Fatalf("AuthnRequest of https://hr.example.test/sp went to %q", l)
	}
	resp = b.get(loc + "&upstream=partner")
	if l := resp.Header.Get("Location"); !strings.HasPrefix(l, "https://other-idp.example.test/sso?SAMLRequest=") {
		t.Fatalf("chosen upstream login went to %q", l)
	}
	if r := b.get(loc + "&upstream=partner"); r.StatusCode != http.StatusBadRequest {
		t.Fatalf("chooser state reused: %d", r.StatusCode)
	}
}

func TestSPMetadata(t *testing.T) {
	b := newBridge(t, bridgeOptions{upstreams: []UpstreamConfig{corpUpstream(t, allSLO())}})
	resp := b.get(PathMetadata)
	body := readBody(t, resp)
	if resp.StatusCode != http.StatusOK || resp.Header.Get("Content-Type") != "application/samlmetadata+xml" {
		t.Fatalf("metadata: %d %s", resp.StatusCode, resp.Header.Get("Content-Type"))
	}
	if err := saml.CheckXML([]byte(body)); err != nil {
		t.Fatal(err)
	}
	var ed crewjam.EntityDescriptor
	if err := xml.Unmarshal([]byte(body), &ed); err != nil {
		t.Fatal(err)
	}
	if ed.EntityID != b.sp.url(PathMetadata) || len(ed.SPSSODescriptors) != 1 {
		t.Fatalf("entity %q", ed.EntityID)
	}
	if !ed.ValidUntil.After(time.Now().Add(24*time.Hour)) || ed.CacheDuration != 24*time.Hour {
		t.Errorf("validUntil %v cacheDuration %v", ed.ValidUntil, ed.CacheDuration)
	}
	d := ed.SPSSODescriptors[0]
	got := map[string]string{}
	for _, e := range d.SingleLogoutServices {
		got[e.Binding] = e.Location
	}
	want := map[string]string{saml.BindingRedirect: b.sp.url(PathSLO), saml.BindingPOST: b.sp.url(PathSLO), saml.BindingSOAP: b.sp.url(PathSLOSOAP)}
	for k, v := range want {
		if got[k] != v {
			t.Errorf("SLO %s = %q, want %q", k, got[k], v)
		}
	}
	if d.AuthnRequestsSigned == nil || !*d.AuthnRequestsSigned || len(d.AssertionConsumerServices) != 1 ||
		d.AssertionConsumerServices[0].Location != b.sp.url(PathACS) {
		t.Errorf("SPSSODescriptor %+v", d)
	}
	var signing bool
	for _, kd := range d.KeyDescriptors {
		if kd.Use == "signing" {
			c, err := saml.ParseCertificateBase64(kd.KeyInfo.X509Data.X509Certificates[0].Data)
			signing = err == nil && c.Equal(b.sp.opts.Signer.Cert)
		}
	}
	if !signing {
		t.Error("no signing certificate in metadata")
	}
}

func TestConfigValidate(t *testing.T) {
	for _, tc := range []struct {
		name string
		cfg  Config
		want []string
	}{
		{"empty", Config{}, []string{"saml_sp.cert_file", "saml_sp.key_file", "saml_sp.upstreams"}},
		{"upstream problems", Config{CertFile: "c", KeyFile: "k", Upstreams: []UpstreamConfig{
			{Name: "A"}, {Name: "b", MetadataURL: "ftp://x", MetadataFile: "f"}, {Name: "b", MetadataFile: "f"}}},
			[]string{"saml_sp.upstreams[0].name", "saml_sp.upstreams[0]: set exactly one", "saml_sp.upstreams[1]: set exactly one",
				"saml_sp.upstreams[1].metadata_url", "saml_sp.upstreams[2].name: duplicate"}},
		{"ok", Config{CertFile: "c", KeyFile: "k", Upstreams: []UpstreamConfig{{Name: "corp", MetadataURL: "https://idp/md"}}}, nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got := tc.cfg.Validate("saml_sp")
			if len(got) != len(tc.want) {
				t.Fatalf("problems %q, want %d", got, len(tc.want))
			}
			for i, w := range tc.want {
				if !strings.HasPrefix(got[i], w) {
					t.Errorf("problem %d = %q, want prefix %q", i, got[i], w)
				}
			}
		})
	}
}

func TestSignedMetadata(t *testing.T) {
	md := idpMetadata(t, idpEntity, loadSigner(t, "idp").Cert, "https://idp.example.test/sso", allSLO())
	doc := etree.NewDocument()
	if err := doc.ReadFromBytes(md); err != nil {
		t.Fatal(err)
	}
	doc.Root().CreateAttr("ID", "_md1")
	signed, err := loadSigner(t, "other").SignEnveloped(doc.Root())
	if err != nil {
		t.Fatal(err)
	}
	good := elementBytes(t, signed)
	otherCert := filepath.Join("..", "testdata", "other.crt")
	idpCert := filepath.Join("..", "testdata", "idp.crt")
	for _, tc := range []struct {
		name, cert string
		data       []byte
		ok         bool
	}{
		{"signed", otherCert, good, true},
		{"tampered", otherCert, []byte(strings.Replace(string(good), "https://idp.example.test/sso", "https://evil.example.test/sso", 1)), false},
		{"unsigned", otherCert, md, false},
		{"wrong key", idpCert, good, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			sp := &SP{opts: Options{Signer: loadSigner(t, "sp"), BaseURL: "https://bridge.example.test", Now: time.Now}}
			u, err := sp.buildUpstream(UpstreamConfig{Name: "corp", MetadataCertFile: tc.cert}, tc.data)
			if tc.ok != (err == nil) {
				t.Fatalf("err = %v, want ok=%v", err, tc.ok)
			}
			if tc.ok && u.trust.EntityID != idpEntity {
				t.Fatalf("entity %q", u.trust.EntityID)
			}
		})
	}
}
