package slobridge

import (
	"context"
	"log/slog"
	"net/http"
	"time"

	"github.com/gin-gonic/gin"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/slobridge/slobridge/store"
)

// Operational endpoints.
const (
	PathHealthz = "/healthz"
	PathReadyz  = "/readyz"
	PathMetrics = "/metrics"
	// readyTimeout bounds the store ping of one readiness probe, well
	// under the usual probe timeouts of orchestrators.
	readyTimeout = 2 * time.Second
)

// OpsOptions configure the operational endpoints.
type OpsOptions struct {
	// Store is pinged by /readyz. Required.
	Store store.Store
	// Gatherer is served at /metrics; nil disables /metrics.
	Gatherer prometheus.Gatherer
	// Logger receives why /readyz answered 503; nil means slog.Default().
	Logger *slog.Logger
}

// MountOps registers /healthz (the process is up: always 200), /readyz
// (200 when the store answers a ping, 503 otherwise) and, with a
// Gatherer, /metrics in the Prometheus text format.
func MountOps(r gin.IRouter, opts OpsOptions) {
	if opts.Logger == nil {
		opts.Logger = slog.Default()
	}
	r.GET(PathHealthz, func(c *gin.Context) {
		c.Header("Cache-Control", "no-store")
		c.JSON(http.StatusOK, gin.H{"status": "ok"})
	})
	r.GET(PathReadyz, func(c *gin.Context) {
		c.Header("Cache-Control", "no-store")
		ctx, cancel := context.WithTimeout(c.Request.Context(), readyTimeout)
		defer cancel()
		if err := opts.Store.Ping(ctx); err != nil {
			// The reason goes to the log, not to an unauthenticated client.
			opts.Logger.WarnContext(ctx, "readiness probe: store ping failed", "error", err)
			c.JSON(http.StatusServiceUnavailable, gin.H{"status": "unavailable", "store": "unreachable"})
			return
		}
		c.JSON(http.StatusOK, gin.H{"status": "ready"})
	})
	if opts.Gatherer != nil {
		h := promhttp.HandlerFor(opts.Gatherer, promhttp.HandlerOpts{})
		r.GET(PathMetrics, gin.WrapH(h))
	}
}
