package slobridge

import (
	"io"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"strings"
	"testing"

	"github.com/gin-gonic/gin"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/slobridge/slobridge/store/bolt"
)

func TestOpsEndpoints(t *testing.T) {
	db, err := bolt.Open(filepath.Join(t.TempDir(), "ops.db"), bolt.Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = db.Close() })
	reg := prometheus.NewRegistry()
	NewMetrics(reg)
	reg.MustRegister(NewStoreCollector(db, nil))
	gin.SetMode(gin.TestMode)
	r := gin.New()
	MountOps(r, OpsOptions{Store: db, Gatherer: reg})
	srv := httptest.NewServer(r)
	t.Cleanup(srv.Close)

	get := func(path string) (int, string) {
		t.Helper()
		resp, err := http.Get(srv.URL + path)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(b)
	}
	tests := []struct {
		path string
		code int
		body string
	}{
		{PathHealthz, 200, `"ok"`},
		{PathReadyz, 200, `"ready"`},
		{PathMetrics, 200, "slobridge_active_sessions 0"},
		{PathMetrics, 200, `slobridge_outbox_deliveries{state="pending"} 0`},
		// /readyz's write probe was the one commit, synced.
		{PathMetrics, 200, `slobridge_store_commits_total{synced="true"} 1` + "\n"},
		{PathMetrics, 200, `slobridge_store_commits_total{synced="false"} 0` + "\n"},
	}
	for _, tt := range tests {
		if code, body := get(tt.path); code != tt.code || !strings.Contains(body, tt.body) {
			t.Errorf("GET %s: %d %q, want %d containing %q", tt.path, code, body, tt.code, tt.body)
		}
	}

	// The store goes away: not ready, and the scrape fails visibly; the
	// process is still healthy.
	if err := db.Close(); err != nil {
		t.Fatal(err)
	}
	if code, body := get(PathReadyz); code != http.StatusServiceUnavailable || !strings.Contains(body, "unavailable") {
		t.Errorf("readyz with a closed store: %d %s", code, body)
	}
	if code, _ := get(PathMetrics); code != http.StatusInternalServerError {
		t.Errorf("metrics with a closed store: %d, want 500", code)
	}
	if code, _ := get(PathHealthz); code != http.StatusOK {
		t.Errorf("healthz with a closed store: %d", code)
	}
}
