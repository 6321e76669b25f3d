// Package oidc is slobridge's OpenID Provider toward downstream apps.
//
// It serves OpenID Connect Discovery 1.0 and a JWKS, the authorization code
// flow with PKCE (RFC 7636), the token endpoint (RFC 6749 §3.2, with
// client_secret_basic, client_secret_post and public clients), userinfo,
// RFC 7591 dynamic client registration, and the three OpenID Connect logout
// specifications:
//
//   - RP-Initiated Logout 1.0 at the end-session endpoint (endsession.go);
//   - Front-Channel Logout 1.0: the participant's iframe URL, rendered by
//     the bridge's logout page (frontchannel.go, ../logoutpage.go);
//   - Back-Channel Logout 1.0: a slobridge.Notifier that POSTs a signed
//     logout token (backchannel.go).
//
// Every successful code exchange makes the client a participant of the
// bridge session, so a logout anywhere reaches it. Each endpoint is a thin
// gin handler over parse, validate and act functions that take a
// context.Context and typed values and are testable without HTTP.
//
// Signing keys live in the store (store.Key with Use "oidc") so every
// replica signs with and publishes the same keys; see keys.go for rotation.
package oidc
