package slobridge

import (
	"sync"

	"github.com/slobridge/slobridge/store"
)

// Event is published when a logout is created or one of its deliveries
// changes state. The live logout status page and the Shared Signals
// transmitter subscribe to it.
type Event struct {
	LogoutID string
	// Logout is set on the event that announces a new logout.
	Logout *store.Logout
	// Delivery is set when a delivery changed state.
	Delivery *store.Delivery
}

// hub fans events out to subscribers. A slow subscriber loses events rather
// than blocking the engine (subscribers re-read the status from the store).
type hub struct {
	mu   sync.Mutex
	next int
	subs map[int]chan Event
}

func newHub() *hub { return &hub{subs: map[int]chan Event{}} }

func (h *hub) publish(ev Event) {
	h.mu.Lock()
	defer h.mu.Unlock()
	for _, ch := range h.subs {
		select {
		case ch <- ev:
		default:
		}
	}
}

// Subscribe returns a channel of engine events and a function that ends the
// subscription. Events are dropped for a subscriber whose buffer is full.
func (e *Engine) Subscribe(buffer int) (<-chan Event, func()) {
	if buffer <= 0 {
		buffer = 64
	}
	ch := make(chan Event, buffer)
	h := e.hub
	h.mu.Lock()
	id := h.next
	h.next++
	h.subs[id] = ch
	h.mu.Unlock()
	return ch, func() {
		h.mu.Lock()
		defer h.mu.Unlock()
		if _, ok := h.subs[id]; ok {
			delete(h.subs, id)
			close(ch)
		}
	}
}
