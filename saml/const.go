package saml

// SAML 2.0 binding URIs (SAML Bindings §3.2, §3.4, §3.5).
const (
	BindingSOAP     = "urn:oasis:names:tc:SAML:2.0:bindings:SOAP"
	BindingRedirect = "urn:oasis:names:tc:SAML:2.0:bindings:HTTP-Redirect"
	BindingPOST     = "urn:oasis:names:tc:SAML:2.0:bindings:HTTP-POST"
)

// NameIDFormatUnspecified is the NameID Format that says nothing (Core
// §8.3.1): it, like an absent Format, matches any Format.
const NameIDFormatUnspecified = "urn:oasis:names:tc:SAML:1.1:nameid-format:unspecified"

// Signature algorithm URIs used in the SigAlg query parameter of the
// HTTP-Redirect binding and in ds:SignatureMethod (RFC 4051, XMLDSig).
const (
	SigAlgRSASHA256   = "http://www.w3.org/2001/04/xmldsig-more#rsa-sha256"
	SigAlgECDSASHA256 = "http://www.w3.org/2001/04/xmldsig-more#ecdsa-sha256"
	// SigAlgRSASHA1 and SigAlgECDSASHA1 are refused unless a Trust allows
	// SHA-1.
	SigAlgRSASHA1   = "http://www.w3.org/2000/09/xmldsig#rsa-sha1"
	SigAlgECDSASHA1 = "http://www.w3.org/2001/04/xmldsig-more#ecdsa-sha1"
	// The SHA-384 and SHA-512 variants are accepted from peers (Keycloak,
	// Shibboleth and ADFS can be configured to sign with them); the
	// bridge itself signs with SHA-256.
	SigAlgRSASHA384   = "http://www.w3.org/2001/04/xmldsig-more#rsa-sha384"
	SigAlgRSASHA512   = "http://www.w3.org/2001/04/xmldsig-more#rsa-sha512"
	SigAlgECDSASHA384 = "http://www.w3.org/2001/04/xmldsig-more#ecdsa-sha384"
	SigAlgECDSASHA512 = "http://www.w3.org/2001/04/xmldsig-more#ecdsa-sha512"
)

// Digest algorithm URIs of ds:DigestMethod.
const (
	digestSHA1   = "http://www.w3.org/2000/09/xmldsig#sha1"
	digestSHA256 = "http://www.w3.org/2001/04/xmlenc#sha256"
	digestSHA384 = "http://www.w3.org/2001/04/xmldsig-more#sha384"
	digestSHA512 = "http://www.w3.org/2001/04/xmlenc#sha512"
)

// XML namespaces.
const (
	NSProtocol  = "urn:oasis:names:tc:SAML:2.0:protocol"
	NSAssertion = "urn:oasis:names:tc:SAML:2.0:assertion"
	NSDSig      = "http://www.w3.org/2000/09/xmldsig#"
	NSSOAP11    = "http://schemas.xmlsoap.org/soap/envelope/"
)

// Status codes (SAML Core §3.2.2.2).
const (
	StatusSuccess            = "urn:oasis:names:tc:SAML:2.0:status:Success"
	StatusRequester          = "urn:oasis:names:tc:SAML:2.0:status:Requester"
	StatusResponder          = "urn:oasis:names:tc:SAML:2.0:status:Responder"
	StatusVersionMismatch    = "urn:oasis:names:tc:SAML:2.0:status:VersionMismatch"
	StatusPartialLogout      = "urn:oasis:names:tc:SAML:2.0:status:PartialLogout"
	StatusRequestDenied      = "urn:oasis:names:tc:SAML:2.0:status:RequestDenied"
	StatusUnknownPrincipal   = "urn:oasis:names:tc:SAML:2.0:status:UnknownPrincipal"
	StatusRequestUnsupported = "urn:oasis:names:tc:SAML:2.0:status:RequestUnsupported"
)

// Logout reasons (SAML Core §3.7.3.3).
const (
	ReasonUser  = "urn:oasis:names:tc:SAML:2.0:logout:user"
	ReasonAdmin = "urn:oasis:names:tc:SAML:2.0:logout:admin"
)

// Query and form parameter names (Bindings §3.4.4, §3.5.4).
const (
	ParamRequest    = "SAMLRequest"
	ParamResponse   = "SAMLResponse"
	ParamRelayState = "RelayState"
	ParamSigAlg     = "SigAlg"
	ParamSignature  = "Signature"
)

// MaxRelayState is the largest RelayState the bindings allow a sender to
// make (Bindings §3.4.3, §3.5.3: "MUST NOT exceed 80 bytes"); the bridge's
// own RelayState values are 22 bytes.
const MaxRelayState = 80

// MaxRelayStateEcho caps a RelayState the decoders accept and the encoders
// send back. It is above MaxRelayState on purpose: the same sections oblige
// a responder to return exactly the RelayState it received, and deployed
// IdPs send longer ones (URLs); refusing them would break their logouts
// while a bounded echo costs nothing.
const MaxRelayStateEcho = 1024
