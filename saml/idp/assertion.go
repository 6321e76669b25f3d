package idp

import (
	"fmt"
	"slices"

	"github.com/beevik/etree"
	"github.com/crewjam/saml"

	bsaml "github.com/slobridge/slobridge/saml"
	"github.com/slobridge/slobridge/store"
)

// SAML constants used in assertions and responses.
const (
	bearer                    = "urn:oasis:names:tc:SAML:2.0:cm:bearer"
	formatEntity              = "urn:oasis:names:tc:SAML:2.0:nameid-format:entity"
	attrNameFormatBasic       = "urn:oasis:names:tc:SAML:2.0:attrname-format:basic"
	authnContextUnspecified   = "urn:oasis:names:tc:SAML:2.0:ac:classes:unspecified"
	statusInvalidNameIDPolicy = "urn:oasis:names:tc:SAML:2.0:status:InvalidNameIDPolicy"
	statusNoPassive           = "urn:oasis:names:tc:SAML:2.0:status:NoPassive"
	statusAuthnFailed         = "urn:oasis:names:tc:SAML:2.0:status:AuthnFailed"
)

// Assertion is the content of one SSO answer.
type Assertion struct {
	SP      *SP
	Request AuthnRequest
	Session store.Session
	Issued  issued
}

// BuildResponse returns the Response for a validated AuthnRequest: a
// signed assertion (SAML Core §2.3.3, Profiles §4.1.4.2: bearer
// SubjectConfirmation with Recipient, InResponseTo and NotOnOrAfter; an
// AudienceRestriction to the SP; an AuthnStatement with the SessionIndex
// and the session's SessionNotOnOrAfter) inside an unsigned Response.
func (idp *IdP) BuildResponse(a Assertion) (*etree.Element, error) {
	now := idp.now().UTC()
	respID, err := idp.newID()
	if err != nil {
		return nil, err
	}
	asID, err := idp.newID()
	if err != nil {
		return nil, err
	}
	exp := now.Add(idp.cfg.AssertionLifetime)
	sessionEnd := a.Session.ExpiresAt.UTC()
	nid := a.Issued.NameID
	as := saml.Assertion{
		ID: asID, IssueInstant: now, Version: "2.0",
		Issuer: saml.Issuer{Format: formatEntity, Value: idp.entityID},
		Subject: &saml.Subject{
			NameID: &saml.NameID{Value: nid.Value, Format: nid.Format, NameQualifier: nid.NameQualifier, SPNameQualifier: nid.SPNameQualifier},
			SubjectConfirmations: []saml.SubjectConfirmation{{
				Method: bearer,
				SubjectConfirmationData: &saml.SubjectConfirmationData{
					InResponseTo: a.Request.ID, NotOnOrAfter: exp, Recipient: a.Request.ACS,
				},
			}},
		},
		Conditions: &saml.Conditions{
			NotBefore: now, NotOnOrAfter: exp,
			AudienceRestrictions: []saml.AudienceRestriction{{Audience: saml.Audience{Value: a.SP.EntityID}}},
		},
		AuthnStatements: []saml.AuthnStatement{{
			AuthnInstant: a.Session.AuthTime.UTC(), SessionIndex: a.Issued.SessionIndex,
			SessionNotOnOrAfter: &sessionEnd,
			AuthnContext:        saml.AuthnContext{AuthnContextClassRef: &saml.AuthnContextClassRef{Value: authnContextUnspecified}},
		}},
	}
	if attrs := idp.attributes(a.SP, a.Session); len(attrs) > 0 {
		as.AttributeStatements = []saml.AttributeStatement{{Attributes: attrs}}
	}
	signed, err := idp.opts.Signer.SignEnveloped(as.Element())
	if err != nil {
		return nil, fmt.Errorf("saml idp: sign assertion: %w", err)
	}
	resp := saml.Response{
		ID: respID, InResponseTo: a.Request.ID, Version: "2.0", IssueInstant: now, Destination: a.Request.ACS,
		Issuer: &saml.Issuer{Format: formatEntity, Value: idp.entityID},
		Status: saml.Status{StatusCode: saml.StatusCode{Value: bsaml.StatusSuccess}},
	}
	el := resp.Element()
	el.AddChild(signed)
	return el, nil
}

// attributes returns the session's attributes that go to sp, sorted by
// name.
func (idp *IdP) attributes(sp *SP, s store.Session) []saml.Attribute {
	names := make([]string, 0, len(s.Attributes))
	for k := range s.Attributes {
		if sp.sendsAttribute(k) {
			names = append(names, k)
		}
	}
	slices.Sort(names)
	out := make([]saml.Attribute, 0, len(names))
	for _, n := range names {
		at := saml.Attribute{Name: n, FriendlyName: n, NameFormat: attrNameFormatBasic}
		for _, v := range s.Attributes[n] {
			at.Values = append(at.Values, saml.AttributeValue{Type: "xs:string", Value: v})
		}
		out = append(out, at)
	}
	return out
}

// BuildErrorResponse returns a signed Response without an assertion that
// tells the SP why there is none (SAML Core §3.2.2.2).
func (idp *IdP) BuildErrorResponse(req AuthnRequest, status, sub string) (*etree.Element, error) {
	id, err := idp.newID()
	if err != nil {
		return nil, err
	}
	sc := saml.StatusCode{Value: status}
	if sub != "" {
		sc.StatusCode = &saml.StatusCode{Value: sub}
	}
	resp := saml.Response{
		ID: id, InResponseTo: req.ID, Version: "2.0", IssueInstant: idp.now().UTC(), Destination: req.ACS,
		Issuer: &saml.Issuer{Format: formatEntity, Value: idp.entityID},
		Status: saml.Status{StatusCode: sc},
	}
	signed, err := idp.opts.Signer.SignEnveloped(resp.Element())
	if err != nil {
		return nil, fmt.Errorf("saml idp: sign response: %w", err)
	}
	return signed, nil
}
