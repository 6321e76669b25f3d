package slobridge

import (
	"sync"

	"github.com/slobridge/slobridge/store"
)

// UpstreamLegsFunc plans the upstream IdP's part of a logout: given the
// sessions the logout ends (inside its store transaction: it must not do
// I/O), it returns one leg per upstream session that the bridge must tell,
// as participants (SessionID set to the ended session; Kind naming the
// notifier registered for it). A leg with ChannelBack is delivered through
// the durable outbox like any back-channel participant (SAML SOAP),
// retried until it succeeds or fails for good; a front-channel-only leg in
// a logout without a browser records that the upstream could not be
// reached. req is the logout asked for: when a browser takes part
// (req.Browser), an upstream with a browser binding is left to the browser
// flow (UpstreamLogout) and gets no leg.
type UpstreamLegsFunc func(sessions []store.Session, req LogoutRequest) []store.Participant

// upstreamLegs holds the registered planners, one per upstream kind.
type upstreamLegs struct {
	mu sync.RWMutex
	fs []UpstreamLegsFunc
}

// AddUpstreamLegs registers a planner of upstream legs (the SAML SP side
// does, and an OIDC RP side would); the wiring calls it once per upstream
// kind, like SetNotifier.
func (e *Engine) AddUpstreamLegs(f UpstreamLegsFunc) {
	e.legs.mu.Lock()
	defer e.legs.mu.Unlock()
	e.legs.fs = append(e.legs.fs, f)
}

// legsOf returns the store's Legs callback for a logout: nil when the
// upstream started it (it is answered directly) or no planner is
// registered.
func (e *Engine) legsOf(req LogoutRequest) func([]store.Session) []store.Participant {
	e.legs.mu.RLock()
	fs := e.legs.fs
	e.legs.mu.RUnlock()
	if len(fs) == 0 || req.Initiator.Kind == store.InitiatorUpstream {
		return nil
	}
	return func(ended []store.Session) []store.Participant {
		var legs []store.Participant
		for _, f := range fs {
			legs = append(legs, f(ended, req)...)
		}
		return legs
	}
}
