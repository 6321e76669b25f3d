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

// Handler serves GET /data (protected) and POST /events (the RFC 8935 push
// endpoint registered at the bridge).
func (a *API) Handler() http.Handler {
	mux := http.NewServeMux()
	mux.Handle("GET /data", a.Guard.Middleware(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		t, _ := resource.TokenFromContext(r.Context())
		w.Header().Set("Content-Type", "application/json")
		w.Header().Set("Cache-Control", "no-store")
		_ = json.NewEncoder(w).Encode(map[string]string{"message": "hello from the demo API", "sub": t.Subject, "client_id": t.ClientID})
	})))
	mux.Handle("POST /events", a.Guard.EventHandler())
	return mux
}
