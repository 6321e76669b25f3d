package slobridge

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/slobridge/slobridge/store"
)

// frontReporters holds the FrontChannelReporter of each participant kind
// whose front-channel answers are recorded (a SAML SP's LogoutResponse).
type frontReporters struct {
	mu sync.RWMutex
	m  map[string]FrontChannelReporter
}

// SetFrontChannelReporter registers what participants of kind answered
// through the browser; the wiring does it as for notifiers. Outcome and
// the status page read it.
func (e *Engine) SetFrontChannelReporter(kind string, r FrontChannelReporter) {
	e.front.mu.Lock()
	defer e.front.mu.Unlock()
	if e.front.m == nil {
		e.front.m = map[string]FrontChannelReporter{}
	}
	e.front.m[kind] = r
}

// FrontChannelOutcome returns what participant p of logout lo answered
// through the browser: ok false when its kind gives no answer (an OIDC
// front-channel iframe) or it has not answered yet; handled false when no
// reporter is registered for its kind.
func (e *Engine) FrontChannelOutcome(ctx context.Context, lo store.Logout, p store.Participant) (out FrontChannelOutcome, ok, handled bool, err error) {
	e.front.mu.RLock()
	r := e.front.m[p.Kind]
	e.front.mu.RUnlock()
	if r == nil {
		return FrontChannelOutcome{}, false, false, nil
	}
	out, ok, err = r.FrontChannelOutcome(ctx, lo, p)
	return out, ok, true, err
}

// Outcome is how a logout went, the one answer every party is given: the
// LogoutResponse to an upstream IdP or to the SP that started it, the
// status page and the admin API.
type Outcome struct {
	// Status is the logout's status when the outcome was decided.
	Status LogoutStatus
	// Complete is true when every participant, and the upstream when it
	// was asked, confirmed the logout.
	Complete bool
	// Failed lists the legs that did not, with why.
	Failed []FailedLeg
}

// FailedLeg is a participant (or the upstream IdP) not logged out.
type FailedLeg struct {
	// Key is the participant key, "upstream" for the upstream IdP.
	Key string
	// Why says what happened, for logs and people.
	Why string
}

// Outcome waits for the logout's deliveries (WaitDone, at most wait) and
// decides how the logout went (SAML Core §3.7.3.2: PartialLogout when any
// participant could not be logged out):
//   - the initiator and delivered back-channel participants are logged out;
//   - a front-channel participant is logged out only through a browser
//     (browser false: none took part, as for SOAP); one whose kind
//     reports answers (a SAML SP) must have answered Success; one whose
//     kind gives no answer (an OIDC iframe) counts as reached;
//   - anything else (failed, still retrying, no channel) is not;
//   - the upstream IdP, when the bridge asked it through the browser and
//     it did not confirm, is a failed leg too.
func (e *Engine) Outcome(ctx context.Context, logoutID string, wait time.Duration, browser bool) (Outcome, error) {
	st, err := e.WaitDone(ctx, logoutID, wait)
	out := Outcome{Status: st}
	if err != nil {
		return out, err
	}
	for i, row := range st.Participants {
		switch row.State {
		case StateInitiator, string(store.DeliveryDelivered):
			continue
		case StateFrontChannel:
			if !browser {
				out.Failed = append(out.Failed, FailedLeg{Key: row.Key, Why: "reached only through a browser, and none took part"})
				continue
			}
			if i >= len(st.Logout.Participants) {
				continue
			}
			fo, ok, handled, err := e.FrontChannelOutcome(ctx, st.Logout, st.Logout.Participants[i])
			switch {
			case err != nil:
				return out, err
			case !handled:
				continue // no answer to wait for: the iframe was loaded
			case !ok:
				out.Failed = append(out.Failed, FailedLeg{Key: row.Key, Why: "did not answer through the browser"})
			case !fo.Done:
				out.Failed = append(out.Failed, FailedLeg{Key: row.Key, Why: fo.Error})
			}
		default:
			why := row.State
			if row.LastError != "" {
				why += ": " + row.LastError
			}
			out.Failed = append(out.Failed, FailedLeg{Key: row.Key, Why: why})
		}
	}
	if res, ok, err := e.upstreamResult(ctx, st.Logout); err != nil {
		return out, err
	} else if ok && res.State == RowFailed {
		out.Failed = append(out.Failed, FailedLeg{Key: "upstream", Why: res.Error})
	}
	out.Complete = len(out.Failed) == 0
	return out, nil
}

// upstreamResult reads what the upstream IdP answered to the bridge's
// LogoutRequest (SaveUpstreamLogoutResult); ok is false when it was not
// asked through the browser.
func (e *Engine) upstreamResult(ctx context.Context, lo store.Logout) (UpstreamLogoutResult, bool, error) {
	if lo.Initiator.Kind == store.InitiatorUpstream {
		return UpstreamLogoutResult{}, false, nil
	}
	rec, err := e.st.GetRecord(ctx, UpstreamLogoutNamespace, lo.ID, e.now())
	if errors.Is(err, store.ErrNotFound) {
		return UpstreamLogoutResult{}, false, nil
	}
	if err != nil {
		return UpstreamLogoutResult{}, false, fmt.Errorf("slobridge: upstream logout result: %w", err)
	}
	var res UpstreamLogoutResult
	if err := json.Unmarshal(rec.Value, &res); err != nil {
		return UpstreamLogoutResult{}, false, fmt.Errorf("slobridge: upstream logout result: %w", err)
	}
	return res, true, nil
}
