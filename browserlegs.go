package slobridge

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"slices"
	"sync"
	"time"

	"github.com/slobridge/slobridge/store"
)

// Browser legs are the parts of a logout told through the user's browser
// and answered there: a SAML SP's front-channel LogoutRequest (in an
// iframe of the logout page or a step of the top-level redirect chain) and
// the bridge's LogoutRequest to the upstream IdP. Their state lives in the
// engine beside the deliveries of back-channel participants: the protocol
// adapter begins a leg when it sends the request (BeginBrowserLeg, with a
// deadline) and ends it with the answer (EndBrowserLeg); a leg with no
// answer by its deadline is failed, with that reason, and the logout goes
// on without it. Outcome, the status page and the admin API read them.

// Record namespaces of browser legs, keyed by browserLegKey.
const (
	legBegunNamespace  = "logout-leg-begun"
	legResultNamespace = "logout-leg-result"
	// legKeep is how long leg state is kept: longer than any logout page,
	// pending answer or admin question about a recent logout.
	legKeep = 24 * time.Hour
)

// UpstreamLeg is the leg key of the upstream IdP told through the browser
// (with session ID ""): the bridge's LogoutRequest to it and its answer.
const UpstreamLeg = "upstream"

// LegResult is what a browser leg came to.
type LegResult struct {
	// Done is true when the participant confirmed the logout.
	Done bool `json:"done"`
	// Skipped is true when there was nothing to do (no upstream session to
	// end); Done is then true too.
	Skipped bool `json:"skipped,omitempty"`
	// Status and SubStatus are the protocol answer, when there was one (a
	// SAML StatusCode and its second-level code).
	Status    string `json:"status,omitempty"`
	SubStatus string `json:"sub_status,omitempty"`
	// Detail says what happened, for a person; Error why the leg failed.
	Detail string `json:"detail,omitempty"`
	Error  string `json:"error,omitempty"`
	// At is when the result was recorded.
	At time.Time `json:"at"`
}

// BrowserLeg is the state of one browser leg.
type BrowserLeg struct {
	// Begun is true once the bridge sent the request; Deadline is when the
	// answer was due.
	Begun    bool      `json:"begun"`
	Deadline time.Time `json:"deadline,omitzero"`
	// Result is the answer, or the failure of a leg past its deadline; nil
	// while the leg is pending (or was never begun).
	Result *LegResult `json:"result,omitempty"`
}

func browserLegKey(logoutID, sid, key string) string { return logoutID + "|" + sid + "|" + key }

// BeginBrowserLeg records that the bridge sends leg key (a participant key,
// or UpstreamLeg) of session sid in logout logoutID through the browser
// now, its answer due within timeout. It reports false, changing nothing,
// when the leg was begun before: each leg is sent once per logout.
func (e *Engine) BeginBrowserLeg(ctx context.Context, logoutID, sid, key string, timeout time.Duration) (bool, error) {
	now := e.now()
	val, err := json.Marshal(BrowserLeg{Begun: true, Deadline: now.Add(timeout)})
	if err != nil {
		return false, err
	}
	err = e.st.PutRecord(ctx, store.Record{Namespace: legBegunNamespace, Key: browserLegKey(logoutID, sid, key),
		Value: val, ExpiresAt: now.Add(legKeep)})
	switch {
	case errors.Is(err, store.ErrAlreadyExists):
		return false, nil
	case err != nil:
		return false, fmt.Errorf("slobridge: begin browser leg %s of logout %s: %w", key, logoutID, err)
	}
	return true, nil
}

// EndBrowserLeg records the answer of a browser leg; the first one counts
// (a replayed or late second answer changes nothing). An answer that
// arrives after the leg's deadline is recorded as failed: the logout went
// on without it.
func (e *Engine) EndBrowserLeg(ctx context.Context, logoutID, sid, key string, res LegResult) error {
	res.At = e.now()
	if leg, err := e.begunLeg(ctx, logoutID, sid, key); err != nil {
		return err
	} else if leg.Begun && res.At.After(leg.Deadline) && res.Done {
		res.Done, res.Skipped = false, false
		res.Error = "answered after its deadline, when the logout had gone on without it"
	}
	val, err := json.Marshal(res)
	if err != nil {
		return err
	}
	err = e.st.PutRecord(ctx, store.Record{Namespace: legResultNamespace, Key: browserLegKey(logoutID, sid, key),
		Value: val, ExpiresAt: res.At.Add(legKeep)})
	if err != nil && !errors.Is(err, store.ErrAlreadyExists) {
		return fmt.Errorf("slobridge: end browser leg %s of logout %s: %w", key, logoutID, err)
	}
	if err == nil {
		e.hub.publish(Event{LogoutID: logoutID})
	}
	return nil
}

// BrowserLegState returns the state of a browser leg. A begun leg without
// an answer past its deadline reads failed, with the reason.
func (e *Engine) BrowserLegState(ctx context.Context, logoutID, sid, key string) (BrowserLeg, error) {
	leg, err := e.begunLeg(ctx, logoutID, sid, key)
	if err != nil {
		return BrowserLeg{}, err
	}
	rec, err := e.st.GetRecord(ctx, legResultNamespace, browserLegKey(logoutID, sid, key), e.now())
	switch {
	case err == nil:
		var res LegResult
		if err := json.Unmarshal(rec.Value, &res); err != nil {
			return BrowserLeg{}, fmt.Errorf("slobridge: browser leg %s of logout %s: %w", key, logoutID, err)
		}
		leg.Result = &res
	case !errors.Is(err, store.ErrNotFound):
		return BrowserLeg{}, fmt.Errorf("slobridge: browser leg %s of logout %s: %w", key, logoutID, err)
	case leg.Begun && e.now().After(leg.Deadline):
		leg.Result = &LegResult{At: leg.Deadline, Detail: "it did not answer in time; you may still be logged in there",
			Error: "no answer within its deadline (" + leg.Deadline.UTC().Format(time.RFC3339) + ")"}
	}
	return leg, nil
}

// begunLeg reads when a leg was begun; a zero BrowserLeg when it was not.
func (e *Engine) begunLeg(ctx context.Context, logoutID, sid, key string) (BrowserLeg, error) {
	rec, err := e.st.GetRecord(ctx, legBegunNamespace, browserLegKey(logoutID, sid, key), e.now())
	if errors.Is(err, store.ErrNotFound) {
		return BrowserLeg{}, nil
	}
	if err != nil {
		return BrowserLeg{}, fmt.Errorf("slobridge: browser leg %s of logout %s: %w", key, logoutID, err)
	}
	var leg BrowserLeg
	if err := json.Unmarshal(rec.Value, &leg); err != nil {
		return BrowserLeg{}, fmt.Errorf("slobridge: browser leg %s of logout %s: %w", key, logoutID, err)
	}
	return leg, nil
}

// FrontChannel is a protocol's part of the browser flow of a logout, for
// its participants whose front-channel legs are answered (a SAML SP sends
// a LogoutResponse back through the browser). The wiring registers one per
// participant kind (SetFrontChannel), as it does notifiers. The logout
// page renders every front-channel participant's iframe from its
// FrontChannelURL whatever its kind; a registered kind's legs must be
// answered (BeginBrowserLeg, EndBrowserLeg) to count as logged out, where
// an unregistered kind's iframe (OIDC Front-Channel Logout) counts once
// loaded.
type FrontChannel interface {
	// NextTopLevel sends the browser to the next participant of lo of this
	// kind that is notified by a top-level redirect rather than in an
	// iframe, and reports true; its answer brings the browser back to
	// returnTo (a path on the bridge). It reports false, having written
	// nothing, when none is left. Each participant is sent at most once per
	// logout (BeginBrowserLeg); a step whose browser came back without an
	// answer, or that passed its deadline, is failed with the reason, and
	// the chain goes on.
	NextTopLevel(w http.ResponseWriter, r *http.Request, lo store.Logout, returnTo string) (bool, error)
}

// frontChannels holds the FrontChannel of each participant kind.
type frontChannels struct {
	mu sync.RWMutex
	m  map[string]FrontChannel
}

// SetFrontChannel registers the front-channel part of participant kind.
func (e *Engine) SetFrontChannel(kind string, fc FrontChannel) {
	e.front.mu.Lock()
	defer e.front.mu.Unlock()
	if e.front.m == nil {
		e.front.m = map[string]FrontChannel{}
	}
	e.front.m[kind] = fc
}

// answered reports whether front-channel legs of kind are answered.
func (e *Engine) answered(kind string) bool {
	e.front.mu.RLock()
	defer e.front.mu.RUnlock()
	return e.front.m[kind] != nil
}

// topLevelChains returns the registered FrontChannels in kind order.
func (e *Engine) topLevelChains() []FrontChannel {
	e.front.mu.RLock()
	defer e.front.mu.RUnlock()
	kinds := make([]string, 0, len(e.front.m))
	for k := range e.front.m {
		kinds = append(kinds, k)
	}
	slices.Sort(kinds)
	out := make([]FrontChannel, 0, len(kinds))
	for _, k := range kinds {
		out = append(out, e.front.m[k])
	}
	return out
}

// frontLeg returns what front-channel participant p of logout lo answered:
// handled false when its kind gives no answer (an OIDC iframe); ok false
// while it has not answered (and its deadline, if begun, has not passed).
func (e *Engine) frontLeg(ctx context.Context, lo store.Logout, p store.Participant) (res LegResult, ok, handled bool, err error) {
	if !e.answered(p.Kind) {
		return LegResult{}, false, false, nil
	}
	leg, err := e.BrowserLegState(ctx, lo.ID, p.SessionID, p.Key)
	if err != nil || leg.Result == nil {
		return LegResult{}, false, true, err
	}
	return *leg.Result, true, true, nil
}
