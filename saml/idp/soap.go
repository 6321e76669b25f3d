package idp

import (
	"context"
	"errors"
	"net/http"

	"github.com/gin-gonic/gin"

	"github.com/slobridge/slobridge"
	bsaml "github.com/slobridge/slobridge/saml"
)

// handleSOAP serves the SOAP SLO endpoint (Bindings §3.2): a signed
// LogoutRequest from an SP's back channel. The bridge ends the sessions,
// waits (up to SOAPLogoutWait) for the back-channel deliveries to the
// other participants, and answers a signed LogoutResponse: Success, or
// Success/PartialLogout when a participant was not reached (front-channel
// participants never are: there is no browser). A LogoutRequest from a
// registered SP with a readable ID that is refused (signature, Destination,
// replay, unknown principal) gets a signed LogoutResponse with a Requester
// status in a 200 envelope; only what cannot be answered in SAML gets a
// SOAP fault, with HTTP 500 (SOAP 1.1 §6.2).
func (idp *IdP) handleSOAP(c *gin.Context) {
	c.Request.Body = http.MaxBytesReader(c.Writer, c.Request.Body, maxBodyBytes)
	ctx := c.Request.Context()
	m, err := bsaml.DecodeSOAP(c.Request, limits)
	if err != nil {
		idp.soapFault(c, err)
		return
	}
	if !m.IsRequest() {
		idp.soapFault(c, errors.New("saml idp: only LogoutRequests are served on the SOAP endpoint"))
		return
	}
	sp, lr, err := idp.ValidateLogoutRequest(ctx, m, idp.endpoint(PathSLOSOAP))
	if err == nil {
		var sids []string
		if sids, err = idp.MatchSessions(ctx, sp, lr, ""); err == nil {
			var partial bool
			partial, err = idp.logoutBySOAP(ctx, sp, sids)
			if err == nil {
				sub := ""
				if partial {
					sub = bsaml.StatusPartialLogout
				}
				idp.answerSOAP(c, sp, lr.ID, bsaml.StatusSuccess, sub)
				return
			}
		}
	}
	var se *bsaml.Error
	switch {
	case sp != nil && errors.As(err, &se):
		idp.log.WarnContext(ctx, "saml soap logout request refused", "sp", sp.EntityID, "status", se.Status, "sub_status", se.SubStatus, "error", err)
		idp.answerSOAP(c, sp, m.Root().SelectAttrValue("ID", ""), se.Status, se.SubStatus)
	case sp != nil && m.UnverifiedLogoutRequestID() != "" && httpStatus(err) == http.StatusBadRequest:
		// Not authenticated or not valid (bad or missing signature,
		// Destination, replay): nothing was done, and a SAML answer says so
		// (Bindings §3.2.3.1) rather than a SOAP fault.
		idp.log.WarnContext(ctx, "saml soap logout request refused", "sp", sp.EntityID, "error", err)
		idp.answerSOAP(c, sp, m.UnverifiedLogoutRequestID(), bsaml.StatusRequester, bsaml.StatusRequestDenied)
	case sp != nil && lr != nil:
		// Authenticated and valid, but the bridge failed: a SAML-level
		// error, answered in SAML (Bindings §3.2.3.1), not a SOAP fault.
		idp.log.ErrorContext(ctx, "saml soap logout failed", "sp", sp.EntityID, "error", err)
		idp.answerSOAP(c, sp, lr.ID, bsaml.StatusResponder, "")
	default:
		idp.soapFault(c, err)
	}
}

// logoutBySOAP ends the sessions and reports whether the logout was
// partial: Engine.Outcome after the deliveries, the upstream IdP's leg
// (SOAP through the outbox, Profiles §4.4.3.1: the bridge is a session
// participant there too) among them, within SOAPLogoutWait so that the
// SP's SOAP call gets its answer in time.
func (idp *IdP) logoutBySOAP(ctx context.Context, sp *SP, sids []string) (bool, error) {
	lo, err := idp.endSessions(ctx, sp, sids, false)
	if err != nil {
		return false, err
	}
	if len(lo.SessionIDs) == 0 {
		return false, nil
	}
	wctx, cancel := context.WithTimeout(ctx, idp.cfg.SOAPLogoutWait+idp.cfg.SOAPLogoutWait/2)
	defer cancel()
	partial, err := idp.Partial(wctx, lo.ID, idp.cfg.SOAPLogoutWait, false)
	if err != nil {
		idp.log.WarnContext(ctx, "saml logout outcome", "logout_id", lo.ID, "error", err)
		partial = true
	}
	return partial, nil
}

// answerSOAP sends a signed LogoutResponse in a SOAP envelope.
func (idp *IdP) answerSOAP(c *gin.Context, sp *SP, inResponseTo, status, sub string) {
	resp, err := idp.logoutResponse(inResponseTo, "", status, sub)
	if err != nil {
		idp.soapFault(c, err)
		return
	}
	signed, err := idp.opts.Signer.SignEnveloped(resp.Element())
	if err != nil {
		idp.soapFault(c, err)
		return
	}
	idp.log.InfoContext(c.Request.Context(), "saml soap logout response", "sp", sp.EntityID, "status", status, "sub_status", sub)
	if err := bsaml.WriteSOAP(c.Writer, signed); err != nil {
		idp.log.WarnContext(c.Request.Context(), "write soap logout response", "sp", sp.EntityID, "error", err)
	}
}

// soapFault answers a SOAP request that cannot get a SAML answer (not
// SOAP, not a LogoutRequest, unknown SP, no ID, our own failure): a Client
// fault for what the sender got wrong, a Server fault for our failures,
// both with HTTP 500 as SOAP 1.1 §6.2 requires.
func (idp *IdP) soapFault(c *gin.Context, err error) {
	if httpStatus(err) < 500 {
		idp.log.WarnContext(c.Request.Context(), "saml soap request refused", "error", err)
		bsaml.WriteSOAPFault(c.Writer, http.StatusInternalServerError, "Client", "the SAML message is not valid")
		return
	}
	idp.log.ErrorContext(c.Request.Context(), "saml soap request failed", "error", err)
	if msg, ok := slobridge.Unavailable(err); ok {
		// The store is down or full: a Server fault, with 503 and
		// Retry-After so that the SP retries.
		bsaml.WriteSOAPFault(c.Writer, slobridge.FailureStatus(c.Writer.Header(), err), "Server", msg)
		return
	}
	bsaml.WriteSOAPFault(c.Writer, http.StatusInternalServerError, "Server", "the logout could not be processed")
}
