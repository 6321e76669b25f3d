package saml

import (
	"bytes"
	"encoding/base64"
	"mime"
	"net/http"
	"strings"

	"github.com/beevik/etree"
)

// Default size caps (Limits zero values).
const (
	// DefaultMaxBody caps an HTTP body or query string: a LogoutRequest
	// with a signature and a certificate is a few kilobytes.
	DefaultMaxBody = 256 << 10
	// DefaultMaxXML caps the XML after base64 decoding and inflation.
	DefaultMaxXML = 256 << 10
)

// Limits caps what a decoder reads. Zero fields take the defaults.
type Limits struct {
	// MaxBody caps the raw query string, form body or SOAP body in bytes.
	MaxBody int64
	// MaxXML caps the decoded (and, for HTTP-Redirect, inflated) XML.
	MaxXML int64
}

func (l Limits) body() int64 {
	if l.MaxBody > 0 {
		return l.MaxBody
	}
	return DefaultMaxBody
}

func (l Limits) xml() int64 {
	if l.MaxXML > 0 {
		return l.MaxXML
	}
	return DefaultMaxXML
}

// Message is a decoded incoming SAML protocol message, not yet
// authenticated. Decode it with DecodeRedirect, DecodePOST, DecodeSOAP or
// ReadHTTP; authenticate it with Verify or the Validate* functions.
type Message struct {
	// Binding is the binding it arrived by (BindingRedirect, BindingPOST,
	// BindingSOAP).
	Binding string
	// Param is ParamRequest or ParamResponse (for SOAP: derived from the
	// element name).
	Param string
	// XML is the message (for SOAP: the Body's child, detached with its
	// in-scope namespace declarations).
	XML []byte
	// RelayState is the RelayState parameter, if any.
	RelayState string

	// SigAlg, Signature and SignedOctets carry the HTTP-Redirect query
	// signature: the algorithm URI, the decoded signature, and the octets
	// it covers, rebuilt from the raw query string as received (Bindings
	// §3.4.4.1). Empty for the other bindings.
	SigAlg       string
	Signature    []byte
	SignedOctets []byte

	// ChannelAuthenticated is set by CallSOAP on an answer that came over
	// a TLS connection whose server certificate verified, to the URL we
	// called (the peer's SOAP endpoint from its metadata): the channel
	// authenticates the responder and protects the message (Bindings
	// §3.2.3, Profiles §4.4.4.2), so an unsigned response is accepted.
	ChannelAuthenticated bool

	doc *etree.Document
}

// Root returns the message's root element (unverified).
func (m *Message) Root() *etree.Element { return m.doc.Root() }

// IsRequest reports whether the message is a protocol request (not a
// response).
func (m *Message) IsRequest() bool { return m.Param == ParamRequest }

// Name returns the local name of the message element ("LogoutRequest",
// "LogoutResponse", "AuthnRequest" ...).
func (m *Message) Name() string { return m.doc.Root().Tag }

// UnverifiedLogoutRequestID returns the ID attribute of the message when
// it is a samlp:LogoutRequest with a usable ID (an xs:ID: non-empty, at
// most 256 bytes, no whitespace), else "". A SOAP endpoint uses it to
// answer a request it refuses (bad signature, replay) with a LogoutResponse
// whose InResponseTo names it, instead of a SOAP fault; nothing else may
// be decided on it.
func (m *Message) UnverifiedLogoutRequestID() string {
	root := m.doc.Root()
	if !is(root, NSProtocol, "LogoutRequest") {
		return ""
	}
	id := root.SelectAttrValue("ID", "")
	if id == "" || len(id) > 256 || strings.ContainsAny(id, " \t\r\n") {
		return ""
	}
	return id
}

// UnverifiedIssuer returns the text of the message's <Issuer> so that the
// receiver can look up the sender's keys. Nothing may be decided on it
// before the message is verified.
func (m *Message) UnverifiedIssuer() string {
	for _, c := range m.doc.Root().ChildElements() {
		if is(c, NSAssertion, "Issuer") {
			return strings.TrimSpace(c.Text())
		}
	}
	return ""
}

// newMessage parses xmlData and checks that it is a SAML protocol message.
func newMessage(binding, param string, xmlData []byte, lim Limits) (*Message, error) {
	if int64(len(xmlData)) > lim.xml() {
		return nil, malformed("XML larger than %d bytes", lim.xml())
	}
	doc, err := parseXML(xmlData)
	if err != nil {
		return nil, err
	}
	root := doc.Root()
	if nsOf(root) != NSProtocol {
		return nil, malformed("root element {%s}%s is not a SAML protocol message", nsOf(root), root.Tag)
	}
	isResp := strings.HasSuffix(root.Tag, "Response")
	if param == "" {
		param = ParamRequest
		if isResp {
			param = ParamResponse
		}
	}
	if (param == ParamResponse) != isResp {
		return nil, malformed("%s carried in %s", root.Tag, param)
	}
	return &Message{Binding: binding, Param: param, XML: xmlData, doc: doc}, nil
}

// decodeBase64 decodes standard base64, tolerating the line breaks some
// senders insert and missing padding. A space can only be a '+' that the sender left
// unescaped (form decoding turned it into a space), so it is read as '+'.
func decodeBase64(s string) ([]byte, error) {
	s = strings.Map(func(r rune) rune {
		switch r {
		case ' ':
			return '+'
		case '\t', '\r', '\n':
			return -1
		}
		return r
	}, s)
	b, err := base64.StdEncoding.DecodeString(s)
	if err != nil && len(s)%4 != 0 && !strings.Contains(s, "=") {
		// Some senders drop the padding.
		b, err = base64.RawStdEncoding.DecodeString(s)
	}
	if err != nil {
		return nil, malformed("bad base64: %v", err)
	}
	return b, nil
}

// ReadHTTP decodes a SAML message from an HTTP request by its shape: a GET
// with SAMLRequest/SAMLResponse in the query is HTTP-Redirect; a POST with
// a text/xml body is SOAP; a POST form is HTTP-POST.
func ReadHTTP(r *http.Request, lim Limits) (*Message, error) {
	switch r.Method {
	case http.MethodGet:
		return DecodeRedirect(r.URL.RawQuery, lim)
	case http.MethodPost:
		mt, _, _ := mime.ParseMediaType(r.Header.Get("Content-Type"))
		if mt == "text/xml" || mt == "application/soap+xml" {
			return DecodeSOAP(r, lim)
		}
		return DecodePOST(r, lim)
	}
	return nil, malformed("method %s carries no SAML binding", r.Method)
}

// trimBOM drops a UTF-8 byte order mark.
func trimBOM(b []byte) []byte { return bytes.TrimPrefix(b, []byte("\xef\xbb\xbf")) }
