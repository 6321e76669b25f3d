package oidc

import (
	"context"
	"crypto/subtle"
	"encoding/json"
	"errors"
	"fmt"
	"html/template"
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

// nsLogoutConfirm holds end-session requests waiting for the user's
// confirmation, with their CSRF token.
const (
	nsLogoutConfirm = store.VolatilePrefix + "oidc-logout-confirm"
	confirmTTL      = 10 * time.Minute
	logoutReturnTTL = 30 * time.Minute
)

// EndSessionRequest is a parsed RP-Initiated Logout request (RP-Initiated
// Logout 1.0 §2).
type EndSessionRequest struct {
	IDTokenHint           string
	LogoutHint            string
	ClientID              string
	PostLogoutRedirectURI string
	State                 string
	UILocales             string
}

// ParseEndSessionRequest reads the request from query (GET) or form (POST)
// values.
func ParseEndSessionRequest(v url.Values) EndSessionRequest {
	return EndSessionRequest{
		IDTokenHint: v.Get("id_token_hint"), LogoutHint: v.Get("logout_hint"),
		ClientID: v.Get("client_id"), PostLogoutRedirectURI: v.Get("post_logout_redirect_uri"),
		State: v.Get("state"), UILocales: v.Get("ui_locales"),
	}
}

// EndSession is a validated end-session request.
type EndSession struct {
	// ClientID is the identified RP, empty when none.
	ClientID string `json:"client_id,omitempty"`
	// HintSID is the sid of a valid id_token_hint, empty without one.
	HintSID string `json:"-"`
	// Hinted is true when a valid id_token_hint was presented.
	Hinted bool `json:"-"`
	// RedirectURI is the post_logout_redirect_uri, exactly as registered,
	// empty when none was asked for.
	RedirectURI string `json:"redirect_uri,omitempty"`
	State       string `json:"state,omitempty"`
	UILocales   string `json:"ui_locales,omitempty"`
	// SID and CSRF bind a pending confirmation to the browser's session.
	SID  string `json:"sid,omitempty"`
	CSRF string `json:"csrf,omitempty"`
	// Cookieless marks a confirmation shown to a browser without the
	// session's cookie (the session came from id_token_hint): the confirm
	// POST must carry the confirmation cookie set with the page instead.
	Cookieless bool `json:"cookieless,omitempty"`
}

// confirmCookie binds a confirmation page shown to a browser that holds no
// bridge session to that browser (SameSite=Strict: only our own form
// sends it back).
const confirmCookie = "slobridge_logout_confirm"

// hintVerifier verifies an id_token_hint with go-oidc against the
// provider's own keys. Expiry is not checked: an expired ID token is still
// a valid hint (RP-Initiated Logout §2); the audience is checked by the
// caller against client_id.
func (p *Provider) hintVerifier() *gooidc.IDTokenVerifier {
	return gooidc.NewVerifier(p.opts.Issuer, p.keys, &gooidc.Config{
		SkipClientIDCheck: true, SkipExpiryCheck: true, SupportedSigningAlgs: signingAlgs, Now: p.now,
	})
}

// ValidateEndSessionRequest authenticates the hint, identifies the RP and
// matches post_logout_redirect_uri exactly against its registration. Its
// errors are shown on a page: nothing is redirected.
func (p *Provider) ValidateEndSessionRequest(ctx context.Context, r EndSessionRequest) (EndSession, error) {
	bad := func(desc string) error { return oauthErr(ErrInvalidRequest, http.StatusBadRequest, desc) }
	es := EndSession{ClientID: r.ClientID, State: r.State, UILocales: r.UILocales}
	if r.IDTokenHint != "" {
		aud, sid, err := p.verifyHint(ctx, r.IDTokenHint)
		if err != nil {
			return EndSession{}, &Error{Code: ErrInvalidRequest, Status: http.StatusBadRequest, Description: "id_token_hint is not a valid ID token from this provider", Err: err}
		}
		switch {
		case r.ClientID != "" && !slices.Contains(aud, r.ClientID):
			return EndSession{}, bad("client_id does not match the audience of id_token_hint")
		case r.ClientID == "" && len(aud) != 1:
			return EndSession{}, bad("id_token_hint has several audiences; send client_id")
		case r.ClientID == "":
			es.ClientID = aud[0]
		}
		es.Hinted, es.HintSID = true, sid
	}
	if es.ClientID != "" {
		cl, err := p.client(ctx, es.ClientID)
		if errors.Is(err, errUnknownClient) {
			return EndSession{}, bad("unknown client")
		}
		if err != nil {
			return EndSession{}, serverErr(err)
		}
		if r.PostLogoutRedirectURI != "" && !slices.Contains(cl.Metadata.PostLogoutRedirectURIs, r.PostLogoutRedirectURI) {
			return EndSession{}, bad("post_logout_redirect_uri is not registered for this client")
		}
	} else if r.PostLogoutRedirectURI != "" {
		return EndSession{}, bad("post_logout_redirect_uri needs id_token_hint or client_id")
	}
	es.RedirectURI = r.PostLogoutRedirectURI
	return es, nil
}

// verifyHint verifies an ID token issued by this provider and returns its
// audience and sid. Only tokens typed "JWT" qualify, so access and logout
// tokens (at+jwt, logout+jwt) are not accepted as hints.
func (p *Provider) verifyHint(ctx context.Context, raw string) ([]string, string, error) {
	jws, err := jose.ParseSigned(raw, joseAlgs)
	if err != nil || len(jws.Signatures) != 1 {
		return nil, "", fmt.Errorf("oidc: parse id_token_hint: %w", err)
	}
	if typ, _ := jws.Signatures[0].Header.ExtraHeaders[jose.HeaderType].(string); typ != typJWT {
		return nil, "", errors.New("oidc: id_token_hint is not an ID token")
	}
	tok, err := p.hintVerifier().Verify(ctx, raw)
	if err != nil {
		return nil, "", fmt.Errorf("oidc: verify id_token_hint: %w", err)
	}
	var c struct {
		SID string `json:"sid"`
	}
	if err := tok.Claims(&c); err != nil {
		return nil, "", fmt.Errorf("oidc: id_token_hint claims: %w", err)
	}
	return tok.Audience, c.SID, nil
}

func (p *Provider) handleEndSession(c *gin.Context) {
	c.Request.Body = http.MaxBytesReader(c.Writer, c.Request.Body, maxFormBytes)
	if err := c.Request.ParseForm(); err != nil {
		p.renderErrorPage(c, oauthErr(ErrInvalidRequest, http.StatusBadRequest, "malformed request"))
		return
	}
	ctx := c.Request.Context()
	es, err := p.ValidateEndSessionRequest(ctx, ParseEndSessionRequest(c.Request.Form))
	if err != nil {
		p.renderErrorPage(c, err)
		return
	}
	s, err := p.eng.ActiveSession(ctx, p.opts.Cookies, c.Request)
	hasCookie := err == nil
	if err != nil && !errors.Is(err, slobridge.ErrNoSession) {
		p.renderErrorPage(c, serverErr(err))
		return
	}
	switch {
	case hasCookie && es.Hinted && (es.HintSID == "" || es.HintSID == s.ID):
		p.logout(c, es, s.ID)
	case hasCookie:
		// No valid hint, or a hint for another session: ask the person.
		p.renderConfirm(c, es, s.ID)
	case es.Hinted && es.HintSID != "":
		live, err := p.sessionLive(ctx, es.HintSID)
		if err != nil {
			p.renderErrorPage(c, serverErr(err))
			return
		}
		if !live {
			p.finish(c, es)
			return
		}
		// The browser does not hold the hinted session (lost cookie, or
		// someone else's hint): RP-Initiated Logout §2 says ask; a GET
		// never ends a session the browser does not hold.
		es.Cookieless = true
		p.renderConfirm(c, es, es.HintSID)
	default:
		p.finish(c, es)
	}
}

// sessionLive reports whether session sid exists and is active.
func (p *Provider) sessionLive(ctx context.Context, sid string) (bool, error) {
	s, err := p.st.GetSession(ctx, sid)
	if errors.Is(err, store.ErrNotFound) {
		return false, nil
	}
	if err != nil {
		return false, err
	}
	return s.Active(p.now()), nil
}

// logout ends session sid through the engine, clears the cookie and hands
// the browser to the logout page, which notifies front-channel participants
// and then continues to the stored destination.
func (p *Provider) logout(c *gin.Context, es EndSession, sid string) {
	ctx := c.Request.Context()
	ini := store.Initiator{Kind: store.InitiatorUser}
	if es.ClientID != "" {
		ini = store.Initiator{Kind: store.InitiatorRP, ID: es.ClientID}
	}
	lo, err := p.eng.Logout(ctx, slobridge.LogoutRequest{SessionIDs: []string{sid}, Initiator: ini, Browser: true})
	if err != nil && !errors.Is(err, store.ErrNotFound) {
		p.renderErrorPage(c, serverErr(err))
		return
	}
	p.opts.Cookies.Clear(c.Writer)
	if err != nil || len(lo.SessionIDs) == 0 {
		p.finish(c, es)
		return
	}
	ret := slobridge.LogoutReturn{RedirectURI: p.destination(es), UILocales: es.UILocales}
	if err := p.eng.SetLogoutReturn(ctx, lo.ID, ret, logoutReturnTTL); err != nil {
		p.renderErrorPage(c, serverErr(err))
		return
	}
	c.Header("Cache-Control", "no-store")
	c.Redirect(http.StatusSeeOther, p.issuer.Path+slobridge.LogoutPagePath(lo.ID))
}

// destination is the validated post_logout_redirect_uri with state.
func (p *Provider) destination(es EndSession) string {
	if es.RedirectURI == "" {
		return ""
	}
	if es.State == "" {
		return es.RedirectURI
	}
	return addQuery(es.RedirectURI, url.Values{"state": {es.State}})
}

// finish ends a request that had nothing to log out.
func (p *Provider) finish(c *gin.Context, es EndSession) {
	c.Header("Cache-Control", "no-store")
	if d := p.destination(es); d != "" {
		c.Redirect(http.StatusSeeOther, d)
		return
	}
	slobridge.RenderLoggedOut(c.Writer, es.UILocales)
}

var confirmPage = template.Must(template.New("confirm").Parse(`<!doctype html>
<html lang="{{if .Lang}}{{.Lang}}{{else}}en{{end}}"><head><meta charset="utf-8"><title>Log out</title></head>
<body><h1>Log out?</h1>
<p>Do you want to log out of every application you signed in to with this account?</p>
<form method="post" action="{{.Action}}">
<input type="hidden" name="id" value="{{.ID}}">
<input type="hidden" name="csrf" value="{{.CSRF}}">
<button type="submit">Log out</button>
</form></body></html>`))

// renderConfirm parks the request with a CSRF token bound to the browser's
// session and asks the person to confirm.
func (p *Provider) renderConfirm(c *gin.Context, es EndSession, sid string) {
	ctx := c.Request.Context()
	id, err := p.newToken(16)
	if err != nil {
		p.renderErrorPage(c, serverErr(err))
		return
	}
	if es.CSRF, err = p.newToken(32); err != nil {
		p.renderErrorPage(c, serverErr(err))
		return
	}
	es.SID = sid
	if err := p.putJSON(ctx, nsLogoutConfirm, id, es, p.now().Add(confirmTTL)); err != nil {
		p.renderErrorPage(c, serverErr(err))
		return
	}
	if es.Cookieless {
		http.SetCookie(c.Writer, &http.Cookie{Name: confirmCookie, Value: id, Path: p.issuer.Path + PathConfirm,
			MaxAge: int(confirmTTL / time.Second), HttpOnly: true, Secure: p.opts.Cookies.Secure, SameSite: http.SameSiteStrictMode})
	}
	c.Header("Cache-Control", "no-store")
	c.Header("Content-Security-Policy", "default-src 'none'; form-action 'self'; frame-ancestors 'none'")
	c.Header("X-Frame-Options", "DENY")
	c.Header("Content-Type", "text/html; charset=utf-8")
	c.Status(http.StatusOK)
	data := struct{ Lang, Action, ID, CSRF string }{firstLocale(es.UILocales), p.issuer.Path + PathConfirm, id, es.CSRF}
	if err := confirmPage.Execute(c.Writer, data); err != nil {
		p.log.ErrorContext(ctx, "render logout confirmation", "error", err)
	}
}

// ConfirmLogout checks a confirmation POST: the parked request must exist,
// its CSRF token match in constant time, and the browser still carry the
// session it was shown for (or, for a confirmation shown without one, the
// confirmation cookie set with the page). Nothing is consumed when a check
// fails.
func (p *Provider) ConfirmLogout(ctx context.Context, id, csrf, cookieSID, confirmCookieValue string) (EndSession, error) {
	forbidden := oauthErr(ErrAccessDenied, http.StatusForbidden, "the logout confirmation is invalid or expired; start again")
	if id == "" || csrf == "" {
		return EndSession{}, forbidden
	}
	now := p.now()
	rec, err := p.st.GetRecord(ctx, nsLogoutConfirm, id, now)
	if errors.Is(err, store.ErrNotFound) {
		return EndSession{}, forbidden
	}
	if err != nil {
		return EndSession{}, serverErr(err)
	}
	var es EndSession
	if err := json.Unmarshal(rec.Value, &es); err != nil {
		return EndSession{}, serverErr(fmt.Errorf("oidc: decode logout confirmation: %w", err))
	}
	if subtle.ConstantTimeCompare([]byte(csrf), []byte(es.CSRF)) != 1 {
		return EndSession{}, forbidden
	}
	switch {
	case es.Cookieless && subtle.ConstantTimeCompare([]byte(confirmCookieValue), []byte(id)) != 1:
		return EndSession{}, forbidden
	case !es.Cookieless && cookieSID != es.SID:
		return EndSession{}, forbidden
	}
	if _, err := p.st.TakeRecord(ctx, nsLogoutConfirm, id, now); err != nil {
		return EndSession{}, forbidden
	}
	return es, nil
}

func (p *Provider) handleConfirm(c *gin.Context) {
	c.Request.Body = http.MaxBytesReader(c.Writer, c.Request.Body, maxFormBytes)
	if err := c.Request.ParseForm(); err != nil {
		p.renderErrorPage(c, oauthErr(ErrInvalidRequest, http.StatusBadRequest, "malformed request"))
		return
	}
	sid, _ := p.opts.Cookies.SessionID(c.Request)
	var bound string
	if ck, err := c.Request.Cookie(confirmCookie); err == nil {
		bound = ck.Value
	}
	es, err := p.ConfirmLogout(c.Request.Context(), c.PostForm("id"), c.PostForm("csrf"), sid, bound)
	if err != nil {
		p.renderErrorPage(c, err)
		return
	}
	p.logout(c, es, es.SID)
}

// firstLocale returns the first ui_locales tag when it looks like a BCP 47
// tag, else "".
func firstLocale(s string) string {
	f := strings.Fields(s)
	if len(f) == 0 || len(f[0]) > 35 {
		return ""
	}
	for _, r := range f[0] {
		if !(r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || r == '-') {
			return ""
		}
	}
	return f[0]
}
