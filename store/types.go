package store

import (
	"slices"
	"time"
)

// NameID is a SAML name identifier kept exactly as the upstream IdP issued
// it (SAML Core §2.2.2): a LogoutRequest toward that IdP must carry the same
// value with the same qualifiers and Format.
type NameID struct {
	Value           string `json:"value"`
	Format          string `json:"format,omitempty"`
	NameQualifier   string `json:"name_qualifier,omitempty"`
	SPNameQualifier string `json:"sp_name_qualifier,omitempty"`
}

// Session is a bridge session: one user's login at an upstream IdP, shared
// by every downstream app (participant) that received a login inside it.
type Session struct {
	// ID is the bridge session ID (the OIDC `sid`). Unguessable; set by the
	// caller.
	ID string `json:"id"`
	// UserID is the stable subject of the user at the bridge.
	UserID string `json:"user_id"`
	// Upstream names the upstream IdP that authenticated the user (the key
	// of its configuration), empty for sessions made by tests or the admin.
	Upstream string `json:"upstream,omitempty"`
	// NameID and SessionIndex are the upstream's identifiers for this login,
	// used to match an upstream LogoutRequest and to build ours.
	NameID       NameID `json:"name_id,omitzero"`
	SessionIndex string `json:"session_index,omitempty"`
	// Attributes are the user's claims as mapped from the upstream
	// assertion (email, name, groups ...).
	Attributes map[string][]string `json:"attributes,omitempty"`
	// AuthTime is when the user authenticated upstream (OIDC `auth_time`).
	AuthTime time.Time `json:"auth_time"`
	// CreatedAt is when the bridge session was created.
	CreatedAt time.Time `json:"created_at"`
	// ExpiresAt caps the session (SAML SessionNotOnOrAfter or the
	// configured maximum). After it the session is inactive and is swept.
	ExpiresAt time.Time `json:"expires_at"`
	// EndedAt is set when the session is logged out; zero while active.
	EndedAt time.Time `json:"ended_at,omitzero"`
	// LogoutID is the logout that ended the session, if any.
	LogoutID string `json:"logout_id,omitempty"`
	// PriorLogins are the earlier upstream logins this session rested on
	// before the same user re-authenticated in the same browser (see
	// Store.ReauthenticateSession), oldest first, at most MaxPriorLogins.
	// An upstream LogoutRequest naming one of them still matches the
	// session (FindSessionsByNameID): the apps that joined under the old
	// login are in this session, so its upstream ending must end it.
	PriorLogins []UpstreamLogin `json:"prior_logins,omitempty"`
}

// MaxPriorLogins caps Session.PriorLogins; when a re-authentication would
// exceed it, the oldest entry is dropped.
const MaxPriorLogins = 16

// UpstreamLogin identifies one login at an upstream IdP: which IdP, the
// NameID it issued and the SessionIndex of its AuthnStatement.
type UpstreamLogin struct {
	Upstream     string `json:"upstream,omitempty"`
	NameID       NameID `json:"name_id,omitzero"`
	SessionIndex string `json:"session_index,omitempty"`
}

// UpstreamLogin returns the session's current upstream login.
func (s Session) UpstreamLogin() UpstreamLogin {
	return UpstreamLogin{Upstream: s.Upstream, NameID: s.NameID, SessionIndex: s.SessionIndex}
}

// Matches reports whether l is a login at upstream whose NameID has the
// value of nameID and, where set in nameID, the same Format,
// NameQualifier and SPNameQualifier, and, when sessionIndex is not empty,
// that SessionIndex. It is the matching rule of FindSessionsByNameID.
func (l UpstreamLogin) Matches(upstream string, nameID NameID, sessionIndex string) bool {
	return l.NameID.Value != "" && l.Upstream == upstream && l.NameID.Value == nameID.Value &&
		(nameID.Format == "" || nameID.Format == l.NameID.Format) &&
		(nameID.NameQualifier == "" || nameID.NameQualifier == l.NameID.NameQualifier) &&
		(nameID.SPNameQualifier == "" || nameID.SPNameQualifier == l.NameID.SPNameQualifier) &&
		(sessionIndex == "" || sessionIndex == l.SessionIndex)
}

// SessionAuth holds the authentication facts of a new upstream login of a
// session's user in the browser that holds the session: what
// ReauthenticateSession writes over the session's own.
type SessionAuth struct {
	// UserID must be the session's user: a login as somebody else never
	// takes over a session.
	UserID string
	// Upstream, NameID and SessionIndex identify the new upstream login
	// (empty for a login without SAML identifiers).
	Upstream     string
	NameID       NameID
	SessionIndex string
	// Attributes replace the session's claims.
	Attributes map[string][]string
	// AuthTime is when the user authenticated again (OIDC auth_time); an
	// earlier time than the session's leaves the session's.
	AuthTime time.Time
	// ExpiresAt is the new cap of the session (SessionNotOnOrAfter of the
	// new assertion, or the configured maximum from now).
	ExpiresAt time.Time
}

// Reauthenticated returns s updated by a: the new upstream login, claims
// and expiry, the later of the two auth times (an upstream that answered
// from an older session of its own does not move auth_time back), with the
// previous upstream login (when it had a NameID and differs from the new
// one) appended to PriorLogins, keeping at most MaxPriorLogins. Backends
// use it so that they agree on the result.
func (s Session) Reauthenticated(a SessionAuth) Session {
	prev := s.UpstreamLogin()
	prior := append([]UpstreamLogin(nil), s.PriorLogins...)
	next := UpstreamLogin{Upstream: a.Upstream, NameID: a.NameID, SessionIndex: a.SessionIndex}
	if prev.NameID.Value != "" && prev != next {
		prior = slices.DeleteFunc(prior, func(l UpstreamLogin) bool { return l == prev || l == next })
		prior = append(prior, prev)
	} else {
		prior = slices.DeleteFunc(prior, func(l UpstreamLogin) bool { return l == next })
	}
	if len(prior) > MaxPriorLogins {
		prior = prior[len(prior)-MaxPriorLogins:]
	}
	if len(prior) == 0 {
		prior = nil
	}
	s.Upstream, s.NameID, s.SessionIndex = a.Upstream, a.NameID, a.SessionIndex
	s.Attributes = a.Attributes
	if a.AuthTime.After(s.AuthTime) {
		s.AuthTime = a.AuthTime
	}
	s.ExpiresAt = a.ExpiresAt
	s.PriorLogins = prior
	return s
}

// Active reports whether the session is neither ended nor expired at now.
func (s Session) Active(now time.Time) bool {
	return s.EndedAt.IsZero() && now.Before(s.ExpiresAt)
}

// Channel is a bit set of the ways a participant can be told about a logout.
type Channel uint8

const (
	// ChannelBack means the bridge notifies the participant server to
	// server (OIDC Back-Channel Logout, SAML SOAP, an SSF push). Every
	// back-channel participant gets one durable delivery in the outbox.
	ChannelBack Channel = 1 << iota
	// ChannelFront means the participant is notified through the user's
	// browser (OIDC Front-Channel Logout iframe, SAML Redirect/POST).
	ChannelFront
)

// Has reports whether c includes every bit of o.
func (c Channel) Has(o Channel) bool { return c&o == o && o != 0 }

// String renders the channel set as "back", "front", "back+front" or "none".
func (c Channel) String() string {
	switch {
	case c.Has(ChannelBack | ChannelFront):
		return "back+front"
	case c.Has(ChannelBack):
		return "back"
	case c.Has(ChannelFront):
		return "front"
	}
	return "none"
}

// Participant is an app that received a login inside a bridge session.
// The pair (SessionID, Key) is unique: the same app logging in twice is one
// participant.
type Participant struct {
	// SessionID is the bridge session the participant belongs to.
	SessionID string `json:"session_id"`
	// Key identifies the participant within its session; by convention
	// Kind + ":" + AppID. Used to de-duplicate.
	Key string `json:"key"`
	// Kind selects the Notifier ("oidc", "saml", "http", "ssf" ...).
	Kind string `json:"kind"`
	// AppID is the client_id or SAML SP entity ID.
	AppID string `json:"app_id"`
	// Name is the human name shown on the logout status page.
	Name string `json:"name,omitempty"`
	// Channels says how the participant is notified.
	Channels Channel `json:"channels"`
	// BackChannelURL is where back-channel notifications are sent.
	BackChannelURL string `json:"back_channel_url,omitempty"`
	// FrontChannelURL is what the logout page loads for front-channel
	// notification.
	FrontChannelURL string `json:"front_channel_url,omitempty"`
	// Data carries protocol details the notifier needs (the NameID and
	// SessionIndex issued to a SAML SP, whether an OIDC client requires
	// sid ...). Opaque to the engine and the store.
	Data map[string]string `json:"data,omitempty"`
	// JoinedAt is when the participant first joined the session.
	JoinedAt time.Time `json:"joined_at"`
}

// InitiatorKind says who started a logout (it maps onto CAEP
// initiating_entity: user, admin, policy, system).
type InitiatorKind string

// The kinds of logout initiator.
const (
	InitiatorUser     InitiatorKind = "user"     // the person, at the bridge or an app
	InitiatorRP       InitiatorKind = "rp"       // an OIDC relying party (end-session)
	InitiatorSP       InitiatorKind = "sp"       // a SAML service provider (LogoutRequest)
	InitiatorUpstream InitiatorKind = "upstream" // the upstream IdP (LogoutRequest)
	InitiatorAdmin    InitiatorKind = "admin"    // an operator (admin API / CLI)
	InitiatorSystem   InitiatorKind = "system"   // policy: refresh-token reuse, expiry ...
)

// Initiator records who started a logout.
type Initiator struct {
	Kind InitiatorKind `json:"kind"`
	// ID names the initiating party: client_id, SP entity ID, upstream
	// name, admin token name. Empty for the user at the bridge.
	ID string `json:"id,omitempty"`
}

// Logout is one logout event: the sessions it ended and the participants
// they had, snapshotted in the same transaction.
type Logout struct {
	ID         string    `json:"id"`
	UserID     string    `json:"user_id,omitempty"`
	SessionIDs []string  `json:"session_ids"`
	Initiator  Initiator `json:"initiator"`
	// ExcludeKey is the participant key that started the logout and is
	// answered directly rather than notified (SAML Profiles §4.4.3.1).
	ExcludeKey string    `json:"exclude_key,omitempty"`
	CreatedAt  time.Time `json:"created_at"`
	// Participants is the snapshot of every participant of the ended
	// sessions at the moment of logout, front- and back-channel alike.
	Participants []Participant `json:"participants"`
}

// DeliveryState is the state of one back-channel delivery.
type DeliveryState string

// Delivery states. Pending and Retrying are due for attempts; Delivered and
// Failed are final (Failed may be reset by an operator's retry).
const (
	DeliveryPending   DeliveryState = "pending"
	DeliveryRetrying  DeliveryState = "retrying"
	DeliveryDelivered DeliveryState = "delivered"
	DeliveryFailed    DeliveryState = "failed"
)

// Final reports whether no further attempt will be made.
func (s DeliveryState) Final() bool { return s == DeliveryDelivered || s == DeliveryFailed }

// Failing reports whether deliveries in state s are failing now: their
// last attempt failed and they either wait for the next (retrying) or have
// given up (failed).
func (s DeliveryState) Failing() bool { return s == DeliveryRetrying || s == DeliveryFailed }

// RetryNow is d made due at now by an operator, and whether that changes
// it: a failed delivery goes back to pending, a retrying one not under a
// running lease is due at now instead of at its next attempt. A delivered
// or pending delivery, or one a worker holds, is left as it is.
func RetryNow(d Delivery, now time.Time) (Delivery, bool) {
	switch {
	case d.State == DeliveryFailed:
		d.State, d.DoneAt = DeliveryPending, time.Time{}
	case d.State == DeliveryRetrying && (d.LeaseOwner == "" || !d.LeaseUntil.After(now)):
	default:
		return d, false
	}
	d.NextAttemptAt = now
	d.LeaseOwner, d.LeaseUntil = "", time.Time{}
	return d, true
}

// Attempt is the record of one delivery attempt.
type Attempt struct {
	At       time.Time     `json:"at"`
	Duration time.Duration `json:"duration"`
	// OK is true when the receiver acknowledged the notification.
	OK bool `json:"ok"`
	// StatusCode is the HTTP status the receiver answered, 0 if none.
	StatusCode int `json:"status_code,omitempty"`
	// Error says why the attempt failed; never contains a token.
	Error string `json:"error,omitempty"`
}

// Delivery is one durable back-channel notification in the outbox: one per
// back-channel participant per logout. Its ID is stable across attempts so
// receivers can de-duplicate.
type Delivery struct {
	ID          string        `json:"id"`
	LogoutID    string        `json:"logout_id"`
	Participant Participant   `json:"participant"`
	State       DeliveryState `json:"state"`
	CreatedAt   time.Time     `json:"created_at"`
	// NextAttemptAt is when the delivery is next due (pending/retrying).
	NextAttemptAt time.Time `json:"next_attempt_at"`
	// LeaseOwner and LeaseUntil mark a delivery claimed by a worker; while
	// the lease runs no other worker (or replica) claims it.
	LeaseOwner string    `json:"lease_owner,omitempty"`
	LeaseUntil time.Time `json:"lease_until,omitzero"`
	Attempts   []Attempt `json:"attempts,omitempty"`
	LastError  string    `json:"last_error,omitempty"`
	// DoneAt is when the delivery reached a final state.
	DoneAt time.Time `json:"done_at,omitzero"`
}

// Client is a registered downstream app (an OIDC client or a SAML SP) or an
// event receiver. The protocol packages own the meaning of Metadata.
type Client struct {
	// ID is the client_id or SP entity ID.
	ID string `json:"id"`
	// Kind is "oidc", "saml" or "ssf".
	Kind string `json:"kind"`
	// Name is the human-readable name.
	Name string `json:"name,omitempty"`
	// Static marks clients that come from the configuration file.
	Static bool `json:"static,omitempty"`
	// Metadata is the protocol-specific registration, as JSON.
	Metadata  []byte    `json:"metadata,omitempty"`
	CreatedAt time.Time `json:"created_at"`
	UpdatedAt time.Time `json:"updated_at"`
}

// Record is an expiring one-time value: an authorization code, a pending
// SAML AuthnRequest ID, RelayState, a refresh token, CSRF state. Namespace
// separates kinds; Key is unique within its namespace.
type Record struct {
	Namespace string    `json:"namespace"`
	Key       string    `json:"key"`
	Value     []byte    `json:"value"`
	ExpiresAt time.Time `json:"expires_at"`
}

// GrantUse is the answer of Store.TakeGrant.
type GrantUse struct {
	// Record is the grant as it was put.
	Record Record
	// First is true for exactly one use of the grant, ever.
	First bool
	// Issued is what the first use recorded; set when First is false.
	Issued []byte
}

// Key is a signing key kept in the store so that every replica signs with
// and publishes the same keys.
type Key struct {
	// ID is the JWK kid.
	ID string `json:"id"`
	// Use is what the key is for ("oidc", "saml", ...).
	Use string `json:"use"`
	// Algorithm is the JOSE alg (RS256, ES256).
	Algorithm string `json:"alg"`
	// PrivatePEM is the PKCS#8 private key.
	PrivatePEM []byte `json:"private_pem"`
	// NotBefore is when the key may start signing (it is published in
	// JWKS before that); NotAfter is when it stops signing; it is kept for
	// verification until RetireAt.
	CreatedAt time.Time `json:"created_at"`
	NotBefore time.Time `json:"not_before"`
	NotAfter  time.Time `json:"not_after"`
	RetireAt  time.Time `json:"retire_at"`
}

// SweepResult counts what one expiry sweep removed.
type SweepResult struct {
	Sessions   int
	Logouts    int
	Deliveries int
	Records    int
	Replay     int
	Keys       int
}

// WithLegs returns the snapshot ps (participants in the order of
// sessionIDs) with each leg inserted after the participants of its
// session; legs of other sessions are dropped. The store backends call it
// for LogoutSpec.Legs.
func WithLegs(ps []Participant, sessionIDs []string, legs []Participant) []Participant {
	if len(legs) == 0 {
		return ps
	}
	out := make([]Participant, 0, len(ps)+len(legs))
	for _, sid := range sessionIDs {
		for _, p := range ps {
			if p.SessionID == sid {
				out = append(out, p)
			}
		}
		for _, l := range legs {
			if l.SessionID == sid {
				out = append(out, l)
			}
		}
	}
	return out
}
