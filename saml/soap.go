package saml

import (
	"bytes"
	"context"
	"encoding/xml"
	"fmt"
	"io"
	"mime"
	"net/http"
	"strings"

	"github.com/beevik/etree"
	"github.com/russellhaering/goxmldsig/etreeutils"
)

// soapAction is the SOAPAction header value of the SAML SOAP binding
// (Bindings §3.2.3.3).
const soapAction = "http://www.oasis-open.org/committees/security"

// DecodeSOAP decodes a SAML SOAP binding message (Bindings §3.2): a SOAP
// 1.1 envelope of at most lim.MaxBody bytes whose Body holds exactly one
// SAML protocol message. A Header entry with mustUnderstand="1" is refused
// (SOAP 1.1 §4.2.3): we understand none.
func DecodeSOAP(r *http.Request, lim Limits) (*Message, error) {
	if mt, _, _ := mime.ParseMediaType(r.Header.Get("Content-Type")); mt != "text/xml" {
		return nil, malformed("SOAP request Content-Type is %q, want text/xml", mt)
	}
	return decodeSOAPBody(r.Body, lim)
}

func decodeSOAPBody(body io.Reader, lim Limits) (*Message, error) {
	data, err := io.ReadAll(io.LimitReader(body, lim.body()+1))
	if err != nil {
		return nil, malformed("read body: %v", err)
	}
	if int64(len(data)) > lim.body() {
		return nil, malformed("SOAP body larger than %d bytes", lim.body())
	}
	doc, err := parseXML(trimBOM(data))
	if err != nil {
		return nil, err
	}
	env := doc.Root()
	if !is(env, NSSOAP11, "Envelope") {
		return nil, malformed("root element is not a SOAP 1.1 Envelope")
	}
	var bodyEl *etree.Element
	for _, c := range env.ChildElements() {
		switch {
		case is(c, NSSOAP11, "Header"):
			for _, h := range c.ChildElements() {
				for _, a := range h.Attr {
					if a.Key == "mustUnderstand" && a.NamespaceURI() == NSSOAP11 && strings.TrimSpace(a.Value) == "1" {
						return nil, malformed("SOAP header %s must be understood", h.Tag)
					}
				}
			}
		case is(c, NSSOAP11, "Body"):
			if bodyEl != nil {
				return nil, malformed("SOAP envelope has two Bodies")
			}
			bodyEl = c
		default:
			return nil, malformed("unexpected element %s in SOAP envelope", c.Tag)
		}
	}
	if bodyEl == nil {
		return nil, malformed("SOAP envelope has no Body")
	}
	kids := bodyEl.ChildElements()
	if len(kids) != 1 {
		return nil, malformed("SOAP Body holds %d elements, want exactly one SAML message", len(kids))
	}
	if is(kids[0], NSSOAP11, "Fault") {
		return nil, fmt.Errorf("%w: SOAP fault: %s", ErrSOAPFault, strings.TrimSpace(faultString(kids[0])))
	}
	ctx, err := etreeutils.NSBuildParentContext(kids[0])
	if err != nil {
		return nil, malformed("SOAP namespaces: %v", err)
	}
	detached, err := etreeutils.NSDetatch(ctx, kids[0])
	if err != nil {
		return nil, malformed("SOAP namespaces: %v", err)
	}
	out := etree.NewDocument()
	out.SetRoot(detached)
	xmlData, err := out.WriteToBytes()
	if err != nil {
		return nil, malformed("SOAP body: %v", err)
	}
	return newMessage(BindingSOAP, "", xmlData, lim)
}

// ErrSOAPFault reports a SOAP fault where a SAML message was expected. A
// fault is not a LogoutResponse: callers count it as a failed attempt
// (Bindings §3.2.3.1).
var ErrSOAPFault = fmt.Errorf("saml: SOAP fault")

func faultString(f *etree.Element) string {
	for _, c := range f.ChildElements() {
		if c.Tag == "faultstring" {
			return c.Text()
		}
	}
	return ""
}

// SOAPEnvelope wraps the (signed) protocol message el in a SOAP 1.1
// envelope.
func SOAPEnvelope(el *etree.Element) ([]byte, error) {
	doc := etree.NewDocument()
	env := doc.CreateElement("SOAP-ENV:Envelope")
	env.CreateAttr("xmlns:SOAP-ENV", NSSOAP11)
	body := env.CreateElement("SOAP-ENV:Body")
	body.AddChild(el.Copy())
	return doc.WriteToBytes()
}

// SOAPFault returns a SOAP 1.1 fault envelope; code is "Client" or
// "Server" (SOAP 1.1 §4.4.1). Used when a SOAP request cannot be answered
// with a SAML message (it could not be parsed or authenticated).
func SOAPFault(code, msg string) []byte {
	var b bytes.Buffer
	b.WriteString(`<?xml version="1.0" encoding="UTF-8"?><SOAP-ENV:Envelope xmlns:SOAP-ENV="` + NSSOAP11 +
		`"><SOAP-ENV:Body><SOAP-ENV:Fault><faultcode>SOAP-ENV:`)
	_ = xml.EscapeText(&b, []byte(code))
	b.WriteString(`</faultcode><faultstring>`)
	_ = xml.EscapeText(&b, []byte(msg))
	b.WriteString(`</faultstring></SOAP-ENV:Fault></SOAP-ENV:Body></SOAP-ENV:Envelope>`)
	return b.Bytes()
}

// WriteSOAP answers a SOAP request with the (signed) protocol message el.
func WriteSOAP(w http.ResponseWriter, el *etree.Element) error {
	b, err := SOAPEnvelope(el)
	if err != nil {
		return err
	}
	w.Header().Set("Content-Type", "text/xml; charset=utf-8")
	NoCache(w.Header())
	w.WriteHeader(http.StatusOK)
	_, err = w.Write(b)
	return err
}

// WriteSOAPFault answers a SOAP request with a fault, as text/xml, with
// HTTP status. SOAP 1.1 §6.2 requires 500 Internal Server Error for every
// fault, Client faults included, and SOAP clients (Shibboleth's
// xmltooling, gSOAP, JAX-WS) parse a fault only from a 500 answer: the
// bridge's endpoints always pass http.StatusInternalServerError. A request
// that can be answered in SAML (a LogoutRequest from a known peer, with an
// ID, refused for its signature or content) gets a LogoutResponse with a
// Requester status in a 200 envelope instead (Bindings §3.2.3.1, Core
// §3.2.2.2), never a fault.
func WriteSOAPFault(w http.ResponseWriter, status int, code, msg string) {
	w.Header().Set("Content-Type", "text/xml; charset=utf-8")
	NoCache(w.Header())
	w.WriteHeader(status)
	_, _ = w.Write(SOAPFault(code, msg))
}

// CallSOAP sends the (signed) protocol message el to url by the SOAP
// binding and decodes the SAML message of the answer. client should not
// follow redirects (slobridge.NewBackChannelClient). header, when not nil,
// is added to the request (the Slobridge-Delivery-Id of a delivery). A
// non-200 answer or a SOAP fault is an error (wrapping ErrSOAPFault for a
// fault).
func CallSOAP(ctx context.Context, client *http.Client, url string, el *etree.Element, lim Limits, header http.Header) (*Message, error) {
	body, err := SOAPEnvelope(el)
	if err != nil {
		return nil, err
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, url, bytes.NewReader(body))
	if err != nil {
		return nil, fmt.Errorf("saml: SOAP request: %w", err)
	}
	for k, vs := range header {
		for _, v := range vs {
			req.Header.Add(k, v)
		}
	}
	req.Header.Set("Content-Type", "text/xml; charset=utf-8")
	req.Header.Set("SOAPAction", soapAction)
	resp, err := client.Do(req)
	if err != nil {
		return nil, fmt.Errorf("saml: SOAP call: %w", err)
	}
	defer resp.Body.Close()
	m, derr := decodeSOAPBody(resp.Body, lim)
	if resp.StatusCode != http.StatusOK {
		if derr != nil {
			return nil, fmt.Errorf("saml: SOAP call answered HTTP %d: %w", resp.StatusCode, derr)
		}
		return nil, fmt.Errorf("saml: SOAP call answered HTTP %d", resp.StatusCode)
	}
	if derr != nil {
		return nil, fmt.Errorf("saml: SOAP answer: %w", derr)
	}
	m.ChannelAuthenticated = resp.TLS != nil && len(resp.TLS.VerifiedChains) > 0 &&
		resp.Request != nil && resp.Request.URL.Scheme == "https"
	return m, nil
}
