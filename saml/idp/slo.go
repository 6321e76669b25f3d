package idp

import (
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"slices"
	"time"

	"github.com/gin-gonic/gin"

	"github.com/slobridge/slobridge"
	bsaml "github.com/slobridge/slobridge/saml"
	"github.com/slobridge/slobridge/store"
)

// logoutReplyTTL bounds how long the answer to a browser LogoutRequest
// waits for the logout page to finish.
const logoutReplyTTL = time.Hour

// logoutReply is what the initiating SP of a browser logout is answered
// once the logout page is done (nsLogoutReply).
type logoutReply struct {
	SP           string `json:"sp"`
	InResponseTo string `json:"in_response_to"`
	RelayState   string `json:"relay_state,omitempty"`
	Binding      string `json:"binding"`
}

// validator returns the shared codec's logout message validator.
func (idp *IdP) validator() *bsaml.Validator {
	return &bsaml.Validator{Store: idp.st, Now: idp.now, Skew: idp.cfg.ClockSkew, MaxAge: idp.cfg.MaxMessageAge}
}

// handleSLO serves the SLO endpoint for the browser bindings: a
// LogoutRequest from an SP (SP-initiated logout) or a LogoutResponse from
// an SP we notified through the logout page.
func (idp *IdP) handleSLO(c *gin.Context) {
	var m *bsaml.Message
	var err error
	if c.Request.Method == http.MethodGet {
		m, err = bsaml.DecodeRedirect(c.Request.URL.RawQuery, limits)
	} else {
		c.Request.Body = http.MaxBytesReader(c.Writer, c.Request.Body, maxBodyBytes)
		m, err = bsaml.DecodePOST(c.Request, limits)
	}
	if err != nil {
		idp.renderError(c, err)
		return
	}
	if !m.IsRequest() {
		idp.handleFrontResponse(c, m)
		return
	}
	ctx := c.Request.Context()
	sp, lr, err := idp.ValidateLogoutRequest(ctx, m, idp.endpoint(PathSLO))
	if err != nil {
		idp.refuseLogout(c, sp, m, lr, err)
		return
	}
	cookieSID, _ := idp.opts.Cookies.SessionID(c.Request)
	sids, err := idp.MatchSessions(ctx, sp, lr, cookieSID)
	if err != nil {
		idp.refuseLogout(c, sp, m, lr, err)
		return
	}
	reply := logoutReply{SP: sp.EntityID, InResponseTo: lr.ID, RelayState: m.RelayState, Binding: m.Binding}
	lo, err := idp.endSessions(ctx, sp, sids, true)
	if err != nil {
		idp.failLogout(c, sp, reply, err)
		return
	}
	if slices.Contains(lo.SessionIDs, cookieSID) {
		idp.opts.Cookies.Clear(c.Writer)
	}
	if len(lo.SessionIDs) == 0 {
		// Every matching session had already ended: nothing to notify.
		idp.answerBrowser(c, sp, reply, false)
		return
	}
	if err := idp.parkReply(ctx, lo.ID, reply); err != nil {
		idp.failLogout(c, sp, reply, err)
		return
	}
	c.Header("Cache-Control", "no-store")
	c.Redirect(http.StatusSeeOther, idp.base.Path+slobridge.LogoutPagePath(lo.ID))
}

// ValidateLogoutRequest looks up the sending SP and validates its
// LogoutRequest with the shared codec (signature by the SP's metadata
// keys, Issuer, Destination = destination, IssueInstant, NotOnOrAfter,
// replay). The SP is returned when known, even on error, so that an
// authenticated but invalid request can be answered.
func (idp *IdP) ValidateLogoutRequest(ctx context.Context, m *bsaml.Message, destination string) (*SP, *bsaml.LogoutRequest, error) {
	sp, err := idp.ServiceProvider(ctx, m.UnverifiedIssuer())
	if err != nil {
		return nil, nil, err
	}
	lr, err := idp.validator().LogoutRequest(ctx, m, sp.trust(), destination)
	if err != nil {
		return sp, nil, err
	}
	return sp, lr, nil
}

// errUnknownPrincipal is the answer to a LogoutRequest whose NameID and
// SessionIndex match nothing this IdP issued to the SP.
func errUnknownPrincipal(sp string) error {
	return &bsaml.Error{Status: bsaml.StatusRequester, SubStatus: bsaml.StatusUnknownPrincipal,
		Err: fmt.Errorf("saml idp: LogoutRequest from %s names no session this IdP issued to it", sp)}
}

// MatchSessions returns the bridge sessions a validated LogoutRequest from
// sp means: those of its SessionIndexes that this IdP issued to sp with the
// same NameID, or, without SessionIndex, every session in which sp was
// issued that NameID (SAML Core §3.7.1). cookieSID, when set, is the
// browser's bridge session, also considered without SessionIndex. No match
// yields Requester/UnknownPrincipal.
func (idp *IdP) MatchSessions(ctx context.Context, sp *SP, lr *bsaml.LogoutRequest, cookieSID string) ([]string, error) {
	key := ParticipantKey(sp.EntityID)
	var sids []string
	matches := func(sid string) (bool, error) {
		p, ok, err := idp.participant(ctx, sid, key)
		if err != nil || !ok {
			return false, err
		}
		return idp.sameNameID(sp, issuedFrom(p).NameID, lr.NameID), nil
	}
	add := func(sid string) error {
		if slices.Contains(sids, sid) {
			return nil
		}
		ok, err := matches(sid)
		if ok {
			sids = append(sids, sid)
		}
		return err
	}
	if len(lr.SessionIndexes) > 0 {
		for _, si := range lr.SessionIndexes {
			ref, err := idp.getRef(ctx, nsSessionIndex, si)
			if errors.Is(err, store.ErrNotFound) || (err == nil && ref.SP != sp.EntityID) {
				continue
			}
			if err != nil {
				return nil, err
			}
			if err := add(ref.SessionID); err != nil {
				return nil, err
			}
		}
	} else {
		ref, err := idp.getRef(ctx, nsNameID, nameIDKey(sp.EntityID, lr.NameID.Value))
		if err != nil && !errors.Is(err, store.ErrNotFound) {
			return nil, err
		}
		if err == nil && ref.UserID != "" {
			ss, err := idp.st.ListSessionsByUser(ctx, ref.UserID)
			if err != nil {
				return nil, fmt.Errorf("saml idp: list sessions: %w", err)
			}
			for _, s := range ss {
				if err := add(s.ID); err != nil {
					return nil, err
				}
			}
		}
		if cookieSID != "" {
			if err := add(cookieSID); err != nil {
				return nil, err
			}
		}
	}
	if len(sids) == 0 {
		return nil, errUnknownPrincipal(sp.EntityID)
	}
	return sids, nil
}

// sameNameID reports whether the NameID of a LogoutRequest is the one we
// issued: same value; Format, NameQualifier and SPNameQualifier, when the
// request carries them, equal to what was issued (an absent qualifier in
// what we issued means this IdP and this SP, SAML Core §8.3.7). An absent
// Format means unspecified (Core §2.2.2), and SPs that do not keep the
// Format they received send that: it matches any issued Format.
func (idp *IdP) sameNameID(sp *SP, issued store.NameID, got bsaml.NameID) bool {
	if got.Value != issued.Value {
		return false
	}
	if got.Format != "" && got.Format != FormatUnspecified && got.Format != issued.Format {
		return false
	}
	if got.NameQualifier != "" && got.NameQualifier != cmp.Or(issued.NameQualifier, idp.entityID) {
		return false
	}
	if got.SPNameQualifier != "" && got.SPNameQualifier != cmp.Or(issued.SPNameQualifier, sp.EntityID) {
		return false
	}
	return true
}

// endSessions ends the sessions through the engine (browser: the request
// came by a browser binding); the initiating SP is excluded from the notifications (SAML Profiles §4.4.3.1) and answered
// directly.
func (idp *IdP) endSessions(ctx context.Context, sp *SP, sids []string, browser bool) (store.Logout, error) {
	lo, err := idp.eng.Logout(ctx, slobridge.LogoutRequest{
		SessionIDs: sids,
		Browser:    browser,
		Initiator:  store.Initiator{Kind: store.InitiatorSP, ID: sp.EntityID},
	})
	if err != nil {
		return store.Logout{}, fmt.Errorf("saml idp: logout for %s: %w", sp.EntityID, err)
	}
	idp.log.InfoContext(ctx, "saml sp-initiated logout", "sp", sp.EntityID, "logout_id", lo.ID, "sessions", len(lo.SessionIDs))
	return lo, nil
}

// parkReply stores the answer to the initiator and the logout page's
// destination (the finishing step that sends it).
func (idp *IdP) parkReply(ctx context.Context, logoutID string, reply logoutReply) error {
	val, err := json.Marshal(reply)
	if err != nil {
		return err
	}
	exp := idp.now().Add(logoutReplyTTL)
	if err := idp.st.PutRecord(ctx, store.Record{Namespace: nsLogoutReply, Key: logoutID, Value: val, ExpiresAt: exp}); err != nil {
		return fmt.Errorf("saml idp: park logout reply: %w", err)
	}
	ret := slobridge.LogoutReturn{RedirectURI: idp.localPath(PathFinish + "/" + logoutID)}
	return idp.eng.SetLogoutReturn(ctx, logoutID, ret, logoutReplyTTL)
}

// handleFinish answers the SP that started a browser logout, after the
// logout page notified the front-channel participants and the top-level
// chain (if any) the others: Success, or Success/PartialLogout when a
// participant could not be logged out.
func (idp *IdP) handleFinish(c *gin.Context) {
	ctx := c.Request.Context()
	id := c.Param("logout_id")
	if _, err := idp.st.GetRecord(ctx, nsLogoutReply, id, idp.now()); err == nil {
		// SPs notified by top-level redirects come first, one at a time;
		// each answer comes back here.
		sent, err := idp.chainStep(c, id)
		if err != nil {
			idp.log.WarnContext(ctx, "saml top-level logout chain", "logout_id", id, "error", err)
		}
		if sent {
			return
		}
	}
	rec, err := idp.st.TakeRecord(ctx, nsLogoutReply, id, idp.now())
	if errors.Is(err, store.ErrNotFound) {
		slobridge.RenderLoggedOut(c.Writer, "")
		return
	}
	if err != nil {
		idp.renderError(c, err)
		return
	}
	var reply logoutReply
	if err := json.Unmarshal(rec.Value, &reply); err != nil {
		idp.renderError(c, fmt.Errorf("saml idp: decode logout reply: %w", err))
		return
	}
	sp, err := idp.ServiceProvider(ctx, reply.SP)
	if err != nil {
		idp.renderError(c, err)
		return
	}
	partial, err := idp.Partial(ctx, id, idp.cfg.BrowserLogoutWait, true)
	if err != nil {
		idp.log.WarnContext(ctx, "saml logout outcome", "logout_id", id, "error", err)
		partial = true
	}
	idp.answerBrowser(c, sp, reply, partial)
}

// refuseLogout answers a LogoutRequest that failed validation: HTTP 400
// when the sender is not authenticated (or unknown), else a signed
// LogoutResponse with the error status.
func (idp *IdP) refuseLogout(c *gin.Context, sp *SP, m *bsaml.Message, lr *bsaml.LogoutRequest, err error) {
	var se *bsaml.Error
	if sp == nil || !errors.As(err, &se) {
		idp.renderError(c, err)
		return
	}
	id := m.Root().SelectAttrValue("ID", "")
	if lr != nil {
		id = lr.ID
	}
	idp.log.WarnContext(c.Request.Context(), "saml logout request refused", "sp", sp.EntityID, "status", se.Status,
		"sub_status", se.SubStatus, "error", err)
	reply := logoutReply{SP: sp.EntityID, InResponseTo: id, RelayState: m.RelayState, Binding: m.Binding}
	idp.sendLogoutResponse(c, sp, reply, se.Status, se.SubStatus)
}

// failLogout answers an authenticated LogoutRequest that the bridge
// failed to carry out (its store, its engine) with a signed LogoutResponse
// whose top-level status is Responder (Core §3.2.2.2): the SP learns that
// the logout did not happen rather than getting an error page.
func (idp *IdP) failLogout(c *gin.Context, sp *SP, reply logoutReply, err error) {
	idp.log.ErrorContext(c.Request.Context(), "saml sp-initiated logout failed", "sp", sp.EntityID, "error", err)
	idp.sendLogoutResponse(c, sp, reply, bsaml.StatusResponder, "")
}

// answerBrowser sends the initiator its LogoutResponse.
func (idp *IdP) answerBrowser(c *gin.Context, sp *SP, reply logoutReply, partial bool) {
	sub := ""
	if partial {
		sub = bsaml.StatusPartialLogout
	}
	idp.sendLogoutResponse(c, sp, reply, bsaml.StatusSuccess, sub)
}

// sendLogoutResponse sends a signed LogoutResponse to the SP's SLO
// endpoint in the binding of its request (or its other browser binding).
func (idp *IdP) sendLogoutResponse(c *gin.Context, sp *SP, reply logoutReply, status, sub string) {
	ctx := c.Request.Context()
	binding := reply.Binding
	loc := sp.SLOResponseLocation(binding)
	if loc == "" {
		binding = bsaml.BindingPOST
		if loc = sp.SLOResponseLocation(binding); loc == "" {
			binding = bsaml.BindingRedirect
			loc = sp.SLOResponseLocation(binding)
		}
	}
	if loc == "" {
		idp.log.WarnContext(ctx, "saml sp has no browser SLO endpoint for the LogoutResponse", "sp", sp.EntityID)
		slobridge.RenderLoggedOut(c.Writer, "")
		return
	}
	resp, err := idp.logoutResponse(reply.InResponseTo, loc, status, sub)
	if err != nil {
		idp.renderError(c, err)
		return
	}
	idp.log.InfoContext(ctx, "saml logout response", "sp", sp.EntityID, "status", status, "sub_status", sub)
	if err := bsaml.SendFront(c.Writer, c.Request, binding, loc, bsaml.ParamResponse, resp.Element(), reply.RelayState, idp.opts.Signer); err != nil {
		idp.log.ErrorContext(ctx, "send saml logout response", "sp", sp.EntityID, "error", err)
		if !c.Writer.Written() {
			idp.renderError(c, err)
		}
	}
}

// logoutResponse builds an unsigned LogoutResponse.
func (idp *IdP) logoutResponse(inResponseTo, destination, status, sub string) (*bsaml.LogoutResponse, error) {
	id, err := bsaml.NewID(idp.rand)
	if err != nil {
		return nil, err
	}
	return &bsaml.LogoutResponse{
		ID: id, InResponseTo: inResponseTo, IssueInstant: idp.now(), Destination: destination,
		Issuer: idp.entityID, Status: status, SubStatus: sub,
	}, nil
}
