// Package console is the operator console under /admin/: server-rendered
// pages to find a user's sessions, log a session or a user out with a
// reason, follow every logout leg by leg and retry failed deliveries, and
// see the upstreams. Operators sign in through the bridge's own upstream
// login and are admitted by user ID or group (no password store of its
// own); every action needs the page's CSRF token, refuses cross-site
// requests and writes an audit line. The admin token is for the API and
// the CLI only: the console knows nothing of it.
package console

import (
	"context"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"errors"
	"fmt"
	"html/template"
	"log/slog"
	"net/http"
	"net/url"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"github.com/gin-gonic/gin"

	"github.com/slobridge/slobridge"
	"github.com/slobridge/slobridge/cmd/internal/admin"
	"github.com/slobridge/slobridge/store"
)

// Prefix is where the console lives under the bridge's base path.
const Prefix = "/admin"

// Options configure New.
type Options struct {
	Engine  *slobridge.Engine
	Cookies slobridge.SessionCookies
	// Authenticator signs operators in (the bridge's upstream login).
	Authenticator slobridge.Authenticator
	// BaseURL is the bridge's external URL: its origin is the only one
	// console forms may be posted from. BasePath is its path.
	BaseURL, BasePath string
	// AllowedUsers and AllowedGroups admit operators: a signed-in user
	// whose ID is listed, or whose GroupAttribute (default "groups")
	// holds a listed group. With neither, the console is off and says how
	// to turn it on.
	AllowedUsers, AllowedGroups []string
	GroupAttribute              string
	// Upstreams names the upstreams (to find users by NameID);
	// UpstreamState describes them for the Upstreams page.
	Upstreams     []string
	UpstreamState func() []admin.Upstream
	// Apps lists the registered OIDC clients and SAML SPs (Apps page).
	Apps func(ctx context.Context) ([]App, error)
	// AppActions registers and disables apps from the Apps page; nil
	// leaves the page read-only.
	AppActions AppActions
	// Logger receives the audit lines ("console audit") and errors.
	Logger *slog.Logger
}

// Console is the operator console.
type Console struct {
	opts   Options
	log    *slog.Logger
	origin string
}

// New checks opts and returns the console.
func New(opts Options) (*Console, error) {
	if opts.Engine == nil || opts.Authenticator == nil || len(opts.Cookies.Secret) < 32 {
		return nil, errors.New("console: an engine, an authenticator and the session cookie secret are required")
	}
	u, err := url.Parse(opts.BaseURL)
	if err != nil || u.Scheme == "" || u.Host == "" {
		return nil, fmt.Errorf("console: base URL %q is not absolute", opts.BaseURL)
	}
	if opts.GroupAttribute == "" {
		opts.GroupAttribute = "groups"
	}
	if opts.Logger == nil {
		opts.Logger = slog.Default()
	}
	return &Console{opts: opts, log: opts.Logger, origin: u.Scheme + "://" + u.Host}, nil
}

// Enabled reports whether any operator may sign in.
func (c *Console) Enabled() bool { return len(c.opts.AllowedUsers)+len(c.opts.AllowedGroups) > 0 }

// Mount registers the console's pages under Prefix.
func (c *Console) Mount(r gin.IRouter) {
	g := r.Group(Prefix, c.headers)
	if !c.Enabled() {
		g.GET("/", c.handleOff)
		return
	}
	g.Use(c.operator)
	g.GET("/", c.handleSessions)
	g.GET("/logout", c.handleLogoutConfirm)
	g.POST("/logout", c.checkCSRF, c.handleLogout)
	g.GET("/logouts", c.handleLogouts)
	g.GET("/logouts/:logout_id", c.handleLogoutStatus)
	g.GET("/logouts/:logout_id/events", c.handleLogoutEvents)
	g.POST("/logouts/:logout_id/retry", c.checkCSRF, c.handleRetry)
	g.GET("/deliveries", c.handleDeliveries)
	g.GET("/deliveries/:delivery_id", c.handleDelivery)
	g.POST("/deliveries/:delivery_id/retry", c.checkCSRF, c.handleRetryDelivery)
	g.GET("/upstreams", c.handleUpstreams)
	g.GET("/apps", c.handleApps)
	if c.opts.AppActions != nil {
		g.POST("/apps/saml", c.checkCSRF, c.handleRegisterSAML)
		g.POST("/apps/oidc", c.checkCSRF, c.handleRegisterOIDC)
		g.POST("/apps/disable", c.checkCSRF, c.handleDisableApp)
	}
}

// ctxOperator is the gin context key of the signed-in operator's session.
const ctxOperator = "console.operator"

// headers sets what every console answer carries: no caching, no framing,
// and a policy that runs nothing but the page's own style and script.
func (c *Console) headers(g *gin.Context) {
	nonce := newNonce()
	g.Set("console.nonce", nonce)
	h := g.Writer.Header()
	h.Set("Cache-Control", "no-store")
	h.Set("Content-Security-Policy", "default-src 'none'; style-src 'nonce-"+nonce+"'; script-src 'nonce-"+nonce+"'; connect-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'")
	h.Set("X-Content-Type-Options", "nosniff")
	h.Set("Referrer-Policy", "same-origin")
}

func newNonce() string {
	var b [16]byte
	_, _ = rand.Read(b[:])
	return base64.RawURLEncoding.EncodeToString(b[:])
}

// operator admits a signed-in operator. Without a bridge session a GET
// goes through the upstream login and comes back; anything else is
// refused. A signed-in user who is not an operator gets 403 and an audit
// line.
func (c *Console) operator(g *gin.Context) {
	r := g.Request
	s, err := c.opts.Engine.ActiveSession(r.Context(), c.opts.Cookies, r)
	switch {
	case errors.Is(err, slobridge.ErrNoSession) && r.Method == http.MethodGet:
		if err := c.opts.Authenticator.StartLogin(g.Writer, r, r.URL.RequestURI()); err != nil {
			c.fail(g, "start the operator's login", err)
		}
		g.Abort()
		return
	case errors.Is(err, slobridge.ErrNoSession):
		c.page(g, http.StatusForbidden, "message", msgView{Title: "Not signed in", Message: "Sign in to the console first."})
		g.Abort()
		return
	case err != nil:
		c.fail(g, "read the operator's session", err)
		g.Abort()
		return
	}
	if !c.allowed(s) {
		c.audit(g, s, "access", "", "", "refused: not an operator")
		c.page(g, http.StatusForbidden, "message", msgView{Title: "Not an operator",
			Message: "You are signed in as " + s.UserID + ", who is not an operator of this bridge. Ask for admin.console.allowed_users or allowed_groups to list you."})
		g.Abort()
		return
	}
	g.Set(ctxOperator, s)
	g.Next()
}

// allowed reports whether the session's user is an operator.
func (c *Console) allowed(s store.Session) bool {
	if slices.Contains(c.opts.AllowedUsers, s.UserID) {
		return true
	}
	return slices.ContainsFunc(s.Attributes[c.opts.GroupAttribute], func(g string) bool { return slices.Contains(c.opts.AllowedGroups, g) })
}

// csrfToken binds a form to the operator's bridge session.
func (c *Console) csrfToken(sessionID string) string {
	m := hmac.New(sha256.New, c.opts.Cookies.Secret)
	m.Write([]byte("slobridge-console-csrf\x00" + sessionID))
	return base64.RawURLEncoding.EncodeToString(m.Sum(nil))
}

// maxForm caps a console form's body (pasted SP metadata is the largest).
const maxForm = 512 << 10

// checkCSRF refuses a state-changing request that is cross-site (Fetch
// metadata or Origin) or lacks the operator's CSRF token.
func (c *Console) checkCSRF(g *gin.Context) {
	s := g.MustGet(ctxOperator).(store.Session)
	r := g.Request
	why := ""
	if site := r.Header.Get("Sec-Fetch-Site"); site != "" && site != "same-origin" {
		why = "cross-site request (Sec-Fetch-Site " + site + ")"
	} else if o := r.Header.Get("Origin"); o != "" && o != c.origin {
		why = "cross-site request (Origin " + o + ")"
	} else if r.Body = http.MaxBytesReader(g.Writer, r.Body, maxForm); r.ParseForm() != nil {
		why = "unreadable or too large form"
	} else if !hmac.Equal([]byte(r.PostForm.Get("csrf")), []byte(c.csrfToken(s.ID))) {
		why = "missing or wrong CSRF token"
	}
	if why != "" {
		c.audit(g, s, "refused "+r.URL.Path, "", "", why)
		c.page(g, http.StatusForbidden, "message", msgView{Title: "Refused", Message: "This action was refused (" + why + "). Reload the page and try again."})
		g.Abort()
		return
	}
	g.Next()
}

// audit writes one structured audit line: who did what to which target,
// why, and how it ended.
func (c *Console) audit(g *gin.Context, op store.Session, action, target, reason, result string) {
	c.log.InfoContext(g.Request.Context(), "console audit", "operator", op.UserID, "operator_session", op.ID,
		"action", action, "target", target, "reason", reason, "result", result, "remote", g.ClientIP())
}

// fail logs err and shows an error page (503 when the store or upstream
// is unavailable).
func (c *Console) fail(g *gin.Context, op string, err error) {
	c.log.ErrorContext(g.Request.Context(), "console: "+op, "err", err)
	status, msg := http.StatusInternalServerError, "Something went wrong; see the server log."
	if why, ok := slobridge.Unavailable(err); ok {
		status, msg = slobridge.FailureStatus(g.Writer.Header(), err), why
	}
	c.page(g, status, "message", msgView{Title: "Error", Message: msg})
}

// path is the absolute path of a console page.
func (c *Console) path(p string) string { return c.opts.BasePath + Prefix + p }

// nextPage is the link to the page of a list after the one whose last
// item was created at at with ID id, q holding the list's other
// parameters: encoded here, so the template takes it as a URL and does not
// escape it a second time.
func (c *Console) nextPage(p string, q url.Values, at time.Time, id string) template.URL {
	if q == nil {
		q = url.Values{}
	}
	q.Set("before_time", at.UTC().Format(time.RFC3339Nano))
	q.Set("before_id", id)
	return template.URL(c.path(p) + "?" + q.Encode())
}

// cursor reads the page position nextPage wrote; false (after answering
// 400) when it is not valid.
func (c *Console) cursor(g *gin.Context, title string) (store.Cursor, bool) {
	t := g.Query("before_time")
	if t == "" {
		return store.Cursor{}, true
	}
	at, err := time.Parse(time.RFC3339Nano, t)
	if err != nil || g.Query("before_id") == "" {
		c.page(g, http.StatusBadRequest, "message", msgView{Title: title, Message: "That page position is not valid."})
		return store.Cursor{}, false
	}
	return store.Cursor{CreatedAt: at, ID: g.Query("before_id")}, true
}

// view is what every page template gets besides its own data.
type view struct {
	Nonce, Base, CSRF, Operator string
	// Refresh reloads the page while a logout runs: at each change its
	// Live event stream announces (the page's script), every two seconds
	// without scripts.
	Refresh bool
	// Live is the event stream of the logout the page shows, and Sig the
	// signature (statusSig) of the status the page was rendered from.
	Live template.URL
	Sig  string
	Data any
}

// refresher is a page's data that says whether the page reloads itself
// (a logout still running), and from which logout's changes.
type refresher interface {
	refresh() bool
	// live is the logout the page follows and the signature of its
	// status as rendered.
	live() (logoutID, sig string)
}

// page renders a template in the layout.
func (c *Console) page(g *gin.Context, status int, name string, data any) {
	v := view{Nonce: g.GetString("console.nonce"), Base: c.opts.BasePath + Prefix, Data: data}
	if r, ok := data.(refresher); ok && r.refresh() {
		id, sig := r.live()
		v.Refresh, v.Live, v.Sig = true, template.URL(c.path("/logouts/"+url.PathEscape(id)+"/events")), sig
	}
	if s, ok := g.Get(ctxOperator); ok {
		op := s.(store.Session)
		v.Operator, v.CSRF = op.UserID, c.csrfToken(op.ID)
	}
	g.Header("Content-Type", "text/html; charset=utf-8")
	g.Status(status)
	if err := templates.ExecuteTemplate(g.Writer, name, v); err != nil {
		c.log.ErrorContext(g.Request.Context(), "console: render "+name, "err", err)
	}
}

// msgView is a message page.
type msgView struct{ Title, Message string }

func (c *Console) handleOff(g *gin.Context) {
	c.page(g, http.StatusNotFound, "message", msgView{Title: "The console is off",
		Message: "No operator may sign in: set admin.console.allowed_users (user IDs) or admin.console.allowed_groups (values of the users' groups attribute) in the configuration and restart the bridge."})
}

// trimReason bounds an operator's reason for the audit log.
func trimReason(s string) string {
	s = strings.TrimSpace(strings.NewReplacer("\r", " ", "\n", " ").Replace(s))
	if len(s) > 500 {
		s = s[:500]
	}
	return s
}

var templates = template.Must(template.New("console").Funcs(template.FuncMap{
	"stamp":   stamp,
	"add":     func(a, b int) int { return a + b },
	"ms":      func(d time.Duration) int64 { return d.Milliseconds() },
	"channel": func(ch store.Channel) string { return ch.String() },
	"query":   url.QueryEscape,
	"source":  source,
}).Parse(layoutTmpl + pagesTmpl))

// source shows an upstream's metadata source: a URL or issuer as it is,
// a metadata file by its name (the admin API gives the whole path).
func source(id string) string {
	if u, err := url.Parse(id); err == nil && u.Scheme != "" && u.Host != "" {
		return id
	}
	return "file " + filepath.Base(id)
}
