package saml

import (
	"bytes"
	"cmp"
	"crypto"
	"encoding/xml"
	"fmt"
	"maps"
	"slices"
	"strings"
	"time"

	"github.com/beevik/etree"
	crewjam "github.com/crewjam/saml"
)

// methodBearer is the bearer SubjectConfirmation Method (Profiles §3.3).
const methodBearer = "urn:oasis:names:tc:SAML:2.0:cm:bearer"

// maxDecryptedAssertion caps the plaintext of an EncryptedAssertion.
const maxDecryptedAssertion = 1 << 20

// SSOExpect is what a service provider expects of a Web SSO Response
// (Profiles §4.1.4.2, §4.1.4.3).
type SSOExpect struct {
	// Trust holds the IdP's entity ID and signing keys.
	Trust Trust
	// Audience is the SP's entity ID, which an AudienceRestriction must name.
	Audience string
	// ACS is the URL the Response was posted to: the Response Destination
	// and the bearer confirmation's Recipient.
	ACS string
	// RequestID is the ID of the AuthnRequest the Response answers; the
	// bridge sends no unsolicited logins, so it is required.
	RequestID string
	// Now is the time of the check.
	Now time.Time
	// Skew is the allowed clock difference; default DefaultSkew.
	Skew time.Duration
	// MaxAge is how old an IssueInstant may be; default DefaultMaxAge.
	MaxAge time.Duration
	// DecryptionKey decrypts an EncryptedAssertion (DecryptElement);
	// without it one is refused.
	DecryptionKey crypto.PrivateKey
}

// SSOResponse is a validated Web SSO Response.
type SSOResponse struct {
	// ResponseID is the Response's ID.
	ResponseID string
	// Assertion is the one assertion, read from its verified bytes by
	// crewjam's types once every check below has passed.
	Assertion *crewjam.Assertion
}

// ReadSSOResponse reads, authenticates and validates a Web SSO Response
// (Core §3.3.3, §2.3–2.7; Profiles §4.1.4.2–4.1.4.3) with the bridge's own
// code, before any library acts on it:
//   - the document passes the safe parser (no DTD, depth, round trip);
//   - Response: Version 2.0, an ID, IssueInstant within
//     [now-MaxAge-Skew, now+Skew], InResponseTo the request, Destination
//     the ACS (required when the Response is signed, Bindings §3.5.5.2),
//     Issuer (when present) the IdP, Status Success; its signature, when
//     present, by the IdP and covering it (VerifyEnveloped);
//   - exactly one Assertion or EncryptedAssertion, decrypted with
//     DecryptionKey when encrypted; the assertion signed by the IdP
//     (the metadata says WantAssertionsSigned) and processed only from
//     its verified bytes;
//   - Assertion: Version 2.0, an ID, IssueInstant in the same window,
//     Issuer the IdP; a Subject with one NameID; a bearer
//     SubjectConfirmation whose Data names Recipient = ACS, InResponseTo =
//     request, NotOnOrAfter not passed and NotBefore (when present)
//     reached; Conditions with NotBefore reached and NotOnOrAfter not
//     passed, and every AudienceRestriction naming Audience; at least one
//     AuthnStatement.
//
// Errors say what failed for the log; the browser is told only that the
// login was refused.
func ReadSSOResponse(xmlData []byte, e SSOExpect) (*SSOResponse, error) {
	skew, maxAge := cmp.Or(e.Skew, DefaultSkew), cmp.Or(e.MaxAge, DefaultMaxAge)
	doc, err := parseXML(trimBOM(xmlData))
	if err != nil {
		return nil, err
	}
	root := doc.Root()
	if !is(root, NSProtocol, "Response") {
		return nil, malformed("not a SAML Response")
	}
	signed := len(childrenNS(root, NSDSig, "Signature")) > 0
	if signed {
		if root, err = verifyEnveloped(root, e.Trust, true); err != nil {
			return nil, fmt.Errorf("Response signature: %w", err)
		}
	}
	if err := checkResponse(root, e, signed, skew, maxAge); err != nil {
		return nil, err
	}
	var encs, plains []*etree.Element
	for _, c := range root.ChildElements() {
		switch {
		case is(c, NSAssertion, "Assertion"):
			plains = append(plains, c)
		case is(c, NSAssertion, "EncryptedAssertion"):
			encs = append(encs, c)
		}
	}
	if len(encs)+len(plains) != 1 {
		return nil, malformed("Response holds %d assertions, want 1", len(encs)+len(plains))
	}
	var a *etree.Element
	if len(encs) == 1 {
		if e.DecryptionKey == nil {
			return nil, malformed("Response holds an EncryptedAssertion and no decryption key is configured")
		}
		plain, err := DecryptElement(encs[0], e.DecryptionKey)
		if err != nil {
			return nil, err
		}
		if len(plain) > maxDecryptedAssertion {
			return nil, malformed("decrypted assertion larger than %d bytes", maxDecryptedAssertion)
		}
		if a, err = parseDecrypted(plain, encs[0]); err != nil {
			return nil, fmt.Errorf("decrypted assertion: %w", err)
		}
		if !is(a, NSAssertion, "Assertion") {
			return nil, malformed("EncryptedAssertion holds {%s}%s, not an Assertion", nsOf(a), a.Tag)
		}
	} else {
		a = detach(plains[0])
	}
	if countDescendants(a, NSAssertion, "Assertion") != 1 || countDescendants(a, NSAssertion, "EncryptedAssertion") != 0 {
		return nil, malformed("assertion holds another assertion")
	}
	if len(childrenNS(a, NSDSig, "Signature")) == 0 {
		return nil, badSignature("assertion is not signed (the SP metadata says WantAssertionsSigned)")
	}
	if a, err = VerifyEnveloped(a, e.Trust); err != nil {
		return nil, fmt.Errorf("assertion signature: %w", err)
	}
	if err := checkAssertion(a, e, skew, maxAge); err != nil {
		return nil, err
	}
	out := etree.NewDocument()
	out.SetRoot(detach(a))
	b, err := out.WriteToBytes()
	if err != nil {
		return nil, malformed("assertion: %v", err)
	}
	var ca crewjam.Assertion
	if err := xml.NewDecoder(bytes.NewReader(b)).Decode(&ca); err != nil {
		return nil, malformed("assertion: %v", err)
	}
	return &SSOResponse{ResponseID: root.SelectAttrValue("ID", ""), Assertion: &ca}, nil
}

// checkInstant checks an IssueInstant attribute of el against the window.
func checkInstant(el *etree.Element, what string, now time.Time, skew, maxAge time.Duration) error {
	v := el.SelectAttrValue("IssueInstant", "")
	if v == "" {
		return malformed("%s has no IssueInstant", what)
	}
	t, err := parseTime(v)
	if err != nil {
		return malformed("%s IssueInstant %q: %v", what, v, err)
	}
	if t.After(now.Add(skew)) {
		return malformed("%s IssueInstant %s is in the future", what, t.Format(time.RFC3339))
	}
	if t.Before(now.Add(-maxAge - skew)) {
		return malformed("%s IssueInstant %s is too old", what, t.Format(time.RFC3339))
	}
	return nil
}

// checkIssuer checks the Issuer children of el: at most one (exactly one
// when required), naming the IdP, of Format entity or none.
func checkIssuer(el *etree.Element, what, entityID string, required bool) error {
	iss := childrenNS(el, NSAssertion, "Issuer")
	if len(iss) > 1 || (required && len(iss) == 0) {
		return malformed("%s has %d Issuers", what, len(iss))
	}
	if len(iss) == 0 {
		return nil
	}
	v, err := textOf(iss[0])
	if err != nil {
		return err
	}
	if v != entityID {
		return badSignature("%s Issuer %q is not %q", what, v, entityID)
	}
	if f := iss[0].SelectAttrValue("Format", ""); f != "" && f != nameIDEntity {
		return malformed("%s Issuer Format %q is not %s", what, f, nameIDEntity)
	}
	return nil
}

// checkHeader checks Version, ID, IssueInstant and Issuer.
func checkHeader(el *etree.Element, what string, e SSOExpect, skew, maxAge time.Duration, issuerRequired bool) error {
	if v := el.SelectAttrValue("Version", ""); v != "2.0" {
		return malformed("%s Version %q, want 2.0", what, v)
	}
	if el.SelectAttrValue("ID", "") == "" {
		return malformed("%s has no ID", what)
	}
	if err := checkInstant(el, what, e.Now, skew, maxAge); err != nil {
		return err
	}
	return checkIssuer(el, what, e.Trust.EntityID, issuerRequired)
}

// checkResponse checks the Response element itself.
func checkResponse(root *etree.Element, e SSOExpect, signed bool, skew, maxAge time.Duration) error {
	if err := checkHeader(root, "Response", e, skew, maxAge, false); err != nil {
		return err
	}
	dest := root.SelectAttrValue("Destination", "")
	if dest == "" && signed {
		return malformed("signed Response has no Destination")
	}
	if dest != "" && !SameEndpoint(dest, e.ACS) {
		return malformed("Response Destination %q is not the ACS %q", dest, e.ACS)
	}
	if e.RequestID == "" || root.SelectAttrValue("InResponseTo", "") != e.RequestID {
		return malformed("Response InResponseTo %q does not answer request %q", root.SelectAttrValue("InResponseTo", ""), e.RequestID)
	}
	sts := childrenNS(root, NSProtocol, "Status")
	if len(sts) != 1 {
		return malformed("Response must hold one Status")
	}
	codes := childrenNS(sts[0], NSProtocol, "StatusCode")
	if len(codes) != 1 {
		return malformed("Response Status must hold one StatusCode")
	}
	if v := codes[0].SelectAttrValue("Value", ""); v != StatusSuccess {
		sub := ""
		if s := childrenNS(codes[0], NSProtocol, "StatusCode"); len(s) > 0 {
			sub = " " + s[0].SelectAttrValue("Value", "")
		}
		return malformed("the identity provider answered %s%s", v, sub)
	}
	return nil
}

// checkAssertion checks the verified assertion a.
func checkAssertion(a *etree.Element, e SSOExpect, skew, maxAge time.Duration) error {
	if err := checkHeader(a, "Assertion", e, skew, maxAge, true); err != nil {
		return err
	}
	now := e.Now
	subs := childrenNS(a, NSAssertion, "Subject")
	if len(subs) != 1 {
		return malformed("assertion must hold one Subject, has %d", len(subs))
	}
	if n := len(childrenNS(subs[0], NSAssertion, "NameID")); n != 1 {
		return malformed("assertion Subject must hold one NameID, has %d", n)
	}
	if err := checkBearer(subs[0], e, skew); err != nil {
		return err
	}
	conds := childrenNS(a, NSAssertion, "Conditions")
	if len(conds) != 1 {
		return malformed("assertion must hold one Conditions, has %d", len(conds))
	}
	if err := checkWindow(conds[0], "Conditions", now, skew); err != nil {
		return err
	}
	ars := childrenNS(conds[0], NSAssertion, "AudienceRestriction")
	if len(ars) == 0 {
		return malformed("assertion Conditions hold no AudienceRestriction")
	}
	for _, ar := range ars {
		var auds []string
		for _, au := range childrenNS(ar, NSAssertion, "Audience") {
			v, err := textOf(au)
			if err != nil {
				return err
			}
			auds = append(auds, v)
		}
		if !slices.Contains(auds, e.Audience) {
			return malformed("AudienceRestriction %q does not name %q", strings.Join(auds, " "), e.Audience)
		}
	}
	if len(childrenNS(a, NSAssertion, "AuthnStatement")) == 0 {
		return malformed("assertion holds no AuthnStatement")
	}
	return nil
}

// checkBearer requires a bearer SubjectConfirmation whose data satisfies
// Profiles §4.1.4.2: Recipient the ACS, InResponseTo the request,
// NotOnOrAfter not passed, NotBefore (optional) reached.
func checkBearer(sub *etree.Element, e SSOExpect, skew time.Duration) error {
	var why []string
	for _, sc := range childrenNS(sub, NSAssertion, "SubjectConfirmation") {
		if sc.SelectAttrValue("Method", "") != methodBearer {
			continue
		}
		err := func() error {
			ds := childrenNS(sc, NSAssertion, "SubjectConfirmationData")
			if len(ds) != 1 {
				return malformed("bearer SubjectConfirmation must hold one SubjectConfirmationData")
			}
			d := ds[0]
			if r := d.SelectAttrValue("Recipient", ""); r == "" || !SameEndpoint(r, e.ACS) {
				return malformed("bearer Recipient %q is not the ACS %q", r, e.ACS)
			}
			if irt := d.SelectAttrValue("InResponseTo", ""); irt != e.RequestID {
				return malformed("bearer InResponseTo %q does not answer request %q", irt, e.RequestID)
			}
			return checkWindow(d, "bearer SubjectConfirmationData", e.Now, skew)
		}()
		if err == nil {
			return nil
		}
		why = append(why, err.Error())
	}
	if len(why) == 0 {
		return malformed("assertion has no bearer SubjectConfirmation")
	}
	return malformed("no bearer SubjectConfirmation holds: %s", strings.Join(why, "; "))
}

// checkWindow checks the NotBefore and NotOnOrAfter attributes of el:
// NotBefore, when present, reached (with skew); NotOnOrAfter present and
// not passed (with skew).
func checkWindow(el *etree.Element, what string, now time.Time, skew time.Duration) error {
	if v := el.SelectAttr("NotBefore"); v != nil {
		t, err := parseTime(v.Value)
		if err != nil {
			return malformed("%s NotBefore %q: %v", what, v.Value, err)
		}
		if now.Add(skew).Before(t) {
			return malformed("%s NotBefore %s not reached", what, t.Format(time.RFC3339))
		}
	}
	v := el.SelectAttr("NotOnOrAfter")
	if v == nil {
		return malformed("%s has no NotOnOrAfter", what)
	}
	t, err := parseTime(v.Value)
	if err != nil {
		return malformed("%s NotOnOrAfter %q: %v", what, v.Value, err)
	}
	if !now.Add(-skew).Before(t) {
		return malformed("%s NotOnOrAfter %s has passed", what, t.Format(time.RFC3339))
	}
	return nil
}

// inScope returns the namespace declarations in scope at el (its own and
// its ancestors', the nearest winning), by prefix ("" for the default).
func inScope(el *etree.Element) map[string]string {
	ns := map[string]string{}
	for p := el; p != nil; p = p.Parent() {
		for _, a := range p.Attr {
			prefix, ok := "", false
			switch {
			case a.Space == "xmlns":
				prefix, ok = a.Key, true
			case a.Space == "" && a.Key == "xmlns":
				ok = true
			}
			if _, seen := ns[prefix]; ok && !seen {
				ns[prefix] = a.Value
			}
		}
	}
	return ns
}

// detach returns a copy of el that stands alone: the namespace
// declarations in scope at el that el does not make itself are added to
// the copy's own. Declarations inside the subtree stay where they are (a
// descendant may bind a prefix differently, Namespaces in XML §6.1).
func detach(el *etree.Element) *etree.Element {
	cp := el.Copy()
	own := map[string]bool{}
	for _, a := range el.Attr {
		if a.Space == "xmlns" {
			own[a.Key] = true
		} else if a.Space == "" && a.Key == "xmlns" {
			own[""] = true
		}
	}
	ns := inScope(el)
	for _, p := range slices.Sorted(maps.Keys(ns)) {
		if own[p] {
			continue
		}
		if p == "" {
			cp.CreateAttr("xmlns", ns[p])
		} else {
			cp.CreateAttr("xmlns:"+p, ns[p])
		}
	}
	return cp
}

// parseDecrypted parses the plaintext of an encrypted element: an XML
// fragment that may use the prefixes in scope where the encrypted element
// stood (XML Encryption §4.4.3). It is parsed inside a wrapper declaring
// them, through the safe parser, must be one element and nothing else, and
// is returned detached.
func parseDecrypted(plain []byte, at *etree.Element) (*etree.Element, error) {
	var b bytes.Buffer
	b.WriteString("<slobridge-decrypted")
	ns := inScope(at)
	for _, p := range slices.Sorted(maps.Keys(ns)) {
		if p == "" {
			b.WriteString(` xmlns="`)
		} else {
			b.WriteString(` xmlns:` + p + `="`)
		}
		if err := xml.EscapeText(&b, []byte(ns[p])); err != nil {
			return nil, malformed("namespace: %v", err)
		}
		b.WriteString(`"`)
	}
	b.WriteString(">")
	plain = trimBOM(plain)
	if bytes.HasPrefix(bytes.TrimSpace(plain), []byte("<?xml")) {
		end := bytes.Index(plain, []byte("?>"))
		if end < 0 {
			return nil, malformed("unterminated XML declaration")
		}
		plain = plain[end+2:]
	}
	b.Write(plain)
	b.WriteString("</slobridge-decrypted>")
	doc, err := parseXML(b.Bytes())
	if err != nil {
		return nil, err
	}
	w := doc.Root()
	kids := w.ChildElements()
	if len(kids) != 1 {
		return nil, malformed("decrypted content holds %d elements, want 1", len(kids))
	}
	for _, t := range w.Child {
		if cd, ok := t.(*etree.CharData); ok && strings.TrimSpace(cd.Data) != "" {
			return nil, malformed("decrypted content holds text beside the element")
		}
	}
	return detach(kids[0]), nil
}
