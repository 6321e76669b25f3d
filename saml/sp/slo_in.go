package sp

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"slices"

	"github.com/beevik/etree"
	"github.com/gin-gonic/gin"

	"github.com/slobridge/slobridge"
	"github.com/slobridge/slobridge/saml"
	"github.com/slobridge/slobridge/store"
)

// accepted is an upstream LogoutRequest that passed validation, with the
// logout it caused (no sessions when none was active).
type accepted struct {
	up  *upstream
	req *saml.LogoutRequest
	lo  store.Logout
}

// acceptLogoutRequest is the protocol core of IdP-initiated logout
// (Profiles §4.4.4): authenticate and validate the request against the
// issuer's metadata, match the sessions by NameID (and SessionIndex when
// given: otherwise every session of the principal) and end the active ones
// through the engine. Errors: saml.ErrMalformed / saml.ErrSignature when
// nothing may be answered; *saml.Error (with the upstream and request ID
// in the returned accepted) when a LogoutResponse must carry the failure.
func (sp *SP) acceptLogoutRequest(ctx context.Context, m *saml.Message, dest string) (accepted, error) {
	u := sp.reg.Load().byEntity[m.UnverifiedIssuer()]
	if u == nil {
		return accepted{}, fmt.Errorf("%w: LogoutRequest from unknown issuer", saml.ErrSignature)
	}
	a := accepted{up: u}
	req, err := sp.validator.LogoutRequest(ctx, m, u.trust, dest)
	if err != nil {
		var se *saml.Error
		if errors.As(err, &se) {
			// Only returned after the signature verified: the ID is the
			// authenticated sender's.
			a.req = &saml.LogoutRequest{ID: m.Root().SelectAttrValue("ID", "")}
		}
		return a, err
	}
	a.req = req
	// The store matches the value; the qualifiers and Format are compared
	// here, where an attribute one side left out (its default, Core
	// §2.2.2, §8.3.1 "unspecified") matches any value.
	nid := store.NameID{Value: req.NameID.Value}
	indexes := req.SessionIndexes
	if len(indexes) == 0 {
		indexes = []string{""}
	}
	now := sp.opts.Now()
	found := 0
	var ids []string
	for _, idx := range indexes {
		ss, err := sp.opts.Engine.Store().FindSessionsByNameID(ctx, u.cfg.Name, nid, idx)
		if err != nil {
			return a, fmt.Errorf("sp: find sessions: %w", err)
		}
		for _, s := range ss {
			if !matchesLogin(s, u.cfg.Name, req.NameID, idx) {
				continue
			}
			found++
			if s.Active(now) && !slices.Contains(ids, s.ID) {
				ids = append(ids, s.ID)
			}
		}
	}
	if found == 0 {
		// The Response of the login this ends may still be on its way
		// (Core §3.7.3.1): remembered, it will not create a session.
		if err := sp.rememberEarlyLogout(ctx, u.cfg.Name, req); err != nil {
			return a, err
		}
		return a, &saml.Error{Status: saml.StatusRequester, SubStatus: saml.StatusUnknownPrincipal,
			Err: fmt.Errorf("sp: no session of upstream %q matches the LogoutRequest's NameID", u.cfg.Name)}
	}
	if len(ids) == 0 {
		return a, nil // already logged out: Success
	}
	lo, err := sp.opts.Engine.Logout(ctx, slobridge.LogoutRequest{SessionIDs: ids,
		Initiator: store.Initiator{Kind: store.InitiatorUpstream, ID: u.cfg.Name}})
	if err != nil {
		return a, fmt.Errorf("sp: logout: %w", err)
	}
	a.lo = lo
	return a, nil
}

// handleSLO receives front-channel single-logout messages: LogoutRequests
// from upstream IdPs and LogoutResponses to the bridge's own requests.
func (sp *SP) handleSLO(c *gin.Context) {
	m, err := saml.ReadHTTP(c.Request, sp.opts.Limits)
	if err == nil && m.Binding == saml.BindingSOAP {
		err = fmt.Errorf("%w: SOAP messages go to %s", saml.ErrMalformed, PathSLOSOAP)
	}
	if err != nil {
		sp.badRequest(c, "malformed logout message", err)
		return
	}
	if !m.IsRequest() {
		sp.handleLogoutResponse(c, m)
		return
	}
	ctx := c.Request.Context()
	a, err := sp.acceptLogoutRequest(ctx, m, sp.url(PathSLO))
	var se *saml.Error
	switch {
	case errors.As(err, &se):
		sp.log.WarnContext(ctx, "upstream LogoutRequest refused", "upstream", a.up.cfg.Name, "error", err)
		sp.answerFront(c, a.up, m.Binding, a.req.ID, m.RelayState, se.Status, se.SubStatus)
		return
	case err != nil && saml.HTTPStatus(err) == http.StatusBadRequest:
		sp.badRequest(c, "logout request rejected", err)
		return
	case err != nil && a.req == nil:
		sp.log.ErrorContext(ctx, "upstream LogoutRequest", "error", err)
		sp.failPage(c, err, "The logout could not be processed.")
		return
	case err != nil:
		sp.log.ErrorContext(ctx, "upstream LogoutRequest", "error", err)
		sp.answerFront(c, a.up, m.Binding, a.req.ID, m.RelayState, saml.StatusResponder, "")
		return
	}
	sp.opts.Cookies.Clear(c.Writer)
	if len(a.lo.SessionIDs) == 0 {
		sp.answerFront(c, a.up, m.Binding, a.req.ID, m.RelayState, saml.StatusSuccess, "")
		return
	}
	// Answer after the logout page has notified the front-channel
	// participants: its "done" step comes back to handleSLOComplete.
	err = sp.putState(ctx, nsAnswer, a.lo.ID, answerState{Upstream: a.up.cfg.Name, InResponseTo: a.req.ID,
		RelayState: m.RelayState, Binding: m.Binding})
	if err == nil {
		err = sp.opts.Engine.SetLogoutReturn(ctx, a.lo.ID,
			slobridge.LogoutReturn{RedirectURI: sp.url(PathSLOComplete + "/" + a.lo.ID)}, stateTTL)
	}
	if err == nil {
		// The IdP may have sent this request from an iframe of its logout
		// page (Shibboleth IdP does): the bridge's pages of this logout may
		// render there.
		err = sp.opts.Engine.SetFrameAncestors(ctx, a.lo.ID, a.up.frameOrigins(), stateTTL)
	}
	if err != nil {
		sp.log.ErrorContext(ctx, "remember upstream LogoutRequest", "logout_id", a.lo.ID, "error", err)
		sp.answerFront(c, a.up, m.Binding, a.req.ID, m.RelayState, saml.StatusSuccess, saml.StatusPartialLogout)
		return
	}
	c.Header("Cache-Control", "no-store")
	c.Redirect(http.StatusSeeOther, sp.opts.LogoutPageURL(a.lo.ID))
}

// handleSLOComplete answers the upstream's front-channel LogoutRequest
// once the logout page is done: Success, or Success/PartialLogout when a
// participant could not be logged out.
func (sp *SP) handleSLOComplete(c *gin.Context) {
	ctx := c.Request.Context()
	id := c.Param("logout_id")
	var st answerState
	if err := sp.takeState(ctx, nsAnswer, id, &st); err != nil {
		sp.badRequest(c, "unknown or finished logout", err)
		return
	}
	u := sp.reg.Load().byName[st.Upstream]
	if u == nil {
		sp.badRequest(c, "identity provider no longer configured", fmt.Errorf("upstream %q", st.Upstream))
		return
	}
	// The browser went through the logout page: a front-channel
	// participant counts when it confirmed (Engine.Outcome).
	out, err := sp.opts.Engine.Outcome(ctx, id, sp.opts.SOAPLogoutWait, true)
	sub := ""
	if err != nil || !out.Complete {
		sub = saml.StatusPartialLogout
		sp.log.InfoContext(ctx, "partial logout answered to the upstream", "logout_id", id, "failed", fmt.Sprint(out.Failed), "error", err)
	}
	sp.answerFront(c, u, st.Binding, st.InResponseTo, st.RelayState, saml.StatusSuccess, sub)
}

// handleSLOSOAP receives back-channel LogoutRequests (SOAP binding): the
// answer waits until the back-channel deliveries are final or
// SOAPLogoutWait has passed. Participants that can only be reached through
// a browser count as not logged out (PartialLogout).
//
// A LogoutRequest from a configured upstream whose ID can be read is
// always answered in SAML, in a 200 envelope: a refused one (bad or
// missing signature, expired, replayed, unknown principal) with a signed
// LogoutResponse carrying a Requester status, so that the IdP records a
// definite refusal (Bindings §3.2.3.1). Only what cannot be answered in
// SAML (not SOAP, not a LogoutRequest, unknown issuer, no ID, our own
// failure to sign) gets a SOAP fault, always with HTTP 500 (SOAP 1.1
// §6.2).
func (sp *SP) handleSLOSOAP(c *gin.Context) {
	ctx := c.Request.Context()
	m, err := saml.DecodeSOAP(c.Request, sp.opts.Limits)
	if err == nil && !m.IsRequest() {
		err = fmt.Errorf("%w: not a request", saml.ErrMalformed)
	}
	if err != nil {
		sp.log.WarnContext(ctx, "SOAP logout message refused", "error", err)
		saml.WriteSOAPFault(c.Writer, http.StatusInternalServerError, "Client", "malformed SAML SOAP message")
		return
	}
	a, err := sp.acceptLogoutRequest(ctx, m, sp.url(PathSLOSOAP))
	status, sub := saml.StatusSuccess, ""
	var se *saml.Error
	switch {
	case errors.As(err, &se):
		sp.log.WarnContext(ctx, "upstream SOAP LogoutRequest refused", "upstream", a.up.cfg.Name, "error", err)
		status, sub = se.Status, se.SubStatus
	case err != nil && saml.HTTPStatus(err) == http.StatusBadRequest:
		id := m.UnverifiedLogoutRequestID()
		if a.up == nil || id == "" {
			sp.log.WarnContext(ctx, "SOAP LogoutRequest rejected", "error", err)
			saml.WriteSOAPFault(c.Writer, http.StatusInternalServerError, "Client", "the LogoutRequest could not be authenticated")
			return
		}
		// Not authenticated: nothing was done, and the answer says so.
		sp.log.WarnContext(ctx, "upstream SOAP LogoutRequest refused", "upstream", a.up.cfg.Name, "error", err)
		a.req = &saml.LogoutRequest{ID: id}
		status, sub = saml.StatusRequester, saml.StatusRequestDenied
	case err != nil && a.req == nil:
		sp.log.ErrorContext(ctx, "upstream SOAP LogoutRequest", "error", err)
		msg := "internal error"
		if why, ok := slobridge.Unavailable(err); ok {
			msg = why
		}
		saml.WriteSOAPFault(c.Writer, slobridge.FailureStatus(c.Writer.Header(), err), "Server", msg)
		return
	case err != nil:
		sp.log.ErrorContext(ctx, "upstream SOAP LogoutRequest", "error", err)
		status = saml.StatusResponder
	case len(a.lo.SessionIDs) > 0:
		// No browser: front-channel-only participants are not reached.
		out, err := sp.opts.Engine.Outcome(ctx, a.lo.ID, sp.opts.SOAPLogoutWait, false)
		if err != nil || !out.Complete {
			sub = saml.StatusPartialLogout
		}
	}
	r, err := sp.logoutResponse("", a.req.ID, status, sub)
	var resp *etree.Element
	if err == nil {
		resp, err = sp.opts.Signer.SignEnveloped(r.Element())
	}
	if err != nil {
		sp.log.ErrorContext(ctx, "sign LogoutResponse", "error", err)
		saml.WriteSOAPFault(c.Writer, http.StatusInternalServerError, "Server", "internal error")
		return
	}
	_ = saml.WriteSOAP(c.Writer, resp)
}

// matchesLogin reports whether session s rests, or rested before its user
// logged in again (Session.PriorLogins), on a login at upstream whose
// NameID is n (sameName) and, when idx is set, whose SessionIndex is idx.
// A LogoutRequest naming an earlier login of a re-authenticated session
// ends it: the apps that joined under that login are in the session, and
// over-ending a session is safe where leaving one alive is not.
func matchesLogin(s store.Session, upstream string, n saml.NameID, idx string) bool {
	for _, l := range append([]store.UpstreamLogin{s.UpstreamLogin()}, s.PriorLogins...) {
		if l.Upstream == upstream && (idx == "" || l.SessionIndex == idx) && sameName(l.NameID, n) {
			return true
		}
	}
	return false
}

// sameName reports whether a LogoutRequest's NameID names the principal of
// a session: the same value, and Format, NameQualifier and SPNameQualifier
// equal wherever both sides state them.
func sameName(s store.NameID, n saml.NameID) bool {
	compatible := func(a, b string) bool { return a == "" || b == "" || a == b }
	format := func(f string) string {
		if f == saml.NameIDFormatUnspecified {
			return ""
		}
		return f
	}
	return s.Value == n.Value && compatible(format(s.Format), format(n.Format)) &&
		compatible(s.NameQualifier, n.NameQualifier) && compatible(s.SPNameQualifier, n.SPNameQualifier)
}
