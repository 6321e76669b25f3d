package slobridge

import (
	"context"
	"sync"
	"sync/atomic"
	"time"

	"github.com/slobridge/slobridge/store"
)

// Event is published when a logout is created or one of its deliveries
// changes state. The live logout status page and the Shared Signals
// transmitter subscribe to it.
type Event struct {
	// LogoutID is the logout concerned. An event with nothing else set
	// says that one of its browser legs was answered (EndBrowserLeg).
	LogoutID string
	// Logout is set on the event that announces a new logout made by this
	// engine.
	Logout *store.Logout
	// Delivery is set when a delivery changed state in this engine.
	Delivery *store.Delivery
	// Remote is set on an event that announces a change another replica
	// sharing the store made (see FollowChanges); Logout and Delivery are
	// then nil and the subscriber reads what it needs from the store. A
	// new logout of another replica has an empty Remote.DeliveryID. Acting
	// on a new logout (sending messages on its behalf) is the job of the
	// replica that made it, which saw it with Logout set.
	Remote *Change
	// Lagged is set, alone, on the event a subscriber gets once there is
	// room again after its buffer was full: it missed events and must
	// re-read from the store what it follows. The hub never drops an
	// event without saying so.
	Lagged bool
}

// Change is one change that a replica sharing the store committed, as a
// store's change feed reports it (store/postgres DB.Listen): a new logout
// when DeliveryID is empty, otherwise a delivery of the logout that moved
// to State.
type Change struct {
	LogoutID   string
	DeliveryID string
	State      store.DeliveryState
}

// Bounds of the record of this engine's own events that FollowChanges
// drops when the change feed reports them back.
const (
	// ownEventTTL is how long an own event is remembered; a feed that lags
	// further behind has its echo published again (harmless: subscribers
	// re-read the store).
	ownEventTTL = time.Minute
	// maxOwnEvents caps the record; when full it is emptied.
	maxOwnEvents = 1 << 16
)

// hub fans events out to subscribers. A slow subscriber loses events
// rather than blocking the engine, and is told so (Event.Lagged): events
// only say "look again"; nothing that must happen depends on one (the
// upstream leg of a logout is a delivery of the outbox).
type hub struct {
	// following counts the FollowChanges calls running; while it is
	// positive the hub records its own events in own.
	following atomic.Int32

	mu   sync.Mutex
	next int
	subs map[int]*subscriber
	// own counts, per change, the events this engine published that the
	// change feed has not reported back yet.
	own       map[Change]ownEvents
	lastPrune time.Time
}

// ownEvents is the record of one change published here.
type ownEvents struct {
	n  int
	at time.Time
}

func newHub() *hub { return &hub{subs: map[int]*subscriber{}, own: map[Change]ownEvents{}} }

// subscriber is one subscription; its fields are guarded by hub.mu.
type subscriber struct {
	ch chan Event
	// lagged: an event was dropped; Lagged is sent before the next one.
	lagged bool
}

// changeOf returns the change an event of this engine announces.
func changeOf(ev Event) Change {
	c := Change{LogoutID: ev.LogoutID}
	if ev.Delivery != nil {
		c.DeliveryID, c.State = ev.Delivery.ID, ev.Delivery.State
	}
	return c
}

// publish sends an event of this engine to every subscriber and, while a
// change feed is followed, records it so that its echo is dropped.
func (h *hub) publish(ev Event) {
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.following.Load() > 0 {
		h.record(changeOf(ev), time.Now())
	}
	h.send(ev)
}

// send delivers ev to every subscriber that has room, after a Lagged event
// if one is owed. h.mu is held.
func (h *hub) send(ev Event) {
	for _, s := range h.subs {
		if s.lagged {
			select {
			case s.ch <- Event{Lagged: true}:
				s.lagged = false
			default:
				continue
			}
		}
		select {
		case s.ch <- ev:
		default:
			s.lagged = true
		}
	}
}

// record notes an own event; h.mu is held.
func (h *hub) record(c Change, now time.Time) {
	if now.Sub(h.lastPrune) >= ownEventTTL {
		h.lastPrune = now
		for k, o := range h.own {
			if now.Sub(o.at) >= ownEventTTL {
				delete(h.own, k)
			}
		}
	}
	if len(h.own) >= maxOwnEvents {
		clear(h.own)
	}
	o := h.own[c]
	h.own[c] = ownEvents{n: o.n + 1, at: now}
}

// publishChange publishes a change read from the feed unless it is the
// echo of an own event, and reports whether it did.
func (h *hub) publishChange(c Change, now time.Time) bool {
	h.mu.Lock()
	defer h.mu.Unlock()
	if o, ok := h.own[c]; ok {
		if o.n <= 1 {
			delete(h.own, c)
		} else {
			o.n--
			h.own[c] = o
		}
		if now.Sub(o.at) < ownEventTTL {
			return false
		}
	}
	h.send(Event{LogoutID: c.LogoutID, Remote: &c})
	return true
}

// FollowChanges publishes to this engine's subscribers the changes read
// from changes, the change feed of a store that several replicas share,
// until changes is closed or ctx ends. Subscribers (the live status page,
// caches of session state) thus learn at once of logouts and deliveries
// made by other replicas.
//
// A feed reports this replica's own changes too. Those this engine
// published in the last minute are dropped, so a subscriber sees each of
// them once (twice only if the feed reports a change before the engine
// publishes it, which subscribers, re-reading the store, do not notice).
// Every other change is published as an Event with Remote set to it. A new
// logout, or a delivery reset to pending, made by another replica also
// wakes this engine's delivery workers, which then help with its fan-out
// at once rather than at their next poll.
//
// A store that one process uses alone (bbolt) has no feed to follow.
func (e *Engine) FollowChanges(ctx context.Context, changes <-chan Change) {
	e.hub.following.Add(1)
	defer e.hub.following.Add(-1)
	for {
		select {
		case <-ctx.Done():
			return
		case c, ok := <-changes:
			if !ok {
				return
			}
			if e.hub.publishChange(c, time.Now()) && (c.DeliveryID == "" || c.State == store.DeliveryPending) {
				e.Kick()
			}
		}
	}
}

// Subscribe returns a channel of engine events and a function that ends the
// subscription. When the subscriber's buffer is full an event is dropped,
// and the subscriber is sent an Event with Lagged set as soon as there is
// room: it then re-reads the store. Events are hints to look again; what
// must happen is in the store (the outbox), not in an event.
func (e *Engine) Subscribe(buffer int) (<-chan Event, func()) {
	if buffer <= 0 {
		buffer = 64
	}
	s := &subscriber{ch: make(chan Event, buffer)}
	h := e.hub
	h.mu.Lock()
	id := h.next
	h.next++
	h.subs[id] = s
	h.mu.Unlock()
	return s.ch, func() {
		h.mu.Lock()
		defer h.mu.Unlock()
		if _, ok := h.subs[id]; ok {
			delete(h.subs, id)
			close(s.ch)
		}
	}
}
