package idp

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"html/template"
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/beevik/etree"
	"github.com/gin-gonic/gin"

	"github.com/slobridge/slobridge"
	bsaml "github.com/slobridge/slobridge/saml"
	"github.com/slobridge/slobridge/store"
)

// logoutRequestTTL is the NotOnOrAfter of our LogoutRequests and how long
// we wait for a front-channel answer.
const logoutRequestTTL = 10 * time.Minute

// pendingLogout links a LogoutRequest we sent to the participant it
// notifies (nsPendingLogout).
type pendingLogout struct {
	LogoutID  string `json:"logout_id"`
	SessionID string `json:"sid"`
	Key       string `json:"key"`
	SP        string `json:"sp"`
	// Chain is true for a top-level chain request: the answer sends the
	// browser on to the next step, Return (a path on the bridge), or
	// without Return the finishing step of the logout.
	Chain  bool   `json:"chain,omitempty"`
	Return string `json:"return,omitempty"`
}

// buildLogoutRequest makes the LogoutRequest toward a participant with the
// NameID and SessionIndex it was issued (Profiles §4.4.4.1).
func (idp *IdP) buildLogoutRequest(lo store.Logout, p store.Participant, destination string) (*bsaml.LogoutRequest, error) {
	id, err := bsaml.NewID(idp.rand)
	if err != nil {
		return nil, err
	}
	iss := issuedFrom(p)
	if iss.NameID.Value == "" {
		return nil, fmt.Errorf("saml idp: participant %s has no NameID", p.Key)
	}
	now := idp.now()
	reason := bsaml.ReasonUser
	if lo.Initiator.Kind == store.InitiatorAdmin || lo.Initiator.Kind == store.InitiatorSystem {
		reason = bsaml.ReasonAdmin
	}
	r := &bsaml.LogoutRequest{
		ID: id, IssueInstant: now, NotOnOrAfter: now.Add(logoutRequestTTL), Destination: destination,
		Reason: reason, Issuer: idp.entityID,
		NameID: bsaml.NameID{Value: iss.NameID.Value, Format: iss.NameID.Format,
			NameQualifier: iss.NameID.NameQualifier, SPNameQualifier: iss.NameID.SPNameQualifier},
	}
	if iss.SessionIndex != "" {
		r.SessionIndexes = []string{iss.SessionIndex}
	}
	return r, nil
}

// frontTarget finds, for a front-channel token, the ended session's logout
// and the participant to notify.
func (idp *IdP) frontTarget(ctx context.Context, token string) (store.Logout, store.Participant, error) {
	ref, err := idp.getRef(ctx, nsFront, token)
	if err != nil {
		return store.Logout{}, store.Participant{}, err
	}
	s, err := idp.st.GetSession(ctx, ref.SessionID)
	if err != nil {
		return store.Logout{}, store.Participant{}, err
	}
	if s.EndedAt.IsZero() || s.LogoutID == "" {
		return store.Logout{}, store.Participant{}, errors.New("saml idp: the session has not been logged out")
	}
	lo, err := idp.st.GetLogout(ctx, s.LogoutID)
	if err != nil {
		return store.Logout{}, store.Participant{}, err
	}
	key := ParticipantKey(ref.SP)
	for _, p := range lo.Participants {
		if p.SessionID == s.ID && p.Key == key {
			return lo, p, nil
		}
	}
	return store.Logout{}, store.Participant{}, fmt.Errorf("saml idp: %s is not a participant of logout %s", key, lo.ID)
}

// handleFront is the page the logout page frames for a front-channel SP:
// it sends that SP its LogoutRequest, by a redirect (HTTP-Redirect with the
// query signature) or an auto-submitting form (HTTP-POST, enveloped
// signature). It works only once the session has been logged out.
func (idp *IdP) handleFront(c *gin.Context) {
	ctx := c.Request.Context()
	lo, p, err := idp.frontTarget(ctx, c.Param("token"))
	if err != nil {
		if errors.Is(err, store.ErrNotFound) {
			idp.renderPage(c, http.StatusNotFound, "Nothing to log out here.")
			return
		}
		idp.log.WarnContext(ctx, "saml front-channel page refused", "error", err)
		idp.renderPage(c, http.StatusBadRequest, "Nothing to log out here.")
		return
	}
	if p.Key == lo.ExcludeKey {
		idp.renderPage(c, http.StatusOK, "Logged out.")
		return
	}
	// The iframe's leg begins when its page first loads (a reload sends a
	// new request, under the first deadline).
	if _, err := idp.eng.BeginBrowserLeg(ctx, lo.ID, p.SessionID, p.Key, idp.cfg.FrameAnswerTimeout); err != nil {
		idp.renderError(c, err)
		return
	}
	if err := idp.writeFrontRequest(c.Writer, c.Request, lo, p, false, ""); err != nil {
		idp.renderError(c, err)
	}
}

// writeFrontRequest sends participant p of logout lo its LogoutRequest
// through the browser: inside the logout page's iframe, or top-level for
// the redirect chain (whose answer sends the browser on to returnTo, a
// path on the bridge; empty: the finishing step of the logout). It
// remembers the request's ID to match the answer. It returns an error
// only before it has written anything.
func (idp *IdP) writeFrontRequest(w http.ResponseWriter, r *http.Request, lo store.Logout, p store.Participant, chain bool, returnTo string) error {
	ctx := r.Context()
	binding, loc := p.Data[DataFrontBinding], p.Data[DataFrontLocation]
	if loc == "" {
		return fmt.Errorf("%w: participant %s has no front-channel SLO endpoint", bsaml.ErrMalformed, p.Key)
	}
	lr, err := idp.buildLogoutRequest(lo, p, loc)
	if err != nil {
		return err
	}
	var el *etree.Element
	var to, nonce string
	if binding == BindingPOST {
		el, err = idp.opts.Signer.SignEnveloped(lr.Element())
		if err == nil && !chain {
			nonce, err = idp.token(16)
		}
	} else {
		to, err = bsaml.RedirectURL(loc, bsaml.ParamRequest, lr.Element(), "", idp.opts.Signer)
	}
	if err != nil {
		return fmt.Errorf("saml idp: LogoutRequest to %s: %w", p.Key, err)
	}
	pend, err := json.Marshal(pendingLogout{LogoutID: lo.ID, SessionID: p.SessionID, Key: p.Key, SP: p.AppID,
		Chain: chain, Return: returnTo})
	if err == nil {
		err = idp.st.PutRecord(ctx, store.Record{Namespace: nsPendingLogout, Key: lr.ID, Value: pend,
			ExpiresAt: idp.now().Add(logoutRequestTTL)})
	}
	if err != nil {
		return fmt.Errorf("saml idp: remember front-channel request: %w", err)
	}
	idp.log.InfoContext(ctx, "saml front-channel logout request", "logout_id", lo.ID, "participant", p.Key,
		"binding", binding, "top_level", chain)
	// The logout page may itself be framed by the upstream IdP that
	// started the logout (slobridge.Engine.SetFrameAncestors), and then so is the
	// whole logout, the top-level chain included; frame-ancestors is
	// checked against every ancestor, so that IdP must be allowed here too.
	var up []string
	if lo.Initiator.Kind == store.InitiatorUpstream {
		up = idp.eng.FrameAncestors(ctx, lo.ID)
	}
	bsaml.NoCache(w.Header())
	switch {
	case to != "":
		http.Redirect(w, r, to, http.StatusFound)
	case chain:
		err = bsaml.WritePOSTFormFramed(w, loc, bsaml.ParamRequest, el, "", up)
	default:
		err = writeFramedPOST(w, loc, bsaml.ParamRequest, el, nonce, up)
	}
	if err != nil {
		idp.log.ErrorContext(ctx, "write front-channel logout form", "participant", p.Key, "error", err)
	}
	return nil
}

// framedPOST is the auto-submitting HTTP-POST form shown inside the logout
// page's iframe (so frame-ancestors allows the bridge itself).
var framedPOST = template.Must(template.New("framed").Parse(`<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>Logging out</title></head>
<body>
<form id="saml" method="post" action="{{.URL}}">
<input type="hidden" name="{{.Param}}" value="{{.Value}}">
<noscript><button type="submit">Continue</button></noscript>
</form>
<script nonce="{{.Nonce}}">document.getElementById("saml").submit();</script>
</body></html>`))

// writeFramedPOST writes the HTTP-POST form of a signed message for an
// iframe of the bridge's logout page: only the bridge (and the origins of
// upstream, the IdP that frames the logout page, when it does) may frame
// it, and the form may only post to the SP's endpoint, whose answer may
// redirect back to the bridge (bsaml.FormAction).
func writeFramedPOST(w http.ResponseWriter, endpoint, param string, el *etree.Element, n string, upstream []string) error {
	u, err := url.Parse(endpoint)
	if err != nil || (u.Scheme != "https" && u.Scheme != "http") || u.Host == "" {
		return errors.New("saml idp: SLO endpoint is not an absolute http(s) URL")
	}
	v, err := bsaml.POSTValue(el)
	if err != nil {
		return err
	}
	h := w.Header()
	h.Set("Content-Type", "text/html; charset=utf-8")
	bsaml.NoCache(h)
	h.Set("Content-Security-Policy", "default-src 'none'; script-src 'nonce-"+n+"'; form-action "+bsaml.FormAction(endpoint)+
		"; base-uri 'none'; frame-ancestors 'self'"+ancestors(upstream))
	h.Set("Referrer-Policy", "no-referrer")
	w.WriteHeader(http.StatusOK)
	return framedPOST.Execute(w, struct {
		URL                 template.URL
		Param, Value, Nonce string
	}{template.URL(endpoint), param, v, n})
}

// handleFrontResponse validates the LogoutResponse of an SP we notified
// through the logout page and records the outcome: Success, the SP's
// other status, or why its authenticated answer was invalid. A response
// that cannot be authenticated records nothing.
func (idp *IdP) handleFrontResponse(c *gin.Context, m *bsaml.Message) {
	ctx := c.Request.Context()
	irt := m.Root().SelectAttrValue("InResponseTo", "")
	rec, err := idp.st.GetRecord(ctx, nsPendingLogout, irt, idp.now())
	if err != nil {
		if !errors.Is(err, store.ErrNotFound) {
			idp.renderError(c, err)
			return
		}
		idp.renderError(c, fmt.Errorf("%w: LogoutResponse answers no request of ours", bsaml.ErrMalformed))
		return
	}
	var pend pendingLogout
	if err := json.Unmarshal(rec.Value, &pend); err != nil {
		idp.renderError(c, err)
		return
	}
	sp, err := idp.ServiceProvider(ctx, pend.SP)
	if err != nil {
		idp.renderError(c, err)
		return
	}
	if m.UnverifiedIssuer() != sp.EntityID && !pend.Chain {
		idp.renderError(c, fmt.Errorf("%w: LogoutResponse to %s's request comes from %q", bsaml.ErrSignature, sp.EntityID, m.UnverifiedIssuer()))
		return
	}
	lr, err := idp.validator().LogoutResponse(ctx, m, sp.trust(), idp.endpoint(PathSLO), irt)
	var se *bsaml.Error
	if err != nil && !errors.As(err, &se) {
		// Not authenticated: it must change nothing, or anyone could spoil
		// the outcome of a pending request before the SP answers.
		idp.metrics.frontResponses.WithLabelValues(FrontUnauthenticated).Inc()
		idp.log.WarnContext(ctx, "saml front-channel logout response refused", "participant", pend.Key, "error", err)
		if pend.Chain {
			idp.continueChain(c, pend)
			return
		}
		idp.renderError(c, err)
		return
	}
	res := frontAnswer(lr, err)
	idp.metrics.frontResponses.WithLabelValues(frontLabel(res)).Inc()
	_ = idp.st.DeleteRecord(ctx, nsPendingLogout, irt)
	if rerr := idp.recordFront(ctx, pend.LogoutID, pend.SessionID, pend.Key, res); rerr != nil {
		idp.log.ErrorContext(ctx, "record front-channel logout result", "error", rerr)
	}
	idp.log.InfoContext(ctx, "saml front-channel logout response", "logout_id", pend.LogoutID,
		"participant", pend.Key, "ok", res.Done, "status", res.Status, "error", res.Error)
	if pend.Chain {
		idp.continueChain(c, pend)
		return
	}
	if err != nil {
		idp.renderError(c, err)
		return
	}
	idp.renderPage(c, http.StatusOK, "Logged out of "+sp.Name+".")
}

// continueChain sends the browser back to where a top-level chain step
// returns: the logout page's continue step, or the finishing step of a
// logout, which sends the next top-level LogoutRequest or answers the
// initiator.
func (idp *IdP) continueChain(c *gin.Context, pend pendingLogout) {
	to := idp.localPath(PathFinish + "/" + pend.LogoutID)
	if localPath(pend.Return) {
		to = pend.Return
	}
	c.Header("Cache-Control", "no-store")
	c.Redirect(http.StatusSeeOther, to)
}

// localPath reports whether p is an absolute path on this host (not a
// scheme-relative or backslash URL a browser would take off-site).
func localPath(p string) bool {
	return strings.HasPrefix(p, "/") && !strings.HasPrefix(p, "//") && !strings.HasPrefix(p, "/\\") &&
		!strings.ContainsAny(p, "\r\n\t")
}

// nextChainParticipant returns the next participant of lo to notify by a
// top-level redirect, beginning its browser leg with the top-level step
// deadline: each is tried once per logout. A step tried before whose
// answer never came (its SP kept the browser, and the person came back to
// the bridge: the back button, the logout page) is failed here, with the
// reason, and the chain goes on.
func (idp *IdP) nextChainParticipant(ctx context.Context, lo store.Logout) (store.Participant, bool, error) {
	for _, p := range lo.Participants {
		if p.Kind != ClientKind || p.Data[DataTopLevel] != "true" || p.Key == lo.ExcludeKey ||
			!p.Channels.Has(store.ChannelFront) {
			continue
		}
		first, err := idp.eng.BeginBrowserLeg(ctx, lo.ID, p.SessionID, p.Key, idp.cfg.TopLevelStepTimeout)
		if err != nil {
			return store.Participant{}, false, fmt.Errorf("saml idp: mark chain step: %w", err)
		}
		if first {
			return p, true, nil
		}
		if err := idp.abandonStep(ctx, lo, p); err != nil {
			return store.Participant{}, false, err
		}
	}
	return store.Participant{}, false, nil
}

// abandonStep fails a top-level step that the chain passes without an
// answer (a step that has one keeps it).
func (idp *IdP) abandonStep(ctx context.Context, lo store.Logout, p store.Participant) error {
	leg, err := idp.eng.BrowserLegState(ctx, lo.ID, p.SessionID, p.Key)
	if err != nil || leg.Result != nil {
		return err
	}
	res := slobridge.LegResult{Detail: "it did not send your browser back; you may still be logged in there",
		Error: "the browser came back to the bridge without its answer"}
	idp.log.WarnContext(ctx, "saml top-level logout step abandoned", "logout_id", lo.ID, "participant", p.Key)
	return idp.recordFront(ctx, lo.ID, p.SessionID, p.Key, res)
}

// chainStep sends the next top-level LogoutRequest of a logout from its
// finishing step, if one is left, and reports whether it did.
func (idp *IdP) chainStep(c *gin.Context, logoutID string) (bool, error) {
	ctx := c.Request.Context()
	lo, err := idp.st.GetLogout(ctx, logoutID)
	if err != nil {
		return false, fmt.Errorf("saml idp: read logout: %w", err)
	}
	return idp.NextTopLevel(c.Writer, c.Request, lo, "")
}

// NextTopLevel implements slobridge.FrontChannel: it sends the browser
// the LogoutRequest of the next SAML SP of lo configured for a top-level
// redirect chain (SPConfig.FrontChannelTopLevel); the SP's LogoutResponse
// to PathSLO is validated and recorded, then the browser goes to returnTo
// (a path on the bridge; empty: the finishing step of the logout). A
// participant whose request cannot be built is recorded as failed and
// reported as an error; the next call goes on with the next one.
func (idp *IdP) NextTopLevel(w http.ResponseWriter, r *http.Request, lo store.Logout, returnTo string) (bool, error) {
	ctx := r.Context()
	if returnTo != "" && !localPath(returnTo) {
		return false, fmt.Errorf("saml idp: top-level chain return %q is not a path on the bridge", returnTo)
	}
	p, ok, err := idp.nextChainParticipant(ctx, lo)
	if err != nil || !ok {
		return false, err
	}
	if err := idp.writeFrontRequest(w, r, lo, p, true, returnTo); err != nil {
		res := slobridge.LegResult{Detail: "the bridge could not send it the logout", Error: "the bridge could not send the LogoutRequest"}
		if rerr := idp.recordFront(ctx, lo.ID, p.SessionID, p.Key, res); rerr != nil {
			idp.log.ErrorContext(ctx, "record front-channel logout result", "error", rerr)
		}
		return false, err
	}
	return true, nil
}

// ancestors is the " origin ..." suffix of a frame-ancestors list for
// origins (bare http(s) origins only).
func ancestors(origins []string) string {
	var b strings.Builder
	for _, o := range origins {
		if o != "" && bsaml.Origin(o) == o {
			b.WriteString(" " + o)
		}
	}
	return b.String()
}
