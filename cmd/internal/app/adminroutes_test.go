package app

import (
	"context"
	"encoding/json"
	"net/http"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/slobridge/slobridge/oidc/ssf"
	"github.com/slobridge/slobridge/store"
)

// TestAdminReceivers registers, lists and removes an SSF receiver through
// the admin API; a receiver registered at run time joins new sessions, and
// its push authorization is never shown.
func TestAdminReceivers(t *testing.T) {
	env := map[string]string{
		"COOKIE": strings.Repeat("c", 40), "ADMIN": "admin-token-0123456789", "PASSWORD": "alice-password",
		"APP1_SECRET": "app1-secret-0123456789", "SSF_AUTH": "Bearer static",
	}
	doc := strings.NewReplacer("{{DB}}", filepath.Join(t.TempDir(), "r.db"), "{{RP}}", "http://127.0.0.1:1", "{{SSF}}", "http://127.0.0.1:2").Replace(wiringConfig)
	a, base := startApp(t, doc, env)
	tok := env["ADMIN"]

	adminJSON(t, base, tok, "PUT", "/admin/v1/receivers/orders", `{"push_url":"http://127.0.0.1:3/events","authorization":"Bearer secret-push"}`, http.StatusOK)
	for _, bad := range []struct{ body, code string }{
		{`{"push_url":"not a url"}`, "invalid_request"},
		{`{"push_url":"http://127.0.0.1:3/e","colour":"x"}`, "invalid_request"},
		{`{"push_url":`, "invalid_request"},
	} {
		got := adminJSON(t, base, tok, "PUT", "/admin/v1/receivers/bad", bad.body, http.StatusBadRequest)
		if got["error"] != bad.code {
			t.Errorf("PUT %s: %v", bad.body, got)
		}
	}
	list := adminJSON(t, base, tok, "GET", "/admin/v1/receivers", "", http.StatusOK)
	raw, _ := json.Marshal(list)
	if strings.Contains(string(raw), "secret-push") || strings.Contains(string(raw), "static") || !strings.Contains(string(raw), `"orders"`) || strings.Contains(string(raw), `"bad"`) {
		t.Fatalf("receiver list: %s", raw)
	}
	s, err := a.Engine().CreateSession(context.Background(), store.Session{UserID: "dave", ExpiresAt: time.Now().Add(time.Hour)})
	if err != nil {
		t.Fatal(err)
	}
	parts, err := a.Store().ListParticipants(context.Background(), s.ID)
	if err != nil || len(parts) != 2 {
		t.Fatalf("participants of a new session: %+v %v", parts, err)
	}
	req, _ := http.NewRequest("DELETE", base+"/admin/v1/receivers/orders", nil)
	req.Header.Set("Authorization", "Bearer "+tok)
	resp, err := http.DefaultClient.Do(req)
	if err != nil || resp.StatusCode != http.StatusNoContent {
		t.Fatalf("DELETE receiver: %v %v", resp, err)
	}
	resp.Body.Close()
	adminJSON(t, base, tok, "DELETE", "/admin/v1/receivers/orders", "", http.StatusNotFound)
	if got := adminJSON(t, base, "wrong-token", "GET", "/admin/v1/receivers", "", http.StatusUnauthorized); got["error"] != "invalid_token" {
		t.Fatalf("wrong token: %v", got)
	}
}

// TestStaticReceiversFollowTheConfiguration restarts the app on one store
// with a receiver dropped from the configuration: its static registration
// goes, a receiver registered through the admin API stays.
func TestStaticReceiversFollowTheConfiguration(t *testing.T) {
	env := map[string]string{
		"COOKIE": strings.Repeat("c", 40), "ADMIN": "admin-token-0123456789", "PASSWORD": "alice-password",
		"APP1_SECRET": "app1-secret-0123456789", "SSF_AUTH": "Bearer x",
	}
	db := filepath.Join(t.TempDir(), "recv.db")
	doc := strings.NewReplacer("{{DB}}", db, "{{RP}}", "http://127.0.0.1:1", "{{SSF}}", "http://127.0.0.1:2").Replace(wiringConfig)
	ids := func(a *App) []string {
		rs, err := ssf.ListReceivers(context.Background(), a.Store())
		if err != nil {
			t.Fatal(err)
		}
		var out []string
		for _, r := range rs {
			out = append(out, r.ID)
		}
		return out
	}
	t.Run("first start", func(t *testing.T) {
		a, base := startApp(t, doc, env)
		adminJSON(t, base, env["ADMIN"], "PUT", "/admin/v1/receivers/dynamic", `{"push_url":"http://127.0.0.1:3/e"}`, http.StatusOK)
		if got := strings.Join(ids(a), ","); got != "api,dynamic" {
			t.Fatalf("receivers: %s", got)
		}
	})
	t.Run("without api in the configuration", func(t *testing.T) {
		a, _ := startApp(t, doc[:strings.Index(doc, "  receivers:")]+"  receivers: []\n", env)
		if got := strings.Join(ids(a), ","); got != "dynamic" {
			t.Fatalf("receivers after restart: %s", got)
		}
	})
}

// TestSeparateAdminListener serves the admin API and /metrics on
// admin.listen only.
func TestSeparateAdminListener(t *testing.T) {
	env := map[string]string{
		"COOKIE": strings.Repeat("c", 40), "ADMIN": "admin-token-0123456789", "PASSWORD": "alice-password",
		"APP1_SECRET": "app1-secret-0123456789", "SSF_AUTH": "Bearer x",
	}
	doc := strings.NewReplacer("{{DB}}", filepath.Join(t.TempDir(), "adm.db"), "{{RP}}", "http://127.0.0.1:1", "{{SSF}}", "http://127.0.0.1:2").Replace(wiringConfig)
	doc = strings.Replace(doc, "admin:\n", "admin:\n  listen: 127.0.0.1:0\n", 1)
	a, base := startApp(t, doc, env)
	deadline := time.Now().Add(waitTimeout)
	for a.AdminAddr() == "" {
		if time.Now().After(deadline) {
			t.Fatal("admin listener never opened")
		}
		time.Sleep(5 * time.Millisecond)
	}
	adminBase := "http://" + a.AdminAddr()
	adminJSON(t, adminBase, env["ADMIN"], "GET", "/admin/v1/receivers", "", http.StatusOK)
	adminJSON(t, base, env["ADMIN"], "GET", "/admin/v1/receivers", "", http.StatusNotFound)
	for _, tt := range []struct {
		url  string
		want int
	}{
		{adminBase + "/metrics", http.StatusOK},
		{base + "/metrics", http.StatusNotFound},
		{base + "/healthz", http.StatusOK},
		{adminBase + "/readyz", http.StatusOK},
		{adminBase + "/.well-known/openid-configuration", http.StatusNotFound},
	} {
		if code, _ := get(t, http.DefaultClient, tt.url); code != tt.want {
			t.Errorf("GET %s: %d, want %d", tt.url, code, tt.want)
		}
	}
}
