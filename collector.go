package slobridge

import (
	"context"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/slobridge/slobridge/store"
)

// collectTimeout bounds the store reads of one scrape.
const collectTimeout = 5 * time.Second

// storeCollector reports gauges read from the store at scrape time, so that
// every replica of a shared store reports the same, true values (a gauge
// kept in memory would only count what this replica saw).
type storeCollector struct {
	st       store.Store
	now      func() time.Time
	sessions *prometheus.Desc
	outbox   *prometheus.Desc
	commits  *prometheus.Desc
}

var _ prometheus.Collector = (*storeCollector)(nil)

// NewStoreCollector returns a collector of slobridge_active_sessions and
// slobridge_outbox_deliveries{state} read from st at each scrape, and of
// slobridge_store_commits_total{synced} when st counts its commits
// (store.CommitCounter: this process's commits); now is
// the clock (nil for time.Now). Register it next to NewMetrics.
func NewStoreCollector(st store.Store, now func() time.Time) prometheus.Collector {
	if now == nil {
		now = time.Now
	}
	return &storeCollector{
		st:  st,
		now: now,
		sessions: prometheus.NewDesc("slobridge_active_sessions",
			"Bridge sessions neither ended nor expired.", nil, nil),
		outbox: prometheus.NewDesc("slobridge_outbox_deliveries",
			"Back-channel deliveries in the outbox, by state.", []string{"state"}, nil),
		commits: prometheus.NewDesc("slobridge_store_commits_total",
			"Write transactions this process committed to the store; synced=\"true\" ones waited for the disk (fsync or WAL flush).",
			[]string{"synced"}, nil),
	}
}

// Describe implements prometheus.Collector.
func (c *storeCollector) Describe(ch chan<- *prometheus.Desc) {
	ch <- c.sessions
	ch <- c.outbox
	if _, ok := c.st.(store.CommitCounter); ok {
		ch <- c.commits
	}
}

// Collect implements prometheus.Collector. A store error is reported as an
// invalid metric, which fails the scrape visibly rather than reporting zero.
func (c *storeCollector) Collect(ch chan<- prometheus.Metric) {
	if cc, ok := c.st.(store.CommitCounter); ok {
		n := cc.CommitCounts()
		ch <- prometheus.MustNewConstMetric(c.commits, prometheus.CounterValue, float64(n.Synced), "true")
		ch <- prometheus.MustNewConstMetric(c.commits, prometheus.CounterValue, float64(n.Unsynced), "false")
	}
	ctx, cancel := context.WithTimeout(context.Background(), collectTimeout)
	defer cancel()
	n, err := c.st.CountActiveSessions(ctx, c.now())
	if err != nil {
		ch <- prometheus.NewInvalidMetric(c.sessions, err)
	} else {
		ch <- prometheus.MustNewConstMetric(c.sessions, prometheus.GaugeValue, float64(n))
	}
	counts, err := c.st.CountDeliveries(ctx)
	if err != nil {
		ch <- prometheus.NewInvalidMetric(c.outbox, err)
		return
	}
	for _, s := range []store.DeliveryState{store.DeliveryPending, store.DeliveryRetrying, store.DeliveryDelivered, store.DeliveryFailed} {
		ch <- prometheus.MustNewConstMetric(c.outbox, prometheus.GaugeValue, float64(counts[s]), string(s))
	}
}
