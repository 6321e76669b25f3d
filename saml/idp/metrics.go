package idp

import (
	"github.com/prometheus/client_golang/prometheus"

	"github.com/slobridge/slobridge"
	bsaml "github.com/slobridge/slobridge/saml"
)

// Results of a front-channel LogoutResponse, the "result" label of
// slobridge_saml_front_channel_responses_total.
const (
	// FrontSuccess: a valid LogoutResponse with top-level Success.
	FrontSuccess = "success"
	// FrontPartial: Success with the second-level PartialLogout.
	FrontPartial = "partial"
	// FrontStatus: a valid LogoutResponse with another top-level status.
	FrontStatus = "error_status"
	// FrontInvalid: an authenticated LogoutResponse that failed
	// validation (Destination, IssueInstant, InResponseTo, replay).
	FrontInvalid = "invalid"
	// FrontUnauthenticated: a LogoutResponse whose signature or Issuer
	// did not verify; it changes nothing.
	FrontUnauthenticated = "unauthenticated"
)

// idpMetrics are the IdP's Prometheus collectors.
type idpMetrics struct {
	frontResponses *prometheus.CounterVec
}

// newMetrics creates the collectors and registers them on reg (none: they
// count but are not exported).
func newMetrics(reg prometheus.Registerer) (*idpMetrics, error) {
	m := &idpMetrics{frontResponses: prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "slobridge_saml_front_channel_responses_total",
		Help: "LogoutResponses of SAML SPs notified through the browser (logout page iframe or top-level chain), by result (success, partial, error_status, invalid, unauthenticated).",
	}, []string{"result"})}
	for _, r := range []string{FrontSuccess, FrontPartial, FrontStatus, FrontInvalid, FrontUnauthenticated} {
		m.frontResponses.WithLabelValues(r)
	}
	if reg != nil {
		if err := reg.Register(m.frontResponses); err != nil {
			return nil, err
		}
	}
	return m, nil
}

// frontLabel is the result label of a recorded front-channel outcome.
func frontLabel(res slobridge.LegResult) string {
	switch {
	case res.Status == "":
		return FrontInvalid
	case res.Status != bsaml.StatusSuccess:
		return FrontStatus
	case res.SubStatus == bsaml.StatusPartialLogout:
		return FrontPartial
	}
	return FrontSuccess
}
