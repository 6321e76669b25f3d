// Package resource is the Go package a resource server (an API) uses to
// accept slobridge access tokens and to stop accepting them the moment the
// bridge session behind them ends.
//
// A Guard verifies JWT access tokens (RFC 9068: header typ "at+jwt") with
// go-oidc against the bridge's JWKS, and rejects tokens whose session (the
// `sid` claim) has ended. It learns about ended sessions from the
// session-revoked Security Event Tokens the bridge pushes (RFC 8935; mount
// Guard.EventHandler at the push URL registered with the bridge), keeps
// them in memory until every token of the session has expired, and falls
// back to token introspection (RFC 7662) for tokens issued before it
// started listening, i.e. when it may have missed events (after its own
// restart). A rejected token gets 401 with
// `WWW-Authenticate: Bearer error="invalid_token"` (RFC 6750 §3).
//
// Middleware wraps a net/http handler; Gin adapts it for gin routers.
package resource
