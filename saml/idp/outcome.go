package idp

import (
	"context"
	"fmt"
	"time"

	"github.com/slobridge/slobridge"
	bsaml "github.com/slobridge/slobridge/saml"
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

// frontAnswer is the browser leg result of an SP's answer: its valid
// LogoutResponse lr, or why its authenticated answer was refused (err).
// Done only for top-level Success without PartialLogout: the initiator is
// answered PartialLogout too otherwise.
func frontAnswer(lr *bsaml.LogoutResponse, err error) slobridge.LegResult {
	if err != nil {
		return slobridge.LegResult{Detail: "its answer was refused; you may still be logged in there", Error: err.Error()}
	}
	res := slobridge.LegResult{Done: lr.Success() && !lr.Partial(), Status: lr.Status, SubStatus: lr.SubStatus}
	if res.Done {
		res.Detail = "answered Success"
		return res
	}
	status := lr.Status
	if lr.SubStatus != "" {
		status += " / " + lr.SubStatus
	}
	res.Detail, res.Error = "answered that it could not log you out completely", "status "+status
	return res
}

// recordFront ends the browser leg of a front-channel LogoutRequest with
// its result (Engine.EndBrowserLeg: the first answer counts).
func (idp *IdP) recordFront(ctx context.Context, logoutID, sid, key string, res slobridge.LegResult) error {
	if err := idp.eng.EndBrowserLeg(ctx, logoutID, sid, key, res); err != nil {
		return fmt.Errorf("saml idp: record front-channel result: %w", err)
	}
	return nil
}

// FrontResult returns the result of the front-channel LogoutRequest to
// participant key of session sid in a logout (its browser leg), or an
// error wrapping store.ErrNotFound while the SP has not answered.
func (idp *IdP) FrontResult(ctx context.Context, logoutID, sid, key string) (slobridge.LegResult, error) {
	leg, err := idp.eng.BrowserLegState(ctx, logoutID, sid, key)
	if err != nil {
		return slobridge.LegResult{}, err
	}
	if leg.Result == nil {
		return slobridge.LegResult{}, fmt.Errorf("saml idp: no answer from %s: %w", key, store.ErrNotFound)
	}
	return *leg.Result, nil
}
