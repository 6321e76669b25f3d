package sp

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"slices"

	"github.com/slobridge/slobridge"
	"github.com/slobridge/slobridge/saml"
	"github.com/slobridge/slobridge/store"
)

// LegKind is the participant kind of the upstream leg of a logout: the
// SAML IdP the bridge is a service provider of. Its deliveries go through
// the engine's outbox to SP.Notify.
const LegKind = "saml-upstream"

// Data keys of an upstream leg.
const (
	legUpstream = "upstream"
	legNameID   = "name_id"
	legFormat   = "name_id_format"
	legNQ       = "name_qualifier"
	legSPNQ     = "sp_name_qualifier"
	legIndexes  = "session_indexes"
	legReason   = "reason"
)

// LegKey is the participant key of the upstream leg toward the upstream
// named name.
func LegKey(name string) string { return LegKind + ":" + name }

// UpstreamLegs implements slobridge.UpstreamLegsFunc: one leg per upstream
// session that the logout ends (SAML Core §3.7.3.2: each session authority
// is asked), carrying the NameID and SessionIndexes as issued. An upstream
// with a SOAP SingleLogoutService gets a back-channel leg, sent and retried
// through the outbox; the wiring registers it (Engine.AddUpstreamLegs)
// with the SP as the notifier of LegKind. In a logout with a browser, an upstream with a
// browser binding is left to StartLogout. Without a browser and without
// SOAP, the leg is front-channel only, and the outcome says the upstream
// could not be reached.
func (sp *SP) UpstreamLegs(sessions []store.Session, req slobridge.LogoutRequest) []store.Participant {
	reg := sp.reg.Load()
	var legs []store.Participant
	var seen []string
	for _, s := range sessions {
		u := reg.byName[s.Upstream]
		if u == nil || s.NameID.Value == "" || slices.Contains(seen, upstreamKey(s)) {
			continue
		}
		seen = append(seen, upstreamKey(s))
		_, front := u.slo(saml.BindingRedirect, saml.BindingPOST)
		if req.Browser && front {
			continue
		}
		idx, _ := json.Marshal(sessionIndexes(s)) // a []string always encodes
		reason := saml.ReasonUser
		if noBrowser(req.Initiator.Kind) {
			reason = saml.ReasonAdmin
		}
		p := store.Participant{SessionID: s.ID, Key: LegKey(u.cfg.Name), Kind: LegKind, AppID: u.idp.EntityID,
			Name: u.displayName(), JoinedAt: s.CreatedAt,
			Data: map[string]string{legUpstream: u.cfg.Name, legNameID: s.NameID.Value, legFormat: s.NameID.Format,
				legNQ: s.NameID.NameQualifier, legSPNQ: s.NameID.SPNameQualifier, legIndexes: string(idx), legReason: reason}}
		if ep, ok := u.slo(saml.BindingSOAP); ok {
			p.Channels, p.BackChannelURL = store.ChannelBack, ep.Location
		} else {
			p.Channels = store.ChannelFront
		}
		legs = append(legs, p)
	}
	return legs
}

// Notify implements slobridge.Notifier for LegKind: it sends the upstream
// a signed SOAP LogoutRequest for the leg's session (a fresh ID and
// IssueInstant each attempt) to the SOAP endpoint its metadata offers now,
// and accepts only a valid LogoutResponse with Success. An upstream that
// answers another status has decided: that is a permanent failure. An
// unreachable upstream, a SOAP fault or an invalid answer is retried.
func (sp *SP) Notify(ctx context.Context, d store.Delivery) error {
	p := d.Participant
	u := sp.reg.Load().byName[p.Data[legUpstream]]
	if u == nil {
		return &slobridge.DeliveryError{Permanent: true, Err: fmt.Errorf("upstream %q is no longer configured", p.Data[legUpstream])}
	}
	ep, ok := u.slo(saml.BindingSOAP)
	if !ok {
		return &slobridge.DeliveryError{Permanent: true, Err: fmt.Errorf("upstream %q no longer offers a SOAP SingleLogoutService", u.cfg.Name)}
	}
	var idx []string
	if err := json.Unmarshal([]byte(p.Data[legIndexes]), &idx); p.Data[legIndexes] != "" && err != nil {
		return &slobridge.DeliveryError{Permanent: true, Err: fmt.Errorf("leg session indexes: %w", err)}
	}
	req, err := sp.newLogoutRequest(store.NameID{Value: p.Data[legNameID], Format: p.Data[legFormat],
		NameQualifier: p.Data[legNQ], SPNameQualifier: p.Data[legSPNQ]}, idx, ep.Location, p.Data[legReason])
	if err != nil {
		return err
	}
	err = sp.soapCall(ctx, u, req, d.ID)
	var refused *upstreamRefused
	if errors.As(err, &refused) {
		return &slobridge.DeliveryError{Permanent: true, Err: err}
	}
	if err == nil {
		sp.log.InfoContext(ctx, "upstream SOAP logout done", "logout_id", d.LogoutID, "sid", p.SessionID, "upstream", u.cfg.Name)
	}
	return err
}

// upstreamRefused is a valid LogoutResponse whose status is not Success.
type upstreamRefused struct{ status, sub string }

func (e *upstreamRefused) Error() string {
	return "upstream answered " + e.status + " " + e.sub
}

// soapCall signs req, sends it to u by SOAP (with the delivery's ID in the
// Slobridge-Delivery-Id header) and validates the LogoutResponse.
func (sp *SP) soapCall(ctx context.Context, u *upstream, req *saml.LogoutRequest, deliveryID string) error {
	signed, err := sp.opts.Signer.SignEnveloped(req.Element())
	if err != nil {
		return err
	}
	hdr := http.Header{slobridge.DeliveryIDHeader: {deliveryID}}
	m, err := saml.CallSOAP(ctx, sp.opts.BackChannelClient, req.Destination, signed, sp.opts.Limits, hdr)
	if err != nil {
		return err
	}
	resp, err := sp.validator.LogoutResponse(ctx, m, u.trust, sp.url(PathSLOSOAP), req.ID)
	if err != nil {
		return err
	}
	if !resp.Success() {
		return &upstreamRefused{status: resp.Status, sub: resp.SubStatus}
	}
	return nil
}
