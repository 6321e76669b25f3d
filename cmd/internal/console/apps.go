package console

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"strconv"
	"strings"

	"github.com/gin-gonic/gin"

	"github.com/slobridge/slobridge/store"
)

// App is one registered app as the Apps page shows it.
type App struct {
	// Kind is "oidc" or "saml"; ID the client ID or SP entity ID.
	Kind, ID, Name string
	// Channels is "back", "front", "back+front" or "none"; BackChannel
	// and FrontChannel are where each goes.
	Channels, BackChannel, FrontChannel string
	// Static is set for an app from the configuration file (changed
	// there, not here); Disabled for one an operator disabled.
	Static, Disabled bool
}

// OIDCClientForm is an OIDC client as an operator registers it.
type OIDCClientForm struct {
	Name string
	// RedirectURIs and PostLogoutRedirectURIs are exact URIs.
	RedirectURIs, PostLogoutRedirectURIs []string
	// BackChannelLogoutURI and FrontChannelLogoutURI are the logout
	// channels (either, both or none).
	BackChannelLogoutURI, FrontChannelLogoutURI string
	// Public registers a client without a secret (PKCE only).
	Public bool
}

// AppActions change the registered apps. Errors wrapping ErrInvalidApp
// are the operator's to fix and are shown to them.
type AppActions interface {
	// RegisterSAML registers a SAML SP from its metadata URL or, when
	// metadata is set, from the metadata itself.
	RegisterSAML(ctx context.Context, metadataURL string, metadata []byte, name string) (App, error)
	// RegisterOIDC registers an OIDC client and returns it with its
	// secret (empty for a public client), shown once.
	RegisterOIDC(ctx context.Context, f OIDCClientForm) (App, string, error)
	// SetDisabled disables or enables a run-time registration.
	SetDisabled(ctx context.Context, kind, id string, disabled bool) error
}

// ErrInvalidApp marks what an operator asked of AppActions that cannot be
// done (bad metadata, a redirect URI that is not allowed, an unknown or
// configured app); its message says why.
var ErrInvalidApp = errors.New("console: invalid app")

// appPage is how many apps the Apps page lists at a time.
const appPage = 100

// appsView is a page of the Apps page.
type appsView struct {
	Apps []App
	// Actions is set when apps may be registered and disabled here.
	Actions bool
	// From is the first app's position; Total counts every app; Prev and
	// Next are the positions of the neighbouring pages (-1 for none).
	From, Total, Prev, Next int
}

// handleApps lists the registered apps with their logout channels, a page
// at a time.
func (c *Console) handleApps(g *gin.Context) {
	var apps []App
	if c.opts.Apps != nil {
		var err error
		if apps, err = c.opts.Apps(g.Request.Context()); err != nil {
			c.fail(g, "list apps", err)
			return
		}
	}
	from := 0
	if f := g.Query("from"); f != "" {
		n, err := strconv.Atoi(f)
		if err != nil || n < 0 || (n > 0 && n >= len(apps)) {
			c.page(g, http.StatusBadRequest, "message", msgView{Title: "Apps", Message: "That page position is not valid."})
			return
		}
		from = n
	}
	v := appsView{Apps: apps[from:min(from+appPage, len(apps))], Actions: c.opts.AppActions != nil, From: from, Total: len(apps), Prev: -1, Next: -1}
	if from > 0 {
		v.Prev = max(from-appPage, 0)
	}
	if from+appPage < len(apps) {
		v.Next = from + appPage
	}
	c.page(g, http.StatusOK, "apps", v)
}

// registeredView is the page after a registration.
type registeredView struct {
	App App
	// Secret is the new OIDC client's secret, shown this once.
	Secret string
}

// appRefused answers an app action that cannot be done: the operator's
// mistake (400, with why) or the bridge's failure.
func (c *Console) appRefused(g *gin.Context, op store.Session, action, target string, err error) {
	c.audit(g, op, action, target, "", "refused: "+err.Error())
	if errors.Is(err, ErrInvalidApp) {
		c.page(g, http.StatusBadRequest, "message", msgView{Title: "Apps", Message: strings.TrimPrefix(err.Error(), ErrInvalidApp.Error()+": ")})
		return
	}
	c.fail(g, action, err)
}

// handleRegisterSAML registers a SAML SP from a metadata URL or pasted
// metadata.
func (c *Console) handleRegisterSAML(g *gin.Context) {
	op := g.MustGet(ctxOperator).(store.Session)
	f := g.Request.PostForm
	u, md, name := strings.TrimSpace(f.Get("metadata_url")), strings.TrimSpace(f.Get("metadata")), strings.TrimSpace(f.Get("name"))
	if (u == "") == (md == "") {
		c.appRefused(g, op, "register saml sp", u, fmt.Errorf("%w: give the SP's metadata URL or paste its metadata, one of the two", ErrInvalidApp))
		return
	}
	var raw []byte
	if md != "" {
		raw = []byte(md)
	}
	app, err := c.opts.AppActions.RegisterSAML(g.Request.Context(), u, raw, name)
	if err != nil {
		c.appRefused(g, op, "register saml sp", u, err)
		return
	}
	c.audit(g, op, "register saml sp", "sp "+app.ID, "", "registered")
	c.page(g, http.StatusOK, "registered", registeredView{App: app})
}

// lines splits a textarea into its non-empty lines.
func lines(s string) []string {
	var out []string
	for l := range strings.Lines(s) {
		if l = strings.TrimSpace(l); l != "" {
			out = append(out, l)
		}
	}
	return out
}

// handleRegisterOIDC registers an OIDC client from the form and shows its
// secret once.
func (c *Console) handleRegisterOIDC(g *gin.Context) {
	op := g.MustGet(ctxOperator).(store.Session)
	f := g.Request.PostForm
	form := OIDCClientForm{Name: strings.TrimSpace(f.Get("name")), RedirectURIs: lines(f.Get("redirect_uris")),
		PostLogoutRedirectURIs: lines(f.Get("post_logout_redirect_uris")), BackChannelLogoutURI: strings.TrimSpace(f.Get("backchannel_logout_uri")),
		FrontChannelLogoutURI: strings.TrimSpace(f.Get("frontchannel_logout_uri")), Public: f.Get("public") == "on"}
	app, secret, err := c.opts.AppActions.RegisterOIDC(g.Request.Context(), form)
	if err != nil {
		c.appRefused(g, op, "register oidc client", form.Name, err)
		return
	}
	c.audit(g, op, "register oidc client", "client "+app.ID, "", "registered")
	c.page(g, http.StatusOK, "registered", registeredView{App: app, Secret: secret})
}

// handleDisableApp disables or enables a run-time registration.
func (c *Console) handleDisableApp(g *gin.Context) {
	op := g.MustGet(ctxOperator).(store.Session)
	f := g.Request.PostForm
	kind, id, disabled := f.Get("kind"), f.Get("id"), f.Get("disabled") == "true"
	action := "enable app"
	if disabled {
		action = "disable app"
	}
	if err := c.opts.AppActions.SetDisabled(g.Request.Context(), kind, id, disabled); err != nil {
		c.appRefused(g, op, action, kind+" "+id, err)
		return
	}
	c.audit(g, op, action, kind+" "+id, "", "done")
	g.Redirect(http.StatusSeeOther, c.path("/apps"))
}
