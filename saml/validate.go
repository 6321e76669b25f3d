package saml

import (
	"context"
	"crypto"
	"errors"
	"fmt"
	"net"
	"net/url"
	"strings"
	"time"

	"github.com/beevik/etree"

	"github.com/slobridge/slobridge/store"
)

// ReplayNamespace is the store.CheckReplay namespace of SAML message IDs.
const ReplayNamespace = "saml-message-id"

// Defaults of Validator.
const (
	DefaultSkew   = 3 * time.Minute
	DefaultMaxAge = 10 * time.Minute
)

// Verify authenticates m as sent by t and returns the element to process:
// for HTTP-Redirect, the query signature over m.SignedOctets (SigAlg
// RSA or ECDSA with SHA-256/384/512, SHA-1 only when t allows it) and the
// message root; for HTTP-POST and SOAP, the element covered by the
// enveloped signature (VerifyEnveloped). Every message must be signed:
// the bridge does not rely on TLS client authentication for SOAP. The one
// exception is a SOAP response the bridge received over TLS it opened to
// the peer's endpoint (Message.ChannelAuthenticated): unsigned, it is
// authenticated by the server certificate.
func Verify(m *Message, t Trust) (*etree.Element, error) {
	if m.Binding == BindingRedirect {
		if len(m.Signature) == 0 {
			return nil, badSignature("HTTP-Redirect message has no Signature parameter")
		}
		if err := verifyOctets(m.SigAlg, m.SignedOctets, m.Signature, t); err != nil {
			return nil, err
		}
		return m.Root(), nil
	}
	if m.Binding == BindingSOAP && m.ChannelAuthenticated && !m.IsRequest() &&
		countDescendants(m.Root(), NSDSig, "Signature") == 0 {
		// An unsigned SOAP answer over server-authenticated TLS (Shibboleth
		// SPs sign only when told to): the channel vouches for it. A signed
		// one is verified like any other.
		return m.Root(), nil
	}
	return VerifyEnveloped(m.Root(), t)
}

// Validator checks incoming logout messages. Its zero value is not usable:
// Store is required.
type Validator struct {
	// Store keeps the message IDs seen (CheckReplay). Required.
	Store store.Store
	// Now is the clock; default time.Now.
	Now func() time.Time
	// Skew is the allowed clock difference with peers; default 3m.
	Skew time.Duration
	// MaxAge is how old an IssueInstant may be; default 10m.
	MaxAge time.Duration
	// DecryptionKey, when set (an *rsa.PrivateKey), decrypts a
	// LogoutRequest's <EncryptedID> after its signature verified: the key
	// of the encryption KeyDescriptor of our metadata. Without it an
	// EncryptedID is answered RequestUnsupported.
	DecryptionKey crypto.PrivateKey
}

func (v *Validator) now() time.Time {
	if v.Now != nil {
		return v.Now()
	}
	return time.Now()
}

func (v *Validator) skew() time.Duration {
	if v.Skew > 0 {
		return v.Skew
	}
	return DefaultSkew
}

func (v *Validator) maxAge() time.Duration {
	if v.MaxAge > 0 {
		return v.MaxAge
	}
	return DefaultMaxAge
}

// checkCommon checks what requests and responses share, in order: Issuer
// is the verified sender (a mismatch is a signature error: the keys used
// were the wrong party's), Destination is ours (required for front-channel
// bindings, Bindings §3.4.5.2 and §3.5.5.2), IssueInstant within
// [now-MaxAge-Skew, now+Skew].
func (v *Validator) checkCommon(m *Message, h header, t Trust, destination string, now time.Time) error {
	if h.Issuer == "" {
		return badSignature("message has no Issuer")
	}
	if h.Issuer != t.EntityID {
		return badSignature("Issuer %q is not %q", h.Issuer, t.EntityID)
	}
	if h.Destination == "" && m.Binding != BindingSOAP {
		return requester(StatusRequestDenied, "signed %s message has no Destination", m.Binding)
	}
	if h.Destination != "" && !SameEndpoint(h.Destination, destination) {
		return requester(StatusRequestDenied, "Destination %q is not this endpoint %q", h.Destination, destination)
	}
	if h.IssueInstant.After(now.Add(v.skew())) {
		return requester(StatusRequestDenied, "IssueInstant %s is in the future", h.IssueInstant.Format(time.RFC3339))
	}
	if h.IssueInstant.Before(now.Add(-v.maxAge() - v.skew())) {
		return requester(StatusRequestDenied, "IssueInstant %s is too old", h.IssueInstant.Format(time.RFC3339))
	}
	return nil
}

// checkReplay records the message ID of issuer; a repeat is refused.
func (v *Validator) checkReplay(ctx context.Context, issuer, id string, issued, now time.Time) error {
	if v.Store == nil {
		return errors.New("saml: validator has no store for the replay check")
	}
	exp := issued.Add(v.maxAge() + 2*v.skew())
	if exp.Before(now.Add(v.skew())) {
		exp = now.Add(v.skew())
	}
	err := v.Store.CheckReplay(ctx, ReplayNamespace, issuer+" "+id, exp, now)
	if errors.Is(err, store.ErrReplay) {
		return &Error{Status: StatusRequester, SubStatus: StatusRequestDenied,
			Err: fmt.Errorf("%w: %s from %s", ErrReplay, id, issuer)}
	}
	if err != nil {
		return fmt.Errorf("saml: replay check: %w", err)
	}
	return nil
}

// LogoutRequest authenticates and validates an incoming LogoutRequest
// (Core §3.7.1, Profiles §4.4.4.1): the signature by t's keys (Verify),
// then on the verified element only: Version, Issuer = t.EntityID,
// Destination = destination (our endpoint URL for m's binding),
// IssueInstant within the skew and age, NotOnOrAfter not passed, exactly
// one NameID, and finally the ID not seen before (recorded in the store).
//
// Errors wrapping ErrMalformed or ErrSignature mean the sender is not
// authenticated: answer HTTP 400 (a SOAP fault for SOAP), never a SAML
// response. An *Error carries the status of the LogoutResponse to send.
func (v *Validator) LogoutRequest(ctx context.Context, m *Message, t Trust, destination string) (*LogoutRequest, error) {
	if !m.IsRequest() || !is(m.Root(), NSProtocol, "LogoutRequest") {
		return nil, malformed("not a LogoutRequest")
	}
	el, err := Verify(m, t)
	if err != nil {
		return nil, err
	}
	h, err := parseHeader(el, "LogoutRequest")
	if err != nil {
		return nil, err
	}
	now := v.now()
	if err := v.checkCommon(m, h, t, destination, now); err != nil {
		return nil, err
	}
	r, err := parseLogoutRequest(el, v.DecryptionKey)
	if err != nil {
		return nil, err
	}
	if !r.NotOnOrAfter.IsZero() && !now.Before(r.NotOnOrAfter.Add(v.skew())) {
		return nil, requester(StatusRequestDenied, "LogoutRequest expired at %s", r.NotOnOrAfter.Format(time.RFC3339))
	}
	if err := v.checkReplay(ctx, h.Issuer, h.ID, h.IssueInstant, now); err != nil {
		return nil, err
	}
	return r, nil
}

// LogoutResponse authenticates and validates an incoming LogoutResponse
// (Core §3.7.2): the signature by t's keys, an Issuer equal to t.EntityID
// (a missing Issuer is refused, not dereferenced), InResponseTo equal to
// inResponseTo (the ID of our request, which must be non-empty),
// Destination, IssueInstant and replay as for requests. The status is
// returned for the caller to judge (Success, Partial). Every error means
// the response must not complete the logout as successful.
func (v *Validator) LogoutResponse(ctx context.Context, m *Message, t Trust, destination, inResponseTo string) (*LogoutResponse, error) {
	if m.IsRequest() || !is(m.Root(), NSProtocol, "LogoutResponse") {
		return nil, malformed("not a LogoutResponse")
	}
	el, err := Verify(m, t)
	if err != nil {
		return nil, err
	}
	h, err := parseHeader(el, "LogoutResponse")
	if err != nil {
		return nil, err
	}
	now := v.now()
	if err := v.checkCommon(m, h, t, destination, now); err != nil {
		return nil, err
	}
	r, err := ParseLogoutResponse(el)
	if err != nil {
		return nil, err
	}
	if inResponseTo == "" || r.InResponseTo != inResponseTo {
		return nil, requester(StatusRequestDenied, "LogoutResponse InResponseTo %q does not answer our request %q", r.InResponseTo, inResponseTo)
	}
	if err := v.checkReplay(ctx, h.Issuer, h.ID, h.IssueInstant, now); err != nil {
		return nil, err
	}
	return r, nil
}

// SameEndpoint reports whether a message's Destination names our endpoint
// (Bindings §3.4.5.2, §3.5.5.2): the same URL after the normalizations of
// RFC 3986 §6.2.2–§6.2.3 that deployed senders differ in: scheme and host
// compared without case, the default port (443 for https, 80 for http)
// equal to no port, and an empty path equal to "/". The path and query
// must match exactly.
func SameEndpoint(a, b string) bool {
	if a == b {
		return true
	}
	ua, err1 := url.Parse(a)
	ub, err2 := url.Parse(b)
	if err1 != nil || err2 != nil || !ua.IsAbs() || !ub.IsAbs() || ua.User != nil || ub.User != nil {
		return false
	}
	norm := func(u *url.URL) string {
		scheme := strings.ToLower(u.Scheme)
		host, port := strings.ToLower(u.Hostname()), u.Port()
		if (scheme == "https" && port == "443") || (scheme == "http" && port == "80") {
			port = ""
		}
		if port != "" {
			host = net.JoinHostPort(host, port)
		} else if strings.Contains(host, ":") {
			host = "[" + host + "]"
		}
		path := u.EscapedPath()
		if path == "" {
			path = "/"
		}
		return scheme + "://" + host + path + "?" + u.RawQuery + "#" + u.Fragment
	}
	return norm(ua) == norm(ub)
}
