package slobridge

import (
	"context"
	"fmt"
	"net/http"
	"net/http/httptest"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"

	"github.com/slobridge/slobridge/store"
)

// TestStuckReceiverDelaysNobody: one receiver never answers; with only four
// workers the 49 others are still all delivered while it is in flight.
func TestStuckReceiverDelaysNobody(t *testing.T) {
	st := openStore(t, t.TempDir()+"/slobridge.db")
	opts := testOptions(st)
	opts.Workers = 4
	opts.AttemptTimeout = time.Minute
	e, _ := runEngine(t, opts)

	release := make(chan struct{})
	arrived := make(chan struct{}, 1)
	stuck := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		select {
		case arrived <- struct{}{}:
		default:
		}
		<-release
	}))
	t.Cleanup(stuck.Close)
	t.Cleanup(func() { close(release) }) // runs before the engine stops and the server closes

	ps := []store.Participant{backParticipant("stuck", stuck.URL)}
	for i := range 49 {
		ps = append(ps, backParticipant(fmt.Sprintf("app%02d", i), newReceiver(t, nil).srv.URL))
	}
	s := newSession(t, e, "ivan", ps...)
	lo, err := e.Logout(context.Background(), LogoutRequest{SessionIDs: []string{s.ID}, Initiator: store.Initiator{Kind: store.InitiatorUser}})
	if err != nil {
		t.Fatal(err)
	}
	select {
	case <-arrived:
	case <-time.After(waitTimeout):
		t.Fatal("the stuck receiver was never called")
	}
	status := waitStatus(t, e, lo.ID, "49 delivered", func(st LogoutStatus) bool {
		n := 0
		for _, r := range st.Participants {
			if r.State == "delivered" {
				n++
			}
		}
		return n == 49
	})
	if r := row(t, status, "http:stuck"); r.State != "pending" || r.Attempts != 0 {
		t.Errorf("stuck receiver: %+v, want still pending with its first attempt in flight", r)
	}
	if status.Done {
		t.Error("status Done while an attempt is in flight")
	}
}

// TestPerHostBound: a receiver counting its concurrent requests never sees
// more than PerHost.
func TestPerHostBound(t *testing.T) {
	const perHost, participants = 3, 30
	var mu sync.Mutex
	inFlight, peak := 0, 0
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		inFlight++
		peak = max(peak, inFlight)
		mu.Unlock()
		time.Sleep(5 * time.Millisecond) // let requests overlap
		mu.Lock()
		inFlight--
		mu.Unlock()
	}))
	t.Cleanup(srv.Close)

	st := openStore(t, t.TempDir()+"/slobridge.db")
	opts := testOptions(st)
	opts.PerHost = perHost
	e, _ := runEngine(t, opts)
	var ps []store.Participant
	for i := range participants {
		ps = append(ps, backParticipant(fmt.Sprintf("app%02d", i), fmt.Sprintf("%s/bc/%d", srv.URL, i)))
	}
	s := newSession(t, e, "judy", ps...)
	lo, err := e.Logout(context.Background(), LogoutRequest{SessionIDs: []string{s.ID}, Initiator: store.Initiator{Kind: store.InitiatorUser}})
	if err != nil {
		t.Fatal(err)
	}
	for _, r := range waitStatus(t, e, lo.ID, "all delivered", allDone).Participants {
		if r.State != "delivered" {
			t.Errorf("%s: %s, want delivered", r.Key, r.State)
		}
	}
	mu.Lock()
	defer mu.Unlock()
	if peak > perHost || peak == 0 {
		t.Errorf("receiver saw %d concurrent requests, want between 1 and PerHost=%d", peak, perHost)
	}
}

// TestRestartLosesNothing: engine A is stopped while attempts are in flight
// and a dead owner holds other deliveries; the store is closed and reopened
// and engine B delivers everything. Duplicates carry the same delivery ID.
func TestRestartLosesNothing(t *testing.T) {
	const participants = 12
	path := t.TempDir() + "/slobridge.db"
	gate := make(chan struct{})
	arrivals := make(chan struct{}, participants*4)
	var mu sync.Mutex
	got := map[string][]string{} // participant → delivery IDs received
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		arrivals <- struct{}{}
		<-gate
		mu.Lock()
		got[r.URL.Path] = append(got[r.URL.Path], r.Header.Get(DeliveryIDHeader))
		mu.Unlock()
	}))
	t.Cleanup(srv.Close)

	stA := openStore(t, path)
	optsA := testOptions(stA)
	optsA.Workers = 2
	a, stopA := runEngine(t, optsA)
	var ps []store.Participant
	for i := range participants {
		ps = append(ps, backParticipant(fmt.Sprintf("app%02d", i), fmt.Sprintf("%s/app%02d", srv.URL, i)))
	}
	s := newSession(t, a, "ken", ps...)
	lo, err := a.Logout(context.Background(), LogoutRequest{SessionIDs: []string{s.ID}, Initiator: store.Initiator{Kind: store.InitiatorUser}})
	if err != nil {
		t.Fatal(err)
	}
	for range optsA.Workers {
		select {
		case <-arrivals:
		case <-time.After(waitTimeout):
			t.Fatal("engine A made no attempt")
		}
	}
	// A dead replica claims some of the rest and never completes them.
	const deadLease = 300 * time.Millisecond
	dead, err := stA.ClaimDueDeliveries(context.Background(), "dead-replica", a.Now(), deadLease, 3)
	if err != nil || len(dead) != 3 {
		t.Fatalf("dead replica claimed %d: %v", len(dead), err)
	}
	stopped := make(chan struct{})
	go func() { stopA(); close(stopped) }()
	close(gate) // A's in-flight attempts finish; A records them and returns
	<-stopped
	stA.Close()

	stB := openStore(t, path)
	before, err := stB.ListDeliveries(context.Background(), lo.ID)
	if err != nil {
		t.Fatal(err)
	}
	delivered := 0
	for _, d := range before {
		if d.State == store.DeliveryDelivered {
			delivered++
		}
	}
	if delivered < optsA.Workers {
		t.Errorf("after A stopped, %d delivered; want A's %d in-flight attempts recorded", delivered, optsA.Workers)
	}

	b, _ := runEngine(t, testOptions(stB))
	status := waitStatus(t, b, lo.ID, "all delivered by B", allDone)
	for _, r := range status.Participants {
		if r.State != "delivered" {
			t.Errorf("%s: %s, want delivered", r.Key, r.State)
		}
		mu.Lock()
		ids := got["/"+r.AppID]
		mu.Unlock()
		if len(ids) == 0 {
			t.Errorf("%s never received its notification", r.Key)
		}
		for _, id := range ids {
			if id != r.DeliveryID {
				t.Errorf("%s received delivery id %q, want %q", r.Key, id, r.DeliveryID)
			}
		}
	}
}

func TestMetricsAndStoreCollector(t *testing.T) {
	st := openStore(t, t.TempDir()+"/slobridge.db")
	reg := prometheus.NewPedanticRegistry()
	opts := testOptions(st)
	opts.Metrics = NewMetrics(reg)
	reg.MustRegister(NewStoreCollector(st, nil))
	e, _ := runEngine(t, opts)

	gone := newReceiver(t, func(int, *http.Request) int { return http.StatusGone })
	ok := newReceiver(t, nil)
	s := newSession(t, e, "leo", backParticipant("ok", ok.srv.URL), backParticipant("gone", gone.srv.URL))
	newSession(t, e, "mallory") // stays active
	lo, err := e.Logout(context.Background(), LogoutRequest{SessionIDs: []string{s.ID}, Initiator: store.Initiator{Kind: store.InitiatorUser}})
	if err != nil {
		t.Fatal(err)
	}
	waitStatus(t, e, lo.ID, "all final", allDone)
	// The store shows an attempt final as soon as it commits; the worker
	// records the metrics right after, so wait for them as well.
	deadline := time.Now().Add(waitTimeout)
	for readMetric(t, opts.Metrics.deliverySeconds).GetHistogram().GetSampleCount() < 2 && time.Now().Before(deadline) {
		time.Sleep(5 * time.Millisecond)
	}

	checks := []struct {
		c    prometheus.Metric
		want float64
	}{
		{opts.Metrics.deliveries.WithLabelValues("http", "delivered"), 1},
		{opts.Metrics.deliveries.WithLabelValues("http", "failed"), 1},
		{opts.Metrics.logouts.WithLabelValues("user"), 1},
		{opts.Metrics.sessionsCreated, 2},
	}
	for i, c := range checks {
		if got := readMetric(t, c.c).GetCounter().GetValue(); got != c.want {
			t.Errorf("check %d: %v, want %v", i, got, c.want)
		}
	}
	if n := readMetric(t, opts.Metrics.deliverySeconds).GetHistogram().GetSampleCount(); n != 2 {
		t.Errorf("latency histogram has %d observations, want 2 (both final)", n)
	}
	if n := readMetric(t, opts.Metrics.attemptSeconds.WithLabelValues("http").(prometheus.Histogram)).GetHistogram().GetSampleCount(); n != 2 {
		t.Errorf("attempt histogram has %d observations, want 2", n)
	}
	families, err := reg.Gather()
	if err != nil {
		t.Fatalf("Gather: %v", err)
	}
	want := map[string]float64{
		"slobridge_active_sessions":                    1,
		`slobridge_outbox_deliveries{state=delivered}`: 1,
		`slobridge_outbox_deliveries{state=failed}`:    1,
		`slobridge_outbox_deliveries{state=pending}`:   0,
		`slobridge_outbox_deliveries{state=retrying}`:  0,
	}
	seen := 0
	for _, f := range families {
		for _, m := range f.GetMetric() {
			name := f.GetName()
			for _, l := range m.GetLabel() {
				name += "{" + l.GetName() + "=" + l.GetValue() + "}"
			}
			if w, ok := want[name]; ok {
				seen++
				if got := m.GetGauge().GetValue(); got != w {
					t.Errorf("%s = %v, want %v", name, got, w)
				}
			}
		}
	}
	if seen != len(want) {
		t.Errorf("found %d of %d store gauges", seen, len(want))
	}
}

// readMetric returns the current value of one metric.
func readMetric(t *testing.T, m prometheus.Metric) *dto.Metric {
	t.Helper()
	var out dto.Metric
	if err := m.Write(&out); err != nil {
		t.Fatalf("read metric: %v", err)
	}
	return &out
}
