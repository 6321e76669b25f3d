package slobridge

import (
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"errors"
	"fmt"
	"net/http"
	"slices"
	"strings"
	"time"

	"github.com/slobridge/slobridge/store"
)

// SessionCookieName is the name of the bridge session cookie.
const SessionCookieName = "slobridge_session"

// SessionCookies writes and reads the bridge session cookie. The cookie
// value is the session ID followed by an HMAC-SHA256 of it under a bridge
// secret: the session ID is also the OIDC `sid` that relying parties see, so
// knowing a sid must not be enough to forge the cookie.
type SessionCookies struct {
	// Secret keys the HMAC; at least 32 bytes.
	Secret []byte
	// Secure sets the Secure attribute. It should be true except when the
	// bridge is served over plain HTTP on loopback.
	Secure bool
	// Path defaults to "/".
	Path string
}

// ErrNoSession reports a request without a valid bridge session cookie.
var ErrNoSession = errors.New("slobridge: no valid bridge session cookie")

func (c SessionCookies) mac(sid string) string {
	m := hmac.New(sha256.New, c.Secret)
	m.Write([]byte("slobridge-session-cookie\x00" + sid))
	return base64.RawURLEncoding.EncodeToString(m.Sum(nil))
}

func (c SessionCookies) path() string {
	if c.Path == "" {
		return "/"
	}
	return c.Path
}

// Set writes the cookie for session sid, expiring with the session.
// HttpOnly and SameSite=Lax: it must survive the top-level redirects of
// login flows but not ride on cross-site subrequests.
func (c SessionCookies) Set(w http.ResponseWriter, sid string, expires time.Time) {
	http.SetCookie(w, &http.Cookie{
		Name: SessionCookieName, Value: sid + "." + c.mac(sid), Path: c.path(),
		Expires: expires, HttpOnly: true, Secure: c.Secure, SameSite: http.SameSiteLaxMode,
	})
}

// Clear removes the cookie.
func (c SessionCookies) Clear(w http.ResponseWriter) {
	http.SetCookie(w, &http.Cookie{
		Name: SessionCookieName, Value: "", Path: c.path(), MaxAge: -1,
		HttpOnly: true, Secure: c.Secure, SameSite: http.SameSiteLaxMode,
	})
}

// SessionID returns the session ID carried by a valid cookie on r.
func (c SessionCookies) SessionID(r *http.Request) (string, error) {
	ck, err := r.Cookie(SessionCookieName)
	if err != nil {
		return "", ErrNoSession
	}
	sid, mac, ok := strings.Cut(ck.Value, ".")
	if !ok || sid == "" || !hmac.Equal([]byte(mac), []byte(c.mac(sid))) {
		return "", ErrNoSession
	}
	return sid, nil
}

// ActiveSession returns the active bridge session of the browser, or
// ErrNoSession when the cookie is missing, forged, or names a session that
// has ended or expired.
func (e *Engine) ActiveSession(ctx context.Context, c SessionCookies, r *http.Request) (store.Session, error) {
	sid, err := c.SessionID(r)
	if err != nil {
		return store.Session{}, err
	}
	s, err := e.st.GetSession(ctx, sid)
	if errors.Is(err, store.ErrNotFound) {
		return store.Session{}, ErrNoSession
	}
	if err != nil {
		return store.Session{}, err
	}
	if !s.Active(e.now()) {
		return store.Session{}, ErrNoSession
	}
	return s, nil
}

// Authenticator logs a browser in at an upstream IdP. The OpenID Provider
// and the SAML IdP call StartLogin when a request needs a user and there is
// no bridge session; on success the authenticator creates the bridge
// session through the engine, sets the session cookie and redirects the
// browser to returnTo (a path on the bridge, validated by the caller).
type Authenticator interface {
	StartLogin(w http.ResponseWriter, r *http.Request, returnTo string) error
}

// UpstreamLogout ends the user's session at the upstream IdP after the
// downstream participants were notified. StartLogout either sends the
// browser to the upstream (which comes back to the bridge, and the bridge
// then redirects to returnTo) and reports true, or reports false when there
// is nothing to do (no upstream session, or the upstream started the
// logout) so the caller continues to returnTo itself.
type UpstreamLogout interface {
	StartLogout(w http.ResponseWriter, r *http.Request, lo store.Logout, returnTo string) (started bool, err error)
}

// ReloginInitiatorID is the Initiator.ID of the logout that ends a
// browser's bridge session when somebody else logs in in that browser.
const ReloginInitiatorID = "login-as-another-user"

// EstablishSession is EstablishLogin for callers that need only the
// session.
func (e *Engine) EstablishSession(ctx context.Context, currentSID string, s store.Session) (store.Session, error) {
	est, err := e.EstablishLogin(ctx, currentSID, s)
	return est.Session, err
}

// Established is what EstablishLogin did.
type Established struct {
	// Session is the browser's bridge session from now on.
	Session store.Session
	// Kept reports that the browser's session was kept and
	// re-authenticated (same user).
	Kept bool
	// Replaced is the logout that ended the browser's session of another
	// user; its ID is empty when there was none.
	Replaced store.Logout
}

// EstablishLogin records a successful upstream login s (not yet stored)
// in a browser, as the Authenticators do after the upstream answered;
// currentSID is the bridge session ID the browser carries (from a cookie
// verified with SessionCookies.SessionID, possibly read when the login
// started: the cross-site POST that brings a SAML Response carries no
// SameSite=Lax cookie), "" for none. The caller then sets the session
// cookie for the returned session, and sends the browser through
// LogoutDetour.
//
// When currentSID names no active session, s is created (CreateSession).
// When it names an active session of the same user — a re-login for OIDC
// prompt=login or max_age, SAML ForceAuthn, or simply a new upstream
// login — that session is kept, with its ID (the OIDC sid and SAML
// SessionIndex the apps hold) and participants, and takes the new
// authentication facts (store.Store.ReauthenticateSession): a later logout
// of it reaches every app that joined before the re-login, and an upstream
// LogoutRequest naming the new login (or an earlier one) ends it. When it
// names an active session of another user, that session is logged out
// first (Logout, initiator system/ReloginInitiatorID: its back-channel
// participants are notified at once, its front-channel ones by the
// LogoutDetour) and s is created.
func (e *Engine) EstablishLogin(ctx context.Context, currentSID string, s store.Session) (Established, error) {
	if currentSID == "" {
		return e.created(ctx, s, store.Logout{})
	}
	cur, err := e.st.GetSession(ctx, currentSID)
	switch {
	case errors.Is(err, store.ErrNotFound):
		return e.created(ctx, s, store.Logout{})
	case err != nil:
		return Established{}, fmt.Errorf("slobridge: establish session: read the browser's session: %w", err)
	}
	now := e.now()
	if !cur.Active(now) {
		return e.created(ctx, s, store.Logout{})
	}
	if cur.UserID != s.UserID {
		lo, err := e.Logout(ctx, LogoutRequest{
			SessionIDs: []string{cur.ID},
			Initiator:  store.Initiator{Kind: store.InitiatorSystem, ID: ReloginInitiatorID},
		})
		if err != nil {
			return Established{}, fmt.Errorf("slobridge: establish session: end the previous user's session: %w", err)
		}
		e.log.InfoContext(ctx, "login as another user ended the browser's session", "old_sid", cur.ID, "logout_id", lo.ID)
		return e.created(ctx, s, lo)
	}
	upd := store.SessionAuth{
		UserID: s.UserID, Upstream: s.Upstream, NameID: s.NameID, SessionIndex: s.SessionIndex,
		Attributes: s.Attributes, AuthTime: s.AuthTime, ExpiresAt: s.ExpiresAt,
	}
	if upd.AuthTime.IsZero() {
		upd.AuthTime = now
	}
	got, err := e.st.ReauthenticateSession(ctx, cur.ID, upd, now)
	switch {
	case errors.Is(err, store.ErrSessionEnded), errors.Is(err, store.ErrNotFound):
		// Logged out (or swept) since it was read: a fresh session.
		return e.created(ctx, s, store.Logout{})
	case err != nil:
		return Established{}, fmt.Errorf("slobridge: establish session: re-authenticate session: %w", err)
	}
	e.log.InfoContext(ctx, "re-authentication kept the bridge session", "sid", got.ID, "upstream", got.Upstream,
		"prior_logins", len(got.PriorLogins))
	return Established{Session: got, Kept: true}, nil
}

// created stores s as a new session.
func (e *Engine) created(ctx context.Context, s store.Session, replaced store.Logout) (Established, error) {
	got, err := e.CreateSession(ctx, s)
	if err != nil {
		return Established{Replaced: replaced}, err
	}
	return Established{Session: got, Replaced: replaced}, nil
}

// loginDetourTTL bounds how long the logout page of a replaced session
// keeps the login's destination.
const loginDetourTTL = time.Hour

// LogoutDetour returns where the browser goes after a login that
// EstablishLogin recorded: returnTo, unless the login ended another
// user's session with participants notified through the browser (OIDC
// front-channel iframes, SAML SPs reached by redirect). Then it is that
// logout's page (LogoutPagePath, to be prefixed with the bridge's base
// path), which notifies them and continues to returnTo; the page does not
// send the browser to the upstream IdP, where the new user has just
// logged in.
func (e *Engine) LogoutDetour(ctx context.Context, est Established, returnTo string) (path string, detour bool, err error) {
	lo := est.Replaced
	if lo.ID == "" || !slices.ContainsFunc(lo.Participants, func(p store.Participant) bool {
		return p.Channels.Has(store.ChannelFront) && p.Key != lo.ExcludeKey
	}) {
		return returnTo, false, nil
	}
	if err := e.SetLogoutReturn(ctx, lo.ID, LogoutReturn{RedirectURI: returnTo}, loginDetourTTL); err != nil {
		return "", false, err
	}
	return LogoutPagePath(lo.ID), true, nil
}

// isRelogin reports whether lo ended a browser's session because another
// user logged in there.
func isRelogin(lo store.Logout) bool {
	return lo.Initiator == store.Initiator{Kind: store.InitiatorSystem, ID: ReloginInitiatorID}
}

// BrowserSessionID returns the bridge session ID carried by a valid
// cookie on r, or "" when there is none: what EstablishSession takes.
func (c SessionCookies) BrowserSessionID(r *http.Request) string {
	sid, err := c.SessionID(r)
	if err != nil {
		return ""
	}
	return sid
}
