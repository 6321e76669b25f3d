package slobridge

import (
	"errors"
	"fmt"
	"net/http"
	"strings"
	"testing"

	"github.com/slobridge/slobridge/store"
)

// TestUnavailable: store failures that a client may retry answer 503 with
// Retry-After and a sentence for a person (out of space says so, and
// that logouts still work); anything else is a plain 500.
func TestUnavailable(t *testing.T) {
	for _, tc := range []struct {
		err    error
		status int
		say    string
	}{
		{fmt.Errorf("bolt: create session: %w", store.ErrNoSpace), http.StatusServiceUnavailable, "out of storage space"},
		{fmt.Errorf("postgres: get: %w", store.ErrUnavailable), http.StatusServiceUnavailable, "unavailable"},
		{errors.New("bug"), http.StatusInternalServerError, ""},
		{store.ErrNotFound, http.StatusInternalServerError, ""},
	} {
		h := http.Header{}
		if got := FailureStatus(h, tc.err); got != tc.status {
			t.Errorf("%v: status %d, want %d", tc.err, got, tc.status)
		}
		msg, ok := Unavailable(tc.err)
		if ok != (tc.status == http.StatusServiceUnavailable) || !strings.Contains(msg, tc.say) ||
			(h.Get("Retry-After") != "") != ok {
			t.Errorf("%v: %q %v, Retry-After %q", tc.err, msg, ok, h.Get("Retry-After"))
		}
	}
}
