package oidc

import (
	"net/http"
	"strconv"
	"time"

	"github.com/gin-gonic/gin"
)

// corsMaxAge is how long a browser may cache a preflight answer.
const corsMaxAge = 10 * time.Minute

// corsPaths are the endpoints a browser application (an SPA using the
// code flow with PKCE, e.g. oidc-client-ts) calls with fetch: discovery
// and JWKS (public documents), token, userinfo and revocation. They are
// open to every origin without credentials (Access-Control-Allow-Origin
// "*", never Allow-Credentials): none of them reads the bridge's cookie,
// so another origin gains nothing it could not do from a server, and a
// public client's code is useless without its PKCE verifier. The browser
// endpoints (authorize, end-session) are navigations, and introspection
// and registration are server-to-server, so they get no CORS headers.
var corsPaths = []string{PathDiscovery, PathJWKS, PathToken, PathUserinfo, PathRevoke}

// cors adds the CORS response headers (Fetch Standard §3.2). They are
// the same with or without an Origin, so a cached discovery document or
// JWKS serves both kinds of request (no Vary: Origin needed).
func cors(c *gin.Context) {
	h := c.Writer.Header()
	h.Set("Access-Control-Allow-Origin", "*")
	// RFC 6750 §3: the client must be able to read the Bearer challenge.
	h.Set("Access-Control-Expose-Headers", "WWW-Authenticate")
}

// handlePreflight answers a CORS preflight (OPTIONS) for a corsPaths
// endpoint: simple form posts need none, but a token request with
// client_secret_basic or a userinfo call with a bearer token sends
// Authorization, which needs one.
func handlePreflight(c *gin.Context) {
	cors(c)
	h := c.Writer.Header()
	h.Set("Access-Control-Allow-Methods", "GET, POST, OPTIONS")
	h.Set("Access-Control-Allow-Headers", "Authorization, Content-Type")
	h.Set("Access-Control-Max-Age", strconv.Itoa(int(corsMaxAge.Seconds())))
	c.Status(http.StatusNoContent)
}
