package slobridge

import (
	"cmp"
	"context"
	"time"

	"github.com/slobridge/slobridge/store"
)

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
	Key string `json:"key"`
	// Why says what happened, for logs and people.
	Why string `json:"why"`
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
//     it did not confirm (or has not yet), is a failed leg too; asked
//     through the outbox, it is a participant like the others.
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
			res, ok, handled, err := e.frontLeg(ctx, st.Logout, st.Logout.Participants[i])
			switch {
			case err != nil:
				return out, err
			case !handled:
				continue // no answer to wait for: the iframe was loaded
			case !ok:
				out.Failed = append(out.Failed, FailedLeg{Key: row.Key, Why: "did not answer through the browser"})
			case !res.Done:
				out.Failed = append(out.Failed, FailedLeg{Key: row.Key, Why: cmp.Or(res.Error, res.Detail)})
			}
		default:
			why := row.State
			if row.LastError != "" {
				why += ": " + row.LastError
			}
			out.Failed = append(out.Failed, FailedLeg{Key: row.Key, Why: why})
		}
	}
	if st.Logout.Initiator.Kind != store.InitiatorUpstream {
		leg, err := e.BrowserLegState(ctx, logoutID, "", UpstreamLeg)
		switch {
		case err != nil:
			return out, err
		case leg.Result != nil && !leg.Result.Done:
			out.Failed = append(out.Failed, FailedLeg{Key: UpstreamLeg, Why: cmp.Or(leg.Result.Error, leg.Result.Detail)})
		case leg.Begun && leg.Result == nil:
			out.Failed = append(out.Failed, FailedLeg{Key: UpstreamLeg, Why: "has not answered yet"})
		}
	}
	out.Complete = len(out.Failed) == 0
	return out, nil
}
