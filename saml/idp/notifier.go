package idp

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"time"

	"github.com/slobridge/slobridge"
	bsaml "github.com/slobridge/slobridge/saml"
	"github.com/slobridge/slobridge/store"
)

// SOAPNotifier is the slobridge.Notifier for back-channel SAML SPs
// (participant Kind "saml"): one attempt sends a signed LogoutRequest with
// the NameID and SessionIndex the SP was issued to its SOAP
// SingleLogoutService (Bindings §3.2, Profiles §4.4.3.3) and accepts only a
// valid signed LogoutResponse with InResponseTo our request and top-level
// Success (Success/PartialLogout included: the SP's own session is gone).
// A SOAP fault, a non-200 answer, a timeout, an invalid response
// or any other status is a failed attempt that the engine retries: the SP
// did not confirm that the session is gone. It lives here, not in the
// engine, because the request is a SAML artefact signed with the IdP's key.
type SOAPNotifier struct {
	idp    *IdP
	client *http.Client
}

var _ slobridge.Notifier = (*SOAPNotifier)(nil)

// Notifier returns the notifier to register on the engine for kind
// ClientKind ("saml"). client must refuse redirects and check the dialled
// address (slobridge.NewBackChannelClient); nil gets
// slobridge.NewBackChannelClient with its defaults.
func (idp *IdP) Notifier(client *http.Client) *SOAPNotifier {
	if client == nil {
		client = slobridge.NewBackChannelClient(slobridge.ClientOptions{})
	}
	return &SOAPNotifier{idp: idp, client: client}
}

// Notify implements slobridge.Notifier.
func (n *SOAPNotifier) Notify(ctx context.Context, d store.Delivery) error {
	p := d.Participant
	if p.BackChannelURL == "" {
		return &slobridge.DeliveryError{Permanent: true, Err: fmt.Errorf("saml idp: participant %s has no SOAP SLO endpoint", p.Key)}
	}
	sp, err := n.idp.ServiceProvider(ctx, p.AppID)
	if errors.Is(err, ErrUnknownSP) {
		return &slobridge.DeliveryError{Permanent: true, Err: fmt.Errorf("saml idp: SP %s is no longer registered", p.AppID)}
	}
	if err != nil {
		return err
	}
	lo, err := n.idp.st.GetLogout(ctx, d.LogoutID)
	if err != nil {
		return fmt.Errorf("saml idp: read logout %s: %w", d.LogoutID, err)
	}
	lr, err := n.idp.buildLogoutRequest(lo, p, p.BackChannelURL)
	if err != nil {
		return &slobridge.DeliveryError{Permanent: true, Err: err}
	}
	signed, err := n.idp.opts.Signer.SignEnveloped(lr.Element())
	if err != nil {
		return fmt.Errorf("saml idp: sign LogoutRequest: %w", err)
	}
	start := time.Now()
	m, err := bsaml.CallSOAP(ctx, n.client, p.BackChannelURL, signed, limits,
		http.Header{slobridge.DeliveryIDHeader: {d.ID}})
	if err != nil {
		return &slobridge.DeliveryError{Err: fmt.Errorf("saml idp: SOAP LogoutRequest to %s: %w", sp.EntityID, err)}
	}
	// A SOAP response needs no Destination; when it has one it must name
	// our SOAP SLO endpoint, the one our metadata gives for this binding.
	resp, err := n.idp.validator().LogoutResponse(ctx, m, sp.trust(), n.idp.endpoint(PathSLOSOAP), lr.ID)
	if err != nil {
		return &slobridge.DeliveryError{Err: fmt.Errorf("saml idp: LogoutResponse from %s not valid: %w", sp.EntityID, err)}
	}
	if !resp.Success() {
		return &slobridge.DeliveryError{Err: fmt.Errorf("saml idp: %s answered status %s %s", sp.EntityID, resp.Status, resp.SubStatus)}
	}
	if resp.Partial() {
		// The SP ended its session but could not reach everything behind
		// it; resending cannot change that.
		n.idp.log.WarnContext(ctx, "saml sp answered PartialLogout", "participant", p.Key, "delivery_id", d.ID)
	}
	n.idp.log.DebugContext(ctx, "saml soap logout delivered", "participant", p.Key, "delivery_id", d.ID, "duration", time.Since(start))
	return nil
}
