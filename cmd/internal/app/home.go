package app

import (
	"html/template"
	"net/http"
	"sync/atomic"

	"github.com/gin-gonic/gin"

	"github.com/slobridge/slobridge"
	"github.com/slobridge/slobridge/oidc"
	"github.com/slobridge/slobridge/saml/idp"
	"github.com/slobridge/slobridge/saml/sp"
)

// Home is what the bridge's root page shows besides the bridge's own
// endpoints: the demo lists its apps and what to try.
type Home struct {
	// Intro is a paragraph under the title.
	Intro string
	// Links are shown as a list of named links with a note each.
	Links []HomeLink
	// Steps are shown as a numbered list.
	Steps []string
}

// HomeLink is one link of the root page.
type HomeLink struct {
	Name, URL, Note string
}

// homeView is what the root page renders.
type homeView struct {
	Home
	Endpoints []HomeLink
}

// SetHome sets what the root page shows besides the bridge's endpoints.
func (a *App) SetHome(h Home) { a.home.Store(&h) }

// homeState holds the page's extra content.
type homeState = atomic.Pointer[Home]

// handleHome renders the root page: the bridge's discovery and metadata
// URLs and probes, so that a person who opens the bridge's address sees
// what it is rather than a JSON 404.
func (a *App) handleHome(c *gin.Context) {
	base := a.BaseURL()
	v := homeView{Endpoints: []HomeLink{
		{Name: "OpenID Provider discovery", URL: base + oidc.PathDiscovery, Note: "issuer " + base},
	}}
	if a.samlIdP != nil {
		v.Endpoints = append(v.Endpoints, HomeLink{Name: "SAML IdP metadata", URL: base + idp.PathMetadata, Note: "for downstream SAML service providers"})
	}
	if a.samlSP != nil {
		v.Endpoints = append(v.Endpoints, HomeLink{Name: "SAML SP metadata", URL: base + sp.PathMetadata, Note: "register the bridge at the upstream IdP with it"})
	}
	v.Endpoints = append(v.Endpoints, HomeLink{Name: "Readiness", URL: base + slobridge.PathReadyz, Note: "store and upstream state"})
	if h := a.home.Load(); h != nil {
		v.Home = *h
	}
	c.Header("Cache-Control", "no-store")
	c.Header("Content-Security-Policy", "default-src 'none'; img-src data:")
	c.Header("Content-Type", "text/html; charset=utf-8")
	c.Status(http.StatusOK)
	_ = homePage.Execute(c.Writer, v)
}

// handleFavicon answers browsers' favicon requests without a 404.
func handleFavicon(c *gin.Context) {
	c.Header("Cache-Control", "public, max-age=86400")
	c.Status(http.StatusNoContent)
}

var homePage = template.Must(template.New("home").Parse(`<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>slobridge</title><link rel="icon" href="data:,"></head>
<body><h1>slobridge</h1>
<p>A single-logout bridge: an OpenID Provider and SAML IdP toward the apps, a SAML service provider toward the upstream IdP; one logout anywhere reaches every app and the upstream.</p>
{{with .Intro}}<p>{{.}}</p>{{end}}
{{with .Links}}<ul id="links">{{range .}}<li><a href="{{.URL}}">{{.Name}}</a>{{with .Note}} — {{.}}{{end}}</li>{{end}}</ul>{{end}}
{{with .Steps}}<h2>Try it</h2><ol id="steps">{{range .}}<li>{{.}}</li>{{end}}</ol>{{end}}
<h2>Endpoints</h2>
<ul id="endpoints">{{range .Endpoints}}<li><a href="{{.URL}}">{{.Name}}</a>{{with .Note}} — {{.}}{{end}}</li>{{end}}</ul>
</body></html>`))
