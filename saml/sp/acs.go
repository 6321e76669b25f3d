package sp

import (
	"context"
	"crypto/hmac"
	"encoding/base64"
	"errors"
	"fmt"
	"net/http"
	"slices"
	"strings"
	"time"

	crewjam "github.com/crewjam/saml"
	"github.com/gin-gonic/gin"

	"github.com/slobridge/slobridge"
	"github.com/slobridge/slobridge/saml"
	"github.com/slobridge/slobridge/store"
)

// handleACS is the assertion consumer service (HTTP-POST, Profiles
// §4.1.4.3): it validates the Response with crewjam against the
// AuthnRequest remembered under RelayState (InResponseTo, Destination,
// Issuer, signature, audience, times), refuses a replayed assertion ID,
// establishes the bridge session (Engine.EstablishSession: a new one, or
// the browser's own session of the same user re-authenticated) and sets
// its cookie.
func (sp *SP) handleACS(c *gin.Context) {
	ctx := c.Request.Context()
	c.Request.Body = http.MaxBytesReader(c.Writer, c.Request.Body, maxBody(sp.opts.Limits))
	if err := c.Request.ParseForm(); err != nil {
		sp.badRequest(c, "unreadable login response", err)
		return
	}
	relay := c.Request.PostForm.Get(saml.ParamRelayState)
	// The browser binding is checked before the state is consumed, so
	// that someone who learnt the RelayState cannot cancel the login.
	ck, err := c.Request.Cookie(loginCookiePrefix + relay)
	if relay == "" || err != nil || !hmac.Equal([]byte(ck.Value), []byte(sp.loginMAC(relay))) {
		sp.badRequest(c, "login started in another browser", errors.New("login cookie missing or wrong"))
		return
	}
	var st loginState
	if err := sp.takeState(ctx, nsLogin, relay, &st); err != nil {
		if _, ok := slobridge.Unavailable(err); ok {
			sp.failPage(c, err, "")
			return
		}
		sp.badRequest(c, "unknown or expired login", err)
		return
	}
	http.SetCookie(c.Writer, &http.Cookie{Name: loginCookiePrefix + relay, Path: "/", MaxAge: -1, HttpOnly: true, Secure: sp.opts.Cookies.Secure})
	u := sp.reg.Load().byName[st.Upstream]
	if u == nil {
		sp.badRequest(c, "identity provider no longer configured", fmt.Errorf("upstream %q", st.Upstream))
		return
	}
	s, err := sp.consumeResponse(ctx, u, st, c.Request.PostForm.Get(saml.ParamResponse))
	if errors.Is(err, errLoggedOutEarly) {
		sp.log.InfoContext(ctx, "login logged out by the upstream before its Response arrived", "upstream", u.cfg.Name)
		sp.page(c, http.StatusForbidden, "The identity provider ended this session before the login completed. Sign in again.")
		return
	}
	if err != nil {
		if _, ok := slobridge.Unavailable(err); ok {
			sp.failPage(c, err, "")
			return
		}
		sp.badRequest(c, "login response rejected", err)
		return
	}
	// A browser that holds a bridge session of the same user keeps it
	// (same sid and SessionIndex for the apps) with the new login's facts;
	// one of another user is logged out first.
	// The session cookie, when this POST carries it, is the browser's
	// current session; a cross-site POST carries none (SameSite=Lax), and
	// the session held when the login started stands in.
	sid := sp.opts.Cookies.BrowserSessionID(c.Request)
	if sid == "" {
		sid = st.SessionID
	}
	est, err := sp.opts.Engine.EstablishLogin(ctx, sid, s)
	if err != nil {
		sp.log.ErrorContext(ctx, "create bridge session", "upstream", u.cfg.Name, "error", err)
		sp.failPage(c, err, "The session could not be created.")
		return
	}
	s = est.Session
	sp.log.InfoContext(ctx, "upstream login", "sid", s.ID, "upstream", u.cfg.Name, "kept", est.Kept)
	sp.opts.Cookies.Set(c.Writer, s.ID, s.ExpiresAt)
	c.Header("Cache-Control", "no-store")
	// The previous user's apps notified through the browser are logged
	// out on the way (the logout page, then st.ReturnTo).
	to, detour, err := sp.opts.Engine.LogoutDetour(ctx, est, st.ReturnTo)
	if err != nil {
		sp.log.ErrorContext(ctx, "logout page of the replaced session", "logout_id", est.Replaced.ID, "error", err)
		to = st.ReturnTo
	} else if detour {
		to = sp.opts.LogoutPageURL(est.Replaced.ID)
	}
	c.Redirect(http.StatusSeeOther, to)
}

func maxBody(l saml.Limits) int64 {
	if l.MaxBody > 0 {
		return l.MaxBody
	}
	return saml.DefaultMaxBody
}

// consumeResponse validates a base64 SAML Response and returns the session
// to create (not yet stored).
func (sp *SP) consumeResponse(ctx context.Context, u *upstream, st loginState, b64 string) (store.Session, error) {
	xmlData, err := base64.StdEncoding.DecodeString(strings.Join(strings.Fields(b64), ""))
	if err != nil {
		return store.Session{}, fmt.Errorf("%w: base64: %v", saml.ErrMalformed, err)
	}
	now := sp.opts.Now()
	r, err := saml.ReadSSOResponse(xmlData, saml.SSOExpect{
		Trust: u.trust, Audience: sp.opts.EntityID, ACS: sp.url(PathACS), RequestID: st.RequestID,
		Now: now, Skew: sp.opts.ClockSkew, DecryptionKey: sp.opts.Signer.Key,
	})
	if err != nil {
		return store.Session{}, fmt.Errorf("response validation: %w", err)
	}
	a := r.Assertion
	exp := now.Add(sp.opts.SessionMaxAge)
	if a.Conditions != nil && a.Conditions.NotOnOrAfter.After(now) {
		exp = maxTime(exp, a.Conditions.NotOnOrAfter)
	}
	if err := sp.opts.Engine.Store().CheckReplay(ctx, nsAssertion, u.idp.EntityID+" "+a.ID, exp.Add(sp.opts.ClockSkew), now); err != nil {
		return store.Session{}, fmt.Errorf("assertion %s: %w", a.ID, err)
	}
	if err := sp.checkEarlyLogout(ctx, u.cfg.Name, a); err != nil {
		return store.Session{}, err
	}
	return sp.sessionFrom(u, a, now)
}

func maxTime(a, b time.Time) time.Time {
	if a.After(b) {
		return a
	}
	return b
}

// sessionFrom maps a validated assertion to a bridge session: the NameID
// exactly as issued, the SessionIndex, the mapped attributes, and an expiry
// capped by SessionNotOnOrAfter.
func (sp *SP) sessionFrom(u *upstream, a *crewjam.Assertion, now time.Time) (store.Session, error) {
	if a.Subject == nil || a.Subject.NameID == nil || a.Subject.NameID.Value == "" {
		return store.Session{}, errors.New("assertion has no NameID")
	}
	if len(a.AuthnStatements) == 0 {
		return store.Session{}, errors.New("assertion has no AuthnStatement")
	}
	n := a.Subject.NameID
	as := a.AuthnStatements[0]
	s := store.Session{
		Upstream: u.cfg.Name,
		NameID: store.NameID{Value: n.Value, Format: n.Format, NameQualifier: n.NameQualifier,
			SPNameQualifier: n.SPNameQualifier},
		SessionIndex: as.SessionIndex,
		AuthTime:     as.AuthnInstant,
		ExpiresAt:    now.Add(sp.opts.SessionMaxAge),
		Attributes:   map[string][]string{},
	}
	if s.AuthTime.IsZero() || s.AuthTime.After(now.Add(sp.opts.ClockSkew)) {
		s.AuthTime = now
	}
	if as.SessionNotOnOrAfter != nil && as.SessionNotOnOrAfter.Before(s.ExpiresAt) {
		if !as.SessionNotOnOrAfter.After(now) {
			return store.Session{}, errors.New("assertion SessionNotOnOrAfter has passed")
		}
		s.ExpiresAt = *as.SessionNotOnOrAfter
	}
	attrs := attributes(a)
	for claim, name := range u.cfg.Attributes {
		if v := attrs[name]; len(v) > 0 {
			s.Attributes[claim] = v
		} else if _, seen := sp.missing.LoadOrStore(u.cfg.Name+"\x00"+claim, true); !seen {
			// Said once per upstream and claim: the login goes on without
			// it, but apps (and admin lookups by email) will miss it.
			sp.log.Warn("SAML upstream assertion lacks a mapped attribute; check saml.sp.upstreams[].attributes",
				"upstream", u.cfg.Name, "claim", claim, "attribute", name)
		}
	}
	uid := n.Value
	if u.cfg.UserIDAttribute != "" {
		v := attrs[u.cfg.UserIDAttribute]
		if len(v) != 1 || v[0] == "" {
			return store.Session{}, fmt.Errorf("assertion has %d values of user ID attribute %q, want 1", len(v), u.cfg.UserIDAttribute)
		}
		uid = v[0]
	}
	s.UserID = u.cfg.UserIDPrefix + uid
	return s, nil
}

// attributes collects attribute values by Name and by FriendlyName.
func attributes(a *crewjam.Assertion) map[string][]string {
	out := map[string][]string{}
	for _, st := range a.AttributeStatements {
		for _, at := range st.Attributes {
			var vs []string
			for _, v := range at.Values {
				if t := strings.TrimSpace(v.Value); t != "" {
					vs = append(vs, t)
				}
			}
			keys := []string{at.Name}
			if at.FriendlyName != at.Name {
				keys = append(keys, at.FriendlyName)
			}
			for _, k := range keys {
				if k == "" {
					continue
				}
				for _, v := range vs {
					if !slices.Contains(out[k], v) {
						out[k] = append(out[k], v)
					}
				}
			}
		}
	}
	return out
}
