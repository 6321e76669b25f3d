package saml

import (
	"cmp"
	"crypto"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"io"
	"strings"
	"time"

	"github.com/beevik/etree"
	crewjam "github.com/crewjam/saml"
)

// nameIDEntity is the Format of an Issuer that names an entity (Core
// §8.3.6).
const nameIDEntity = "urn:oasis:names:tc:SAML:2.0:nameid-format:entity"

// timeFormat is the xs:dateTime form SAML uses, in UTC (Core §1.3.3).
const timeFormat = "2006-01-02T15:04:05.000Z"

// NameID is the SAML name identifier (Core §2.2.3); crewjam's type is
// right for it.
type NameID = crewjam.NameID

// LogoutRequest is a SAML LogoutRequest (Core §3.7.1). crewjam's type
// allows one SessionIndex only and no Reason; this one follows the schema.
type LogoutRequest struct {
	ID           string
	Version      string // "2.0"; Element writes "2.0" when empty
	IssueInstant time.Time
	// NotOnOrAfter is the time the request expires; zero when absent.
	NotOnOrAfter time.Time
	Destination  string
	// Reason is a logout reason URI (ReasonUser, ReasonAdmin), optional.
	Reason string
	// Issuer is the sender's entity ID.
	Issuer string
	// NameID is the principal exactly as issued to the receiver.
	NameID NameID
	// SessionIndexes lists the sessions to end; none means all sessions of
	// the principal (Core §3.7.1).
	SessionIndexes []string
}

// LogoutResponse is a SAML LogoutResponse (Core §3.7.2, a StatusResponse
// of §3.2.2).
type LogoutResponse struct {
	ID           string
	InResponseTo string
	Version      string
	IssueInstant time.Time
	Destination  string
	// Issuer is the sender's entity ID.
	Issuer string
	// Status is the top-level status code; SubStatus the optional
	// second-level one (StatusPartialLogout ...).
	Status        string
	SubStatus     string
	StatusMessage string
}

// Success reports a top-level Success status (which includes a partial
// logout: Success with second-level PartialLogout).
func (r *LogoutResponse) Success() bool { return r.Status == StatusSuccess }

// Partial reports that the responder could not log out every participant
// (Success/PartialLogout; some senders put PartialLogout at the top).
func (r *LogoutResponse) Partial() bool {
	return r.SubStatus == StatusPartialLogout || r.Status == StatusPartialLogout
}

// NewID returns a fresh message ID: "_" and 160 random bits in hex, an
// xs:ID (NCName) as Core §1.3.4 requires. rnd defaults to crypto/rand.
func NewID(rnd io.Reader) (string, error) {
	if rnd == nil {
		rnd = rand.Reader
	}
	var b [20]byte
	if _, err := io.ReadFull(rnd, b[:]); err != nil {
		return "", fmt.Errorf("saml: new ID: %w", err)
	}
	return "_" + hex.EncodeToString(b[:]), nil
}

func newRoot(tag string) *etree.Element {
	el := etree.NewElement("samlp:" + tag)
	el.CreateAttr("xmlns:samlp", NSProtocol)
	el.CreateAttr("xmlns:saml", NSAssertion)
	return el
}

func issuerElement(parent *etree.Element, issuer string) {
	is := parent.CreateElement("saml:Issuer")
	is.SetText(issuer)
}

// Element renders the request as XML, unsigned. Sign it with
// Signer.SignEnveloped for POST and SOAP; pass it to RedirectURL as is.
func (r *LogoutRequest) Element() *etree.Element {
	el := newRoot("LogoutRequest")
	el.CreateAttr("ID", r.ID)
	el.CreateAttr("Version", cmp.Or(r.Version, "2.0"))
	el.CreateAttr("IssueInstant", r.IssueInstant.UTC().Format(timeFormat))
	if r.Destination != "" {
		el.CreateAttr("Destination", r.Destination)
	}
	if !r.NotOnOrAfter.IsZero() {
		el.CreateAttr("NotOnOrAfter", r.NotOnOrAfter.UTC().Format(timeFormat))
	}
	if r.Reason != "" {
		el.CreateAttr("Reason", r.Reason)
	}
	issuerElement(el, r.Issuer)
	el.AddChild(r.NameID.Element())
	for _, si := range r.SessionIndexes {
		s := el.CreateElement("samlp:SessionIndex")
		s.SetText(si)
	}
	return el
}

// Element renders the response as XML, unsigned.
func (r *LogoutResponse) Element() *etree.Element {
	el := newRoot("LogoutResponse")
	el.CreateAttr("ID", r.ID)
	if r.InResponseTo != "" {
		el.CreateAttr("InResponseTo", r.InResponseTo)
	}
	el.CreateAttr("Version", cmp.Or(r.Version, "2.0"))
	el.CreateAttr("IssueInstant", r.IssueInstant.UTC().Format(timeFormat))
	if r.Destination != "" {
		el.CreateAttr("Destination", r.Destination)
	}
	issuerElement(el, r.Issuer)
	st := el.CreateElement("samlp:Status")
	sc := st.CreateElement("samlp:StatusCode")
	sc.CreateAttr("Value", cmp.Or(r.Status, StatusSuccess))
	if r.SubStatus != "" {
		sc.CreateElement("samlp:StatusCode").CreateAttr("Value", r.SubStatus)
	}
	if r.StatusMessage != "" {
		st.CreateElement("samlp:StatusMessage").SetText(r.StatusMessage)
	}
	return el
}

// parseTime parses an xs:dateTime attribute value. SAML Core §1.3.3 wants
// UTC with a "Z"; a value with a numeric offset is converted, and one with
// no time zone at all (seen from older IdPs) is taken as UTC. Fractions of
// any length up to nanoseconds are accepted (ADFS sends seven digits).
func parseTime(s string) (time.Time, error) {
	s = strings.TrimSpace(s)
	t, err := time.Parse(time.RFC3339Nano, s)
	if err != nil {
		var err2 error
		if t, err2 = time.ParseInLocation("2006-01-02T15:04:05.999999999", s, time.UTC); err2 != nil {
			return time.Time{}, err
		}
	}
	return t.UTC(), nil
}

// header holds the attributes and Issuer common to requests and responses.
type header struct {
	ID, Version, Destination, Issuer string
	IssueInstant                     time.Time
}

// parseHeader reads ID, Version, IssueInstant, Destination and Issuer of a
// protocol message element named {protocol}tag. Errors are Requester
// status errors (VersionMismatch for a wrong Version).
func parseHeader(el *etree.Element, tag string) (header, error) {
	var h header
	if !is(el, NSProtocol, tag) {
		return h, requester("", "element {%s}%s is not a %s", nsOf(el), el.Tag, tag)
	}
	h.ID = el.SelectAttrValue("ID", "")
	if h.ID == "" {
		return h, requester("", "%s has no ID", tag)
	}
	h.Version = el.SelectAttrValue("Version", "")
	if h.Version != "2.0" {
		return h, &Error{Status: StatusVersionMismatch, Err: fmt.Errorf("saml: %s Version %q, want 2.0", tag, h.Version)}
	}
	ii := el.SelectAttr("IssueInstant")
	if ii == nil {
		return h, requester("", "%s has no IssueInstant", tag)
	}
	t, err := parseTime(ii.Value)
	if err != nil {
		return h, requester("", "%s IssueInstant %q: %v", tag, ii.Value, err)
	}
	h.IssueInstant = t
	h.Destination = el.SelectAttrValue("Destination", "")
	issuers := childrenNS(el, NSAssertion, "Issuer")
	if len(issuers) > 1 {
		return h, requester("", "%s has %d Issuers", tag, len(issuers))
	}
	if len(issuers) == 1 {
		if h.Issuer, err = textOf(issuers[0]); err != nil {
			return h, err
		}
		// Profiles §4.4.4.1, §4.4.4.2: the Issuer of logout messages is an
		// entity ID; its Format is omitted or entity.
		if f := issuers[0].SelectAttrValue("Format", ""); f != "" && f != nameIDEntity {
			return h, requester(StatusRequestDenied, "%s Issuer Format %q is not %s", tag, f, nameIDEntity)
		}
	}
	return h, nil
}

// ParseLogoutRequest reads a LogoutRequest element (Core §3.7.1). It only
// parses; pass the element returned by Verify. Only <NameID> identifies
// the principal: BaseID and EncryptedID yield RequestUnsupported (a
// Validator with a DecryptionKey decrypts EncryptedID).
func ParseLogoutRequest(el *etree.Element) (*LogoutRequest, error) {
	return parseLogoutRequest(el, nil)
}

// parseLogoutRequest is ParseLogoutRequest with the key that decrypts an
// <EncryptedID>; nil refuses it.
func parseLogoutRequest(el *etree.Element, key crypto.PrivateKey) (*LogoutRequest, error) {
	h, err := parseHeader(el, "LogoutRequest")
	if err != nil {
		return nil, err
	}
	r := &LogoutRequest{ID: h.ID, Version: h.Version, IssueInstant: h.IssueInstant,
		Destination: h.Destination, Issuer: h.Issuer, Reason: el.SelectAttrValue("Reason", "")}
	if a := el.SelectAttr("NotOnOrAfter"); a != nil {
		if r.NotOnOrAfter, err = parseTime(a.Value); err != nil {
			return nil, requester("", "LogoutRequest NotOnOrAfter %q: %v", a.Value, err)
		}
	}
	var ids int
	for _, c := range el.ChildElements() {
		switch {
		case is(c, NSAssertion, "NameID"), is(c, NSAssertion, "EncryptedID") && key != nil:
			ids++
			if is(c, NSAssertion, "EncryptedID") {
				if c, err = decryptID(c, key); err != nil {
					return nil, err
				}
			}
			v, err := textOf(c)
			if err != nil {
				return nil, err
			}
			r.NameID = NameID{
				Value:           v,
				Format:          c.SelectAttrValue("Format", ""),
				NameQualifier:   c.SelectAttrValue("NameQualifier", ""),
				SPNameQualifier: c.SelectAttrValue("SPNameQualifier", ""),
				SPProvidedID:    c.SelectAttrValue("SPProvidedID", ""),
			}
		case is(c, NSAssertion, "BaseID"), is(c, NSAssertion, "EncryptedID"):
			return nil, requester(StatusRequestUnsupported, "LogoutRequest identifies the principal by %s, only NameID is supported", c.Tag)
		case is(c, NSProtocol, "SessionIndex"):
			si, err := textOf(c)
			if err != nil {
				return nil, err
			}
			if si == "" {
				return nil, requester("", "empty SessionIndex")
			}
			r.SessionIndexes = append(r.SessionIndexes, si)
		}
	}
	if ids != 1 || r.NameID.Value == "" {
		return nil, requester("", "LogoutRequest must hold exactly one non-empty NameID")
	}
	return r, nil
}

// ParseLogoutResponse reads a LogoutResponse element (Core §3.7.2). A
// missing Issuer is not an error here (Validator.LogoutResponse requires
// it); nothing dereferences it.
func ParseLogoutResponse(el *etree.Element) (*LogoutResponse, error) {
	h, err := parseHeader(el, "LogoutResponse")
	if err != nil {
		return nil, err
	}
	r := &LogoutResponse{ID: h.ID, Version: h.Version, IssueInstant: h.IssueInstant,
		Destination: h.Destination, Issuer: h.Issuer, InResponseTo: el.SelectAttrValue("InResponseTo", "")}
	sts := childrenNS(el, NSProtocol, "Status")
	if len(sts) != 1 {
		return nil, requester("", "LogoutResponse must hold one Status")
	}
	codes := childrenNS(sts[0], NSProtocol, "StatusCode")
	if len(codes) != 1 || codes[0].SelectAttrValue("Value", "") == "" {
		return nil, requester("", "LogoutResponse Status must hold one StatusCode with a Value")
	}
	r.Status = codes[0].SelectAttrValue("Value", "")
	if sub := childrenNS(codes[0], NSProtocol, "StatusCode"); len(sub) > 0 {
		r.SubStatus = sub[0].SelectAttrValue("Value", "")
	}
	if msg := childrenNS(sts[0], NSProtocol, "StatusMessage"); len(msg) > 0 {
		if r.StatusMessage, err = textOf(msg[0]); err != nil {
			return nil, err
		}
	}
	return r, nil
}

// textOf returns the trimmed text content of an element that must hold
// text only. A comment, processing instruction or child element inside it
// is refused: parsers that read only the text before a comment would see
// "alice@example.com" in "alice@example.com<!---->.evil.test", the
// truncation behind CVE-2017-11427 and its kin.
func textOf(el *etree.Element) (string, error) {
	var b strings.Builder
	for _, t := range el.Child {
		cd, ok := t.(*etree.CharData)
		if !ok {
			return "", requester("", "<%s> holds markup, not only text", el.Tag)
		}
		b.WriteString(cd.Data)
	}
	return strings.TrimSpace(b.String()), nil
}
