package demo

import (
	"context"
	"encoding/json"
	"html/template"
	"net/http"
	"time"
)

// appView is what an app page shows.
type appView struct {
	App, Protocol, Channel string
	LoggedIn               bool
	User, Email, SID       string
	// SIDLabel names SID for a person: the OIDC sid, or the SAML
	// SessionIndex the bridge issued to the app.
	SIDLabel         string
	API              string // "", "accepted", or "rejected: ..."
	LoggedOutJustNow bool
	// EndedBy says how the app learned that the login ended.
	EndedBy string
	// Notices lists every logout notice of the login, first one first
	// (the SAML app can be told by the front and the back channel).
	Notices []string
}

var appPage = template.Must(template.New("app").Parse(`<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>{{.App}}</title><link rel="icon" href="data:,">
<style>
body{font-family:system-ui,sans-serif;max-width:44rem;margin:2rem auto;padding:0 1rem;color:#1d2433}
.card{border:1px solid #d5dae3;border-radius:.5rem;padding:1rem 1.25rem;margin:1rem 0}
.ok{color:#0a7a34;font-weight:600}.bad{color:#b3261e;font-weight:600}
button{font-size:1rem;padding:.4rem 1rem;border-radius:.4rem;border:1px solid #1d2433;background:#fff;cursor:pointer}
code{background:#f2f4f7;padding:.1rem .3rem;border-radius:.2rem}
</style></head><body>
<h1>{{.App}}</h1>
<p>Signs in through <strong>{{.Protocol}}</strong>; told about logouts by <strong>{{.Channel}}</strong>.</p>
<div class="card" id="status">
{{if .LoggedIn}}
<p id="state" class="ok">Logged in as <strong id="user">{{.User}}</strong>{{if .Email}} ({{.Email}}){{end}}</p>
<p>{{.SIDLabel}}: <code id="sid">{{.SID}}</code></p>
{{if .API}}<p>Demo API with this app's access token: <span id="api" class="{{if eq .API "accepted"}}ok{{else}}bad{{end}}">{{.API}}</span></p>{{end}}
<form method="post" action="/logout"><button id="logout" type="submit">Log out everywhere</button></form>
{{else}}
<p id="state" class="bad">Logged out{{if .LoggedOutJustNow}} — single logout finished{{end}}</p>
{{if .EndedBy}}<p>How this app learned it: <span id="ended-by">{{.EndedBy}}</span></p>{{end}}
{{if gt (len .Notices) 1}}<p>Every logout notice it received (being told again is harmless):</p>
<ul id="notices">{{range .Notices}}<li>{{.}}</li>{{end}}</ul>{{end}}
{{if .API}}<p>Demo API with the access token this app still holds: <span id="api" class="{{if eq .API "accepted"}}ok{{else}}bad{{end}}">{{.API}}</span></p>{{end}}
<p><a id="login" href="/login">Log in</a></p>
{{end}}
</div>
</body></html>`))

func renderApp(w http.ResponseWriter, v appView) {
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	w.Header().Set("Cache-Control", "no-store")
	_ = appPage.Execute(w, v)
}

func (a *RP) view(r *http.Request) appView {
	v := appView{App: a.cfg.Name, Protocol: "OpenID Connect", Channel: "back-channel logout", SIDLabel: "Bridge session (OIDC sid)",
		LoggedOutJustNow: r.URL.Query().Get("logged_out") == "1"}
	if a.cfg.FrontChannel {
		v.Channel = "front-channel logout"
	}
	_, s := a.session(r)
	var tok string
	a.mu.Lock()
	if s != nil && s.Subject != "" {
		v.LoggedIn, v.User, v.Email, v.SID, v.EndedBy = s.EndedBy == "", s.Subject, s.Email, s.SID, s.EndedBy
		if s.Token != nil {
			tok = s.Token.AccessToken
		}
	}
	a.mu.Unlock()
	// Only the front-channel app checks its session at the bridge: the
	// back-channel app relies on logout tokens, as such apps do.
	if v.LoggedIn && a.cfg.FrontChannel && tok != "" && !a.checkSession(r.Context(), tok) {
		a.mu.Lock()
		if s.EndedBy == "" {
			s.EndedBy, s.IDToken = EndedBySessionCheck, ""
		}
		v.LoggedIn, v.EndedBy = false, s.EndedBy
		a.mu.Unlock()
	}
	if a.cfg.APIURL != "" && tok != "" {
		v.API = callAPI(r.Context(), a.cfg.HTTPClient, a.cfg.APIURL, tok)
	}
	return v
}

func (a *RP) home(w http.ResponseWriter, r *http.Request) { renderApp(w, a.view(r)) }

// whoami is the page's state as JSON, for scripts and tests.
func (a *RP) whoami(w http.ResponseWriter, r *http.Request) {
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "no-store")
	_ = json.NewEncoder(w).Encode(a.view(r))
}

// callAPI calls the demo API with a bearer token and says whether it was
// accepted.
func callAPI(ctx context.Context, c *http.Client, apiURL, token string) string {
	ctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, apiURL, nil)
	if err != nil {
		return "rejected: " + err.Error()
	}
	req.Header.Set("Authorization", "Bearer "+token)
	resp, err := c.Do(req)
	if err != nil {
		return "unreachable: " + err.Error()
	}
	resp.Body.Close()
	if resp.StatusCode == http.StatusOK {
		return "accepted"
	}
	return "rejected: HTTP " + resp.Status + " " + resp.Header.Get("WWW-Authenticate")
}
