// Package saml holds what both SAML roles of the bridge share: the binding
// codec and the single-logout messages. saml/sp (the bridge as service
// provider toward upstream IdPs) and saml/idp (the bridge as IdP toward
// downstream SPs) use the same functions; nothing here knows which side it
// is on.
//
// crewjam/saml v0.5.1 supplies XML types (NameID) and goxmldsig the
// enveloped signature primitive, but its logout support is incomplete and
// partly wrong (no LogoutRequest validator, XML signatures inside
// HTTP-Redirect messages, no InResponseTo check, a panic on a signed
// response without Issuer), so the bindings and the validation are written
// here.
//
// # Receiving
//
// Decode, then authenticate and validate; process only what the
// validator returns:
//
//	m, err := saml.ReadHTTP(r, saml.Limits{})        // or DecodeRedirect / DecodePOST / DecodeSOAP
//	// err: HTTP 400 (for SOAP a fault, with HTTP 500: SOAP 1.1 §6.2); nothing else happens.
//	peer := lookup(m.UnverifiedIssuer())              // the sender's saml.Trust from its metadata
//	req, err := v.LogoutRequest(ctx, m, peer, ourEndpointURL)
//	// errors.Is(err, saml.ErrMalformed|saml.ErrSignature): HTTP 400, no SAML answer
//	// (SOAP: Requester/RequestDenied when the peer and m.UnverifiedLogoutRequestID are known).
//	// *saml.Error: answer a LogoutResponse with saml.StatusOf(err).
//
// Decoders cap sizes before anything else (Limits: the query or body, and
// the XML after base64 and inflation), refuse XML with a DTD or any
// directive, more than one root, deep nesting, or constructs that do not
// survive an encoding/xml round trip.
//
// Verify authenticates a message: for HTTP-Redirect the detached query
// signature over the octets "SAMLRequest=v[&RelayState=v]&SigAlg=v" taken
// from the raw query string as received (Bindings §3.4.4.1); for HTTP-POST
// and SOAP the enveloped XML signature (VerifyEnveloped), which first
// refuses every signature-wrapping shape (more than one signature, a
// signature anywhere but right after the root's Issuer, a Reference to
// anything but the root's unique ID) and returns the element re-read from
// the verified canonical bytes. SigAlg RSA-SHA256 and ECDSA-SHA256; SHA-1
// only when Trust.AllowSHA1.
//
// VerifyMetadata does the same for signed SAML metadata (the signature is
// the root's first child there).
//
// Validator.LogoutRequest and Validator.LogoutResponse add the protocol
// checks: Issuer, Destination, IssueInstant with skew, NotOnOrAfter,
// InResponseTo, and the message ID recorded in the store
// (store.CheckReplay, namespace ReplayNamespace).
//
// # Sending
//
// Build a LogoutRequest or LogoutResponse, render it with Element, then
// per binding:
//
//	u, _ := saml.RedirectURL(endpoint, saml.ParamRequest, req.Element(), relayState, signer) // query signature
//	signed, _ := signer.SignEnveloped(req.Element())                                          // POST and SOAP
//	saml.WritePOSTForm(w, endpoint, saml.ParamRequest, signed, relayState)
//	m, err := saml.CallSOAP(ctx, client, endpoint, signed, saml.Limits{}, nil)                     // back-channel
//	saml.WriteSOAP(w, signedResponse)                                                         // SOAP answer
//
// LogoutResponse.Status/SubStatus carry Success, Success+PartialLogout,
// Requester, Responder; StatusOf maps a validation error to them.
package saml
