package app

import (
	"fmt"
	"log/slog"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/gin-gonic/gin"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/slobridge/slobridge"
)

// router builds the gin engine: request logs and metrics, recovery (inside
// them, so that a panic is logged and counted as the 500 it answers), the
// body cap and the routes, under the base URL's path.
func (a *App) router(mount func(gin.IRouter)) http.Handler {
	r := gin.New()
	r.HandleMethodNotAllowed = true
	// Validated at configuration time; nil trusts no proxy header.
	_ = r.SetTrustedProxies(a.cfg.Server.TrustedProxies)
	r.Use(a.accessLog, a.recoverer, a.limitBody)
	var g gin.IRouter = r
	if a.basePath != "" {
		g = r.Group(a.basePath)
	}
	mount(g)
	r.NoRoute(func(c *gin.Context) {
		c.JSON(http.StatusNotFound, gin.H{"error": "not_found", "error_description": "no such endpoint"})
	})
	r.NoMethod(func(c *gin.Context) {
		c.JSON(http.StatusMethodNotAllowed, gin.H{"error": "method_not_allowed", "error_description": "method not allowed on this endpoint"})
	})
	return r
}

// recoverer turns a panic in a handler into a 500, logged with its route
// and counted in slobridge_http_panics_total. A panic is a defect on any
// input: the counter is what tests and alerts watch.
func (a *App) recoverer(c *gin.Context) {
	defer func() {
		if v := recover(); v != nil {
			if v == http.ErrAbortHandler {
				panic(v)
			}
			route := routeOf(c)
			a.httpMetrics.panics.WithLabelValues(route).Inc()
			a.log.ErrorContext(c.Request.Context(), "handler panic", "panic", fmt.Sprint(v), "route", route,
				"method", c.Request.Method, "path", c.Request.URL.Path)
			c.AbortWithStatusJSON(http.StatusInternalServerError, gin.H{"error": "server_error", "error_description": "internal error"})
		}
	}()
	c.Next()
}

// routeOf is the route pattern of c, "unmatched" for none.
func routeOf(c *gin.Context) string {
	if route := c.FullPath(); route != "" {
		return route
	}
	return "unmatched"
}

// httpMetrics are the request counters of the router.
type httpMetrics struct {
	requests *prometheus.CounterVec
	panics   *prometheus.CounterVec
	seconds  *prometheus.HistogramVec
}

func newHTTPMetrics(reg prometheus.Registerer) *httpMetrics {
	m := &httpMetrics{
		requests: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "slobridge_http_requests_total", Help: "HTTP requests by route pattern, method and status code.",
		}, []string{"route", "method", "code"}),
		seconds: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name: "slobridge_http_request_seconds", Help: "HTTP request duration by route pattern.",
			Buckets: []float64{.001, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 10},
		}, []string{"route"}),
	}
	m.panics = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "slobridge_http_panics_total", Help: "Handler panics recovered, by route pattern; any is a defect.",
	}, []string{"route"})
	reg.MustRegister(m.requests, m.seconds, m.panics)
	return m
}

// observe counts one request under its route pattern (never the raw path,
// whose IDs would make the label set unbounded).
func (m *httpMetrics) observe(c *gin.Context, d time.Duration) {
	route := routeOf(c)
	m.requests.WithLabelValues(route, c.Request.Method, strconv.Itoa(c.Writer.Status())).Inc()
	m.seconds.WithLabelValues(route).Observe(d.Seconds())
}

// accessLog logs each request. Only the path is logged: queries carry
// codes, tokens and SAML messages. Probes and scrapes log at debug level so
// that they do not drown the rest.
func (a *App) accessLog(c *gin.Context) {
	start := time.Now()
	c.Next()
	a.httpMetrics.observe(c, time.Since(start))
	level := slog.LevelInfo
	switch strings.TrimPrefix(c.Request.URL.Path, a.basePath) {
	case slobridge.PathHealthz, slobridge.PathReadyz, slobridge.PathMetrics:
		level = slog.LevelDebug
	}
	a.log.LogAttrs(c.Request.Context(), level, "http request",
		slog.String("method", c.Request.Method), slog.String("path", c.Request.URL.Path),
		slog.Int("status", c.Writer.Status()), slog.Duration("duration", time.Since(start)),
		slog.String("remote", c.ClientIP()))
}

// limitBody caps every request body at server.max_body_bytes; a declared
// larger body is refused before any handler runs.
func (a *App) limitBody(c *gin.Context) {
	limit := a.cfg.Server.MaxBodyBytes
	if c.Request.ContentLength > limit {
		c.AbortWithStatusJSON(http.StatusRequestEntityTooLarge, gin.H{"error": "request_too_large",
			"error_description": fmt.Sprintf("request body exceeds %d bytes", limit)})
		return
	}
	if c.Request.Body != nil {
		c.Request.Body = http.MaxBytesReader(c.Writer, c.Request.Body, limit)
	}
	c.Next()
}
