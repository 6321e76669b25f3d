package slobridge

import (
	"github.com/prometheus/client_golang/prometheus"
)

// Metrics are the engine's Prometheus collectors. Create them with
// NewMetrics and register them on the registry the /metrics handler serves;
// there is no global registry.
type Metrics struct {
	sessionsCreated prometheus.Counter
	logouts         *prometheus.CounterVec
	deliveries      *prometheus.CounterVec
	attemptSeconds  *prometheus.HistogramVec
	deliverySeconds prometheus.Histogram
}

// NewMetrics creates the engine's collectors and registers them on reg.
func NewMetrics(reg prometheus.Registerer) *Metrics {
	m := &Metrics{
		sessionsCreated: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "slobridge_sessions_created_total", Help: "Bridge sessions created.",
		}),
		logouts: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "slobridge_logouts_total", Help: "Logouts that ended at least one session, by initiator.",
		}, []string{"initiator"}),
		deliveries: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "slobridge_delivery_attempts_total", Help: "Back-channel delivery attempts, by participant kind and outcome (delivered, retrying, failed).",
		}, []string{"kind", "outcome"}),
		attemptSeconds: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name: "slobridge_delivery_attempt_seconds", Help: "Duration of one delivery attempt.",
			Buckets: []float64{.005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10, 30},
		}, []string{"kind"}),
		deliverySeconds: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name: "slobridge_delivery_latency_seconds", Help: "Time from logout to a delivery's final state.",
			Buckets: []float64{.01, .05, .1, .25, .5, 1, 5, 30, 60, 300, 3600, 86400},
		}),
	}
	reg.MustRegister(m.sessionsCreated, m.logouts, m.deliveries, m.attemptSeconds, m.deliverySeconds)
	return m
}
