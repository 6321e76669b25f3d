package sp

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"slices"
	"strings"

	"github.com/beevik/etree"
	crewjam "github.com/crewjam/saml"
	"github.com/gin-gonic/gin"

	"github.com/slobridge/slobridge"
	"github.com/slobridge/slobridge/saml"
	"github.com/slobridge/slobridge/store"
)

// logoutResponse builds an unsigned LogoutResponse from the bridge.
func (sp *SP) logoutResponse(dest, inResponseTo, status, sub string) (*saml.LogoutResponse, error) {
	id, err := saml.NewID(nil)
	if err != nil {
		return nil, err
	}
	return &saml.LogoutResponse{ID: id, InResponseTo: inResponseTo, IssueInstant: sp.opts.Now(), Destination: dest,
		Issuer: sp.opts.EntityID, Status: status, SubStatus: sub}, nil
}

// answerFront sends a LogoutResponse to upstream u through the browser, by
// the binding the request came by when the IdP offers it (else the other
// front-channel one), to the endpoint's ResponseLocation or Location.
func (sp *SP) answerFront(c *gin.Context, u *upstream, binding, inResponseTo, relay, status, sub string) {
	ctx := c.Request.Context()
	other := saml.BindingPOST
	if binding == saml.BindingPOST {
		other = saml.BindingRedirect
	}
	ep, ok := u.slo(binding, other)
	if !ok {
		sp.log.WarnContext(ctx, "upstream has no front-channel SLO endpoint to answer", "upstream", u.cfg.Name)
		sp.page(c, http.StatusOK, "You are logged out.")
		return
	}
	loc := ep.Location
	if ep.ResponseLocation != "" {
		loc = ep.ResponseLocation
	}
	r, err := sp.logoutResponse(loc, inResponseTo, status, sub)
	if err == nil {
		// The IdP may have sent its LogoutRequest in an iframe of its own
		// logout page: its answer may render there.
		err = sp.send(c.Writer, c.Request, ep.Binding, loc, saml.ParamResponse, r.Element(), relay, u.frameOrigins()...)
	}
	if err != nil {
		sp.log.ErrorContext(ctx, "send LogoutResponse", "upstream", u.cfg.Name, "error", err)
		sp.failPage(c, err, "The logout answer could not be sent.")
	}
}

// send delivers the unsigned message el by a front-channel binding
// (saml.SendFront).
func (sp *SP) send(w http.ResponseWriter, r *http.Request, binding, loc, param string, el *etree.Element, relay string, frameAncestors ...string) error {
	return saml.SendFront(w, r, binding, loc, param, el, relay, sp.opts.Signer, frameAncestors...)
}

// upstreamKey names one session at an upstream: a bridge session, or
// several of one browser that share it, map to one upstream session.
func upstreamKey(s store.Session) string {
	return s.Upstream + "\x00" + s.NameID.Value + "\x00" + s.SessionIndex
}

// upstreamSession returns the first ended session of lo that an upstream
// with a browser SLO binding knows (it has a NameID) and that is not in
// sent (upstreamKey), with that upstream. Upstreams with only SOAP are
// told through the outbox (UpstreamLegs).
func (sp *SP) upstreamSession(ctx context.Context, lo store.Logout, sent []string) (*upstream, store.Session, error) {
	reg := sp.reg.Load()
	for _, id := range lo.SessionIDs {
		s, err := sp.opts.Engine.Store().GetSession(ctx, id)
		if errors.Is(err, store.ErrNotFound) {
			continue
		}
		if err != nil {
			return nil, store.Session{}, err
		}
		u := reg.byName[s.Upstream]
		if u == nil || s.NameID.Value == "" || slices.Contains(sent, upstreamKey(s)) {
			continue
		}
		if _, front := u.slo(saml.BindingRedirect, saml.BindingPOST); front {
			return u, s, nil
		}
	}
	return nil, store.Session{}, nil
}

// newLogoutRequest builds a LogoutRequest to dest for an upstream
// session: the NameID n exactly as the upstream issued it, and its
// SessionIndexes (Core §3.7.1; sessionIndexes). Used for the browser chain
// and, from a leg's data, for the SOAP leg (Notify).
func (sp *SP) newLogoutRequest(n store.NameID, indexes []string, dest, reason string) (*saml.LogoutRequest, error) {
	id, err := saml.NewID(nil)
	if err != nil {
		return nil, err
	}
	now := sp.opts.Now()
	return &saml.LogoutRequest{ID: id, IssueInstant: now, NotOnOrAfter: now.Add(stateTTL), Destination: dest,
		Reason: reason, Issuer: sp.opts.EntityID, SessionIndexes: indexes,
		NameID: saml.NameID{Value: n.Value, Format: n.Format, NameQualifier: n.NameQualifier,
			SPNameQualifier: n.SPNameQualifier}}, nil
}

// sessionIndexes lists the SessionIndexes of s at its upstream for its
// NameID: the current one first, then earlier ones of the same NameID, most
// recent first. None when the current login has no SessionIndex, which
// names every session of the NameID.
func sessionIndexes(s store.Session) []string {
	if s.SessionIndex == "" {
		return nil
	}
	out := []string{s.SessionIndex}
	for i := len(s.PriorLogins) - 1; i >= 0; i-- {
		l := s.PriorLogins[i]
		if l.Upstream == s.Upstream && l.NameID == s.NameID && l.SessionIndex != "" && !slices.Contains(out, l.SessionIndex) {
			out = append(out, l.SessionIndex)
		}
	}
	return out
}

// StartLogout implements slobridge.UpstreamLogout: after the downstream
// participants were notified, it sends the browser to the upstream IdP
// with a signed LogoutRequest (Redirect with a query signature, or POST,
// as the IdP's metadata offers) and reports true; the IdP's LogoutResponse
// comes back to PathSLO, which continues to returnTo. It reports false
// when the upstream started the logout or no ended session came from an
// upstream with a browser binding (an upstream with only SOAP is told
// through the outbox: UpstreamLegs).
//
// A logout that ended several sessions known upstream (two browsers, two
// upstream logins) asks the upstream about each (Core §3.7.3.2): the
// LogoutResponse of one sends the browser on with the LogoutRequest of
// the next (continueChain), and the last to returnTo.
func (sp *SP) StartLogout(w http.ResponseWriter, r *http.Request, lo store.Logout, returnTo string) (bool, error) {
	if lo.Initiator.Kind == store.InitiatorUpstream {
		return false, nil
	}
	ctx := r.Context()
	u, s, err := sp.upstreamSession(ctx, lo, nil)
	if err != nil || u == nil {
		return false, err
	}
	ep, _ := u.slo(saml.BindingRedirect, saml.BindingPOST)
	return true, sp.sendUpstreamLogout(w, r, lo, u, s, ep, logoutState{ReturnTo: returnTo})
}

// sendUpstreamLogout sends the browser to upstream u with the
// LogoutRequest for session s; st carries the chain so far.
func (sp *SP) sendUpstreamLogout(w http.ResponseWriter, r *http.Request, lo store.Logout, u *upstream, s store.Session,
	ep crewjam.Endpoint, st logoutState) error {
	ctx := r.Context()
	req, err := sp.newLogoutRequest(s.NameID, sessionIndexes(s), ep.Location, saml.ReasonUser)
	if err != nil {
		return err
	}
	// The upstream's browser leg: begun with the first request of the
	// chain; its answer is due before the request expires.
	if _, err := sp.opts.Engine.BeginBrowserLeg(ctx, lo.ID, "", slobridge.UpstreamLeg, stateTTL); err != nil {
		return err
	}
	relay := sp.opts.Engine.NewID()
	st.Upstream, st.RequestID, st.LogoutID = u.cfg.Name, req.ID, lo.ID
	st.Sent = append(slices.Clone(st.Sent), upstreamKey(s))
	if err := sp.putState(ctx, nsLogout, relay, st); err != nil {
		return err
	}
	if err := sp.send(w, r, ep.Binding, ep.Location, saml.ParamRequest, req.Element(), relay); err != nil {
		return fmt.Errorf("sp: send LogoutRequest to %q: %w", u.cfg.Name, err)
	}
	sp.log.InfoContext(ctx, "upstream logout sent", "logout_id", lo.ID, "upstream", u.cfg.Name, "binding", ep.Binding,
		"upstream_sessions_asked", len(st.Sent))
	return nil
}

// continueChain sends the browser on to the next upstream session of the
// logout that has a browser SLO endpoint; false when none is left.
func (sp *SP) continueChain(c *gin.Context, st logoutState) (bool, error) {
	ctx := c.Request.Context()
	lo, err := sp.opts.Engine.Store().GetLogout(ctx, st.LogoutID)
	if err != nil {
		return false, err
	}
	u, s, err := sp.upstreamSession(ctx, lo, st.Sent)
	if err != nil || u == nil {
		return false, err
	}
	ep, _ := u.slo(saml.BindingRedirect, saml.BindingPOST)
	return true, sp.sendUpstreamLogout(c.Writer, c.Request, lo, u, s, ep, st)
}

// handleLogoutResponse completes a logout the bridge sent upstream: the
// response must verify against the IdP's keys, come from that IdP, answer
// our request ID and be addressed to us; only then is the state consumed
// and the browser sent on. A rejected response changes nothing.
func (sp *SP) handleLogoutResponse(c *gin.Context, m *saml.Message) {
	ctx := c.Request.Context()
	var st logoutState
	if err := sp.getState(ctx, nsLogout, m.RelayState, &st); err != nil {
		sp.badRequest(c, "unknown or expired logout", err)
		return
	}
	u := sp.reg.Load().byName[st.Upstream]
	if u == nil {
		sp.badRequest(c, "identity provider no longer configured", fmt.Errorf("upstream %q", st.Upstream))
		return
	}
	resp, err := sp.validator.LogoutResponse(ctx, m, u.trust, sp.url(PathSLO), st.RequestID)
	if err != nil {
		sp.badRequest(c, "logout response rejected", err)
		return
	}
	if err := sp.takeState(ctx, nsLogout, m.RelayState, &st); err != nil {
		sp.badRequest(c, "logout already completed", err)
		return
	}
	if !resp.Success() {
		sp.log.WarnContext(ctx, "upstream logout failed", "logout_id", st.LogoutID, "upstream", u.cfg.Name,
			"status", resp.Status, "sub_status", resp.SubStatus)
		st.Failed = strings.TrimSpace(st.Failed + " the identity provider answered " + resp.Status + " " + resp.SubStatus)
	} else {
		sp.log.InfoContext(ctx, "upstream logout done", "logout_id", st.LogoutID, "upstream", u.cfg.Name, "partial", resp.Partial())
	}
	// The next upstream session of the logout, if any, is asked next.
	if more, err := sp.continueChain(c, st); err != nil {
		sp.log.ErrorContext(ctx, "next upstream LogoutRequest", "logout_id", st.LogoutID, "error", err)
		st.Failed = strings.TrimSpace(st.Failed + " " + err.Error())
	} else if more {
		return
	}
	// The upstream's browser leg ends with what it answered.
	res := slobridge.LegResult{Done: true, Detail: "confirmed the logout"}
	if st.Failed != "" {
		res = slobridge.LegResult{Detail: "did not confirm the logout", Error: st.Failed}
	}
	if err := sp.opts.Engine.EndBrowserLeg(ctx, st.LogoutID, "", slobridge.UpstreamLeg, res); err != nil {
		sp.log.WarnContext(ctx, "record upstream logout result", "logout_id", st.LogoutID, "error", err)
	}
	c.Header("Cache-Control", "no-store")
	c.Redirect(http.StatusSeeOther, st.ReturnTo)
}

// noBrowser reports initiator kinds whose logouts have no browser to
// carry a front-channel LogoutRequest.
func noBrowser(k store.InitiatorKind) bool {
	return k == store.InitiatorAdmin || k == store.InitiatorSystem
}
