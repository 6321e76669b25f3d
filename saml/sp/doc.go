// Package sp is the bridge as a SAML service provider toward its upstream
// IdPs: users log in there, and single logout runs both ways.
//
// Routes (SP.Mount):
//
//	GET  /saml/sp/metadata                  SP metadata: signing cert, ACS (POST), SLO (Redirect, POST, SOAP)
//	GET  /saml/sp/login?state=T[&upstream=N] chooser page when several upstreams fit
//	POST /saml/sp/acs                       assertion consumer service
//	GET|POST /saml/sp/slo                   front-channel LogoutRequests from IdPs, LogoutResponses to ours
//	POST /saml/sp/slo/soap                  back-channel (SOAP) LogoutRequests from IdPs
//	GET  /saml/sp/slo/complete/:logout_id   answers an IdP's LogoutRequest after the logout page
//
// Login (slobridge.Authenticator): StartLogin sends a signed AuthnRequest
// (Redirect with a query signature, else POST) and remembers its ID under
// an unguessable RelayState in the store, bound to the browser by a
// cookie. The ACS validates the Response with crewjam/saml against that ID
// only, refuses a second assertion and a replayed assertion ID, maps the
// configured attributes to claims, and establishes the bridge session
// through the engine, keeping the upstream NameID exactly as issued and the
// SessionIndex; SessionNotOnOrAfter caps the session.
//
// Re-login: a login started while the browser holds an active bridge
// session (OIDC prompt=login or max_age, a downstream ForceAuthn) asks the
// upstream for ForceAuthn and remembers that session in the login state,
// since the cross-site ACS POST carries no SameSite=Lax cookie. At the ACS
// (slobridge.Engine.EstablishLogin) a login of the same user keeps that
// session — same sid and downstream SessionIndexes — with the new NameID,
// SessionIndex, attributes, auth time and cap; the earlier upstream login
// moves to Session.PriorLogins. A login of another user logs the old
// session out (back-channel apps at once, front-channel ones on the
// logout page the browser passes through) and creates a new one.
//
// An upstream LogoutRequest matches a session by its current login or an
// earlier one (by NameID, and SessionIndex when given): an IdP may end the
// session it issued first, and the apps that joined under that login are
// in the kept session, so it ends; ending a session too many is safe where
// leaving one alive is not. The bridge's own LogoutRequest names the
// current SessionIndex and the earlier ones of the same NameID.
//
// IdP-initiated logout: a LogoutRequest in any binding is authenticated
// and validated by package saml, sessions are matched by NameID (and
// SessionIndex when given), the engine ends them and fans out; the bridge
// answers a signed LogoutResponse: Success, or Success/PartialLogout when
// a participant could not be logged out — for SOAP once the back-channel
// deliveries are final or SOAPLogoutWait passed, for a browser after the
// logout page. A refused request gets Requester (RequestDenied,
// UnknownPrincipal ...) when its signature verified, else HTTP 400 and no
// SAML answer. On the SOAP endpoint every request from a configured IdP
// whose ID can be read is answered in SAML (Requester/RequestDenied for a
// bad signature); only what cannot be (not SOAP, unknown issuer) gets a
// SOAP fault, with HTTP 500 as SOAP 1.1 §6.2 requires.
//
// Framing: IdPs such as Shibboleth and SimpleSAMLphp propagate a logout
// to their SPs in iframes of their own logout page. For a logout that an
// upstream started by a front-channel LogoutRequest, the SP therefore
// records (Engine.SetFrameAncestors) the origins of that IdP's
// front-channel SLO endpoints (from its metadata): the logout page, the
// SAML IdP's framed LogoutRequest forms to downstream SPs, and the
// LogoutResponse form that answers the IdP may be framed by those origins
// and by nobody else. Every other logout page keeps
// frame-ancestors 'none': a downstream SP's LogoutRequest is a top-level
// navigation (Profiles §4.4.3.1 has the SP redirect the user agent to the
// IdP and expect it back; crewjam samlsp, gosaml2, Shibboleth SP and
// SimpleSAMLphp all do so), so framing there would only widen the
// clickjacking surface of a page with a Continue step.
//
// Logout toward the upstream (slobridge.UpstreamLogout): StartLogout sends
// the browser to the IdP with a signed LogoutRequest carrying the
// session's NameID and SessionIndex; the LogoutResponse is validated
// (signature, Issuer, InResponseTo, Destination) before the logout
// continues. The upstream leg of a logout without a browser (admin,
// system, a downstream SP's SOAP LogoutRequest), and toward an upstream
// that offers only SOAP, is a participant of the logout (UpstreamLegs,
// kind LegKind): a delivery of the engine's durable outbox, sent by
// SP.Notify as a signed SOAP LogoutRequest and retried like any other
// delivery, so that neither a crash nor an upstream outage loses it.
// LogoutRequests from an IdP may carry an EncryptedID, decrypted with the
// key the SP metadata offers for encryption.
//
// Wiring: build Options (Config.Options loads the YAML part), call New,
// Mount the routes, register the SP as the notifier of LegKind and its
// UpstreamLegs on the engine, pass it as the logout page's Upstream and as
// the OIDC/SAML IdP Authenticator, and run SP.Run in the background.
package sp
