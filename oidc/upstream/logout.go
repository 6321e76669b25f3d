package upstream

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"time"

	gooidc "github.com/coreos/go-oidc/v3/oidc"
	"github.com/gin-gonic/gin"
	jose "github.com/go-jose/go-jose/v4"

	"github.com/slobridge/slobridge"
	"github.com/slobridge/slobridge/store"
)

// backchannelEvent is the event of a logout token (Back-Channel Logout
// 1.0 §2.4).
const backchannelEvent = "http://schemas.openid.net/event/backchannel-logout"

// LegKind is the participant kind of the upstream OP's leg of a logout
// that has no browser: front-channel only, it records that the upstream
// session could not be ended.
const LegKind = "oidc-upstream"

// joseAlgs converts the allow-list for go-jose.
func joseAlgs(algs []string) []jose.SignatureAlgorithm {
	out := make([]jose.SignatureAlgorithm, 0, len(algs))
	for _, a := range algs {
		out = append(out, jose.SignatureAlgorithm(a))
	}
	return out
}

// logoutError is a refused logout token: 400 with a JSON error (§2.8).
type logoutError struct{ err error }

func (e *logoutError) Error() string { return e.err.Error() }

func badToken(format string, args ...any) error {
	return &logoutError{fmt.Errorf(format, args...)}
}

// handleBackchannel is the backchannel_logout_uri (Back-Channel Logout 1.0
// §2.5–§2.8): a valid logout token ends the bridge session of its sid, or
// every session of its sub at this upstream, and the logout reaches every
// app; the answer is 200, or 400 with a JSON error, never cached.
func (rp *RP) handleBackchannel(c *gin.Context) {
	c.Header("Cache-Control", "no-store")
	ctx := c.Request.Context()
	c.Request.Body = http.MaxBytesReader(c.Writer, c.Request.Body, maxLogoutBody)
	if err := c.Request.ParseForm(); err != nil {
		rp.badLogout(c, badToken("unreadable or oversized request body: %v", err))
		return
	}
	raw := c.Request.PostForm.Get("logout_token")
	if raw == "" {
		rp.badLogout(c, badToken("no logout_token"))
		return
	}
	tok, err := rp.verifyLogoutToken(ctx, raw)
	if err != nil {
		rp.badLogout(c, err)
		return
	}
	lo, n, err := rp.endSessions(ctx, tok.Subject, tok.SessionID)
	if err != nil {
		rp.log.ErrorContext(ctx, "back-channel logout from upstream", "err", err)
		c.AbortWithStatusJSON(slobridge.FailureStatus(c.Writer.Header(), err), gin.H{"error": "temporarily_unavailable"})
		return
	}
	rp.log.InfoContext(ctx, "back-channel logout from upstream", "sessions", n, "logout_id", lo.ID)
	c.Status(http.StatusOK)
}

// badLogout answers a refused logout token.
func (rp *RP) badLogout(c *gin.Context, err error) {
	var le *logoutError
	if !errors.As(err, &le) {
		rp.log.ErrorContext(c.Request.Context(), "back-channel logout from upstream", "err", err)
		c.AbortWithStatusJSON(slobridge.FailureStatus(c.Writer.Header(), err), gin.H{"error": "temporarily_unavailable"})
		return
	}
	rp.log.WarnContext(c.Request.Context(), "logout token refused", "reason", err.Error())
	c.AbortWithStatusJSON(http.StatusBadRequest, gin.H{"error": "invalid_request", "error_description": err.Error()})
}

// verifyLogoutToken checks everything Back-Channel Logout 1.0 §2.6 asks
// of the RP: go-oidc's VerifyLogout (signature by the OP's keys with an
// allowed algorithm, iss, aud, exp, the events claim, no nonce, jti, sub
// or sid), the explicit type logout+jwt when typed, the event's value a
// JSON object, iat present and recent, and the jti not seen before.
func (rp *RP) verifyLogoutToken(ctx context.Context, raw string) (*gooidc.LogoutToken, error) {
	d, err := rp.discover(ctx)
	if err != nil {
		return nil, fmt.Errorf("%w: %w", slobridge.ErrUpstreamUnavailable, err)
	}
	jws, err := jose.ParseSigned(raw, joseAlgs(rp.cfg.SigningAlgs))
	if err != nil || len(jws.Signatures) != 1 {
		return nil, badToken("not a JWS signed with an accepted algorithm: %v", err)
	}
	if typ, ok := jws.Signatures[0].Protected.ExtraHeaders[jose.HeaderType]; ok {
		t, _ := typ.(string)
		if !strings.EqualFold(t, "logout+jwt") && !strings.EqualFold(t, "application/logout+jwt") {
			return nil, badToken("typ %q is not logout+jwt", t)
		}
	}
	tok, err := d.verifier.VerifyLogout(rp.ctx(ctx), raw)
	if err != nil {
		return nil, badToken("%v", err)
	}
	var claims struct {
		Events map[string]json.RawMessage `json:"events"`
		IAT    *float64                   `json:"iat"`
	}
	if err := tok.Claims(&claims); err != nil {
		return nil, badToken("claims: %v", err)
	}
	ev := strings.TrimSpace(string(claims.Events[backchannelEvent]))
	if !strings.HasPrefix(ev, "{") {
		return nil, badToken("the events claim lacks the back-channel logout event as a JSON object")
	}
	now := rp.opts.Engine.Now()
	if claims.IAT == nil {
		return nil, badToken("no iat")
	}
	iat := time.Unix(int64(*claims.IAT), 0)
	if iat.After(now.Add(maxIATSkew)) || iat.Before(now.Add(-maxLogoutAge)) {
		return nil, badToken("iat %s is outside [now-%s, now+%s]", iat.UTC().Format(time.RFC3339), maxLogoutAge, maxIATSkew)
	}
	err = rp.opts.Engine.Store().CheckReplay(ctx, nsJTI, rp.cfg.Name+" "+tok.TokenID, tok.Expiry.Add(maxIATSkew), now)
	if errors.Is(err, store.ErrReplay) {
		return nil, badToken("jti already used")
	}
	if err != nil {
		return nil, err
	}
	return tok, nil
}

// endSessions ends the active bridge sessions of upstream subject sub and
// sid: with sub, the sessions of that subject (of that sid when set,
// current or prior login: FindSessionsByNameID); with sid alone, the
// session the sid record names. It reports the logout and how many
// sessions it ended (none: an unknown sid is not an error).
func (rp *RP) endSessions(ctx context.Context, sub, sid string) (store.Logout, int, error) {
	st := rp.opts.Engine.Store()
	now := rp.opts.Engine.Now()
	var found []store.Session
	if sub != "" {
		ss, err := st.FindSessionsByNameID(ctx, rp.cfg.Name, store.NameID{Value: sub}, sid)
		if err != nil {
			return store.Logout{}, 0, err
		}
		found = ss
	} else {
		rec, err := st.GetRecord(ctx, nsSID, sidKey(rp.cfg.Name, sid), now)
		if err == nil {
			var s store.Session
			if s, err = st.GetSession(ctx, string(rec.Value)); err == nil {
				found = append(found, s)
			}
		}
		if err != nil && !errors.Is(err, store.ErrNotFound) {
			return store.Logout{}, 0, err
		}
	}
	var ids []string
	for _, s := range found {
		if s.Upstream == rp.cfg.Name && s.Active(now) && !slices.Contains(ids, s.ID) {
			ids = append(ids, s.ID)
		}
	}
	if len(ids) == 0 {
		return store.Logout{}, 0, nil
	}
	lo, err := rp.opts.Engine.Logout(ctx, slobridge.LogoutRequest{SessionIDs: ids,
		Initiator: store.Initiator{Kind: store.InitiatorUpstream, ID: rp.cfg.Name}})
	return lo, len(ids), err
}

// handleFrontchannel is the frontchannel_logout_uri (Front-Channel Logout
// 1.0 §2): the OP frames it with iss and sid; the page may only be framed
// by the OP's origin and is never cached.
func (rp *RP) handleFrontchannel(c *gin.Context) {
	h := c.Writer.Header()
	h.Set("Cache-Control", "no-cache, no-store")
	h.Set("Content-Security-Policy", "default-src 'none'; frame-ancestors "+origin(rp.cfg.Issuer))
	ctx := c.Request.Context()
	iss, sid := c.Query("iss"), c.Query("sid")
	if iss != rp.cfg.Issuer || sid == "" {
		rp.log.WarnContext(ctx, "front-channel logout refused", "iss", iss, "has_sid", sid != "")
		c.String(http.StatusBadRequest, "front-channel logout needs the issuer's iss and a sid")
		return
	}
	lo, n, err := rp.endSessions(ctx, "", sid)
	if err != nil {
		rp.log.ErrorContext(ctx, "front-channel logout from upstream", "err", err)
		c.String(slobridge.FailureStatus(c.Writer.Header(), err), "the logout could not be recorded")
		return
	}
	rp.log.InfoContext(ctx, "front-channel logout from upstream", "sessions", n, "logout_id", lo.ID)
	c.Data(http.StatusOK, "text/html; charset=utf-8", []byte("<!doctype html><title>logged out</title>"))
}

// origin returns scheme://host of a URL.
func origin(raw string) string {
	u, err := url.Parse(raw)
	if err != nil {
		return "'none'"
	}
	return u.Scheme + "://" + u.Host
}

// logoutState is an RP-initiated logout at the OP in progress.
type logoutState struct {
	ReturnTo string `json:"return_to"`
	LogoutID string `json:"logout_id"`
}

// StartLogout implements slobridge.UpstreamLogout: as the last browser
// step of a logout started at the bridge, it sends the browser to the OP's
// end_session_endpoint (RP-Initiated Logout 1.0, with client_id,
// logout_hint, post_logout_redirect_uri and state) and reports true. When
// the OP offers no end-session endpoint (or NoEndSession is set) it
// records the upstream leg as failed, with why, and reports false.
func (rp *RP) StartLogout(w http.ResponseWriter, r *http.Request, lo store.Logout, returnTo string) (bool, error) {
	if lo.Initiator.Kind == store.InitiatorUpstream {
		return false, nil
	}
	ctx := r.Context()
	eng := rp.opts.Engine
	var s store.Session
	for _, id := range lo.SessionIDs {
		got, err := eng.Store().GetSession(ctx, id)
		if err == nil && got.Upstream == rp.cfg.Name {
			s = got
			break
		}
	}
	if s.ID == "" {
		return false, nil
	}
	d, err := rp.discover(ctx)
	why := ""
	switch {
	case rp.cfg.NoEndSession:
		why = "the bridge is configured not to end sessions at this identity provider"
	case err != nil:
		why = "the identity provider could not be reached: " + err.Error()
	case d.meta.EndSession == "":
		why = "the identity provider offers no end-session endpoint"
	}
	if why != "" {
		if _, err := eng.BeginBrowserLeg(ctx, lo.ID, "", slobridge.UpstreamLeg, time.Minute); err != nil {
			return false, err
		}
		return false, eng.EndBrowserLeg(ctx, lo.ID, "", slobridge.UpstreamLeg, slobridge.LegResult{
			Error: "the upstream session could not be ended: " + why})
	}
	if _, err := eng.BeginBrowserLeg(ctx, lo.ID, "", slobridge.UpstreamLeg, loginTTL); err != nil {
		return false, err
	}
	state := eng.NewID()
	val, err := json.Marshal(logoutState{ReturnTo: returnTo, LogoutID: lo.ID})
	if err != nil {
		return false, err
	}
	if err := eng.Store().PutRecord(ctx, store.Record{Namespace: nsLogout, Key: state, Value: val, ExpiresAt: eng.Now().Add(loginTTL)}); err != nil {
		return false, err
	}
	u, err := url.Parse(d.meta.EndSession)
	if err != nil {
		return false, fmt.Errorf("upstream %s: end_session_endpoint %q: %w", rp.cfg.Name, d.meta.EndSession, err)
	}
	q := u.Query()
	q.Set("client_id", rp.cfg.ClientID)
	q.Set("post_logout_redirect_uri", rp.PostLogoutRedirectURI())
	q.Set("state", state)
	if s.NameID.Value != "" {
		q.Set("logout_hint", s.NameID.Value)
	}
	u.RawQuery = q.Encode()
	rp.log.InfoContext(ctx, "upstream logout sent", "logout_id", lo.ID)
	http.Redirect(w, r, u.String(), http.StatusSeeOther)
	return true, nil
}

// handleLoggedOut is the post_logout_redirect_uri: the OP sends the
// browser back with the state; the upstream leg is done and the browser
// goes on.
func (rp *RP) handleLoggedOut(c *gin.Context) {
	ctx := c.Request.Context()
	eng := rp.opts.Engine
	rec, err := eng.Store().TakeRecord(ctx, nsLogout, c.Query("state"), eng.Now())
	if err != nil {
		rp.page(c, http.StatusBadRequest, "This logout is unknown or was already completed.")
		return
	}
	var st logoutState
	if err := json.Unmarshal(rec.Value, &st); err != nil || !localPath(st.ReturnTo) {
		rp.page(c, http.StatusInternalServerError, "The logout state is damaged.")
		return
	}
	if err := eng.EndBrowserLeg(ctx, st.LogoutID, "", slobridge.UpstreamLeg, slobridge.LegResult{Done: true,
		Detail: "the identity provider ended its session"}); err != nil {
		rp.log.ErrorContext(ctx, "record the upstream logout", "logout_id", st.LogoutID, "err", err)
	}
	c.Redirect(http.StatusSeeOther, st.ReturnTo)
}

// UpstreamLegs implements slobridge.UpstreamLegsFunc: a logout with a
// browser reaches the OP through StartLogout and gets no leg; without a
// browser (admin, system) there is no way to end the OP's session, and a
// front-channel-only leg makes the outcome say so.
func (rp *RP) UpstreamLegs(sessions []store.Session, req slobridge.LogoutRequest) []store.Participant {
	if req.Browser {
		return nil
	}
	var legs []store.Participant
	for _, s := range sessions {
		if s.Upstream != rp.cfg.Name {
			continue
		}
		legs = append(legs, store.Participant{SessionID: s.ID, Key: LegKind + ":" + rp.cfg.Name, Kind: LegKind,
			AppID: rp.cfg.Issuer, Name: rp.cfg.Name, Channels: store.ChannelFront, JoinedAt: s.CreatedAt,
			Data: map[string]string{"why": "a logout without a browser cannot end the session at an OpenID Provider"}})
	}
	return legs
}
