package slobridge

import (
	"errors"
	"net/http"

	"github.com/slobridge/slobridge/store"
)

// RetryAfter is the Retry-After, in seconds, of every 503 the bridge sends
// while its store is unreachable or out of space.
const RetryAfter = "5"

// ErrUpstreamUnavailable marks a login that cannot start or finish
// because its upstream identity provider cannot be reached right now (its
// metadata or discovery document unreadable): answered like an
// unreachable store, 503 with Retry-After.
var ErrUpstreamUnavailable = errors.New("upstream identity provider unavailable")

// Unavailable is the one rule for answering a failure of the bridge's
// store or of an upstream: when err says the store is unreachable
// (store.ErrUnavailable) or out of space (store.ErrNoSpace), or the
// upstream IdP cannot be reached (ErrUpstreamUnavailable), it returns the sentence to show a
// person and true, and the answer is HTTP 503 with Retry-After (see
// WriteUnavailable) in the protocol's own form; otherwise "" and false
// (a 500). Out of space comes first: logins are refused before logouts.
func Unavailable(err error) (string, bool) {
	switch {
	case errors.Is(err, store.ErrNoSpace):
		return "The bridge is out of storage space and cannot sign anyone in right now. Logouts still work. Try again later.", true
	case errors.Is(err, store.ErrUnavailable):
		return "The bridge's storage is unavailable right now. Try again in a moment.", true
	case errors.Is(err, ErrUpstreamUnavailable):
		return "The identity provider cannot be reached right now; try again in a minute.", true
	}
	return "", false
}

// FailureStatus returns 503 for an error Unavailable recognises, 500
// otherwise, and sets Retry-After on h for a 503.
func FailureStatus(h http.Header, err error) int {
	if _, ok := Unavailable(err); ok {
		h.Set("Retry-After", RetryAfter)
		return http.StatusServiceUnavailable
	}
	return http.StatusInternalServerError
}
