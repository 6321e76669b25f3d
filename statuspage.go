package slobridge

import (
	"cmp"
	"context"
	"fmt"
	"regexp"
	"time"

	"github.com/slobridge/slobridge/store"
)

// The states a row of the logout status page shows. They fold the engine's
// participant states (delivery states, StateFrontChannel, StateInitiator
// ...) into what a person needs to know.
const (
	// RowPending: the participant has not been told yet.
	RowPending = "pending"
	// RowDone: the participant acknowledged the logout (a delivered
	// back-channel notification, a loaded front-channel iframe, the
	// initiator itself).
	RowDone = "done"
	// RowRetrying: an attempt failed and the engine tries again.
	RowRetrying = "retrying"
	// RowFailed: the participant could not be told and the engine gave up
	// (or it has no way to be told at all).
	RowFailed = "failed"
	// RowSent: the browser loaded the participant's front-channel URL but
	// the page cannot confirm the participant handled it (no JavaScript,
	// or the iframe did not report back in time).
	RowSent = "sent"
	// RowSkipped: there was nothing to do (no upstream session to end).
	RowSkipped = "skipped"
)

// maxErrorText caps the error text a row shows; the full text is in the
// admin API and the logs.
const maxErrorText = 300

// statusRow is one row of the status page, as rendered by the template and
// sent to the page's script as JSON.
type statusRow struct {
	// ID is the row's DOM id; participant rows are numbered in snapshot
	// order, which a logout never changes.
	ID       string `json:"id"`
	Name     string `json:"name"`
	Protocol string `json:"protocol"`
	Channel  string `json:"channel"`
	State    string `json:"state"`
	// Detail explains the state in words.
	Detail   string `json:"detail,omitempty"`
	Error    string `json:"error,omitempty"`
	Attempts int    `json:"attempts,omitempty"`
	// Frame marks a front-channel-only row whose state the page's script
	// takes from its iframe.
	Frame bool `json:"frame,omitempty"`
}

// statusView is the whole state the page shows.
type statusView struct {
	Rows     []statusRow `json:"rows"`
	Upstream *statusRow  `json:"upstream,omitempty"`
	// Done is true when every back-channel delivery is final.
	Done bool `json:"done"`
	// Problems counts rows that failed or are still retrying.
	Problems int `json:"problems"`
}

// protocolName names a participant kind for a person.
func protocolName(kind string) string {
	switch kind {
	case "oidc":
		return "OpenID Connect"
	case "saml":
		return "SAML"
	case "ssf":
		return "Shared Signals"
	case "http":
		return "HTTP"
	}
	return kind
}

// DataTopLevel is the participant Data key that marks ("true") a
// front-channel participant notified by top-level redirects after the
// logout page rather than in an iframe on it (a SAML SP whose cookies a
// browser does not send in third-party iframes). The page shows it as
// pending, not as failed.
const DataTopLevel = "front_channel_top_level"

// buildView turns a logout status into the rows of the page.
func buildView(st LogoutStatus, framed map[int]bool, final bool) statusView {
	v := statusView{Done: st.Done, Rows: make([]statusRow, 0, len(st.Participants))}
	for i, p := range st.Participants {
		r := statusRow{
			ID:       fmt.Sprintf("p%d", i),
			Name:     cmp.Or(p.Name, p.AppID),
			Protocol: protocolName(p.Kind),
			Channel:  p.Channel,
			Attempts: p.Attempts,
			Error:    publicError(p.LastError),
		}
		fillRowState(&r, p, framed[i], final)
		if p.State == StateFrontChannel && !framed[i] && i < len(st.Logout.Participants) &&
			st.Logout.Participants[i].Data[DataTopLevel] == "true" {
			r.State, r.Detail = RowPending, "your browser is sent there after this page"
		}
		if r.State == RowFailed || r.State == RowRetrying {
			v.Problems++
		}
		v.Rows = append(v.Rows, r)
	}
	return v
}

// fillRowState sets a row's state and detail from the engine's state.
func fillRowState(r *statusRow, p ParticipantStatus, framed, final bool) {
	switch p.State {
	case string(store.DeliveryDelivered):
		r.State, r.Detail = RowDone, "notified by the bridge"
	case string(store.DeliveryPending):
		r.State, r.Detail = RowPending, "the bridge is notifying it"
	case string(store.DeliveryRetrying):
		r.State, r.Detail = RowRetrying, fmt.Sprintf("attempt %d failed; the bridge keeps trying", p.Attempts)
	case string(store.DeliveryFailed):
		r.State, r.Detail = RowFailed, "the bridge gave up; you may still be logged in there"
	case StateInitiator:
		r.State, r.Detail = RowDone, "started the logout"
	case StateFrontChannel:
		switch {
		case !framed:
			r.State, r.Detail = RowFailed, "no usable front-channel logout URL; you may still be logged in there"
		case final:
			r.State, r.Detail = RowSent, "your browser sent the logout"
		default:
			r.State, r.Detail, r.Frame = RowPending, "your browser is sending the logout", true
		}
	case StateNone:
		r.State, r.Detail = RowFailed, "the app declared no way to be told; log out of it yourself"
	default:
		r.State, r.Detail = RowFailed, "the delivery record is missing"
	}
}

// Patterns publicError removes: receivers' URLs and network addresses
// are the operator's business (the admin API shows the full error), not
// the person's who is logging out.
var (
	urlPattern  = regexp.MustCompile(`https?://[^\s"'<>]+`)
	addrPattern = regexp.MustCompile(`(dial tcp|read tcp|write tcp|lookup) [^\s]+?(:\d+)?(->[^\s]+)?:`)
)

// publicError is a delivery error as the status page shows it: without
// URLs or addresses, and capped at maxErrorText.
func publicError(s string) string {
	s = urlPattern.ReplaceAllString(s, "<logout endpoint>")
	s = addrPattern.ReplaceAllString(s, "$1:")
	return truncate(s, maxErrorText)
}

func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	r := []rune(s)
	if len(r) <= n {
		return s
	}
	return string(r[:n]) + "…"
}

// upstreamRow is the row of the upstream IdP, nil when the logout has
// none: no upstream logout is configured and the upstream did not start it.
func (lp *LogoutPage) upstreamRow(ctx context.Context, lo store.Logout) *statusRow {
	if lo.Initiator.Kind != store.InitiatorUpstream && lp.opts.Upstream == nil {
		return nil
	}
	r := &statusRow{ID: "upstream", Name: "Upstream identity provider", Protocol: "SAML", Channel: "front"}
	if name := lp.upstreamName(ctx, lo); name != "" {
		r.Name = name + " (upstream identity provider)"
	}
	if lo.Initiator.Kind == store.InitiatorUpstream {
		r.State, r.Detail = RowDone, "started the logout"
		return r
	}
	leg, err := lp.opts.Engine.BrowserLegState(ctx, lo.ID, "", UpstreamLeg)
	switch {
	case err != nil:
		lp.opts.Logger.WarnContext(ctx, "upstream logout state", "logout_id", lo.ID, "error", err)
		r.State, r.Detail = RowPending, "state unavailable"
	case leg.Result != nil && leg.Result.Skipped:
		r.State, r.Detail = RowSkipped, leg.Result.Detail
	case leg.Result != nil && leg.Result.Done:
		r.State, r.Detail = RowDone, "confirmed the logout"
	case leg.Result != nil:
		r.State, r.Detail, r.Error = RowFailed, "did not confirm the logout", truncate(leg.Result.Error, maxErrorText)
	case leg.Begun:
		r.State, r.Detail = RowPending, "waiting for its answer"
	default:
		r.State, r.Detail = RowPending, "your browser is sent there after the apps"
	}
	return r
}

// upstreamName is the configured name of the upstream IdP of the logout's
// first session, empty when unknown.
func (lp *LogoutPage) upstreamName(ctx context.Context, lo store.Logout) string {
	if len(lo.SessionIDs) == 0 {
		return ""
	}
	s, err := lp.opts.Engine.Store().GetSession(ctx, lo.SessionIDs[0])
	if err != nil {
		return ""
	}
	return s.Upstream
}

// view reads the status of logout id and builds the page's rows.
func (lp *LogoutPage) view(ctx context.Context, id string, final bool) (statusView, store.Logout, error) {
	st, err := lp.opts.Engine.Status(ctx, id)
	if err != nil {
		return statusView{}, store.Logout{}, err
	}
	framed := framedRows(st.Logout)
	v := buildView(st, framed, final)
	lp.applyFrontResults(ctx, st, &v)
	v.Upstream = lp.upstreamRow(ctx, st.Logout)
	if v.Upstream != nil && v.Upstream.State == RowFailed {
		v.Problems++
	}
	return v, st.Logout, nil
}

// applyFrontResults shows, in the rows of front-channel participants, what
// they answered (their browser legs): done, or failed with the answer, instead
// of the iframe's load state; the page's script then keeps that state.
func (lp *LogoutPage) applyFrontResults(ctx context.Context, st LogoutStatus, v *statusView) {
	for i := range v.Rows {
		if i >= len(st.Participants) || i >= len(st.Logout.Participants) || st.Participants[i].State != StateFrontChannel {
			continue
		}
		out, ok, _, err := lp.opts.Engine.frontLeg(ctx, st.Logout, st.Logout.Participants[i])
		if err != nil {
			lp.opts.Logger.WarnContext(ctx, "front-channel outcome", "logout_id", st.Logout.ID, "error", err)
			continue
		}
		if !ok {
			continue
		}
		r := &v.Rows[i]
		was := r.State == RowFailed || r.State == RowRetrying
		r.Frame, r.Detail, r.Error = false, out.Detail, truncate(out.Error, maxErrorText)
		r.State = RowDone
		if !out.Done {
			r.State = RowFailed
		}
		if now := r.State == RowFailed; now != was {
			if now {
				v.Problems++
			} else {
				v.Problems--
			}
		}
	}
}

// framedRows reports which participant indexes have an iframe on the page.
func framedRows(lo store.Logout) map[int]bool {
	m := map[int]bool{}
	for i, p := range lo.Participants {
		if _, ok := frameURL(lo, p); ok {
			m[i] = true
		}
	}
	return m
}

// waitFinal waits until every back-channel delivery of logout id is final
// or wait passed (Engine.WaitDone, the one wait on a logout), and returns
// the view then.
func (lp *LogoutPage) waitFinal(ctx context.Context, id string, wait time.Duration) (statusView, store.Logout, error) {
	if _, err := lp.opts.Engine.WaitDone(ctx, id, wait); err != nil && ctx.Err() == nil {
		return statusView{}, store.Logout{}, err
	}
	return lp.view(context.WithoutCancel(ctx), id, true)
}

// statusPollInterval is how often the page re-reads the store when no
// event arrives.
const statusPollInterval = time.Second

// waitChange blocks until an event of logout id (or a Lagged one: events
// were missed), a tick, or the end of ctx; it reports false at the end of
// ctx or of the subscription. Events already queued when it
// returns are dropped: the caller re-reads the whole status once for all
// of them rather than once per delivery of a fan-out.
func waitChange(ctx context.Context, events <-chan Event, tick <-chan time.Time, id string) bool {
	for {
		select {
		case <-ctx.Done():
			return false
		case <-tick:
			return drainEvents(events)
		case ev, ok := <-events:
			if !ok {
				return false
			}
			if ev.LogoutID == id || ev.Lagged {
				return drainEvents(events)
			}
		}
	}
}

// drainEvents drops the events queued in events; it reports false when
// events is closed.
func drainEvents(events <-chan Event) bool {
	for {
		select {
		case _, ok := <-events:
			if !ok {
				return false
			}
		default:
			return true
		}
	}
}
