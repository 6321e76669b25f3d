package slobridge

import (
	"context"
	"fmt"
	"time"

	"github.com/slobridge/slobridge/store"
)

// Participant states shown by Status, beyond the delivery states of
// store.DeliveryState ("pending", "retrying", "delivered", "failed") used for
// back-channel participants.
const (
	// StateFrontChannel is a participant notified only through the user's
	// browser (the logout page); the engine has no delivery for it.
	StateFrontChannel = "front-channel"
	// StateInitiator is the participant that asked for the logout
	// (InitiatorKey): it is answered directly, not notified.
	StateInitiator = "initiator"
	// StateNone is a participant that declared no logout channel at all:
	// nobody can tell it about the logout.
	StateNone = "none"
	// StateUnknown is a back-channel participant whose delivery is missing
	// from the store (swept, or written by a backend that broke the
	// one-delivery-per-participant contract).
	StateUnknown = "unknown"
)

// LogoutStatus is the state of one logout for the admin API and the browser
// status page.
type LogoutStatus struct {
	Logout       store.Logout        `json:"logout"`
	Participants []ParticipantStatus `json:"participants"`
	// Done is true when every back-channel delivery is in a final state
	// (delivered or failed).
	Done bool `json:"done"`
}

// ParticipantStatus is one participant's row of a LogoutStatus, in the
// order of the logout's participant snapshot.
type ParticipantStatus struct {
	// SessionID is the ended session the participant belonged to (a logout
	// by user ID may end several sessions with the same app in each).
	SessionID string `json:"session_id"`
	Key       string `json:"key"`
	Kind      string `json:"kind"`
	AppID     string `json:"app_id"`
	Name      string `json:"name,omitempty"`
	// Channel is "back", "front", "back+front" or "none".
	Channel string `json:"channel"`
	// State is the delivery state for back-channel participants ("pending",
	// "retrying", "delivered", "failed"), StateFrontChannel for
	// participants notified only by the browser, StateInitiator for the
	// participant that asked, StateNone or StateUnknown otherwise.
	State string `json:"state"`
	// Attempts counts back-channel delivery attempts so far.
	Attempts int `json:"attempts"`
	// LastError is the error of the last failed attempt, if any.
	LastError string `json:"last_error,omitempty"`
	// DeliveryID is the back-channel delivery's ID (the value receivers
	// see in Slobridge-Delivery-Id), empty without one.
	DeliveryID string `json:"delivery_id,omitempty"`
	// UpdatedAt is when the row last changed: the last attempt or final
	// state for a delivery, the logout time otherwise.
	UpdatedAt time.Time `json:"updated_at"`
}

// Status returns the state of one logout: each participant of its snapshot
// with its delivery, if any. An unknown logout yields an error wrapping
// store.ErrNotFound.
func (e *Engine) Status(ctx context.Context, logoutID string) (LogoutStatus, error) {
	lo, err := e.st.GetLogout(ctx, logoutID)
	if err != nil {
		return LogoutStatus{}, fmt.Errorf("slobridge: logout status: %w", err)
	}
	ds, err := e.st.ListDeliveries(ctx, logoutID)
	if err != nil {
		return LogoutStatus{}, fmt.Errorf("slobridge: logout status: list deliveries: %w", err)
	}
	return buildStatus(lo, ds), nil
}

// deliveryKey identifies a participant within a logout: the same app may be
// a participant of several sessions ended by one logout.
type deliveryKey struct{ session, key string }

// buildStatus joins a logout's participant snapshot with its deliveries.
func buildStatus(lo store.Logout, ds []store.Delivery) LogoutStatus {
	byKey := make(map[deliveryKey]store.Delivery, len(ds))
	done := true
	for _, d := range ds {
		byKey[deliveryKey{d.Participant.SessionID, d.Participant.Key}] = d
		if !d.State.Final() {
			done = false
		}
	}
	st := LogoutStatus{Logout: lo, Participants: make([]ParticipantStatus, 0, len(lo.Participants)), Done: done}
	for _, p := range lo.Participants {
		row := ParticipantStatus{
			SessionID: p.SessionID,
			Key:       p.Key,
			Kind:      p.Kind,
			AppID:     p.AppID,
			Name:      p.Name,
			Channel:   p.Channels.String(),
			UpdatedAt: lo.CreatedAt,
		}
		d, hasDelivery := byKey[deliveryKey{p.SessionID, p.Key}]
		switch {
		case hasDelivery:
			fillDelivery(&row, d)
		case lo.ExcludeKey != "" && p.Key == lo.ExcludeKey:
			row.State = StateInitiator
		case p.Channels.Has(store.ChannelBack):
			row.State = StateUnknown
		case p.Channels.Has(store.ChannelFront):
			row.State = StateFrontChannel
		default:
			row.State = StateNone
		}
		st.Participants = append(st.Participants, row)
	}
	return st
}

// fillDelivery copies a delivery's progress into a status row.
func fillDelivery(row *ParticipantStatus, d store.Delivery) {
	row.State = string(d.State)
	row.Attempts = len(d.Attempts)
	row.LastError = d.LastError
	row.DeliveryID = d.ID
	row.UpdatedAt = d.CreatedAt
	if n := len(d.Attempts); n > 0 {
		a := d.Attempts[n-1]
		row.UpdatedAt = a.At.Add(a.Duration)
	}
	if !d.DoneAt.IsZero() {
		row.UpdatedAt = d.DoneAt
	}
}

// RetryFailed resets the failed deliveries of a logout to pending, due now,
// wakes the delivery workers and returns how many it reset. An unknown
// logout yields an error wrapping store.ErrNotFound.
func (e *Engine) RetryFailed(ctx context.Context, logoutID string) (int, error) {
	if _, err := e.st.GetLogout(ctx, logoutID); err != nil {
		return 0, fmt.Errorf("slobridge: retry failed deliveries: %w", err)
	}
	n, err := e.st.RetryDeliveries(ctx, logoutID, e.now())
	if err != nil {
		return 0, fmt.Errorf("slobridge: retry failed deliveries of logout %s: %w", logoutID, err)
	}
	if n == 0 {
		return 0, nil
	}
	e.log.InfoContext(ctx, "retry failed deliveries", "logout_id", logoutID, "deliveries", n)
	e.publishPending(ctx, logoutID)
	e.Kick()
	return n, nil
}

// RetryDelivery makes one delivery due now (store.RetryNow: a failed one
// pending again, a retrying one at once instead of at its next attempt),
// wakes the delivery workers and returns the delivery with whether it
// changed. An unknown delivery yields an error wrapping store.ErrNotFound.
func (e *Engine) RetryDelivery(ctx context.Context, id string) (store.Delivery, bool, error) {
	d, changed, err := e.st.RetryDelivery(ctx, id, e.now())
	if err != nil {
		return store.Delivery{}, false, fmt.Errorf("slobridge: retry delivery %s: %w", id, err)
	}
	if changed {
		e.log.InfoContext(ctx, "retry delivery", "logout_id", d.LogoutID, "delivery_id", id)
		e.hub.publish(Event{LogoutID: d.LogoutID, Delivery: &d})
		e.Kick()
	}
	return d, changed, nil
}

// publishPending announces the pending deliveries of a logout to event
// subscribers (after an operator's retry reset them). Best effort: the
// status page re-reads the store anyway.
func (e *Engine) publishPending(ctx context.Context, logoutID string) {
	ds, err := e.st.ListDeliveries(ctx, logoutID)
	if err != nil {
		e.log.WarnContext(ctx, "list deliveries after retry", "logout_id", logoutID, "err", err)
		return
	}
	for i := range ds {
		if ds[i].State == store.DeliveryPending {
			d := ds[i]
			e.hub.publish(Event{LogoutID: logoutID, Delivery: &d})
		}
	}
}
