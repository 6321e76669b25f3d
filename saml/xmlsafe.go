package saml

import (
	"bytes"
	"encoding/xml"
	"errors"
	"io"

	"github.com/beevik/etree"
	xrv "github.com/mattermost/xml-roundtrip-validator"
)

// maxDepth caps element nesting; a LogoutRequest is four levels deep, a SOAP
// envelope adds two, a signature three more.
const maxDepth = 48

// parseXML parses one XML document into an etree document after checking
// that it is safe to process:
//   - no DTD (<!DOCTYPE ...>) or other directive, so no entity can be
//     declared and expanded ("billion laughs", external entities);
//   - exactly one root element, nothing but whitespace, comments and
//     processing instructions around it;
//   - nesting at most maxDepth;
//   - it survives an encoding/xml round trip unchanged
//     (mattermost/xml-roundtrip-validator), which rules out the namespace
//     and attribute tricks that make two XML parsers see different trees.
//
// The caller has capped len(data).
func parseXML(data []byte) (*etree.Document, error) {
	if len(bytes.TrimSpace(data)) == 0 {
		return nil, malformed("empty XML")
	}
	d := xml.NewDecoder(bytes.NewReader(data))
	d.Strict = true
	depth, roots := 0, 0
	for {
		tok, err := d.Token()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return nil, malformed("XML: %v", err)
		}
		switch t := tok.(type) {
		case xml.Directive:
			return nil, malformed("XML with a DTD or directive is refused")
		case xml.StartElement:
			if depth == 0 {
				roots++
				if roots > 1 {
					return nil, malformed("XML has more than one root element")
				}
			}
			depth++
			if depth > maxDepth {
				return nil, malformed("XML nested deeper than %d", maxDepth)
			}
		case xml.EndElement:
			depth--
		case xml.CharData:
			if depth == 0 && len(bytes.TrimSpace(t)) > 0 {
				return nil, malformed("text outside the root element")
			}
		}
	}
	if roots != 1 {
		return nil, malformed("XML has no root element")
	}
	if err := xrv.Validate(bytes.NewReader(data)); err != nil {
		return nil, malformed("XML does not round-trip: %v", err)
	}
	doc := etree.NewDocument()
	doc.ReadSettings.Permissive = false
	if err := doc.ReadFromBytes(data); err != nil {
		return nil, malformed("XML: %v", err)
	}
	if doc.Root() == nil {
		return nil, malformed("XML has no root element")
	}
	return doc, nil
}

// nsOf returns the namespace URI of el (resolving its prefix).
func nsOf(el *etree.Element) string { return el.NamespaceURI() }

// is reports whether el is the element {ns}tag.
func is(el *etree.Element, ns, tag string) bool {
	return el != nil && el.Tag == tag && nsOf(el) == ns
}

// childrenNS returns the child elements of el named {ns}tag.
func childrenNS(el *etree.Element, ns, tag string) []*etree.Element {
	var out []*etree.Element
	for _, c := range el.ChildElements() {
		if is(c, ns, tag) {
			out = append(out, c)
		}
	}
	return out
}

// countDescendants counts the elements named {ns}tag in el's subtree,
// el included.
func countDescendants(el *etree.Element, ns, tag string) int {
	n := 0
	if is(el, ns, tag) {
		n++
	}
	for _, c := range el.ChildElements() {
		n += countDescendants(c, ns, tag)
	}
	return n
}

// CheckXML applies the checks of the decoders to a document that is not a
// protocol message (metadata, an SSO Response before crewjam reads it): no
// DTD or directive, one root, bounded depth, a clean encoding/xml round
// trip. The caller caps len(data). Errors wrap ErrMalformed.
func CheckXML(data []byte) error {
	_, err := parseXML(data)
	return err
}
