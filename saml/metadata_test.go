package saml

import (
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestReadMetadata: a file or a URL is read whole up to the cap; a longer
// document, an HTTP error and a missing file are refused.
func TestReadMetadata(t *testing.T) {
	doc := []byte(`<md:EntityDescriptor xmlns:md="urn:oasis:names:tc:SAML:2.0:metadata" entityID="https://idp.test/"/>`)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path != "/md" {
			http.NotFound(w, r)
			return
		}
		_, _ = w.Write(doc)
	}))
	t.Cleanup(srv.Close)
	file := filepath.Join(t.TempDir(), "md.xml")
	if err := os.WriteFile(file, doc, 0o600); err != nil {
		t.Fatal(err)
	}
	n := int64(len(doc))
	for _, tc := range []struct {
		name, file, url string
		max             int64
		wantErr         string
	}{
		{name: "file", file: file, max: n},
		{name: "url", url: srv.URL + "/md", max: n},
		{name: "file over the cap", file: file, max: n - 1, wantErr: "larger than"},
		{name: "url over the cap", url: srv.URL + "/md", max: n - 1, wantErr: "larger than"},
		{name: "HTTP error", url: srv.URL + "/none", max: n, wantErr: "HTTP 404"},
		{name: "missing file", file: file + ".none", max: n, wantErr: "read metadata"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, err := ReadMetadata(t.Context(), srv.Client(), tc.file, tc.url, tc.max)
			if tc.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
					t.Fatalf("ReadMetadata = %q, %v; want an error with %q", got, err, tc.wantErr)
				}
				return
			}
			if err != nil || string(got) != string(doc) {
				t.Fatalf("ReadMetadata = %q, %v; want the document", got, err)
			}
		})
	}
}
