package slobridge

import (
	"bytes"
	"cmp"
	"context"
	"crypto/rand"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"html/template"
	"io"
	"log/slog"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"time"

	"github.com/gin-gonic/gin"

	"github.com/slobridge/slobridge/store"
)

// LogoutReturnNamespace is the store.Record namespace of logout
// destinations, keyed by logout ID. The destination is kept server-side so
// that the continue step never takes a redirect target from the query.
const LogoutReturnNamespace = "logout-return"

// Default waits of the logout page.
const (
	// defaultFrontChannelWait is how long the page gives the front-channel
	// iframes before it stops waiting for them.
	defaultFrontChannelWait = 5 * time.Second
	// defaultBackChannelWait is how long the page waits for every
	// back-channel delivery to reach a final state before it stops waiting
	// and lets the person continue (deliveries go on in the background).
	defaultBackChannelWait = 10 * time.Second
	// defaultStreamMax bounds one server-sent-events stream.
	defaultStreamMax = 2 * time.Minute
	// maxLogoutIDLen rejects absurd path parameters before any store
	// lookup; logout IDs are 22 characters.
	maxLogoutIDLen = 128
)

// LogoutReturn is where the browser goes when a logout is complete.
type LogoutReturn struct {
	// RedirectURI is the validated destination (an OIDC
	// post_logout_redirect_uri with state), empty to show "you are logged
	// out".
	RedirectURI string `json:"redirect_uri,omitempty"`
	// UILocales is the RP's ui_locales, for the page language.
	UILocales string `json:"ui_locales,omitempty"`
}

// SetLogoutReturn stores where the browser goes once logout logoutID is
// complete, for ttl: the protocol adapter that started the logout tells
// the engine, and the logout page's last step reads it.
func (e *Engine) SetLogoutReturn(ctx context.Context, logoutID string, ret LogoutReturn, ttl time.Duration) error {
	val, err := json.Marshal(ret)
	if err != nil {
		return fmt.Errorf("slobridge: encode logout destination: %w", err)
	}
	err = e.st.PutRecord(ctx, store.Record{Namespace: LogoutReturnNamespace, Key: logoutID, Value: val, ExpiresAt: e.now().Add(ttl)})
	if err != nil {
		return fmt.Errorf("slobridge: store logout destination: %w", err)
	}
	return nil
}

// LogoutPagePath is the path of the logout page of a logout.
func LogoutPagePath(logoutID string) string { return "/logout/page/" + url.PathEscape(logoutID) }

// LogoutPageOptions configure a LogoutPage.
type LogoutPageOptions struct {
	// Engine supplies the logout status and the store. Required.
	Engine *Engine
	// Upstream, when set, ends the upstream IdP session after the
	// downstream participants were notified.
	Upstream UpstreamLogout
	// BasePath is the path prefix the page is mounted under ("" for /).
	BasePath string
	// FrontChannelWait is how long the page waits for the front-channel
	// iframes; default 5s.
	FrontChannelWait time.Duration
	// BackChannelWait is how long the page waits for the back-channel
	// deliveries to reach a final state before it stops waiting and offers
	// to continue (the engine keeps retrying in the background); default
	// 10s. Without JavaScript the server waits this long before it renders
	// the final state.
	BackChannelWait time.Duration
	// StreamMax bounds one server-sent-events stream; default 2m.
	StreamMax time.Duration
	// Logger defaults to slog.Default(); Rand (CSP nonces) to crypto/rand.
	Logger *slog.Logger
	Rand   io.Reader
}

// LogoutPage is the browser side of a logout and its live status page. It
// renders one iframe per front-channel participant (OIDC Front-Channel
// Logout 1.0 §4) and one row per participant (app, protocol, channel,
// state, error) that its script keeps current from a server-sent-events
// stream of the engine's Status; then it continues to the upstream logout
// and the stored destination. Without JavaScript a <noscript> refresh
// reloads it once, after the iframes had their time, and the server waits
// for the back-channel fan-out before it renders the final state.
type LogoutPage struct {
	opts LogoutPageOptions
}

// NewLogoutPage returns the logout page.
func NewLogoutPage(opts LogoutPageOptions) (*LogoutPage, error) {
	if opts.Engine == nil {
		return nil, errors.New("slobridge: logout page needs an engine")
	}
	if opts.Logger == nil {
		opts.Logger = slog.Default()
	}
	if opts.Rand == nil {
		opts.Rand = rand.Reader
	}
	if opts.FrontChannelWait <= 0 {
		opts.FrontChannelWait = defaultFrontChannelWait
	}
	if opts.BackChannelWait <= 0 {
		opts.BackChannelWait = defaultBackChannelWait
	}
	if opts.StreamMax <= 0 {
		opts.StreamMax = defaultStreamMax
	}
	opts.BasePath = strings.TrimSuffix(opts.BasePath, "/")
	return &LogoutPage{opts: opts}, nil
}

// Mount registers /logout/page/:logout_id, /logout/events/:logout_id,
// /logout/continue/:logout_id and /logout/done/:logout_id.
func (lp *LogoutPage) Mount(r gin.IRouter) {
	r.GET("/logout/page/:logout_id", lp.handlePage)
	r.GET("/logout/events/:logout_id", lp.handleEvents)
	r.GET("/logout/continue/:logout_id", lp.handleContinue)
	r.GET("/logout/done/:logout_id", lp.handleDone)
}

// pageFrame is one front-channel iframe.
type pageFrame struct {
	Row  string
	Name string
	URL  string
}

// pageData is what the logout page template renders.
type pageData struct {
	Nonce  string
	Title  string
	Frames []pageFrame
	View   statusView
	// Continue, Events and Final are the page's links.
	Continue, Events, Final string
	// Refresh is the <noscript> refresh: seconds and target; none when
	// RefreshURL is empty.
	Refresh    int
	RefreshURL string
	// FrontWaitMS and BackWaitMS are the script's waits.
	FrontWaitMS, BackWaitMS int64
	// Live is true when the script updates the page; false on the final
	// server-rendered states.
	Live bool
	// Finished is true on the last page of a logout (nothing follows).
	Finished bool
	Summary  string
	// SummaryClass is "ok", "bad" or "" (in progress).
	SummaryClass string
}

// frameURL returns the front-channel URL the page frames for participant
// p of lo. Only http(s) URLs are framed, and never for the initiator.
func frameURL(lo store.Logout, p store.Participant) (*url.URL, bool) {
	if !p.Channels.Has(store.ChannelFront) || p.FrontChannelURL == "" || (lo.ExcludeKey != "" && p.Key == lo.ExcludeKey) {
		return nil, false
	}
	u, err := url.Parse(p.FrontChannelURL)
	if err != nil || (u.Scheme != "https" && u.Scheme != "http") || u.Host == "" {
		return nil, false
	}
	return u, true
}

// frames lists the front-channel iframes of a logout and the origins the
// CSP must allow.
func frames(lo store.Logout) ([]pageFrame, []string) {
	var fs []pageFrame
	var origins []string
	for i, p := range lo.Participants {
		u, ok := frameURL(lo, p)
		if !ok {
			continue
		}
		fs = append(fs, pageFrame{Row: fmt.Sprintf("p%d", i), Name: cmp.Or(p.Name, p.AppID), URL: p.FrontChannelURL})
		for _, o := range append([]string{u.Scheme + "://" + u.Host}, strings.Fields(p.Data[DataFrameOrigins])...) {
			if validOrigin(o) && !slices.Contains(origins, o) {
				origins = append(origins, o)
			}
		}
	}
	return fs, origins
}

// DataFrameOrigins is the participant Data key listing (space separated)
// further origins the logout page's frame-src must allow for the
// participant: where its front-channel URL redirects the iframe (a SAML
// SP's SLO endpoint behind the bridge's own front-channel URL).
const DataFrameOrigins = "frame_origins"

// validOrigin accepts only a bare http(s) origin, so that a participant's
// data cannot widen the CSP with wildcards, schemes or keywords.
func validOrigin(o string) bool {
	u, err := url.Parse(o)
	return err == nil && (u.Scheme == "https" || u.Scheme == "http") && u.Host != "" &&
		u.Scheme+"://"+u.Host == o && !strings.ContainsAny(u.Host, "*;' ")
}

// LogoutPageCSP is the Content-Security-Policy of the logout page: nothing
// but the participants' origins may be framed, only the page's own
// nonce-bearing script and style apply, and the script may only connect
// back to the bridge (its event stream). The page itself may be framed
// only by the ancestors given (bare http(s) origins; others are dropped),
// and by nobody ('none') when none are.
func LogoutPageCSP(nonce string, frameOrigins []string, ancestors ...string) string {
	fs := "'none'"
	if len(frameOrigins) > 0 {
		fs = strings.Join(frameOrigins, " ")
	}
	fa := "'none'"
	var ok []string
	for _, o := range ancestors {
		if validOrigin(o) && !slices.Contains(ok, o) {
			ok = append(ok, o)
		}
	}
	if len(ok) > 0 {
		fa = strings.Join(ok, " ")
	}
	return "default-src 'none'; connect-src 'self'; script-src 'nonce-" + nonce + "'; style-src 'nonce-" + nonce +
		"'; frame-src " + fs + "; img-src 'self'; base-uri 'none'; form-action 'self'; frame-ancestors " + fa
}

// FrameAncestorsNamespace is the store.Record namespace of the origins
// allowed to frame the pages of a logout, keyed by logout ID.
const FrameAncestorsNamespace = "logout-frame-ancestors"

// SetFrameAncestors records, for ttl, the origins (bare http(s)
// origins; others are dropped) that may frame the pages of logout
// logoutID: the upstream IdP that started it with a front-channel
// LogoutRequest, which Shibboleth IdP, SimpleSAMLphp and others send from
// an iframe of their own logout page. The logout page, and the protocol
// pages it frames, then allow those origins in frame-ancestors for that
// logout only; every other logout keeps 'none'. (A downstream SP's or
// RP's logout is a top-level navigation — SAML Profiles §4.4.3.1, OIDC
// RP-Initiated Logout — so nothing records ancestors for it.)
func (e *Engine) SetFrameAncestors(ctx context.Context, logoutID string, origins []string, ttl time.Duration) error {
	var ok []string
	for _, o := range origins {
		if validOrigin(o) && !slices.Contains(ok, o) {
			ok = append(ok, o)
		}
	}
	if len(ok) == 0 {
		return nil
	}
	val, err := json.Marshal(ok)
	if err != nil {
		return fmt.Errorf("slobridge: encode frame ancestors: %w", err)
	}
	if err := e.st.PutRecord(ctx, store.Record{Namespace: FrameAncestorsNamespace, Key: logoutID, Value: val, ExpiresAt: e.now().Add(ttl)}); err != nil {
		return fmt.Errorf("slobridge: store frame ancestors: %w", err)
	}
	return nil
}

// FrameAncestors returns the origins SetFrameAncestors recorded for
// logout logoutID (nil when none, expired or unreadable: the page is then
// not framable).
func (e *Engine) FrameAncestors(ctx context.Context, logoutID string) []string {
	rec, err := e.st.GetRecord(ctx, FrameAncestorsNamespace, logoutID, e.now())
	if err != nil {
		return nil
	}
	var origins []string
	if json.Unmarshal(rec.Value, &origins) != nil {
		return nil
	}
	return slices.DeleteFunc(origins, func(o string) bool { return !validOrigin(o) })
}

// frameAncestors returns the origins allowed to frame the pages of lo:
// only a logout the upstream started can have any.
func (lp *LogoutPage) frameAncestors(ctx context.Context, lo store.Logout) []string {
	if lo.Initiator.Kind != store.InitiatorUpstream {
		return nil
	}
	return lp.opts.Engine.FrameAncestors(ctx, lo.ID)
}

// logoutID reads and bounds the logout ID path parameter.
func logoutID(c *gin.Context) (string, bool) {
	id := c.Param("logout_id")
	return id, id != "" && len(id) <= maxLogoutIDLen
}

// statusError renders the error of reading a logout's status.
func (lp *LogoutPage) statusError(c *gin.Context, id string, err error) {
	if errors.Is(err, store.ErrNotFound) {
		lp.plain(c, http.StatusNotFound, "This logout is unknown or has expired.")
		return
	}
	lp.opts.Logger.ErrorContext(c.Request.Context(), "logout page status", "logout_id", id, "error", err)
	lp.failed(c, err, "The logout status is unavailable; you are logged out of the bridge.")
}

// handlePage renders the live status page. ?step=final is the no-script
// second load: it waits for the back-channel fan-out and shows the final
// state without iframes (they were loaded by the first load).
func (lp *LogoutPage) handlePage(c *gin.Context) {
	ctx := c.Request.Context()
	id, ok := logoutID(c)
	if !ok {
		lp.plain(c, http.StatusNotFound, "This logout is unknown or has expired.")
		return
	}
	final := c.Query("step") == "final"
	var (
		v   statusView
		lo  store.Logout
		err error
	)
	if final {
		v, lo, err = lp.waitFinal(ctx, id, lp.opts.BackChannelWait)
	} else {
		v, lo, err = lp.view(ctx, id, false)
	}
	if err != nil {
		lp.statusError(c, id, err)
		return
	}
	base := lp.opts.BasePath
	data := pageData{
		Title: "Logging you out", View: v, Live: true,
		Continue:    base + "/logout/continue/" + url.PathEscape(id),
		Events:      base + "/logout/events/" + url.PathEscape(id),
		Final:       base + LogoutPagePath(id) + "?step=final",
		FrontWaitMS: lp.opts.FrontChannelWait.Milliseconds(),
		BackWaitMS:  lp.opts.BackChannelWait.Milliseconds(),
		Summary:     fmt.Sprintf("Telling %d application(s) that you logged out…", len(v.Rows)),
	}
	var origins []string
	if final {
		data.Summary, data.SummaryClass = finalSummary(v)
		if data.SummaryClass == "ok" {
			data.Refresh, data.RefreshURL = 2, data.Continue
		}
	} else {
		data.Frames, origins = frames(lo)
		data.Refresh, data.RefreshURL = 1, data.Final
		if len(data.Frames) > 0 {
			data.Refresh = int((lp.opts.FrontChannelWait + time.Second - 1) / time.Second)
		}
	}
	lp.render(c, data, origins, lp.frameAncestors(ctx, lo)...)
}

// finalSummary says how the fan-out ended.
func finalSummary(v statusView) (string, string) {
	switch {
	case v.Problems > 0:
		return fmt.Sprintf("%d application(s) could not be told yet: you may still be logged in there. The bridge keeps retrying; you can continue.", v.Problems), "bad"
	case !v.Done:
		return "Some applications have not answered yet; the bridge keeps trying in the background. You can continue.", "bad"
	}
	return "Every application was told that you logged out.", "ok"
}

// render writes the status page with a fresh CSP nonce.
func (lp *LogoutPage) render(c *gin.Context, data pageData, frameOrigins []string, ancestors ...string) {
	var nb [18]byte
	if _, err := io.ReadFull(lp.opts.Rand, nb[:]); err != nil {
		lp.failed(c, err, "Internal error.")
		return
	}
	data.Nonce = base64.RawURLEncoding.EncodeToString(nb[:])
	h := c.Writer.Header()
	h.Set("Cache-Control", "no-store")
	h.Set("Content-Security-Policy", LogoutPageCSP(data.Nonce, frameOrigins, ancestors...))
	h.Set("Referrer-Policy", "no-referrer")
	h.Set("X-Content-Type-Options", "nosniff")
	h.Set("Content-Type", "text/html; charset=utf-8")
	c.Status(http.StatusOK)
	if err := logoutPageTmpl.Execute(c.Writer, data); err != nil {
		lp.opts.Logger.ErrorContext(c.Request.Context(), "render logout page", "error", err)
	}
}

// handleEvents streams the page's view as server-sent events: one event
// now and one on every change, until every back-channel delivery is final
// or StreamMax passed. It wakes on engine events and re-reads the store on
// a tick, since deliveries made by another replica raise no local event.
func (lp *LogoutPage) handleEvents(c *gin.Context) {
	ctx := c.Request.Context()
	id, ok := logoutID(c)
	if !ok {
		c.AbortWithStatus(http.StatusNotFound)
		return
	}
	events, unsubscribe := lp.opts.Engine.Subscribe(16)
	defer unsubscribe()
	v, _, err := lp.view(ctx, id, false)
	if err != nil {
		if errors.Is(err, store.ErrNotFound) {
			c.AbortWithStatus(http.StatusNotFound)
			return
		}
		lp.opts.Logger.ErrorContext(ctx, "logout events status", "logout_id", id, "error", err)
		c.AbortWithStatus(FailureStatus(c.Writer.Header(), err))
		return
	}
	h := c.Writer.Header()
	h.Set("Content-Type", "text/event-stream")
	h.Set("Cache-Control", "no-store")
	h.Set("X-Accel-Buffering", "no")
	h.Set("X-Content-Type-Options", "nosniff")
	c.Status(http.StatusOK)
	ctx, cancel := context.WithTimeout(ctx, lp.opts.StreamMax)
	defer cancel()
	tick := time.NewTicker(statusPollInterval)
	defer tick.Stop()
	var last []byte
	for {
		b, err := json.Marshal(v)
		if err != nil {
			lp.opts.Logger.ErrorContext(ctx, "encode logout status", "logout_id", id, "error", err)
			return
		}
		if !bytes.Equal(b, last) {
			if _, err := fmt.Fprintf(c.Writer, "data: %s\n\n", b); err != nil {
				return
			}
			c.Writer.Flush()
			last = b
		}
		if v.Done || !waitChange(ctx, events, tick.C, id) {
			return
		}
		if v, _, err = lp.view(ctx, id, false); err != nil {
			lp.opts.Logger.WarnContext(ctx, "logout events status", "logout_id", id, "error", err)
			return
		}
	}
}

// handleContinue runs after the front-channel iframes: the optional
// upstream logout, then the destination.
func (lp *LogoutPage) handleContinue(c *gin.Context) {
	ctx := c.Request.Context()
	id, ok := logoutID(c)
	if !ok {
		lp.plain(c, http.StatusNotFound, "This logout is unknown or has expired.")
		return
	}
	lo, err := lp.opts.Engine.Store().GetLogout(ctx, id)
	if errors.Is(err, store.ErrNotFound) {
		lp.plain(c, http.StatusNotFound, "This logout is unknown or has expired.")
		return
	}
	if err != nil {
		lp.opts.Logger.ErrorContext(ctx, "logout continue", "logout_id", id, "error", err)
		lp.failed(c, err, "Internal error; you are logged out of the bridge.")
		return
	}
	done := lp.opts.BasePath + "/logout/done/" + url.PathEscape(id)
	if lp.nextTopLevel(c, lo) {
		return
	}
	// The upstream is skipped when it started the logout, and when another
	// user has just logged in there in this browser (Engine.LogoutDetour).
	if lp.opts.Upstream != nil && lo.Initiator.Kind != store.InitiatorUpstream && !isRelogin(lo) {
		if lp.startUpstream(c, lo, done) {
			return
		}
	}
	c.Header("Cache-Control", "no-store")
	c.Redirect(http.StatusSeeOther, done)
}

// nextTopLevel hands the browser to the next participant notified by a
// top-level redirect, whose answer comes back to this continue step; it
// reports whether one took the browser. A failure is logged and the chain
// goes on without that participant.
func (lp *LogoutPage) nextTopLevel(c *gin.Context, lo store.Logout) bool {
	back := lp.opts.BasePath + "/logout/continue/" + url.PathEscape(lo.ID)
	for _, tl := range lp.opts.Engine.topLevelChains() {
		// Each call consumes a participant, so a failing one is skipped;
		// the bound stops a chain that keeps failing without progress.
		for range len(lo.Participants) + 1 {
			sent, err := tl.NextTopLevel(c.Writer, c.Request, lo, back)
			if sent {
				return true
			}
			if err == nil {
				break
			}
			lp.opts.Logger.WarnContext(c.Request.Context(), "top-level logout step failed", "logout_id", lo.ID, "error", err)
		}
	}
	return false
}

// startUpstream hands the browser to the upstream logout, which begins
// the upstream's browser leg (UpstreamLeg) when it sends the request, and
// reports whether the upstream took the browser. A failure to send, or
// nothing to end, ends the leg here.
func (lp *LogoutPage) startUpstream(c *gin.Context, lo store.Logout, done string) bool {
	ctx := c.Request.Context()
	end := func(res LegResult) {
		if err := lp.opts.Engine.EndBrowserLeg(ctx, lo.ID, "", UpstreamLeg, res); err != nil {
			lp.opts.Logger.WarnContext(ctx, "record upstream logout state", "logout_id", lo.ID, "error", err)
		}
	}
	started, err := lp.opts.Upstream.StartLogout(c.Writer, c.Request, lo, done)
	switch {
	case err != nil:
		lp.opts.Logger.WarnContext(ctx, "upstream logout failed", "logout_id", lo.ID, "error", err)
		end(LegResult{Detail: "did not confirm the logout", Error: "the bridge could not send the logout request to the upstream identity provider"})
	case !started:
		end(LegResult{Done: true, Skipped: true, Detail: "no upstream session to end through the browser"})
	}
	return started
}

// handleDone sends the browser to the stored destination or shows the
// final state of the logout.
func (lp *LogoutPage) handleDone(c *gin.Context) {
	ctx := c.Request.Context()
	id, _ := logoutID(c)
	c.Header("Cache-Control", "no-store")
	rec, err := lp.opts.Engine.Store().GetRecord(ctx, LogoutReturnNamespace, id, lp.opts.Engine.Now())
	var ret LogoutReturn
	if err == nil {
		err = json.Unmarshal(rec.Value, &ret)
	}
	if err != nil && !errors.Is(err, store.ErrNotFound) {
		lp.opts.Logger.ErrorContext(ctx, "logout destination", "logout_id", id, "error", err)
	}
	if ret.RedirectURI != "" {
		c.Redirect(http.StatusSeeOther, ret.RedirectURI)
		return
	}
	v, lo, err := lp.view(ctx, id, true)
	if err != nil {
		RenderLoggedOut(c.Writer, ret.UILocales)
		return
	}
	if u := v.Upstream; u != nil && u.State == RowPending {
		// The upstream sent the browser back without its adapter
		// recording the answer.
		u.State, u.Detail = RowSent, "your browser came back from it"
	}
	summary, class := finalSummary(v)
	lp.render(c, pageData{Title: "Logged out", View: v, Finished: true,
		Summary: "You are logged out of the bridge. " + summary, SummaryClass: class}, nil, lp.frameAncestors(ctx, lo)...)
}

// failed renders a failure of the bridge: 503 with the store's reason when
// Unavailable recognises err, else 500 with msg.
func (lp *LogoutPage) failed(c *gin.Context, err error, msg string) {
	status := FailureStatus(c.Writer.Header(), err)
	if why, ok := Unavailable(err); ok {
		msg = why
	}
	lp.plain(c, status, msg)
}

func (lp *LogoutPage) plain(c *gin.Context, status int, msg string) {
	c.Header("Cache-Control", "no-store")
	c.Header("Content-Security-Policy", "default-src 'none'")
	c.Header("Content-Type", "text/html; charset=utf-8")
	c.Status(status)
	_ = loggedOutTmpl.Execute(c.Writer, struct{ Msg string }{msg})
}

// RenderLoggedOut writes the final "you are logged out" page.
func RenderLoggedOut(w http.ResponseWriter, uiLocales string) {
	_ = uiLocales // one language for now; the tag is validated before use
	h := w.Header()
	h.Set("Cache-Control", "no-store")
	h.Set("Content-Security-Policy", "default-src 'none'")
	h.Set("Content-Type", "text/html; charset=utf-8")
	w.WriteHeader(http.StatusOK)
	_ = loggedOutTmpl.Execute(w, struct{ Msg string }{"You are logged out."})
}

var loggedOutTmpl = template.Must(template.New("loggedout").Parse(`<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>Logged out</title></head>
<body><h1>{{.Msg}}</h1></body></html>`))
