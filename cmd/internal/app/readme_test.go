package app

import (
	"bytes"
	"os"
	"path/filepath"
	"reflect"
	"regexp"
	"strings"
	"testing"
	"time"

	"gopkg.in/yaml.v3"
)

// readme returns the repository README.
func readme(t *testing.T) string {
	t.Helper()
	b, err := os.ReadFile("../../../README.md")
	if err != nil {
		t.Fatalf("read README: %v", err)
	}
	return string(b)
}

// yamlKeys lists the dotted key paths of every field of a configuration
// type, following nested structs, slices of structs ("[]") and inline
// structs; Secret is a leaf.
func yamlKeys(t reflect.Type, prefix string) []string {
	var out []string
	for i := range t.NumField() {
		f := t.Field(i)
		tag := f.Tag.Get("yaml")
		if tag == "" || tag == "-" {
			continue
		}
		name, opts, _ := strings.Cut(tag, ",")
		ft := f.Type
		if opts == "inline" {
			out = append(out, yamlKeys(ft, prefix)...)
			continue
		}
		key := name
		if prefix != "" {
			key = prefix + "." + name
		}
		for ft.Kind() == reflect.Pointer {
			ft = ft.Elem()
		}
		switch {
		case ft == reflect.TypeOf(Secret{}):
			out = append(out, key)
		case ft.Kind() == reflect.Struct && ft.PkgPath() != "time":
			out = append(out, yamlKeys(ft, key)...)
		case ft.Kind() == reflect.Slice && ft.Elem().Kind() == reflect.Struct:
			out = append(out, key+"[]")
			out = append(out, yamlKeys(ft.Elem(), key+"[]")...)
		default:
			out = append(out, key)
		}
	}
	return out
}

// TestReadmeDocumentsEveryKey checks that the README's configuration
// reference names every key of Config. Keys of list items may be
// documented by name in their list's row (`client_id`, `metadata_url` …).
func TestReadmeDocumentsEveryKey(t *testing.T) {
	doc := readme(t)
	for _, key := range yamlKeys(reflect.TypeOf(Config{}), "") {
		if strings.Contains(doc, "`"+key+"`") {
			continue
		}
		// A field of a list item: documented as `list[].field` or by its
		// bare name in the list's row.
		if i := strings.LastIndex(key, "[]."); i >= 0 {
			list, field := key[:i+2], key[i+3:]
			row := regexp.MustCompile("(?m)^\\| `" + regexp.QuoteMeta(list) + "`.*$").FindString(doc)
			if strings.Contains(row, "`"+field+"`") || strings.Contains(doc, "`"+list+"."+field+"`") ||
				strings.Contains(doc, "`."+field+"`") {
				continue
			}
		}
		t.Errorf("README does not document config key %s", key)
	}
}

// TestReadmeExampleIsValidYAML decodes the README's example configuration
// strictly: every key it shows exists.
func TestReadmeExampleIsValidYAML(t *testing.T) {
	doc := readme(t)
	m := regexp.MustCompile("(?s)### Example\n\n```yaml\n(.*?)```").FindStringSubmatch(doc)
	if m == nil {
		t.Fatal("README has no example configuration")
	}
	var c Config
	dec := yaml.NewDecoder(bytes.NewReader([]byte(m[1])))
	dec.KnownFields(true)
	if err := dec.Decode(&c); err != nil {
		t.Fatalf("README example: %v", err)
	}
	if len(c.OIDC.Clients) == 0 || len(c.SAML.SP.Upstreams) == 0 || !c.SAML.IdP.Enabled {
		t.Fatalf("README example decoded to %+v", c)
	}
}

// TestCheckPassesOnReadmeExample: the README's example configuration,
// with its files and secrets put in place, passes every check `serve`
// and `slobridge check` run (offline: its metadata URLs are not fetched).
func TestCheckPassesOnReadmeExample(t *testing.T) {
	m := regexp.MustCompile("(?s)### Example\n\n```yaml\n(.*?)```").FindStringSubmatch(readme(t))
	if m == nil {
		t.Fatal("README has no example configuration")
	}
	dir := t.TempDir()
	cookie := filepath.Join(dir, "cookie")
	if err := os.WriteFile(cookie, []byte(strings.Repeat("k", 48)), 0o600); err != nil {
		t.Fatal(err)
	}
	abs := func(p string) string {
		a, err := filepath.Abs(p)
		if err != nil {
			t.Fatal(err)
		}
		return a
	}
	doc := strings.NewReplacer(
		"/var/lib/slobridge/slobridge.db", filepath.Join(dir, "slobridge.db"),
		"/run/secrets/cookie", cookie,
		"/etc/slobridge/saml-sp.crt", abs("testdata/bridge-sp.crt"), "/run/secrets/saml-sp.key", abs("testdata/bridge-sp.key"),
		"/etc/slobridge/saml.crt", abs("testdata/idp.crt"), "/run/secrets/saml.key", abs("testdata/idp.key"),
	).Replace(m[1])
	env := map[string]string{"SLOBRIDGE_ADMIN_TOKEN": "admin-token-0123456789", "WIKI_CLIENT_SECRET": "wiki-secret-0123456789",
		"ORDERS_PUSH_AUTH": "Bearer orders-push"}
	c, err := Parse([]byte(doc), func(k string) (string, bool) { v, ok := env[k]; return v, ok })
	if err != nil {
		t.Fatalf("the README example does not pass the checks:\n%v", err)
	}
	if w := c.Warnings(time.Now()); len(w) != 0 {
		t.Fatalf("the README example has warnings: %q", w)
	}
}
