package slobridge

import (
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

// frontChannelWait is how long the logout page gives the front-channel
// iframes before it continues without JavaScript (meta refresh); with
// JavaScript it continues as soon as every iframe has loaded.
const frontChannelWait = 5 * time.Second

// LogoutReturn is where the browser goes when a logout is complete.
type LogoutReturn struct {
	// RedirectURI is the validated destination (an OIDC
	// post_logout_redirect_uri with state), empty to show "you are logged
	// out".
	RedirectURI string `json:"redirect_uri,omitempty"`
	// UILocales is the RP's ui_locales, for the page language.
	UILocales string `json:"ui_locales,omitempty"`
}

// SaveLogoutReturn stores the destination of a logout until expires.
func SaveLogoutReturn(ctx context.Context, st store.Store, logoutID string, ret LogoutReturn, expires time.Time) error {
	val, err := json.Marshal(ret)
	if err != nil {
		return fmt.Errorf("slobridge: encode logout destination: %w", err)
	}
	err = st.PutRecord(ctx, store.Record{Namespace: LogoutReturnNamespace, Key: logoutID, Value: val, ExpiresAt: expires})
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
	// Logger defaults to slog.Default(); Rand (CSP nonces) to crypto/rand.
	Logger *slog.Logger
	Rand   io.Reader
}

// LogoutPage is the browser side of a logout: it renders one iframe per
// front-channel participant (OIDC Front-Channel Logout 1.0 §4), shows the
// status of every participant, then continues to the upstream logout and
// the stored destination.
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
	opts.BasePath = strings.TrimSuffix(opts.BasePath, "/")
	return &LogoutPage{opts: opts}, nil
}

// Mount registers /logout/page/:logout_id, /logout/continue/:logout_id and
// /logout/done/:logout_id.
func (lp *LogoutPage) Mount(r gin.IRouter) {
	r.GET("/logout/page/:logout_id", lp.handlePage)
	r.GET("/logout/continue/:logout_id", lp.handleContinue)
	r.GET("/logout/done/:logout_id", lp.handleDone)
}

// pageFrame is one front-channel iframe.
type pageFrame struct {
	Name string
	URL  string
}

// pageData is what the logout page template renders.
type pageData struct {
	Nonce    string
	Frames   []pageFrame
	Rows     []ParticipantStatus
	Continue string
	Wait     int
}

// frames lists the front-channel iframes of a logout and the origins the
// CSP must allow. Only http(s) URLs are framed.
func frames(lo store.Logout) ([]pageFrame, []string) {
	var fs []pageFrame
	var origins []string
	for _, p := range lo.Participants {
		if !p.Channels.Has(store.ChannelFront) || p.FrontChannelURL == "" || p.Key == lo.ExcludeKey {
			continue
		}
		u, err := url.Parse(p.FrontChannelURL)
		if err != nil || (u.Scheme != "https" && u.Scheme != "http") || u.Host == "" {
			continue
		}
		fs = append(fs, pageFrame{Name: cmpOr(p.Name, p.AppID), URL: p.FrontChannelURL})
		if o := u.Scheme + "://" + u.Host; !slices.Contains(origins, o) {
			origins = append(origins, o)
		}
	}
	return fs, origins
}

func cmpOr(a, b string) string {
	if a != "" {
		return a
	}
	return b
}

// LogoutPageCSP is the Content-Security-Policy of the logout page: nothing
// but the participants' origins may be framed, and only the page's own
// nonce-bearing script runs.
func LogoutPageCSP(nonce string, frameOrigins []string) string {
	fs := "'none'"
	if len(frameOrigins) > 0 {
		fs = strings.Join(frameOrigins, " ")
	}
	return "default-src 'self'; script-src 'nonce-" + nonce + "'; style-src 'nonce-" + nonce +
		"'; frame-src " + fs + "; img-src 'self'; object-src 'none'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'"
}

func (lp *LogoutPage) handlePage(c *gin.Context) {
	ctx := c.Request.Context()
	id := c.Param("logout_id")
	st, err := lp.opts.Engine.Status(ctx, id)
	if errors.Is(err, store.ErrNotFound) {
		lp.plain(c, http.StatusNotFound, "This logout is unknown or has expired.")
		return
	}
	if err != nil {
		lp.opts.Logger.ErrorContext(ctx, "logout page status", "logout_id", id, "error", err)
		lp.plain(c, http.StatusInternalServerError, "The logout status is unavailable; you are logged out of the bridge.")
		return
	}
	var nb [18]byte
	if _, err := io.ReadFull(lp.opts.Rand, nb[:]); err != nil {
		lp.plain(c, http.StatusInternalServerError, "Internal error.")
		return
	}
	nonce := base64.RawStdEncoding.EncodeToString(nb[:])
	fs, origins := frames(st.Logout)
	wait := 0
	if len(fs) > 0 {
		wait = int(frontChannelWait / time.Second)
	}
	data := pageData{Nonce: nonce, Frames: fs, Rows: st.Participants, Wait: wait,
		Continue: lp.opts.BasePath + "/logout/continue/" + url.PathEscape(id)}
	h := c.Writer.Header()
	h.Set("Cache-Control", "no-store")
	h.Set("Content-Security-Policy", LogoutPageCSP(nonce, origins))
	h.Set("Referrer-Policy", "no-referrer")
	h.Set("X-Content-Type-Options", "nosniff")
	h.Set("Content-Type", "text/html; charset=utf-8")
	c.Status(http.StatusOK)
	if err := logoutPageTmpl.Execute(c.Writer, data); err != nil {
		lp.opts.Logger.ErrorContext(ctx, "render logout page", "logout_id", id, "error", err)
	}
}

// handleContinue runs after the front-channel iframes: the optional
// upstream logout, then the destination.
func (lp *LogoutPage) handleContinue(c *gin.Context) {
	ctx := c.Request.Context()
	id := c.Param("logout_id")
	lo, err := lp.opts.Engine.Store().GetLogout(ctx, id)
	if errors.Is(err, store.ErrNotFound) {
		lp.plain(c, http.StatusNotFound, "This logout is unknown or has expired.")
		return
	}
	if err != nil {
		lp.opts.Logger.ErrorContext(ctx, "logout continue", "logout_id", id, "error", err)
		lp.plain(c, http.StatusInternalServerError, "Internal error; you are logged out of the bridge.")
		return
	}
	done := lp.opts.BasePath + "/logout/done/" + url.PathEscape(id)
	if lp.opts.Upstream != nil {
		started, err := lp.opts.Upstream.StartLogout(c.Writer, c.Request, lo, done)
		if err != nil {
			lp.opts.Logger.WarnContext(ctx, "upstream logout failed", "logout_id", id, "error", err)
		}
		if started {
			return
		}
	}
	c.Header("Cache-Control", "no-store")
	c.Redirect(http.StatusSeeOther, done)
}

// handleDone sends the browser to the stored destination or says that the
// user is logged out.
func (lp *LogoutPage) handleDone(c *gin.Context) {
	ctx := c.Request.Context()
	id := c.Param("logout_id")
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
	RenderLoggedOut(c.Writer, ret.UILocales)
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

var logoutPageTmpl = template.Must(template.New("logout").Parse(`<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>Logging out</title>
<meta http-equiv="refresh" content="{{.Wait}};url={{.Continue}}">
<style nonce="{{.Nonce}}">iframe{display:none}</style>
</head>
<body>
<h1>Logging you out</h1>
<table>
<thead><tr><th>Application</th><th>Channel</th><th>Status</th></tr></thead>
<tbody>{{range .Rows}}<tr><td>{{if .Name}}{{.Name}}{{else}}{{.AppID}}{{end}}</td><td>{{.Channel}}</td><td>{{.State}}</td></tr>{{end}}</tbody>
</table>
{{range .Frames}}<iframe class="fc" title="{{.Name}}" src="{{.URL}}"></iframe>
{{end}}<p><a id="continue" href="{{.Continue}}">Continue</a></p>
<script nonce="{{.Nonce}}">
(function(){
  var next = document.getElementById("continue").getAttribute("href");
  var frames = document.querySelectorAll("iframe.fc");
  var left = frames.length, gone = false;
  function go(){ if (!gone) { gone = true; window.location.replace(next); } }
  if (left === 0) { go(); return; }
  frames.forEach(function(f){ f.addEventListener("load", function(){ if (--left === 0) go(); }); });
  setTimeout(go, {{.Wait}} * 1000);
})();
</script>
</body></html>`))
