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
// answers (through Outcome) and the status page's final wait use it.
//
// It follows the logout with Watch: the status is read after subscribing,
// again on each event of the logout (queued events are taken together,
// waitChange) and every waitPoll; once more when the wait ends, so that
// deliveries finished meanwhile count. When ctx ends first, the last
// status read is returned with ctx's error.
func (e *Engine) WaitDone(ctx context.Context, logoutID string, wait time.Duration) (LogoutStatus, error) {
	wctx, cancel := context.WithTimeout(ctx, wait)
	defer cancel()
	var st LogoutStatus
	err := e.Watch(wctx, logoutID, func(s LogoutStatus) error { st = s; return nil })
	switch {
	case err == nil:
		return st, nil
	case ctx.Err() != nil:
		return st, ctx.Err()
	case wctx.Err() != nil:
		return e.Status(ctx, logoutID)
	}
	return st, err
}

// Watch calls fn with the status of logout logoutID now and again after
// each change of it (its events, or every waitPoll for changes made by
// other replicas), until every back-channel delivery is final
// (LogoutStatus.Done), fn fails or ctx ends; it returns fn's error or
// ctx's. WaitDone and the operator console's live pages wait through it.
func (e *Engine) Watch(ctx context.Context, logoutID string, fn func(LogoutStatus) error) error {
	events, stop := e.Subscribe(64)
	defer stop()
	tick := time.NewTicker(waitPoll)
	defer tick.Stop()
	for {
		st, err := e.Status(ctx, logoutID)
		if err != nil {
			return err
		}
		if err := fn(st); err != nil {
			return err
		}
		if st.Done {
			return nil
		}
		if !waitChange(ctx, events, tick.C, logoutID) {
			return ctx.Err()
		}
	}
}
