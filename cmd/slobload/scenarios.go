package main

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/slobridge/slobridge"
	"github.com/slobridge/slobridge/oidc"
	"github.com/slobridge/slobridge/oidc/resource"
)

// params size the scenarios.
type params struct {
	Duration    time.Duration   // of each throughput scenario
	Concurrency int             // concurrent browsers / callers
	FanoutSizes []int           // participants per logged-out session
	Delays      []time.Duration // receiver answer delays
	Logouts     int             // logouts per fan-out case
	Rejections  int             // logouts in the rejection scenario
	FailFor     time.Duration   // how long 30% of receivers fail
	RecSessions int             // sessions logged out in the recovery scenario
	RecApps     int             // participants of each of them
}

// runner runs scenarios against one bridge.
type runner struct {
	p    params
	l    *loader
	rs   *receivers
	apps []rp // apps[i] has its back-channel logout at rs.urls[i]
	rep  *report
	bar  *progress
}

// setup starts the receivers and registers one client per receiver.
func (r *runner) setup(ctx context.Context, n int) error {
	rs, err := startReceivers(n)
	if err != nil {
		return err
	}
	r.rs = rs
	if err := rs.setKeys(ctx, r.l); err != nil {
		return err
	}
	r.apps = make([]rp, n)
	r.bar.start("register apps", n)
	defer r.bar.finish()
	return r.parallel(ctx, n, min(r.p.Concurrency, 16), func(ctx context.Context, i int) error {
		c, err := r.l.register(ctx, fmt.Sprintf("slobload-app-%04d", i), rs.urls[i])
		if err != nil {
			return err
		}
		r.apps[i] = c
		r.bar.step(1)
		return nil
	})
}

// parallel runs fn(0..n-1) on `workers` goroutines; the first error stops
// the rest.
func (r *runner) parallel(ctx context.Context, n, workers int, fn func(ctx context.Context, i int) error) error {
	ctx, cancel := context.WithCancelCause(ctx)
	defer cancel(nil)
	var next atomic.Int64
	var wg sync.WaitGroup
	for range min(workers, n) {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for ctx.Err() == nil {
				i := int(next.Add(1) - 1)
				if i >= n {
					return
				}
				if err := fn(ctx, i); err != nil {
					cancel(err)
					return
				}
			}
		}()
	}
	wg.Wait()
	if err := context.Cause(ctx); err != nil && !errors.Is(err, context.Canceled) {
		return err
	}
	return ctx.Err()
}

// timed runs fn on `workers` goroutines for d and returns the latency of
// every completed call; the first error stops the run.
func (r *runner) timed(ctx context.Context, d time.Duration, workers int, fn func(ctx context.Context, worker int) error) ([]time.Duration, time.Duration, error) {
	ctx, cancel := context.WithCancelCause(ctx)
	defer cancel(nil)
	var mu sync.Mutex
	var lat []time.Duration
	start := time.Now()
	deadline := start.Add(d)
	var wg sync.WaitGroup
	for w := range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			var mine []time.Duration
			for ctx.Err() == nil && time.Now().Before(deadline) {
				t := time.Now()
				if err := fn(ctx, w); err != nil {
					cancel(err)
					break
				}
				mine = append(mine, time.Since(t))
			}
			mu.Lock()
			lat = append(lat, mine...)
			mu.Unlock()
		}()
	}
	done := make(chan struct{})
	go func() {
		t := time.NewTicker(100 * time.Millisecond)
		defer t.Stop()
		for {
			select {
			case <-done:
				return
			case <-t.C:
				r.bar.set(int(time.Since(start) * 100 / d))
			}
		}
	}()
	wg.Wait()
	close(done)
	elapsed := time.Since(start)
	if err := context.Cause(ctx); err != nil && !errors.Is(err, context.Canceled) {
		return nil, 0, err
	}
	slices.Sort(lat)
	return lat, elapsed, nil
}

// logins measures OIDC code-flow logins per second over HTTP, two ways:
// "full" is a new browser each time (authorize, the upstream login form,
// the resumed authorization, the code, the token request: a new session
// and a new participant), "sso" is a browser with a bridge session logging
// in to one app after another (authorize, code, token: a new participant).
func (r *runner) logins(ctx context.Context) error {
	before, beforeOK := r.commits(ctx)
	r.bar.start("oidc logins (full)", 100)
	lat, el, err := r.timed(ctx, r.p.Duration, r.p.Concurrency, func(ctx context.Context, w int) error {
		_, err := r.l.newBrowser().login(ctx, r.apps[w%len(r.apps)])
		return err
	})
	r.bar.finish()
	if err != nil {
		return fmt.Errorf("full login: %w", err)
	}
	r.rep.add(atLeast(result{Scenario: "oidc-login", Metric: "full login (new session + participant)", Value: float64(len(lat)) / el.Seconds(), Unit: "logins/s", Samples: len(lat),
		Note: fmt.Sprintf("p50 %.1f ms, p99 %.1f ms, %d browsers", percentile(lat, 50), percentile(lat, 99), r.p.Concurrency)}, 1000))
	if after, ok := r.commits(ctx); ok && beforeOK && len(lat) > 0 {
		n := float64(len(lat))
		r.rep.add(atMost(result{Scenario: "oidc-login", Metric: "synced store commits per full login", Value: (after.synced - before.synced) / n, Unit: "commits", Samples: len(lat),
			Note: fmt.Sprintf("%.2f unsynced (volatile) commits per login; shared by %d concurrent browsers", (after.unsynced-before.unsynced)/n, r.p.Concurrency)}, 1))
	}

	type sso struct {
		b    *browser
		next int
	}
	bs := make([]*sso, r.p.Concurrency)
	r.bar.start("oidc logins (sso)", 100)
	lat, el, err = r.timed(ctx, r.p.Duration, r.p.Concurrency, func(ctx context.Context, w int) error {
		s := bs[w]
		if s == nil || s.next == len(r.apps) {
			// A new person: this first login (not counted apart) makes the
			// session; the next ones join it.
			s = &sso{b: r.l.newBrowser()}
			bs[w] = s
		}
		_, err := s.b.login(ctx, r.apps[s.next])
		s.next++
		return err
	})
	r.bar.finish()
	if err != nil {
		return fmt.Errorf("sso login: %w", err)
	}
	r.rep.add(atLeast(result{Scenario: "oidc-login", Metric: "sso login (new participant)", Value: float64(len(lat)) / el.Seconds(), Unit: "logins/s", Samples: len(lat),
		Note: fmt.Sprintf("p50 %.1f ms, p99 %.1f ms", percentile(lat, 50), percentile(lat, 99))}, 1000))
	return nil
}

// commitCounts is slobridge_store_commits_total as /metrics reports it.
type commitCounts struct{ synced, unsynced float64 }

// commits reads the bridge's store commit counters from /metrics; false
// when the bridge does not serve them there (admin.listen elsewhere, or a
// store that does not count).
func (r *runner) commits(ctx context.Context) (commitCounts, bool) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, r.l.t.BaseURL+"/metrics", nil)
	if err != nil {
		return commitCounts{}, false
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return commitCounts{}, false
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return commitCounts{}, false
	}
	var c commitCounts
	found := 0
	sc := bufio.NewScanner(resp.Body)
	sc.Buffer(make([]byte, 0, 64<<10), 1<<20)
	for sc.Scan() {
		name, value, ok := strings.Cut(sc.Text(), " ")
		if !ok {
			continue
		}
		v, err := strconv.ParseFloat(value, 64)
		if err != nil {
			continue
		}
		switch name {
		case `slobridge_store_commits_total{synced="true"}`:
			c.synced, found = v, found+1
		case `slobridge_store_commits_total{synced="false"}`:
			c.unsynced, found = v, found+1
		}
	}
	return c, found == 2
}

// session logs a new person in to the first n apps and returns the first
// app's tokens and the browser.
func (r *runner) session(ctx context.Context, n int) (*browser, tokens, error) {
	b := r.l.newBrowser()
	first, err := b.login(ctx, r.apps[0])
	if err != nil {
		return nil, tokens{}, err
	}
	err = r.parallel(ctx, n-1, r.p.Concurrency, func(ctx context.Context, i int) error {
		t, err := b.login(ctx, r.apps[i+1])
		if err == nil && t.SID != first.SID {
			err = fmt.Errorf("app %d joined session %s, want %s", i+1, t.SID, first.SID)
		}
		return err
	})
	return b, first, err
}

// fanout measures, for sessions of n participants whose receivers answer
// after d, the time from the RP-Initiated Logout request to each receiver's
// logout token (p50, p99 over every delivery) and to the last one. The
// session has one more app, the RP that starts the logout: it is answered
// at its post_logout_redirect_uri, not notified (slobridge.InitiatorKey).
func (r *runner) fanout(ctx context.Context) error {
	for _, n := range r.p.FanoutSizes {
		for _, d := range r.p.Delays {
			r.rs.delay.Store(int64(d))
			// each: logout to each receiver's arrival; all: to the last
			// arrival; acks: to the last receiver's answer (what the
			// engine counts as delivered, the receiver delay included).
			var each, all, acks, answers []time.Duration
			r.bar.start(fmt.Sprintf("fan-out %d @ %v", n, d), r.p.Logouts)
			for range r.p.Logouts {
				b, t, err := r.session(ctx, n+1)
				if err != nil {
					return fmt.Errorf("fan-out %d: log in: %w", n, err)
				}
				start := time.Now()
				if _, err := b.endSession(ctx, t.IDToken); err != nil {
					return fmt.Errorf("fan-out %d: %w", n, err)
				}
				answers = append(answers, time.Since(start))
				if !waitFor(ctx, 2*time.Minute, func() bool { return r.rs.countOK(t.SID) == n }) {
					return fmt.Errorf("fan-out %d: only %d of %d receivers acknowledged after 2 minutes", n, r.rs.countOK(t.SID), n)
				}
				var last, lastAck time.Duration
				for i := range n {
					a, _ := r.rs.got(t.SID, i+1) // app 0 started the logout
					lat := a.First.Sub(start)
					each = append(each, lat)
					last = max(last, lat)
					lastAck = max(lastAck, a.Delivered.Sub(start))
				}
				all = append(all, last)
				acks = append(acks, lastAck)
				r.bar.step(1)
			}
			r.bar.finish()
			slices.Sort(each)
			slices.Sort(all)
			slices.Sort(acks)
			slices.Sort(answers)
			name := fmt.Sprintf("fanout n=%d delay=%v", n, d)
			answered := result{Scenario: name, Metric: "logout request answered (median)", Value: percentile(answers, 50), Unit: "ms", Samples: len(answers),
				Note: fmt.Sprintf("max %.1f ms; the end-session request, its outbox rows written", percentile(answers, 100))}
			if n == 1000 {
				answered = atMost(answered, 15)
			}
			r.rep.add(answered)
			r.rep.add(result{Scenario: name, Metric: "logout to each notification p50", Value: percentile(each, 50), Unit: "ms", Samples: len(each)})
			r.rep.add(result{Scenario: name, Metric: "logout to each notification p99", Value: percentile(each, 99), Unit: "ms", Samples: len(each)})
			r.rep.add(result{Scenario: name, Metric: "logout to last notification (median)", Value: percentile(all, 50), Unit: "ms", Samples: len(all),
				Note: fmt.Sprintf("max %.1f ms", percentile(all, 100))})
			last := result{Scenario: name, Metric: "logout to last acknowledgment (median)", Value: percentile(acks, 50), Unit: "ms", Samples: len(acks),
				Note: fmt.Sprintf("max %.1f ms", percentile(acks, 100))}
			if n == 1000 && d == 50*time.Millisecond {
				last = atMost(last, 500)
			}
			r.rep.add(last)
		}
	}
	r.rs.delay.Store(0)
	return nil
}

// resourceServer is an API protected by oidc/resource: it verifies access
// tokens against the bridge's JWKS and learns of ended sessions from the
// session-revoked SETs the bridge pushes to it.
type resourceServer struct {
	srv  *http.Server
	url  string
	push string
	auth string
}

func startResourceServer(ctx context.Context, issuer string) (*resourceServer, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, err
	}
	rs := &resourceServer{url: "http://" + ln.Addr().String(), auth: "Bearer " + randomToken()}
	rs.push = rs.url + "/events"
	g, err := resource.New(ctx, resource.Options{Issuer: issuer, Audience: issuer, JWKSURL: issuer + oidc.PathJWKS,
		PushAuthorization: rs.auth, Logger: quietLogger()})
	if err != nil {
		_ = ln.Close()
		return nil, err
	}
	mux := http.NewServeMux()
	mux.Handle("/events", g.EventHandler())
	mux.Handle("/api", g.Middleware(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		_, _ = io.WriteString(w, `{"ok":true}`)
	})))
	rs.srv = &http.Server{Handler: mux, ReadHeaderTimeout: 10 * time.Second}
	go func() { _ = rs.srv.Serve(ln) }()
	return rs, nil
}

// rejection measures the time from the RP-Initiated Logout request to the
// first 401 from a resource server polled with the session's access token.
func (r *runner) rejection(ctx context.Context) error {
	api, err := startResourceServer(ctx, r.l.t.BaseURL)
	if err != nil {
		return err
	}
	defer api.srv.Close()
	const id = "slobload-api"
	reg := map[string]any{"name": "slobload API", "push_url": api.push, "audience": []string{r.l.t.BaseURL}, "authorization": api.auth}
	if err := r.l.admin(ctx, http.MethodPut, "/admin/v1/receivers/"+id, reg, nil, http.StatusOK); err != nil {
		if err2 := r.l.admin(ctx, http.MethodPut, "/admin/v1/receivers/"+id, reg, nil, http.StatusCreated); err2 != nil {
			return fmt.Errorf("register the resource server as an event receiver: %w", err)
		}
	}
	defer func() {
		_ = r.l.admin(context.WithoutCancel(ctx), http.MethodDelete, "/admin/v1/receivers/"+id, nil, nil, http.StatusNoContent)
	}()
	call := func(at string) (int, error) {
		req, err := http.NewRequestWithContext(ctx, http.MethodGet, api.url+"/api", nil)
		if err != nil {
			return 0, err
		}
		req.Header.Set("Authorization", "Bearer "+at)
		resp, err := r.l.hc.Do(req)
		if err != nil {
			return 0, err
		}
		drainBody(resp.Body)
		return resp.StatusCode, nil
	}
	var lat []time.Duration
	r.bar.start("logout to rejection", r.p.Rejections)
	defer r.bar.finish()
	for range r.p.Rejections {
		b := r.l.newBrowser()
		t, err := b.login(ctx, r.apps[0])
		if err != nil {
			return err
		}
		if code, err := call(t.AccessToken); err != nil || code != http.StatusOK {
			return fmt.Errorf("API before logout: HTTP %d, %v", code, err)
		}
		start := time.Now()
		if _, err := b.endSession(ctx, t.IDToken); err != nil {
			return err
		}
		for {
			code, err := call(t.AccessToken)
			if err != nil {
				return err
			}
			if code == http.StatusUnauthorized {
				break
			}
			if time.Since(start) > 30*time.Second {
				return errors.New("the API still accepts the token 30 s after the logout")
			}
		}
		lat = append(lat, time.Since(start))
		r.bar.step(1)
	}
	slices.Sort(lat)
	r.rep.add(result{Scenario: "logout-to-rejection", Metric: "p50", Value: percentile(lat, 50), Unit: "ms", Samples: len(lat)})
	r.rep.add(atMost(result{Scenario: "logout-to-rejection", Metric: "p99", Value: percentile(lat, 99), Unit: "ms", Samples: len(lat),
		Note: fmt.Sprintf("max %.1f ms", percentile(lat, 100))}, 100))
	return nil
}

// introspect measures RFC 7662 introspection requests per second, each
// authenticated with client_secret_basic, for an active access token.
func (r *runner) introspect(ctx context.Context) error {
	var disc oidc.Discovery
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, r.l.t.BaseURL+oidc.PathDiscovery, nil)
	if err != nil {
		return err
	}
	if err := r.l.doJSON(req, http.StatusOK, &disc); err != nil {
		return err
	}
	if disc.IntrospectionEndpoint == "" {
		return errSkip("the bridge advertises no introspection_endpoint")
	}
	t, err := r.l.newBrowser().login(ctx, r.apps[0])
	if err != nil {
		return err
	}
	body := url.Values{"token": {t.AccessToken}, "token_type_hint": {"access_token"}}.Encode()
	r.bar.start("introspection", 100)
	lat, el, err := r.timed(ctx, r.p.Duration, r.p.Concurrency, func(ctx context.Context, _ int) error {
		req, err := http.NewRequestWithContext(ctx, http.MethodPost, disc.IntrospectionEndpoint, strings.NewReader(body))
		if err != nil {
			return err
		}
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
		req.SetBasicAuth(url.QueryEscape(r.apps[0].ID), url.QueryEscape(r.apps[0].Secret))
		resp, err := r.l.hc.Do(req)
		if err != nil {
			return err
		}
		b, err := io.ReadAll(io.LimitReader(resp.Body, maxBody))
		resp.Body.Close()
		if err != nil {
			return err
		}
		if resp.StatusCode != http.StatusOK || !bytes.Contains(b, []byte(`"active":true`)) {
			return fmt.Errorf("introspection: HTTP %d: %s", resp.StatusCode, trim(b))
		}
		return nil
	})
	r.bar.finish()
	if err != nil {
		return err
	}
	r.rep.add(atLeast(result{Scenario: "introspection", Metric: "requests", Value: float64(len(lat)) / el.Seconds(), Unit: "req/s", Samples: len(lat),
		Note: fmt.Sprintf("p50 %.2f ms, p99 %.2f ms, %d callers", percentile(lat, 50), percentile(lat, 99), r.p.Concurrency)}, 20000))
	return nil
}

// recovery logs out RecSessions sessions of RecApps participants while 30%
// of the receivers answer 500, lets them recover after FailFor, and waits
// until every (session, app) pair was answered 200: nothing may be lost.
func (r *runner) recovery(ctx context.Context) error {
	// Apps 1..n are the receivers; app 0 starts each logout and is
	// answered directly, not notified (slobridge.InitiatorKey).
	n := r.p.RecApps
	for i := range n {
		r.rs.failing[i+1].Store(i%10 < 3)
	}
	defer func() {
		for i := range n {
			r.rs.failing[i+1].Store(false)
		}
	}()
	failedBefore := r.rs.failed.Load()
	sids := make([]string, r.p.RecSessions)
	ids := make([]string, r.p.RecSessions)
	r.bar.start("recovery: log in", r.p.RecSessions)
	type sess struct {
		b *browser
		t tokens
	}
	ss := make([]sess, r.p.RecSessions)
	for i := range ss {
		b, t, err := r.session(ctx, n+1)
		if err != nil {
			return err
		}
		ss[i] = sess{b, t}
		sids[i] = t.SID
		r.bar.step(1)
	}
	r.bar.finish()
	start := time.Now()
	for i, s := range ss {
		id, err := s.b.endSession(ctx, s.t.IDToken)
		if err != nil {
			return err
		}
		ids[i] = id
	}
	total := r.p.RecSessions * n
	delivered := func() (ok, dup int, last time.Time) {
		for _, sid := range sids {
			for i := range n {
				if a, seen := r.rs.got(sid, i+1); seen && a.OK > 0 {
					ok++
					dup += a.OK - 1
					if a.Delivered.After(last) {
						last = a.Delivered
					}
				}
			}
		}
		return ok, dup, last
	}
	r.bar.start(fmt.Sprintf("recovery: 30%% down %v", r.p.FailFor), int(r.p.FailFor/time.Millisecond))
	for time.Since(start) < r.p.FailFor && ctx.Err() == nil {
		time.Sleep(50 * time.Millisecond)
		r.bar.set(int(time.Since(start) / time.Millisecond))
	}
	r.bar.finish()
	okBefore, _, _ := delivered()
	for i := range n {
		r.rs.failing[i+1].Store(false)
	}
	recovered := time.Now()
	r.bar.start("recovery: drain", total)
	timeout := 10 * time.Minute
	waitFor(ctx, timeout, func() bool {
		ok := 0
		for _, sid := range sids {
			ok += r.rs.countOK(sid)
		}
		r.bar.set(ok)
		return ok == total
	})
	r.bar.finish()
	ok, dup, last := delivered()
	name := fmt.Sprintf("recovery %dx%d, 30%% down %v", r.p.RecSessions, n, r.p.FailFor)
	lost := result{Scenario: name, Metric: "lost deliveries", Value: float64(total - ok), Unit: "deliveries", Samples: total}
	r.rep.add(atMost(lost, 0))
	r.rep.add(result{Scenario: name, Metric: "delivered while receivers were down", Value: float64(okBefore), Unit: "deliveries",
		Note: fmt.Sprintf("%d answered 500", r.rs.failed.Load()-failedBefore)})
	// How the two groups fared: the healthy receivers' deliveries from
	// the logout on, the failing ones' from the recovery on (their wait
	// is the engine's retry backoff, not the receivers).
	var healthyLast time.Time
	var healthy int
	var afterRecovery []time.Duration
	for _, sid := range sids {
		for i := range n {
			a, _ := r.rs.got(sid, i+1)
			switch {
			case a.OK == 0:
			case a.Delivered.Before(recovered):
				healthy++
				if a.Delivered.After(healthyLast) {
					healthyLast = a.Delivered
				}
			default:
				afterRecovery = append(afterRecovery, a.Delivered.Sub(recovered))
			}
		}
	}
	if healthy > 0 {
		r.rep.add(result{Scenario: name, Metric: "throughput to the healthy receivers", Value: float64(healthy) / healthyLast.Sub(start).Seconds(),
			Unit: "deliveries/s", Samples: healthy})
	}
	slices.Sort(afterRecovery)
	if len(afterRecovery) > 0 {
		r.rep.add(result{Scenario: name, Metric: "recovery to delivery p50", Value: percentile(afterRecovery, 50), Unit: "ms", Samples: len(afterRecovery)})
		r.rep.add(result{Scenario: name, Metric: "recovery to delivery p99", Value: percentile(afterRecovery, 99), Unit: "ms", Samples: len(afterRecovery),
			Note: "bounded by the retry backoff (delivery.backoff_base/backoff_max)"})
	}
	if ok == total {
		r.rep.add(result{Scenario: name, Metric: "recovery to last delivery", Value: float64(last.Sub(recovered).Milliseconds()), Unit: "ms"})
	}
	r.rep.add(result{Scenario: name, Metric: "duplicate acknowledged deliveries", Value: float64(dup), Unit: "deliveries",
		Note: "at-least-once: a duplicate needs an answer lost in flight"})
	// The bridge's own view: every delivery of every logout delivered. A
	// receiver's 200 reaches the bridge's store a moment after the receiver
	// counted it, so poll until the status settles.
	if r.l.t.AdminToken != "" {
		notDone := 0
		settled := func() bool {
			notDone = 0
			for _, id := range ids {
				var st struct {
					Participants []struct {
						State string `json:"state"`
					} `json:"participants"`
				}
				if err := r.l.admin(ctx, http.MethodGet, "/admin/v1/logouts/"+url.PathEscape(id), nil, &st, http.StatusOK); err != nil {
					notDone = -1
					return false
				}
				for _, p := range st.Participants {
					// The app that started the logout is answered, not notified.
					if p.State != "delivered" && p.State != slobridge.StateInitiator {
						notDone++
					}
				}
			}
			return notDone == 0
		}
		if !waitFor(ctx, 30*time.Second, settled) && notDone < 0 {
			return errors.New("recovery: cannot read the logouts' status from the admin API")
		}
		r.rep.add(atMost(result{Scenario: name, Metric: "participants not delivered per admin status", Value: float64(notDone), Unit: "participants"}, 0))
	}
	return nil
}

// errSkip marks a scenario the bridge cannot run.
type errSkip string

func (e errSkip) Error() string { return string(e) }
