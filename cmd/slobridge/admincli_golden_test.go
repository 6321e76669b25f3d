package main

import (
	"bytes"
	"context"
	"flag"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

var updateGolden = flag.Bool("update", false, "rewrite the golden files of the admin CLI tests")

// golden compares got with testdata/admin/name, or rewrites it with
// -update.
func golden(t *testing.T, name, got string) {
	t.Helper()
	path := filepath.Join("testdata", "admin", name)
	if *updateGolden {
		if err := os.WriteFile(path, []byte(got), 0o644); err != nil {
			t.Fatal(err)
		}
		return
	}
	want, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("%v (run go test ./cmd/slobridge -run Golden -update to write it)", err)
	}
	if got != string(want) {
		t.Errorf("%s differs from the golden file:\n--- got\n%s\n--- want\n%s", name, got, want)
	}
}

// TestAdminCLIGolden runs every admin sub-command against a server that
// answers each expected request with a recorded API answer
// (testdata/admin/<fixture>.json) and compares the table and the -o json
// output with golden files.
func TestAdminCLIGolden(t *testing.T) {
	tests := []struct {
		name, method, path, fixture string
		args                        []string
	}{
		{"sessions", "GET", "/admin/v1/users/alice/sessions", "sessions", []string{"sessions", "--user", "alice"}},
		{"logout", "POST", "/admin/v1/logouts", "logout", []string{"logout", "--user", "alice"}},
		{"status", "GET", "/admin/v1/logouts/lo9xz1", "status", []string{"status", "lo9xz1"}},
		{"status-list", "GET", "/admin/v1/logouts?limit=3", "logouts", []string{"status", "--limit", "3"}},
		{"status-list-next", "GET", "/admin/v1/logouts?before_id=lo7hq2&before_time=2026-11-30T12%3A00%3A00Z&limit=3", "logouts",
			[]string{"status", "--limit", "3", "--before", "2026-11-30T12:00:00Z,lo7hq2"}},
		{"retry", "POST", "/admin/v1/logouts/lo9xz1/retry", "retry", []string{"retry", "lo9xz1"}},
		{"receivers", "GET", "/admin/v1/receivers", "receivers", []string{"receivers"}},
		{"add-receiver", "PUT", "/admin/v1/receivers/orders-api", "add-receiver", []string{"add-receiver", "orders-api", "--push-url", "https://orders.example.com/ssf/events", "--name", "Orders"}},
		{"remove-receiver", "DELETE", "/admin/v1/receivers/orders-api", "", []string{"remove-receiver", "orders-api"}},
		{"register-sp", "POST", "/admin/v1/saml/sps", "register-sp", []string{"register-sp", "--metadata-url", "https://crm.example.com/saml/metadata", "--name", "CRM"}},
		{"upstreams", "GET", "/admin/v1/upstreams", "upstreams", []string{"upstreams"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			var body []byte
			if tc.fixture != "" {
				var err error
				if body, err = os.ReadFile(filepath.Join("testdata", "admin", tc.fixture+".json")); err != nil {
					t.Fatal(err)
				}
			}
			srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				if r.Method != tc.method || r.URL.RequestURI() != tc.path || r.Header.Get("Authorization") != "Bearer golden-token" {
					t.Errorf("request %s %s (%q), want %s %s", r.Method, r.URL.RequestURI(), r.Header.Get("Authorization"), tc.method, tc.path)
					http.Error(w, "unexpected", http.StatusTeapot)
					return
				}
				if body == nil {
					w.WriteHeader(http.StatusNoContent)
					return
				}
				w.Header().Set("Content-Type", "application/json")
				_, _ = w.Write(body)
			}))
			defer srv.Close()
			t.Setenv(envAdminURL, srv.URL)
			t.Setenv(envAdminToken, "golden-token")
			t.Setenv(envCLIConfig, "")
			for _, output := range []string{"table", "json"} {
				var stdout, stderr bytes.Buffer
				if code := run(context.Background(), append(append([]string{"admin"}, tc.args...), "-o", output), &stdout, &stderr); code != 0 {
					t.Fatalf("-o %s: exit %d: %s", output, code, stderr.String())
				}
				golden(t, tc.name+"."+output+".golden", stdout.String())
			}
		})
	}
}

// TestAdminCLIHelpGolden: the admin usage and each sub-command's --help
// (only its own flags, with descriptions and examples).
func TestAdminCLIHelpGolden(t *testing.T) {
	var stdout, stderr bytes.Buffer
	if code := run(context.Background(), []string{"admin", "--help"}, &stdout, &stderr); code != 0 {
		t.Fatalf("admin --help: exit %d", code)
	}
	golden(t, "help.golden", stdout.String())
	for _, c := range adminCommands {
		stdout.Reset()
		if code := run(context.Background(), []string{"admin", c.name, "--help"}, &stdout, &stderr); code != 0 {
			t.Fatalf("admin %s --help: exit %d", c.name, code)
		}
		golden(t, "help-"+c.name+".golden", stdout.String())
		for _, other := range []string{"--push-url", "--metadata-url", "--session", "--limit"} {
			own := strings.Contains(c.synopsis, other) || (c.name == "status" && other == "--limit")
			if !own && strings.Contains(stdout.String(), other) {
				t.Errorf("admin %s --help shows another command's flag %s", c.name, other)
			}
		}
	}
}

// TestAdminCLIConfigFile: the server and the token file come from the
// CLI config file when neither flag nor environment gives them; a
// missing token says where it was looked for; a bad file is refused.
func TestAdminCLIConfigFile(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Header.Get("Authorization") != "Bearer from-the-file" {
			http.Error(w, `{"error":"invalid_token"}`, http.StatusUnauthorized)
			return
		}
		w.Header().Set("Content-Type", "application/json")
		_, _ = w.Write([]byte(`{"upstreams":[]}`))
	}))
	defer srv.Close()
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "token"), []byte("from-the-file\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	cfg := filepath.Join(dir, "cli.yaml")
	write := func(doc string) {
		if err := os.WriteFile(cfg, []byte(doc), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	t.Setenv(envAdminURL, "")
	t.Setenv(envAdminToken, "")
	t.Setenv(envCLIConfig, cfg)
	admin := func(want int, args ...string) string {
		t.Helper()
		var stdout, stderr bytes.Buffer
		if code := run(context.Background(), append([]string{"admin"}, args...), &stdout, &stderr); code != want {
			t.Fatalf("admin %v: exit %d, want %d: %s%s", args, code, want, stdout.String(), stderr.String())
		}
		return stdout.String() + stderr.String()
	}
	write("server: " + srv.URL + "\ntoken_file: token\n")
	if out := admin(0, "upstreams"); !strings.Contains(out, "UPSTREAM") {
		t.Fatalf("with the config file: %s", out)
	}
	write("server: " + srv.URL + "\n")
	if out := admin(1, "upstreams"); !strings.Contains(out, "no admin token") || !strings.Contains(out, "no token_file in "+cfg) {
		t.Fatalf("without a token: %s", out)
	}
	// The environment beats the file.
	t.Setenv(envAdminToken, "from-the-file")
	admin(0, "upstreams")
	write("server: " + srv.URL + "\ntoken: inline-secret\n")
	if out := admin(1, "upstreams"); !strings.Contains(out, "field token not found") {
		t.Fatalf("an unknown key: %s", out)
	}
	if out := admin(1, "upstreams", "--cli-config", filepath.Join(dir, "missing.yaml")); !strings.Contains(out, "missing.yaml") {
		t.Fatalf("a missing named config file: %s", out)
	}
}
