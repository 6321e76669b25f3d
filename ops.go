package slobridge

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"log/slog"
	"net/http"
	"sync"
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
	// Store is pinged by /readyz, and written to by its write probe.
	// Required.
	Store store.Store
	// Gatherer is served at /metrics; nil disables /metrics.
	Gatherer prometheus.Gatherer
	// Logger receives why /readyz answered 503; nil means slog.Default().
	Logger *slog.Logger
	// WriteProbeInterval is how long the outcome of one write probe
	// stands: probes more frequent than this reuse it, so that a probe
	// every second costs one small commit every interval; default 5s.
	WriteProbeInterval time.Duration
	// Now is the clock; default time.Now.
	Now func() time.Time
	// Upstreams, when set, returns the upstream IdPs the bridge runs
	// without right now, by name, with why. /readyz lists them but stays
	// 200 ("degraded"): logouts, and logins through the other upstreams,
	// still work, and a load balancer that took every replica out because
	// one IdP is down would stop those too.
	Upstreams func() map[string]string
}

// writeHealth is implemented by a store that tracks the outcome of its
// own writes (bbolt): a recently failed write makes /readyz answer 503
// even when the probe's small write still commits.
type writeHealth interface {
	WriteHealth() error
}

// readyzProbeNamespace is the replay namespace of the write probe: each
// probe records a fresh identifier that expires a minute later.
const readyzProbeNamespace = "slobridge-readyz-probe"

// writeProbe remembers the last write probe's outcome.
type writeProbe struct {
	mu  sync.Mutex
	at  time.Time
	err error
}

// check writes one small record unless the last probe is recent enough.
func (p *writeProbe) check(ctx context.Context, st store.Store, now time.Time, every time.Duration) error {
	p.mu.Lock()
	defer p.mu.Unlock()
	if !p.at.IsZero() && now.Sub(p.at) < every {
		return p.err
	}
	var b [12]byte
	_, _ = rand.Read(b[:])
	p.err = st.CheckReplay(ctx, readyzProbeNamespace, hex.EncodeToString(b[:]), now.Add(time.Minute), now)
	p.at = now
	return p.err
}

// storeState is the store's part of the /readyz answer: a short reason a
// load balancer's operator can act on, never the error text.
func storeState(err error) string {
	switch {
	case errors.Is(err, store.ErrNoSpace):
		return "not writable: out of space"
	case errors.Is(err, store.ErrUnavailable):
		return "not writable: unavailable or read-only"
	}
	return "not writable"
}

// MountOps registers /healthz (the process is up: always 200), /readyz
// (200 when the store answers a ping and accepts a write, 503 with the
// reason otherwise; "degraded" with the unavailable upstreams listed) and,
// with a Gatherer, /metrics in the Prometheus text format.
func MountOps(r gin.IRouter, opts OpsOptions) {
	if opts.Logger == nil {
		opts.Logger = slog.Default()
	}
	if opts.WriteProbeInterval <= 0 {
		opts.WriteProbeInterval = 5 * time.Second
	}
	if opts.Now == nil {
		opts.Now = time.Now
	}
	probe := &writeProbe{}
	r.GET(PathHealthz, func(c *gin.Context) {
		c.Header("Cache-Control", "no-store")
		c.JSON(http.StatusOK, gin.H{"status": "ok"})
	})
	r.GET(PathReadyz, func(c *gin.Context) {
		c.Header("Cache-Control", "no-store")
		ctx, cancel := context.WithTimeout(c.Request.Context(), readyTimeout)
		defer cancel()
		if err := opts.Store.Ping(ctx); err != nil {
			opts.Logger.WarnContext(ctx, "readiness probe: store ping failed", "error", err)
			c.JSON(http.StatusServiceUnavailable, gin.H{"status": "unavailable", "store": "unreachable"})
			return
		}
		err := probe.check(ctx, opts.Store, opts.Now(), opts.WriteProbeInterval)
		if wh, ok := opts.Store.(writeHealth); ok && err == nil {
			err = wh.WriteHealth()
		}
		if err != nil {
			opts.Logger.WarnContext(ctx, "readiness probe: store writes fail", "error", err)
			c.JSON(http.StatusServiceUnavailable, gin.H{"status": "unavailable", "store": storeState(err)})
			return
		}
		if opts.Upstreams != nil {
			if down := opts.Upstreams(); len(down) > 0 {
				out := make(map[string]string, len(down))
				for name := range down {
					out[name] = "unavailable: its metadata cannot be read; retrying"
				}
				c.JSON(http.StatusOK, gin.H{"status": "degraded", "store": "writable", "upstreams": out})
				return
			}
		}
		c.JSON(http.StatusOK, gin.H{"status": "ready", "store": "writable"})
	})
	if opts.Gatherer != nil {
		h := promhttp.HandlerFor(opts.Gatherer, promhttp.HandlerOpts{})
		r.GET(PathMetrics, gin.WrapH(h))
	}
}
