package idp

import (
	"context"
	"encoding/xml"
	"errors"
	"fmt"
	"strconv"
	"time"

	"github.com/beevik/etree"
	"github.com/crewjam/saml"

	bsaml "github.com/slobridge/slobridge/saml"
	"github.com/slobridge/slobridge/store"
)

// AuthnRequest is a validated AuthnRequest, reduced to what the answer
// needs. It is parked in the store while the browser logs in upstream.
type AuthnRequest struct {
	// SP is the requesting SP's entity ID.
	SP string `json:"sp"`
	// ID is the request's ID, the InResponseTo of the answer.
	ID string `json:"id"`
	// ACS is the AssertionConsumerService URL, taken from the SP's
	// metadata (never from the request alone).
	ACS string `json:"acs"`
	// RelayState is returned to the SP unchanged.
	RelayState string `json:"relay_state,omitempty"`
	// ForceAuthn and IsPassive are the request's flags (Core §3.4.1).
	ForceAuthn bool `json:"force_authn,omitempty"`
	IsPassive  bool `json:"is_passive,omitempty"`
	// ReceivedAt is when the bridge received the request; a ForceAuthn
	// request needs a login after it.
	ReceivedAt time.Time `json:"received_at"`
	// Resumed marks a request that already went through the upstream
	// login once.
	Resumed bool `json:"resumed,omitempty"`
	// NameID is the NameID policy this request gets: the format its
	// NameIDPolicy asks for when the SP's registration leaves the choice
	// open, else the SP's policy (SP.NameIDPolicy).
	NameID string `json:"name_id,omitempty"`
}

// ValidateAuthnRequest authenticates and validates a decoded AuthnRequest
// (SAML Core §3.4.1, Profiles §4.1.4.1): the Issuer must be a registered
// SP; its signature is verified when present and required when the SP's
// metadata (AuthnRequestsSigned), its registration or the IdP
// configuration asks for it; Version, IssueInstant, Destination and the
// requested NameID format are checked; the ACS URL must be one of the SP's
// metadata; the ID must not have been seen before. Errors wrap
// ErrUnknownSP, bsaml.ErrMalformed, bsaml.ErrSignature, bsaml.ErrReplay or
// are *bsaml.Error. With an InvalidNameIDPolicy error the returned request
// has its SP, ID, ACS and RelayState, to send the error Response to.
func (idp *IdP) ValidateAuthnRequest(ctx context.Context, m *bsaml.Message) (AuthnRequest, *SP, error) {
	if m.Name() != "AuthnRequest" || !m.IsRequest() {
		return AuthnRequest{}, nil, fmt.Errorf("%w: %s sent to the SSO endpoint", bsaml.ErrMalformed, m.Name())
	}
	sp, err := idp.ServiceProvider(ctx, m.UnverifiedIssuer())
	if err != nil {
		return AuthnRequest{}, nil, err
	}
	if sp.Disabled {
		return AuthnRequest{}, nil, fmt.Errorf("%w: %s", ErrDisabledSP, sp.EntityID)
	}
	el := m.Root()
	signed := m.Signature != nil || hasSignatureChild(el)
	if sp.wantsSignedAuthnRequests(idp.cfg.RequireSignedAuthnRequests) && !signed {
		return AuthnRequest{}, sp, fmt.Errorf("%w: AuthnRequest from %s is not signed and must be", bsaml.ErrSignature, sp.EntityID)
	}
	if signed {
		if el, err = bsaml.Verify(m, sp.trust()); err != nil {
			return AuthnRequest{}, sp, err
		}
	}
	ar, err := unmarshalAuthnRequest(el)
	if err != nil {
		return AuthnRequest{}, sp, err
	}
	if err := idp.checkAuthnRequest(sp, ar, signed); err != nil {
		return AuthnRequest{}, sp, err
	}
	acs, err := sp.resolveACS(ar)
	if err != nil {
		return AuthnRequest{}, sp, err
	}
	policy := sp.NameIDPolicy
	if p := ar.NameIDPolicy; p != nil && p.Format != nil && *p.Format != "" && *p.Format != FormatUnspecified {
		asked, ok := policyOf(*p.Format)
		switch {
		case ok && sp.Config.NameID == "":
			// The registration leaves the choice open: the SP gets the
			// format it asks for (mod_auth_mellon asks for transient).
			policy = asked
		case !ok || asked != policy:
			// Authentic, with a known ACS: the SP gets a SAML error there.
			partial := AuthnRequest{SP: sp.EntityID, ID: ar.ID, ACS: acs, RelayState: m.RelayState}
			return partial, sp, &bsaml.Error{Status: bsaml.StatusRequester, SubStatus: statusInvalidNameIDPolicy,
				Err: fmt.Errorf("saml idp: %s asks for NameID format %s, configured %s", sp.EntityID, *p.Format, formatOf(policy))}
		}
	}
	now := idp.now()
	exp := ar.IssueInstant.Add(idp.cfg.MaxMessageAge + idp.cfg.ClockSkew)
	if err := idp.st.CheckReplay(ctx, nsReplay, sp.EntityID+"|"+ar.ID, exp, now); err != nil {
		if errors.Is(err, store.ErrReplay) {
			return AuthnRequest{}, sp, fmt.Errorf("%w: AuthnRequest %s from %s", bsaml.ErrReplay, ar.ID, sp.EntityID)
		}
		return AuthnRequest{}, sp, fmt.Errorf("saml idp: replay check: %w", err)
	}
	return AuthnRequest{
		SP: sp.EntityID, ID: ar.ID, ACS: acs, RelayState: m.RelayState,
		ForceAuthn: ar.ForceAuthn != nil && *ar.ForceAuthn, IsPassive: ar.IsPassive != nil && *ar.IsPassive,
		ReceivedAt: now, NameID: policy,
	}, sp, nil
}

// hasSignatureChild reports whether el has a ds:Signature child.
func hasSignatureChild(el *etree.Element) bool {
	for _, c := range el.ChildElements() {
		if c.Tag == "Signature" && c.NamespaceURI() == bsaml.NSDSig {
			return true
		}
	}
	return false
}

func unmarshalAuthnRequest(el *etree.Element) (*saml.AuthnRequest, error) {
	doc := etree.NewDocument()
	doc.SetRoot(el.Copy())
	b, err := doc.WriteToBytes()
	if err != nil {
		return nil, fmt.Errorf("%w: AuthnRequest: %v", bsaml.ErrMalformed, err)
	}
	var ar saml.AuthnRequest
	if err := xml.Unmarshal(b, &ar); err != nil {
		return nil, fmt.Errorf("%w: AuthnRequest: %v", bsaml.ErrMalformed, err)
	}
	return &ar, nil
}

// checkAuthnRequest checks the header of a parsed AuthnRequest.
func (idp *IdP) checkAuthnRequest(sp *SP, ar *saml.AuthnRequest, signed bool) error {
	req := func(format string, args ...any) error {
		return &bsaml.Error{Status: bsaml.StatusRequester, Err: fmt.Errorf("saml idp: AuthnRequest: "+format, args...)}
	}
	if ar.ID == "" {
		return req("no ID")
	}
	if ar.Version != "2.0" {
		return &bsaml.Error{Status: bsaml.StatusVersionMismatch, Err: fmt.Errorf("saml idp: AuthnRequest Version %q", ar.Version)}
	}
	if ar.Issuer == nil || ar.Issuer.Value != sp.EntityID {
		return req("Issuer is not %s", sp.EntityID)
	}
	if err := idp.checkInstant(ar.IssueInstant); err != nil {
		return req("%v", err)
	}
	// Bindings §3.4.5.2 and §3.5.5.2: a signed message must carry the
	// Destination, and a Destination must be where it arrived.
	switch {
	case ar.Destination == "" && signed:
		return req("signed request without Destination")
	case ar.Destination != "" && ar.Destination != idp.endpoint(PathSSO):
		return req("Destination %q is not this IdP's SSO endpoint", ar.Destination)
	}
	if ar.AssertionConsumerServiceURL != "" && ar.AssertionConsumerServiceIndex != "" {
		return req("both AssertionConsumerServiceURL and AssertionConsumerServiceIndex")
	}
	return nil
}

// checkInstant checks an IssueInstant against the clock: not in the future
// beyond the skew, not older than MaxMessageAge.
func (idp *IdP) checkInstant(t time.Time) error {
	now := idp.now()
	switch {
	case t.IsZero():
		return errors.New("no IssueInstant")
	case t.After(now.Add(idp.cfg.ClockSkew)):
		return fmt.Errorf("IssueInstant %s is in the future", t.UTC().Format(time.RFC3339))
	case t.Before(now.Add(-idp.cfg.MaxMessageAge - idp.cfg.ClockSkew)):
		return fmt.Errorf("IssueInstant %s is too old", t.UTC().Format(time.RFC3339))
	}
	return nil
}

// errACS reports an AssertionConsumerService the SP's metadata does not
// list: the answer cannot be sent anywhere.
var errACS = errors.New("saml idp: assertion consumer service not in the SP's metadata")

// resolveACS picks the AssertionConsumerService from the SP's metadata:
// the one whose Location equals the requested URL exactly, the one with
// the requested index, or the default (SAML Metadata §2.2.3). Only
// HTTP-POST is served.
func (sp *SP) resolveACS(ar *saml.AuthnRequest) (string, error) {
	if ar.ProtocolBinding != "" && ar.ProtocolBinding != URIPOST {
		return "", &bsaml.Error{Status: bsaml.StatusRequester, SubStatus: bsaml.StatusRequestUnsupported,
			Err: fmt.Errorf("saml idp: response binding %s is not supported", ar.ProtocolBinding)}
	}
	var posts []saml.IndexedEndpoint
	for _, e := range sp.Descriptor.AssertionConsumerServices {
		if e.Binding == URIPOST {
			posts = append(posts, e)
		}
	}
	switch {
	case ar.AssertionConsumerServiceURL != "":
		for _, e := range posts {
			if e.Location == ar.AssertionConsumerServiceURL {
				return e.Location, nil
			}
		}
		return "", fmt.Errorf("%w: %q for %s", errACS, ar.AssertionConsumerServiceURL, sp.EntityID)
	case ar.AssertionConsumerServiceIndex != "":
		idx, err := strconv.Atoi(ar.AssertionConsumerServiceIndex)
		if err == nil {
			for _, e := range posts {
				if e.Index == idx {
					return e.Location, nil
				}
			}
		}
		return "", fmt.Errorf("%w: index %q for %s", errACS, ar.AssertionConsumerServiceIndex, sp.EntityID)
	}
	for _, e := range posts {
		if e.IsDefault != nil && *e.IsDefault {
			return e.Location, nil
		}
	}
	return posts[0].Location, nil
}

// trust returns what the codec needs to verify the SP's messages.
func (sp *SP) trust() bsaml.Trust {
	return bsaml.Trust{EntityID: sp.EntityID, Certs: sp.SigningCerts, AllowSHA1: sp.Config.AllowSHA1}
}
