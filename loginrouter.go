package slobridge

import (
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"html/template"
	"log/slog"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"time"

	"github.com/gin-gonic/gin"

	"github.com/slobridge/slobridge/store"
)

// LoginUpstream is one upstream identity provider a login can go to, of
// any protocol.
type LoginUpstream struct {
	// Name identifies the upstream (Session.Upstream, idp_hint, the
	// chooser's links).
	Name string
	// DisplayName is shown on the chooser page; default Name.
	DisplayName string
	// Domains send a login whose login_hint is an address in one of them
	// here (case-insensitive, exact domain).
	Domains []string
	// Clients are the downstream apps (OIDC client_id, SAML SP entity ID)
	// whose logins come here unless a hint says otherwise.
	Clients []string
	// AllowedClients, when set, are the only downstream apps that may log
	// in here: the upstream is neither offered nor used for the others.
	AllowedClients []string
	// Start sends the browser to the upstream to log in.
	Start func(w http.ResponseWriter, r *http.Request, returnTo string) error
	// Unavailable says why the upstream cannot be used now; nil (or a nil
	// func) when it can.
	Unavailable func() error
}

// available reports whether the upstream can be used now.
func (u LoginUpstream) available() bool { return u.Unavailable == nil || u.Unavailable() == nil }

// LoginRouterOptions configure NewLoginRouter.
type LoginRouterOptions struct {
	Engine *Engine
	// Upstreams returns the upstreams in chooser order (called per login,
	// so that the list may change at run time).
	Upstreams func() []LoginUpstream
	// ClientsOf names the downstream app that asked for a login, from the
	// request StartLogin is given and its returnTo; nil names none.
	ClientsOf func(r *http.Request, returnTo string) []string
	// ChooserPath is the route of the chooser page (Mount); ChooserURL is
	// where browsers are sent for it (default ChooserPath).
	ChooserPath, ChooserURL string
	// Logger defaults to slog.Default().
	Logger *slog.Logger
}

// LoginRouter is the Authenticator in front of several upstreams: it
// picks the upstream of a login, in this order:
//  1. an idp_hint (or Keycloak's kc_idp_hint) naming an upstream the app
//     may use, in the downstream request or its returnTo;
//  2. a login_hint address whose domain an upstream lists (Domains);
//  3. the app's default upstream (Clients);
//  4. the only upstream the app may use;
//  5. else the person picks one on the chooser page, which lists the
//     upstreams the app may use and those unavailable right now (without
//     a link).
//
// An app that may use no upstream (AllowedClients) is refused with 403;
// when none of those it may use is available, and no rule picked one,
// with 503. A picked upstream's Start reports its own unavailability.
type LoginRouter struct {
	opts LoginRouterOptions
	log  *slog.Logger
}

// nsLoginChoice holds a login waiting on the chooser page (volatile: a
// crash only makes the person start again).
const nsLoginChoice = store.VolatilePrefix + "login-choice"

// loginChoiceTTL bounds how long the chooser page may wait.
const loginChoiceTTL = 15 * time.Minute

// NewLoginRouter checks opts and returns the router.
func NewLoginRouter(opts LoginRouterOptions) (*LoginRouter, error) {
	if opts.Engine == nil || opts.Upstreams == nil || opts.ChooserPath == "" {
		return nil, errors.New("slobridge: a login router needs an engine, upstreams and a chooser path")
	}
	if opts.ChooserURL == "" {
		opts.ChooserURL = opts.ChooserPath
	}
	if opts.Logger == nil {
		opts.Logger = slog.Default()
	}
	return &LoginRouter{opts: opts, log: opts.Logger}, nil
}

// loginChoice is a login parked for the chooser page.
type loginChoice struct {
	ReturnTo string `json:"return_to"`
	// Allowed are the upstreams the app may use.
	Allowed []string `json:"allowed"`
}

// StartLogin implements Authenticator.
func (lr *LoginRouter) StartLogin(w http.ResponseWriter, r *http.Request, returnTo string) error {
	clients := []string(nil)
	if lr.opts.ClientsOf != nil {
		clients = lr.opts.ClientsOf(r, returnTo)
	}
	var allowed []LoginUpstream
	for _, u := range lr.opts.Upstreams() {
		if len(u.AllowedClients) == 0 || slices.ContainsFunc(clients, func(c string) bool { return slices.Contains(u.AllowedClients, c) }) {
			allowed = append(allowed, u)
		}
	}
	if len(allowed) == 0 {
		lr.log.WarnContext(r.Context(), "login refused: the app may use no upstream", "clients", clients)
		return writeRouterPage(w, http.StatusForbidden, "This application may not sign in through any identity provider of this bridge.")
	}
	// A routed upstream decides itself whether it can be used (an OP not
	// discovered yet tries once more now).
	if u, why := route(allowed, hints(r, returnTo), clients); u != nil {
		lr.log.DebugContext(r.Context(), "login routed", "upstream", u.Name, "by", why)
		return lr.start(w, r, *u, returnTo)
	}
	if !slices.ContainsFunc(allowed, LoginUpstream.available) {
		return lr.unavailable(w, r, "", ErrUpstreamUnavailable)
	}
	ch := loginChoice{ReturnTo: returnTo}
	for _, u := range allowed {
		ch.Allowed = append(ch.Allowed, u.Name)
	}
	token, err := lr.park(r.Context(), ch)
	if err != nil {
		return err
	}
	w.Header().Set("Cache-Control", "no-store")
	http.Redirect(w, r, lr.opts.ChooserURL+"?state="+url.QueryEscape(token), http.StatusSeeOther)
	return nil
}

// start starts the login at u; an upstream that cannot be reached gets
// the 503 page here, so that every protocol's login says the same.
func (lr *LoginRouter) start(w http.ResponseWriter, r *http.Request, u LoginUpstream, returnTo string) error {
	err := u.Start(w, r, returnTo)
	if errors.Is(err, ErrUpstreamUnavailable) {
		return lr.unavailable(w, r, u.Name, err)
	}
	return err
}

// unavailable answers 503 with Retry-After and Unavailable's sentence.
func (lr *LoginRouter) unavailable(w http.ResponseWriter, r *http.Request, upstream string, err error) error {
	lr.log.WarnContext(r.Context(), "login at an unavailable upstream", "upstream", upstream, "err", err)
	msg, _ := Unavailable(err)
	w.Header().Set("Retry-After", RetryAfter)
	return writeRouterPage(w, http.StatusServiceUnavailable, msg)
}

// loginHints are what a downstream request says about where to log in.
type loginHints struct{ idp, domain string }

// hints reads idp_hint (or kc_idp_hint) and the domain of login_hint from
// the request (query or parsed form) and from returnTo's query.
func hints(r *http.Request, returnTo string) loginHints {
	var sources []url.Values
	if u, err := url.Parse(returnTo); err == nil {
		sources = append(sources, u.Query())
	}
	if r != nil {
		sources = append(sources, r.URL.Query(), r.PostForm)
	}
	var h loginHints
	for _, q := range sources {
		if h.idp == "" {
			h.idp = cmp.Or(q.Get("idp_hint"), q.Get("kc_idp_hint"))
		}
		if h.domain == "" {
			if lh := q.Get("login_hint"); strings.Contains(lh, "@") {
				h.domain = strings.ToLower(lh[strings.LastIndex(lh, "@")+1:])
			}
		}
	}
	return h
}

// route picks the upstream by hint, domain, app default or because it is
// the only one; nil means the chooser.
func route(ups []LoginUpstream, h loginHints, clients []string) (*LoginUpstream, string) {
	pick := func(ok func(LoginUpstream) bool) *LoginUpstream {
		if i := slices.IndexFunc(ups, ok); i >= 0 {
			return &ups[i]
		}
		return nil
	}
	if h.idp != "" {
		if u := pick(func(u LoginUpstream) bool { return u.Name == h.idp }); u != nil {
			return u, "idp_hint"
		}
	}
	if h.domain != "" {
		if u := pick(func(u LoginUpstream) bool {
			return slices.ContainsFunc(u.Domains, func(d string) bool { return strings.EqualFold(d, h.domain) })
		}); u != nil {
			return u, "login_hint domain"
		}
	}
	if u := pick(func(u LoginUpstream) bool {
		return slices.ContainsFunc(clients, func(c string) bool { return slices.Contains(u.Clients, c) })
	}); u != nil {
		return u, "client default"
	}
	if len(ups) == 1 {
		return &ups[0], "only upstream"
	}
	return nil, ""
}

// park stores a login for the chooser page under a new token.
func (lr *LoginRouter) park(ctx context.Context, ch loginChoice) (string, error) {
	b, err := json.Marshal(ch)
	if err != nil {
		return "", err
	}
	token := lr.opts.Engine.NewID()
	err = lr.opts.Engine.Store().PutRecord(ctx, store.Record{Namespace: nsLoginChoice, Key: token, Value: b,
		ExpiresAt: lr.opts.Engine.Now().Add(loginChoiceTTL)})
	if err != nil {
		return "", fmt.Errorf("slobridge: park the login for the chooser: %w", err)
	}
	return token, nil
}

// Mount serves the chooser page on ChooserPath.
func (lr *LoginRouter) Mount(r gin.IRouter) { r.GET(lr.opts.ChooserPath, lr.handleChooser) }

// chooserEntry is one line of the chooser page.
type chooserEntry struct{ Name, URL string }

// handleChooser is the chooser: GET ?state=T lists the upstreams; GET
// ?state=T&upstream=N takes the parked login and starts it there.
func (lr *LoginRouter) handleChooser(c *gin.Context) {
	ctx := c.Request.Context()
	token, name := c.Query("state"), c.Query("upstream")
	st := lr.opts.Engine.Store()
	now := lr.opts.Engine.Now()
	expired := "This login has expired; go back to the application and try again."
	var rec store.Record
	var err error
	if name == "" {
		rec, err = st.GetRecord(ctx, nsLoginChoice, token, now)
	} else {
		rec, err = st.TakeRecord(ctx, nsLoginChoice, token, now)
	}
	if errors.Is(err, store.ErrNotFound) || token == "" {
		_ = writeRouterPage(c.Writer, http.StatusBadRequest, expired)
		return
	}
	if err != nil {
		lr.log.ErrorContext(ctx, "read the parked login", "err", err)
		_ = writeRouterPage(c.Writer, FailureStatus(c.Writer.Header(), err), "The login could not be continued; try again.")
		return
	}
	var ch loginChoice
	if err := json.Unmarshal(rec.Value, &ch); err != nil {
		_ = writeRouterPage(c.Writer, http.StatusBadRequest, expired)
		return
	}
	ups := lr.opts.Upstreams()
	if name == "" {
		var list []chooserEntry
		for _, u := range ups {
			if !slices.Contains(ch.Allowed, u.Name) {
				continue
			}
			e := chooserEntry{Name: cmp.Or(u.DisplayName, u.Name)}
			if u.available() {
				e.URL = lr.opts.ChooserURL + "?state=" + url.QueryEscape(token) + "&upstream=" + url.QueryEscape(u.Name)
			}
			list = append(list, e)
		}
		h := c.Writer.Header()
		h.Set("Cache-Control", "no-store")
		h.Set("Content-Security-Policy", routerCSP)
		h.Set("Content-Type", "text/html; charset=utf-8")
		c.Status(http.StatusOK)
		_ = chooserTmpl.Execute(c.Writer, list)
		return
	}
	i := slices.IndexFunc(ups, func(u LoginUpstream) bool { return u.Name == name })
	if i < 0 || !slices.Contains(ch.Allowed, name) {
		_ = writeRouterPage(c.Writer, http.StatusBadRequest, "Unknown identity provider; go back to the application and try again.")
		return
	}
	if err := lr.start(c.Writer, c.Request, ups[i], ch.ReturnTo); err != nil {
		lr.log.ErrorContext(ctx, "start the login at the chosen upstream", "upstream", name, "err", err)
		msg := "The login could not be started; try again."
		if why, ok := Unavailable(err); ok {
			msg = why
		}
		_ = writeRouterPage(c.Writer, FailureStatus(c.Writer.Header(), err), msg)
	}
}

// routerCSP is the chooser's and its messages' policy: nothing runs.
const routerCSP = "default-src 'none'; frame-ancestors 'none'; form-action 'none'; base-uri 'none'"

var chooserTmpl = template.Must(template.New("chooser").Parse(`<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>Sign in</title></head>
<body><main><h1>Sign in with</h1><ul id="upstreams">
{{range .}}<li>{{if .URL}}<a href="{{.URL}}">{{.Name}}</a>{{else}}{{.Name}} (unavailable right now){{end}}</li>
{{end}}</ul></main></body></html>
`))

var routerMsgTmpl = template.Must(template.New("msg").Parse(`<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>Sign in</title></head>
<body><main><p id="message">{{.}}</p></main></body></html>
`))

// writeRouterPage answers with a message page.
func writeRouterPage(w http.ResponseWriter, status int, msg string) error {
	h := w.Header()
	h.Set("Cache-Control", "no-store")
	h.Set("Content-Security-Policy", routerCSP)
	h.Set("Content-Type", "text/html; charset=utf-8")
	w.WriteHeader(status)
	return routerMsgTmpl.Execute(w, msg)
}

// UpstreamLogouts is the upstream leg of a browser logout over several
// upstreams: the first that has a session in the logout takes the
// browser. A bridge session has one upstream, so only a logout of
// sessions at several upstreams at once (a user's "everywhere" after
// logins at two IdPs) leaves the others without their browser step.
type UpstreamLogouts []UpstreamLogout

// StartLogout implements UpstreamLogout.
func (ls UpstreamLogouts) StartLogout(w http.ResponseWriter, r *http.Request, lo store.Logout, returnTo string) (bool, error) {
	for _, l := range ls {
		started, err := l.StartLogout(w, r, lo, returnTo)
		if started || err != nil {
			return started, err
		}
	}
	return false, nil
}
