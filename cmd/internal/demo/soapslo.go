package demo

import (
	"context"
	"crypto/rand"
	"errors"
	"log/slog"
	"net/http"
	"time"

	bsaml "github.com/slobridge/slobridge/saml"
)

// soapLogout is the SOAP single-logout endpoint of a demo SAML party (the
// SAML app and the upstream IdP): the bridge's signed LogoutRequest is
// validated, the party's own logins end, and a signed LogoutResponse in
// response to it answers. A message that cannot be authenticated gets a
// SOAP fault and changes nothing; an authenticated one that fails a
// protocol check gets a LogoutResponse with that status. Logins already
// gone are answered Success: the user is logged out there either way.
type soapLogout struct {
	log    *slog.Logger
	what   string // log message prefix: "saml app", "upstream"
	v      *bsaml.Validator
	signer *bsaml.Signer
	// url is the endpoint's own URL (the LogoutRequest's Destination).
	url string
	// issuer returns the party's entity ID.
	issuer func() string
	// peer returns the trusted bridge, or an empty Trust and the fault
	// message while the party is not connected to it yet.
	peer func() (bsaml.Trust, string)
	// check, when set, refuses a valid request the party cannot honour
	// (a NameID it never issued); its *bsaml.Error is the answer status.
	check func(lr *bsaml.LogoutRequest, peer bsaml.Trust) error
	// end ends the logins the request names.
	end func(ctx context.Context, lr *bsaml.LogoutRequest)
}

func (s *soapLogout) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	ctx := r.Context()
	if r.Method != http.MethodPost {
		w.Header().Set("Allow", http.MethodPost)
		http.Error(w, "the SOAP binding takes POST only", http.StatusMethodNotAllowed)
		return
	}
	r.Body = http.MaxBytesReader(w, r.Body, maxSOAPBody)
	m, err := bsaml.DecodeSOAP(r, bsaml.Limits{MaxBody: maxSOAPBody})
	if err != nil {
		s.log.WarnContext(ctx, s.what+": SOAP message refused", "err", err)
		bsaml.WriteSOAPFault(w, http.StatusBadRequest, "Client", "not a SAML SOAP message")
		return
	}
	if !m.IsRequest() {
		bsaml.WriteSOAPFault(w, http.StatusInternalServerError, "Client", "only LogoutRequests are served here")
		return
	}
	trust, notReady := s.peer()
	if trust.EntityID == "" {
		bsaml.WriteSOAPFault(w, http.StatusInternalServerError, "Server", notReady)
		return
	}
	lr, err := s.v.LogoutRequest(ctx, m, trust, s.url)
	if err == nil && s.check != nil {
		err = s.check(lr, trust)
	}
	status, sub := bsaml.StatusSuccess, ""
	var se *bsaml.Error
	switch {
	case err == nil:
		s.end(ctx, lr)
		s.log.InfoContext(ctx, s.what+": logins ended by a SOAP LogoutRequest", "session_indexes", len(lr.SessionIndexes), "reason", lr.Reason)
	case errors.As(err, &se):
		s.log.WarnContext(ctx, s.what+": SOAP LogoutRequest refused", "err", err)
		status, sub = se.Status, se.SubStatus
	default:
		// Not authenticated (malformed, bad or missing signature, another
		// issuer): no SAML answer (saml/doc.go).
		s.log.WarnContext(ctx, s.what+": SOAP LogoutRequest refused", "err", err)
		bsaml.WriteSOAPFault(w, http.StatusInternalServerError, "Client", "the SAML message is not valid")
		return
	}
	id, err := bsaml.NewID(rand.Reader)
	if err != nil {
		bsaml.WriteSOAPFault(w, http.StatusInternalServerError, "Server", "the logout could not be answered")
		return
	}
	// A SOAP response needs no Destination (Bindings §3.2.3): it goes
	// back on the requester's own connection.
	resp := &bsaml.LogoutResponse{ID: id, InResponseTo: m.Root().SelectAttrValue("ID", ""), IssueInstant: time.Now(),
		Issuer: s.issuer(), Status: status, SubStatus: sub}
	signed, err := s.signer.SignEnveloped(resp.Element())
	if err != nil {
		s.log.ErrorContext(ctx, s.what+": sign LogoutResponse", "err", err)
		bsaml.WriteSOAPFault(w, http.StatusInternalServerError, "Server", "the logout could not be answered")
		return
	}
	if err := bsaml.WriteSOAP(w, signed); err != nil {
		s.log.WarnContext(ctx, s.what+": write SOAP LogoutResponse", "err", err)
	}
}
