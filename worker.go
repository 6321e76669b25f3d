package slobridge

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/slobridge/slobridge/store"
)

// ErrAlreadyRunning reports a second concurrent call of Engine.Run.
var ErrAlreadyRunning = errors.New("slobridge: delivery workers already running")

// Run runs the delivery workers until ctx is done. It claims due deliveries
// from the outbox when woken by Kick (a new logout, an operator retry), when
// the earliest retry falls due, and every Options.PollInterval (another
// replica may have written to a shared store, or a dead owner's lease may
// have expired). Each claimed delivery is attempted in its own goroutine
// under a global bound (Options.Workers) and a per-receiver-host bound
// (Options.PerHost), so a receiver that never answers delays nobody else.
//
// When ctx is cancelled Run stops claiming, lets attempts already started
// finish (each is bounded by Options.AttemptTimeout) and records them, then
// returns nil. Deliveries claimed but not started are left leased; their
// lease expires after Options.Lease and another engine (or this one
// restarted with the same Owner) claims them again.
func (e *Engine) Run(ctx context.Context) error {
	if !e.running.CompareAndSwap(false, true) {
		return ErrAlreadyRunning
	}
	defer e.running.Store(false)
	p := newPool(e)
	defer p.wg.Wait()

	poll := time.NewTicker(e.opts.PollInterval)
	defer poll.Stop()
	due := time.NewTimer(time.Hour)
	defer due.Stop()
	e.log.InfoContext(ctx, "delivery workers started", "owner", e.opts.Owner, "workers", e.opts.Workers, "per_host", e.opts.PerHost)
	for {
		if wait, ok := p.round(ctx); ok {
			due.Reset(wait)
		}
		select {
		case <-ctx.Done():
			e.log.InfoContext(ctx, "delivery workers stopping", "owner", e.opts.Owner, "in_flight", p.outstanding())
			return nil
		case <-e.wake:
		case <-p.freed:
		case <-poll.C:
		case <-due.C:
		}
	}
}

// pool is the state of one Run: what this engine holds and the bounds.
type pool struct {
	e      *Engine
	global chan struct{}
	hosts  *hostLimiter
	freed  chan struct{} // a delivery this pool held is finished
	wg     sync.WaitGroup

	mu   sync.Mutex
	held map[string]time.Time // delivery ID → end of our lease
}

func newPool(e *Engine) *pool {
	return &pool{
		e:      e,
		global: make(chan struct{}, e.opts.Workers),
		hosts:  newHostLimiter(e.opts.PerHost),
		freed:  make(chan struct{}, 1),
		held:   map[string]time.Time{},
	}
}

func (p *pool) outstanding() int {
	p.mu.Lock()
	defer p.mu.Unlock()
	return len(p.held)
}

// round claims at most as many deliveries as there are free slots (so no
// claimed delivery waits for a worker while its lease runs) and starts them.
// It returns how long to wait until the earliest delivery that is not yet
// due falls due, and false when there is no such delivery (or the store
// could not say).
func (p *pool) round(ctx context.Context) (time.Duration, bool) {
	e := p.e
	held := p.outstanding()
	if free := e.opts.Workers - held; free > 0 {
		now := e.now()
		ds, err := e.st.ClaimDueDeliveries(ctx, e.opts.Owner, now, e.opts.Lease, free)
		if err != nil {
			if ctx.Err() == nil {
				e.log.ErrorContext(ctx, "claim due deliveries", "owner", e.opts.Owner, "err", err)
			}
			return 0, false
		}
		for _, d := range ds {
			if p.hold(d.ID, now.Add(e.opts.Lease)) {
				p.wg.Add(1)
				go p.deliver(ctx, d, now.Add(e.opts.Lease))
			}
		}
	}
	next, ok, err := e.st.NextDueAt(ctx)
	if err != nil || !ok {
		return 0, false
	}
	wait := next.Sub(e.now())
	if wait <= 0 {
		// Due now but held (by us or another replica) or beyond our free
		// slots: a finished attempt or the poll ticker wakes us.
		return 0, false
	}
	return wait, true
}

// hold marks a delivery as ours until leaseUntil; it reports false when it
// was already held. A backend may hand an owner back a delivery it holds
// (the contract only excludes "someone else's" lease): that just renews
// our lease, and the delivery is not attempted twice at once.
func (p *pool) hold(id string, leaseUntil time.Time) bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	if _, ok := p.held[id]; ok {
		p.held[id] = leaseUntil
		return false
	}
	p.held[id] = leaseUntil
	return true
}

func (p *pool) unhold(id string) {
	p.mu.Lock()
	delete(p.held, id)
	p.mu.Unlock()
	select {
	case p.freed <- struct{}{}:
	default:
	}
}

// leaseLeft returns how much of our lease on a delivery remains.
func (p *pool) leaseLeft(id string) time.Duration {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.held[id].Sub(p.e.now())
}

// deliver waits for a slot of the delivery's receiver host, then for a
// global slot (in that order: a delivery queued behind a busy host holds no
// global slot), then makes one attempt.
func (p *pool) deliver(ctx context.Context, d store.Delivery, leaseUntil time.Time) {
	defer p.wg.Done()
	defer p.unhold(d.ID)
	host := ReceiverOf(d.Participant.BackChannelURL)
	if err := p.hosts.acquire(ctx, host); err != nil {
		return // shutting down: the lease expires and the delivery is claimed again
	}
	defer p.hosts.release(host)
	select {
	case p.global <- struct{}{}:
	case <-ctx.Done():
		return
	}
	defer func() { <-p.global }()
	if left := p.leaseLeft(d.ID); left < p.e.opts.AttemptTimeout {
		// We waited so long for a slot that the lease could run out during
		// the attempt and another worker could send it concurrently. Let
		// it go; it is claimed again (with a fresh lease) soon.
		p.e.log.WarnContext(ctx, "delivery lease too short to attempt, releasing", "delivery_id", d.ID,
			"logout_id", d.LogoutID, "participant", d.Participant.Key, "lease_left", left)
		return
	}
	// The attempt outlives a shutdown request: it is bounded by
	// AttemptTimeout and its outcome must be recorded.
	p.e.attempt(context.WithoutCancel(ctx), d)
}

// attempt makes one delivery attempt and records its outcome.
func (e *Engine) attempt(ctx context.Context, d store.Delivery) {
	kind := d.Participant.Kind
	start := e.now()
	actx, cancel := context.WithTimeout(ctx, e.opts.AttemptTimeout)
	var err error
	if n, ok := e.opts.Notifiers[kind]; ok && n != nil {
		err = n.Notify(actx, d)
	} else {
		err = fmt.Errorf("no notifier for participant kind %q", kind)
	}
	cancel()
	end := e.now()
	a := store.Attempt{At: start, Duration: end.Sub(start), OK: err == nil, StatusCode: statusOf(err)}
	state, next := store.DeliveryDelivered, time.Time{}
	if err != nil {
		a.Error = err.Error()
		state, next = e.afterFailure(d, err, end)
	}
	attemptNo := len(d.Attempts) + 1
	log := e.log.With("delivery_id", d.ID, "logout_id", d.LogoutID, "participant", d.Participant.Key,
		"attempt", attemptNo, "outcome", string(state))
	got, cerr := e.st.CompleteAttempt(ctx, d.ID, e.opts.Owner, a, state, next)
	if cerr != nil {
		if errors.Is(cerr, store.ErrNotFound) {
			log.WarnContext(ctx, "delivery attempt not recorded: lease lost to another worker", "err", cerr)
		} else {
			log.ErrorContext(ctx, "delivery attempt not recorded; the delivery is retried after its lease", "err", cerr)
		}
		return
	}
	e.observe(kind, state, a, got, end)
	e.hub.publish(Event{LogoutID: got.LogoutID, Delivery: &got})
	switch state {
	case store.DeliveryDelivered:
		log.InfoContext(ctx, "delivery attempt", "duration", a.Duration)
	case store.DeliveryRetrying:
		log.WarnContext(ctx, "delivery attempt", "duration", a.Duration, "status", a.StatusCode, "err", a.Error, "next_attempt_at", next)
	default:
		log.ErrorContext(ctx, "delivery attempt", "duration", a.Duration, "status", a.StatusCode, "err", a.Error)
	}
}

// afterFailure decides what follows a failed attempt at now: failed for a
// permanent error or a delivery older than GiveUpAfter, otherwise a retry
// after exponential backoff with full jitter. A retry is never scheduled
// past the give-up deadline, so the last attempt happens at it.
func (e *Engine) afterFailure(d store.Delivery, err error, now time.Time) (store.DeliveryState, time.Time) {
	deadline := d.CreatedAt.Add(e.opts.GiveUpAfter)
	if permanent(err) || !now.Before(deadline) {
		return store.DeliveryFailed, time.Time{}
	}
	next := now.Add(backoff(len(d.Attempts)+1, e.opts.BackoffBase, e.opts.BackoffMax, e.rand))
	if next.After(deadline) {
		next = deadline
	}
	return store.DeliveryRetrying, next
}

// observe updates the metrics for one recorded attempt.
func (e *Engine) observe(kind string, state store.DeliveryState, a store.Attempt, d store.Delivery, now time.Time) {
	m := e.opts.Metrics
	if m == nil {
		return
	}
	m.deliveries.WithLabelValues(kind, string(state)).Inc()
	m.attemptSeconds.WithLabelValues(kind).Observe(a.Duration.Seconds())
	if state.Final() {
		m.deliverySeconds.Observe(now.Sub(d.CreatedAt).Seconds())
	}
}
