// Package ssf is slobridge's Shared Signals transmitter: on every logout it
// tells registered resource servers (event receivers) that the bridge
// session was revoked, so that access tokens already handed out stop
// working at once instead of when they expire.
//
// Each event is a Security Event Token (RFC 8417, header typ
// "secevent+jwt") carrying the OpenID CAEP session-revoked event, whose
// subject (SSF §3, a "complex" subject) names the user (iss_sub) and the
// bridge session (opaque id = the OIDC sid). It is pushed per RFC 8935
// through the engine's durable outbox: receivers are participants of kind
// "ssf", so a receiver that is down gets the event when it comes back.
// Transmitter metadata is served at /.well-known/ssf-configuration.
package ssf
