package idp

import (
	"errors"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"

	"github.com/crewjam/saml"
)

// mdServer serves SP metadata documents that a test can change or break.
type mdServer struct {
	srv  *httptest.Server
	mu   sync.Mutex
	docs map[string][]byte
	fail bool
}

func newMDServer(t *testing.T) *mdServer {
	m := &mdServer{docs: map[string][]byte{}}
	m.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		m.mu.Lock()
		defer m.mu.Unlock()
		if m.fail {
			http.Error(w, "down", http.StatusInternalServerError)
			return
		}
		_, _ = w.Write(m.docs[r.URL.Path])
	}))
	t.Cleanup(m.srv.Close)
	return m
}

func (m *mdServer) set(path string, doc []byte, fail bool) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if doc != nil {
		m.docs[path] = doc
	}
	m.fail = fail
}

// TestRefreshMetadata: SPs registered by URL, in the configuration and
// through Register, pick up new metadata (a key rollover); a failed fetch
// or a document for another entity keeps the last good copy.
func TestRefreshMetadata(t *testing.T) {
	md := newMDServer(t)
	slo := []saml.Endpoint{{Binding: URIRedirect, Location: "https://sp.test/slo"}}
	const static, dyn = "https://static.test/md", "https://dynamic.test/md"
	md.set("/static", spMetadataKey(t, static, slo, URIPOST, "sp2"), false)
	md.set("/dyn", spMetadataKey(t, dyn, slo, URIPOST, "sp2"), false)
	b := newBridge(t, bridgeOpts{cfg: Config{ServiceProviders: []SPConfig{{MetadataURL: md.srv.URL + "/static"}}}})
	ctx := t.Context()
	if _, err := b.idp.Register(ctx, SPConfig{MetadataURL: md.srv.URL + "/dyn"}); err != nil {
		t.Fatal(err)
	}
	certOf := func(entity string) string {
		t.Helper()
		sp, err := b.idp.ServiceProvider(ctx, entity)
		if err != nil || len(sp.SigningCerts) != 1 {
			t.Fatalf("lookup %s: %+v %v", entity, sp, err)
		}
		return sp.SigningCerts[0].Subject.CommonName
	}
	// Looked up once before the rollover, so that the parsed registration
	// ServiceProvider keeps must be replaced when the stored one changes.
	if got := certOf(dyn); got != "sp2.slobridge.test" {
		t.Fatalf("signing certificate before the rollover %s, want sp2.slobridge.test", got)
	}
	for _, step := range []struct {
		name      string
		static    []byte
		dyn       []byte
		fail      bool
		wantErr   string
		wantCerts string
	}{
		{name: "key rollover", static: spMetadataKey(t, static, slo, URIPOST, "sp3"), dyn: spMetadataKey(t, dyn, slo, URIPOST, "sp3"),
			wantCerts: "sp3.slobridge.test"},
		{name: "server down", fail: true, wantErr: "HTTP 500", wantCerts: "sp3.slobridge.test"},
		{name: "another entity", static: spMetadataKey(t, "https://evil.test/md", slo, URIPOST, "other"),
			dyn: spMetadataKey(t, "https://evil.test/md", slo, URIPOST, "other"), wantErr: "entityID changed", wantCerts: "sp3.slobridge.test"},
		{name: "invalid document", static: []byte("<nope/>"), dyn: []byte("<nope/>"), wantErr: "not an EntityDescriptor", wantCerts: "sp3.slobridge.test"},
	} {
		t.Run(step.name, func(t *testing.T) {
			md.set("/static", step.static, step.fail)
			md.set("/dyn", step.dyn, step.fail)
			err := b.idp.RefreshMetadata(ctx)
			if (step.wantErr == "") != (err == nil) || (err != nil && !strings.Contains(err.Error(), step.wantErr)) {
				t.Fatalf("RefreshMetadata = %v, want error %q", err, step.wantErr)
			}
			if got := certOf(static) + " " + certOf(dyn); got != step.wantCerts+" "+step.wantCerts {
				t.Fatalf("signing certificates %s, want %s for both", got, step.wantCerts)
			}
		})
	}
}

// TestMetadataURLDownAtStart: a configured SP whose metadata server is down
// does not stop the bridge; it is loaded by the next refresh.
func TestMetadataURLDownAtStart(t *testing.T) {
	md := newMDServer(t)
	const late = "https://late.test/md"
	md.set("/late", spMetadataKey(t, late, nil, URIPOST, "sp2"), true)
	b := newBridge(t, bridgeOpts{cfg: Config{ServiceProviders: []SPConfig{{MetadataURL: md.srv.URL + "/late"}}}})
	ctx := t.Context()
	if _, err := b.idp.ServiceProvider(ctx, late); !errors.Is(err, ErrUnknownSP) {
		t.Fatalf("SP with unavailable metadata: %v, want unknown", err)
	}
	if err := b.idp.RefreshMetadata(ctx); err == nil {
		t.Fatal("refresh with the server still down succeeded")
	}
	md.set("/late", nil, false)
	if err := b.idp.RefreshMetadata(ctx); err != nil {
		t.Fatal(err)
	}
	if sp, err := b.idp.ServiceProvider(ctx, late); err != nil || sp.EntityID != late {
		t.Fatalf("after the refresh: %+v %v", sp, err)
	}
}
