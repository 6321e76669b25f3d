package slobridge

import (
	"context"
	"errors"
	"fmt"

	"github.com/slobridge/slobridge/store"
)

// Notifier tells one kind of back-channel participant about a logout. The
// engine picks the notifier by Participant.Kind. Notify is called once per
// attempt with a context that carries the per-attempt timeout; it returns
// nil when the receiver acknowledged the notification. The delivery ID is
// stable across attempts so receivers can de-duplicate.
type Notifier interface {
	Notify(ctx context.Context, d store.Delivery) error
}

// NotifierFunc adapts a function to Notifier.
type NotifierFunc func(ctx context.Context, d store.Delivery) error

// Notify calls f.
func (f NotifierFunc) Notify(ctx context.Context, d store.Delivery) error { return f(ctx, d) }

// DeliveryError is a failed attempt with the receiver's HTTP status, if any.
// Permanent errors (a receiver that says the notification itself is bad, in
// a way a retry cannot fix) are not retried.
type DeliveryError struct {
	StatusCode int
	Permanent  bool
	Err        error
}

// Error implements error.
func (e *DeliveryError) Error() string {
	if e.StatusCode != 0 {
		return fmt.Sprintf("receiver answered HTTP %d: %v", e.StatusCode, e.Err)
	}
	return e.Err.Error()
}

// Unwrap returns the underlying error.
func (e *DeliveryError) Unwrap() error { return e.Err }

// statusOf returns the HTTP status carried by err, or 0.
func statusOf(err error) int {
	var de *DeliveryError
	if errors.As(err, &de) {
		return de.StatusCode
	}
	return 0
}

// permanent reports whether err must not be retried.
func permanent(err error) bool {
	var de *DeliveryError
	return errors.As(err, &de) && de.Permanent
}
