package demo

import (
	"encoding/json"
	"net/http"

	"github.com/slobridge/slobridge/oidc/resource"
)

// API is the demo resource server: it accepts the bridge's access tokens
// through oidc/resource and receives the bridge's session-revoked events at
// /events, so a token stops working the moment its session ends.
type API struct {
	Guard *resource.Guard
}

// Handler serves GET /data (protected), POST /events (the RFC 8935 push
// endpoint registered at the bridge) and, at its root, a page that says
// what it accepts and rejects.
func (a *API) Handler() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /{$}", func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "text/html; charset=utf-8")
		w.Header().Set("Content-Security-Policy", "default-src 'none'")
		_, _ = w.Write([]byte(apiPage))
	})
	mux.HandleFunc("GET /favicon.ico", noFavicon)
	mux.Handle("GET /data", a.Guard.Middleware(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		t, _ := resource.TokenFromContext(r.Context())
		w.Header().Set("Content-Type", "application/json")
		w.Header().Set("Cache-Control", "no-store")
		_ = json.NewEncoder(w).Encode(map[string]string{"message": "hello from the demo API", "sub": t.Subject, "client_id": t.ClientID})
	})))
	mux.Handle("POST /events", a.Guard.EventHandler())
	return mux
}

// apiPage is the Reports API's root page.
const apiPage = `<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>Reports API</title><link rel="icon" href="data:,"></head>
<body><h1>Reports API (demo resource server)</h1>
<p>It is what a company's APIs would be: it trusts the bridge's access tokens, and stops trusting them the moment the session they belong to ends.</p>
<ul>
<li><code>GET /data</code> with <code>Authorization: Bearer &lt;access token from the bridge&gt;</code>:
<strong>200</strong> with a JSON greeting while the token's bridge session is alive;
<strong>401</strong> without a token, with a token that does not verify against the bridge's keys, that has expired,
or whose session has ended (the bridge pushed a session-revoked event).</li>
<li><code>POST /events</code>: where the bridge pushes those events (Shared Signals, RFC 8935), authenticated with the push secret the demo registered.
Anything else is refused.</li>
</ul>
<p>The demo's OIDC apps call <code>GET /data</code> with their tokens and show the answer: log out anywhere and reload them.</p>
</body></html>
`

// noFavicon answers a browser's favicon request: there is none (the pages
// say so with an empty icon link); no 404 in the logs.
func noFavicon(w http.ResponseWriter, _ *http.Request) {
	w.Header().Set("Cache-Control", "public, max-age=86400")
	w.WriteHeader(http.StatusNoContent)
}
