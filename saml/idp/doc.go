// Package idp is slobridge's SAML 2.0 identity provider toward downstream
// service providers (SPs).
//
// crewjam/saml's IdentityProvider serves SSO but has no single logout, does
// not check AuthnRequest signatures and signs with RSA-SHA1 by default, so
// this package uses crewjam's XML types only and writes the rest:
//
//   - SP registration from metadata (file or URL) in the configuration and
//     through Register for the admin API (registry.go); metadata fetched
//     by URL is refreshed by Run, keeping the last good copy (refresh.go);
//   - the IdP metadata at /saml/idp/metadata with SSO and SLO endpoints for
//     the HTTP-Redirect, HTTP-POST and SOAP bindings (metadata.go);
//   - SSO: the AuthnRequest is validated (signature, ACS URL against the
//     SP's metadata, replay, time), the browser is sent to the upstream
//     login when it has no bridge session, and the SP receives an
//     RSA-SHA256 signed assertion with a NameID chosen per SP and a
//     SessionIndex unique to (bridge session, SP); the SP becomes a
//     participant of the bridge session (sso.go, authnrequest.go,
//     assertion.go, nameid.go);
//   - SP-initiated single logout in every binding (slo.go): the engine ends
//     the session and notifies every other participant, and the initiating
//     SP gets a signed LogoutResponse, Success or PartialLogout;
//   - notifying SAML participants: front-channel SPs get their
//     LogoutRequest from the bridge's logout page, one iframe per SP, or,
//     when configured, by a top-level redirect chain that the logout page's
//     continue step runs (IdP.NextTopLevel: the IdP is the engine's
//     slobridge.FrontChannel for kind "saml") for every browser logout.
//     Each is a browser leg of the engine (Engine.BeginBrowserLeg with a
//     deadline, Config.FrameAnswerTimeout or TopLevelStepTimeout); the
//     LogoutResponses are validated and end the leg (EndBrowserLeg), which
//     the status page and Engine.Outcome read, and are counted in
//     slobridge_saml_front_channel_responses_total (front.go, metrics.go).
//     A top-level step whose SP never sends the browser back is failed at
//     its deadline, and the chain goes on when the browser comes back to
//     the bridge. Back-channel SPs get a SOAP LogoutRequest from an engine
//     notifier, retried by the engine until the SP answers Success
//     (notifier.go). The answer to the initiator is Success, or
//     Success/PartialLogout when a participant was not reached
//     (outcome.go, Engine.Outcome). The SP-initiated SOAP logout is in
//     soap.go; having no browser, its upstream IdP leg is a SOAP delivery
//     of the outbox (saml/sp.SP.UpstreamLegs), waited for with the others
//     before the SP is answered. A refused
//     SOAP LogoutRequest from a registered SP with a readable ID gets a
//     signed Requester LogoutResponse in a 200 envelope; only what cannot
//     be answered in SAML gets a SOAP fault, with HTTP 500 (SOAP 1.1 §6.2).
//
// Framing: the pages the bridge shows a downstream SP's logout (the
// LogoutResponse form) keep frame-ancestors 'none' — SP-initiated logout
// is a top-level navigation (Profiles §4.4.3.1) in every SP we know. The
// forms the logout page frames for front-channel SPs allow the bridge
// ('self') and, when an upstream IdP started the logout and frames the
// whole of it (Engine.SetFrameAncestors), that IdP's origins too.
//
// The binding codec (Redirect/POST/SOAP encode, decode, sign, verify) and
// the LogoutRequest/LogoutResponse builders and validators are shared with
// the upstream SP and live in package saml.
package idp
