package slobridge

import (
	"context"
	"errors"
	"fmt"
	"sync"

	"github.com/slobridge/slobridge/store"
)

// UpstreamLegsFunc plans the upstream IdP's part of a logout: given the
// active sessions it is about to end, it returns one leg per upstream
// session that the bridge must tell, as participants (SessionID set to the
// ended session; Kind naming the notifier registered for it). A leg with
// ChannelBack is delivered through the durable outbox like any back-channel
// participant (SAML SOAP), retried until it succeeds or fails for good; a
// front-channel-only leg in a logout without a browser records that the
// upstream could not be reached. req is the logout asked for: when a
// browser takes part (req.Browser), an upstream with a browser binding is
// left to the browser flow (UpstreamLogout) and gets no leg.
type UpstreamLegsFunc func(ctx context.Context, sessions []store.Session, req LogoutRequest) ([]store.Participant, error)

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

// planLegs returns the upstream legs of a logout about to end req's
// sessions: none when the upstream started it (it is answered directly)
// or no planner is registered.
func (e *Engine) planLegs(ctx context.Context, req LogoutRequest) ([]store.Participant, error) {
	e.legs.mu.RLock()
	fs := e.legs.fs
	e.legs.mu.RUnlock()
	if len(fs) == 0 || req.Initiator.Kind == store.InitiatorUpstream {
		return nil, nil
	}
	now := e.now()
	var sessions []store.Session
	seen := map[string]bool{}
	for _, id := range req.SessionIDs {
		s, err := e.st.GetSession(ctx, id)
		if errors.Is(err, store.ErrNotFound) {
			continue // EndSessions answers for unknown IDs
		}
		if err != nil {
			return nil, fmt.Errorf("read session: %w", err)
		}
		if !seen[s.ID] && s.Active(now) {
			sessions = append(sessions, s)
		}
		seen[s.ID] = true
	}
	if req.UserID != "" {
		ss, err := e.st.ListSessionsByUser(ctx, req.UserID)
		if err != nil {
			return nil, fmt.Errorf("list the user's sessions: %w", err)
		}
		for _, s := range ss {
			if !seen[s.ID] && s.Active(now) {
				sessions = append(sessions, s)
			}
			seen[s.ID] = true
		}
	}
	if len(sessions) == 0 {
		return nil, nil
	}
	var legs []store.Participant
	for _, f := range fs {
		ls, err := f(ctx, sessions, req)
		if err != nil {
			return nil, err
		}
		legs = append(legs, ls...)
	}
	return legs, nil
}
