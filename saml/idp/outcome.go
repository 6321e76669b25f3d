package idp

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/slobridge/slobridge/store"
)

// Partial reports whether a logout was partial (SAML Core §3.7.3.2):
// Engine.Outcome, the one decision every answer uses, after waiting up to
// wait for the deliveries; browser false means no browser took part (the
// SOAP binding), so front-channel-only participants were not reached. A
// SAML SP reached through the browser must have answered Success; OIDC
// front-channel iframes give no answer and count as reached.
func (idp *IdP) Partial(ctx context.Context, logoutID string, wait time.Duration, browser bool) (bool, error) {
	out, err := idp.eng.Outcome(ctx, logoutID, wait, browser)
	if err != nil {
		return true, fmt.Errorf("saml idp: logout outcome: %w", err)
	}
	if !out.Complete {
		idp.log.InfoContext(ctx, "partial logout", "logout_id", logoutID, "failed", fmt.Sprint(out.Failed))
	}
	return !out.Complete, nil
}

// FrontResult is the recorded outcome of one front-channel LogoutRequest.
type FrontResult struct {
	// OK is true when the SP answered a valid LogoutResponse with
	// top-level Success.
	OK bool `json:"ok"`
	// Status and SubStatus are the SP's status codes, when it answered
	// validly.
	Status    string `json:"status,omitempty"`
	SubStatus string `json:"sub_status,omitempty"`
	// Error says why the answer was not accepted.
	Error string    `json:"error,omitempty"`
	At    time.Time `json:"at"`
}

// frontResultTTL keeps front-channel outcomes for the status and the
// initiator's answer.
const frontResultTTL = 24 * time.Hour

func frontResultKey(logoutID, sid, key string) string { return logoutID + "|" + sid + "|" + key }

// recordFront stores the outcome of a front-channel LogoutRequest; the
// first answer counts (a replayed or late second answer changes nothing).
func (idp *IdP) recordFront(ctx context.Context, logoutID, sid, key string, res FrontResult) error {
	res.At = idp.now()
	val, err := json.Marshal(res)
	if err != nil {
		return err
	}
	err = idp.st.PutRecord(ctx, store.Record{Namespace: nsFrontResult, Key: frontResultKey(logoutID, sid, key),
		Value: val, ExpiresAt: res.At.Add(frontResultTTL)})
	if err != nil && !errors.Is(err, store.ErrAlreadyExists) {
		return fmt.Errorf("saml idp: record front-channel result: %w", err)
	}
	return nil
}

// FrontResult returns the recorded outcome of the front-channel
// LogoutRequest to participant key of session sid in a logout, or an
// error wrapping store.ErrNotFound when the SP has not answered.
func (idp *IdP) FrontResult(ctx context.Context, logoutID, sid, key string) (FrontResult, error) {
	return idp.frontResult(ctx, logoutID, sid, key)
}

func (idp *IdP) frontResult(ctx context.Context, logoutID, sid, key string) (FrontResult, error) {
	rec, err := idp.st.GetRecord(ctx, nsFrontResult, frontResultKey(logoutID, sid, key), idp.now())
	if err != nil {
		return FrontResult{}, err
	}
	var res FrontResult
	if err := json.Unmarshal(rec.Value, &res); err != nil {
		return FrontResult{}, fmt.Errorf("saml idp: decode front-channel result: %w", err)
	}
	return res, nil
}
