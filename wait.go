package slobridge

import (
	"context"
	"time"
)

// waitPoll is how often WaitDone re-reads the status when no event of the
// logout arrives: events from other replicas come through the store, and
// a subscriber that fell behind may have missed one.
const waitPoll = time.Second

// WaitDone waits until every back-channel delivery of logout logoutID is
// final (LogoutStatus.Done), for at most wait, and returns the status read
// at the end. It is the one wait on a logout: the SAML SOAP and browser
// answers use it before they say whether the logout was partial.
//
// The status is read after subscribing, again on each event of the logout
// (queued events are taken together), every waitPoll, and once more when
// the wait ends, so that deliveries finished meanwhile count. When ctx ends
// first, the last status read is returned with ctx's error.
func (e *Engine) WaitDone(ctx context.Context, logoutID string, wait time.Duration) (LogoutStatus, error) {
	events, stop := e.Subscribe(64)
	defer stop()
	timer := time.NewTimer(wait)
	defer timer.Stop()
	tick := time.NewTicker(waitPoll)
	defer tick.Stop()
	for {
		st, err := e.Status(ctx, logoutID)
		if err != nil || st.Done {
			return st, err
		}
		select {
		case <-ctx.Done():
			return st, ctx.Err()
		case <-timer.C:
			return e.Status(ctx, logoutID)
		case <-tick.C:
		case ev, ok := <-events:
			if !ok {
				return e.Status(ctx, logoutID)
			}
			if ev.LogoutID != logoutID && ev.LogoutID != "" {
				continue
			}
			drainEvents(events)
		}
	}
}
