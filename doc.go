// Package slobridge is the protocol-neutral logout engine of the slobridge
// single-logout bridge.
//
// A bridge session is one user's login at an upstream IdP; every downstream
// app that receives a login inside it becomes a participant. Engine.Logout
// ends sessions in one store transaction that also snapshots their
// participants and writes one durable delivery per back-channel participant
// to the outbox; delivery workers (Engine.Run) then send those notifications
// through the Notifier registered for each participant kind, with bounded
// concurrency, per-attempt timeouts, exponential backoff with jitter and a
// give-up age. Protocol packages (oidc, saml) translate their messages into
// engine calls and implement the notifiers; this package knows nothing of
// HTTP handlers or protocol formats.
package slobridge
