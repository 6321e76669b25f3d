package app

import (
	"crypto/sha256"
	"crypto/subtle"
	"encoding/json"
	"fmt"
	"html/template"
	"log/slog"
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/gin-gonic/gin"

	"github.com/slobridge/slobridge"
	"github.com/slobridge/slobridge/store"
)

// The static authenticator is for development, tests and load tests only:
// fixed users whose passwords come from the configuration's secrets, a
// plain HTML login form, no lockout, no second factor. It exists so that
// the bridge can run without an upstream SAML IdP.
const (
	// PathStaticLogin is the login form.
	PathStaticLogin = "/login/static"
	// staticUpstream is the Session.Upstream of sessions it creates.
	staticUpstream = "static"
	// nsStaticLogin holds pending logins (where to return), by login ID.
	nsStaticLogin = store.VolatilePrefix + "static-login"
	// staticLoginCookie binds a pending login to the browser that started
	// it, so that a login form cannot be planted in another browser.
	staticLoginCookie = "slobridge_static_login"
	staticLoginTTL    = 10 * time.Minute
	maxLoginForm      = 16 << 10
)

// staticUser is a configured user with its password hashed.
type staticUser struct {
	cfg  StaticUser
	hash [sha256.Size]byte
}

// staticAuth implements slobridge.Authenticator with fixed users.
type staticAuth struct {
	eng      *slobridge.Engine
	cookies  slobridge.SessionCookies
	users    map[string]staticUser
	lifetime time.Duration
	basePath string
	log      *slog.Logger
}

var _ slobridge.Authenticator = (*staticAuth)(nil)

func newStaticAuth(eng *slobridge.Engine, cookies slobridge.SessionCookies, cfg StaticConfig, lifetime time.Duration, basePath string, log *slog.Logger) *staticAuth {
	a := &staticAuth{eng: eng, cookies: cookies, users: map[string]staticUser{}, lifetime: lifetime, basePath: basePath, log: log}
	for _, u := range cfg.Users {
		a.users[u.Username] = staticUser{cfg: u, hash: sha256.Sum256([]byte(u.Password.Value()))}
	}
	return a
}

// localPath reports whether p is a path on this host (not "//host" or a
// URL with a scheme), so that a login never redirects off-site.
func localPath(p string) bool {
	if !strings.HasPrefix(p, "/") || strings.HasPrefix(p, "//") || strings.HasPrefix(p, "/\\") {
		return false
	}
	u, err := url.Parse(p)
	return err == nil && u.Scheme == "" && u.Host == ""
}

// StartLogin parks returnTo and sends the browser to the login form.
func (a *staticAuth) StartLogin(w http.ResponseWriter, r *http.Request, returnTo string) error {
	if !localPath(returnTo) {
		return fmt.Errorf("static login: return path %q is not local", returnTo)
	}
	id := a.eng.NewID()
	val, err := json.Marshal(returnTo)
	if err != nil {
		return fmt.Errorf("static login: %w", err)
	}
	exp := a.eng.Now().Add(staticLoginTTL)
	if err := a.eng.Store().PutRecord(r.Context(), store.Record{Namespace: nsStaticLogin, Key: id, Value: val, ExpiresAt: exp}); err != nil {
		return fmt.Errorf("static login: park login: %w", err)
	}
	http.SetCookie(w, &http.Cookie{
		Name: staticLoginCookie, Value: id, Path: a.basePath + PathStaticLogin, Expires: exp,
		HttpOnly: true, Secure: a.cookies.Secure, SameSite: http.SameSiteLaxMode,
	})
	http.Redirect(w, r, a.basePath+PathStaticLogin+"?id="+url.QueryEscape(id), http.StatusSeeOther)
	return nil
}

// Mount registers the login form.
func (a *staticAuth) Mount(r gin.IRouter) {
	r.GET(PathStaticLogin, a.handleForm)
	r.POST(PathStaticLogin, a.handleSubmit)
}

func (a *staticAuth) handleForm(c *gin.Context) {
	id := c.Query("id")
	if _, err := a.eng.Store().GetRecord(c.Request.Context(), nsStaticLogin, id, a.eng.Now()); err != nil {
		a.page(c, http.StatusBadRequest, "", "This sign-in request has expired; start again from the application.")
		return
	}
	a.page(c, http.StatusOK, id, "")
}

func (a *staticAuth) handleSubmit(c *gin.Context) {
	ctx := c.Request.Context()
	c.Request.Body = http.MaxBytesReader(c.Writer, c.Request.Body, maxLoginForm)
	if err := c.Request.ParseForm(); err != nil {
		a.page(c, http.StatusBadRequest, "", "The form could not be read.")
		return
	}
	id := c.Request.PostForm.Get("id")
	ck, err := c.Request.Cookie(staticLoginCookie)
	if err != nil || id == "" || subtle.ConstantTimeCompare([]byte(ck.Value), []byte(id)) != 1 {
		a.page(c, http.StatusBadRequest, "", "This sign-in request was not started in this browser; start again from the application.")
		return
	}
	now := a.eng.Now()
	if _, err := a.eng.Store().GetRecord(ctx, nsStaticLogin, id, now); err != nil {
		a.page(c, http.StatusBadRequest, "", "This sign-in request has expired; start again from the application.")
		return
	}
	u, ok := a.check(c.Request.PostForm.Get("username"), c.Request.PostForm.Get("password"))
	if !ok {
		a.log.WarnContext(ctx, "static login: wrong username or password")
		a.page(c, http.StatusUnauthorized, id, "Wrong username or password.")
		return
	}
	rec, err := a.eng.Store().TakeRecord(ctx, nsStaticLogin, id, now)
	if msg, ok := slobridge.Unavailable(err); ok {
		a.page(c, slobridge.FailureStatus(c.Writer.Header(), err), "", msg)
		return
	}
	if err != nil {
		a.page(c, http.StatusBadRequest, "", "This sign-in request was already used; start again from the application.")
		return
	}
	var returnTo string
	if err := json.Unmarshal(rec.Value, &returnTo); err != nil || !localPath(returnTo) {
		a.page(c, http.StatusInternalServerError, "", "The sign-in request is damaged; start again from the application.")
		return
	}
	// A re-login in a browser that has a session keeps it (same user) or
	// logs it out first (another user): see Engine.EstablishLogin.
	est, err := a.eng.EstablishLogin(ctx, a.cookies.BrowserSessionID(c.Request), store.Session{
		UserID: u.subject(), Upstream: staticUpstream, Attributes: u.attributes(), ExpiresAt: now.Add(a.lifetime),
	})
	s := est.Session
	if err != nil {
		a.log.ErrorContext(ctx, "static login: create session", "err", err)
		msg := "The session could not be created; try again."
		if why, ok := slobridge.Unavailable(err); ok {
			msg = why
		}
		a.page(c, slobridge.FailureStatus(c.Writer.Header(), err), "", msg)
		return
	}
	a.log.InfoContext(ctx, "static login", "sid", s.ID, "user", s.UserID)
	http.SetCookie(c.Writer, &http.Cookie{Name: staticLoginCookie, Value: "", Path: a.basePath + PathStaticLogin, MaxAge: -1, HttpOnly: true, Secure: a.cookies.Secure})
	a.cookies.Set(c.Writer, s.ID, s.ExpiresAt)
	// The previous user's apps notified through the browser are logged
	// out on the way: the logout page of their session, then returnTo.
	to, detour, err := a.eng.LogoutDetour(ctx, est, returnTo)
	switch {
	case err != nil:
		a.log.ErrorContext(ctx, "static login: logout page of the replaced session", "logout_id", est.Replaced.ID, "err", err)
		to = returnTo
	case detour:
		to = a.basePath + to
	}
	c.Redirect(http.StatusSeeOther, to)
}

// check compares the password in constant time; an unknown user costs the
// same as a wrong password.
func (a *staticAuth) check(username, password string) (StaticUser, bool) {
	got := sha256.Sum256([]byte(password))
	u, known := a.users[username]
	if !known {
		var zero [sha256.Size]byte
		subtle.ConstantTimeCompare(got[:], zero[:])
		return StaticUser{}, false
	}
	return u.cfg, subtle.ConstantTimeCompare(got[:], u.hash[:]) == 1
}

func (u StaticUser) subject() string {
	if u.Subject != "" {
		return u.Subject
	}
	return u.Username
}

func (u StaticUser) attributes() map[string][]string {
	at := map[string][]string{"preferred_username": {u.Username}}
	if u.Email != "" {
		at["email"] = []string{u.Email}
	}
	if u.Name != "" {
		at["name"] = []string{u.Name}
	}
	if len(u.Groups) > 0 {
		at["groups"] = append([]string(nil), u.Groups...)
	}
	return at
}

type loginPage struct {
	ID, Action, Error string
}

func (a *staticAuth) page(c *gin.Context, status int, id, msg string) {
	c.Header("Cache-Control", "no-store")
	c.Header("Content-Security-Policy", "default-src 'none'; style-src 'unsafe-inline'; frame-ancestors 'none'")
	c.Header("X-Frame-Options", "DENY")
	c.Status(status)
	c.Header("Content-Type", "text/html; charset=utf-8")
	if err := loginTmpl.Execute(c.Writer, loginPage{ID: id, Action: a.basePath + PathStaticLogin, Error: msg}); err != nil {
		a.log.ErrorContext(c.Request.Context(), "static login: render", "err", err)
	}
}

var loginTmpl = template.Must(template.New("login").Parse(`<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>Sign in — slobridge (development login)</title>
<style>body{font-family:sans-serif;max-width:24em;margin:4em auto}label{display:block;margin:.6em 0}</style></head>
<body><h1>Sign in</h1>
<p><small>Development login of slobridge (static upstream): not for production.</small></p>
{{if .Error}}<p role="alert">{{.Error}}</p>{{end}}
{{if .ID}}<form method="post" action="{{.Action}}">
<input type="hidden" name="id" value="{{.ID}}">
<label>Username <input name="username" autocomplete="username" required autofocus></label>
<label>Password <input name="password" type="password" autocomplete="current-password" required></label>
<button type="submit">Sign in</button>
</form>{{end}}
</body></html>
`))
