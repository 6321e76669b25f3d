package ssf

import (
	"context"
	"fmt"
	"time"

	"github.com/slobridge/slobridge/store"
)

// Event and token constants, with the spec that defines them.
const (
	// EventSessionRevoked is the OpenID CAEP 1.0 §3.1 event type.
	EventSessionRevoked = "https://schemas.openid.net/secevent/caep/event-type/session-revoked"
	// TokenType is the explicit JWT type of a SET (RFC 8417 §2.3).
	TokenType = "secevent+jwt"
	// ContentType is the media type of a pushed SET (RFC 8935 §2).
	ContentType = "application/secevent+jwt"
	// DeliveryPush and DeliveryPoll are the SSF delivery method URIs.
	DeliveryPush = "urn:ietf:rfc:8935"
	DeliveryPoll = "urn:ietf:rfc:8936"
	// Kind is the participant kind of event receivers.
	Kind = "ssf"
)

// Subject is an SSF subject identifier (RFC 9493 formats plus the SSF
// "complex" format). Only the members of the chosen format are set.
type Subject struct {
	Format  string   `json:"format"`
	Iss     string   `json:"iss,omitempty"`
	Sub     string   `json:"sub,omitempty"`
	ID      string   `json:"id,omitempty"`
	User    *Subject `json:"user,omitempty"`
	Session *Subject `json:"session,omitempty"`
}

// SessionRevoked is the payload of the CAEP session-revoked event.
type SessionRevoked struct {
	// EventTimestamp is when the session was revoked (NumericDate).
	EventTimestamp int64 `json:"event_timestamp"`
	// InitiatingEntity is one of admin, user, policy, system (CAEP §2).
	InitiatingEntity string `json:"initiating_entity"`
	// ReasonAdmin is a reason for administrators, by language tag.
	ReasonAdmin map[string]string `json:"reason_admin,omitempty"`
}

// Claims are the claims of a session-revoked SET (RFC 8417 §2.2, SSF 1.0
// §4.1): no sub and no exp, which SSF forbids so that a SET is never
// taken for another kind of JWT; the subject is sub_id.
type Claims struct {
	Issuer   string   `json:"iss"`
	IssuedAt int64    `json:"iat"`
	ID       string   `json:"jti"`
	Audience []string `json:"aud"`
	// Txn names the logout that caused the event (SSF 1.0 §4.1.9: SHOULD
	// be set, unique to the underlying event): every receiver's SET of
	// one logout, for every session it ended, carries the same value.
	Txn    string                    `json:"txn,omitempty"`
	SubID  Subject                   `json:"sub_id"`
	Events map[string]SessionRevoked `json:"events"`
	// Sid repeats the session as a plain claim for receivers that only
	// read that (it is what OIDC tokens carry); the user is not repeated
	// as sub, which SSF forbids.
	Sid string `json:"sid,omitempty"`
}

// InitiatingEntity maps who started a logout onto the CAEP vocabulary.
func InitiatingEntity(k store.InitiatorKind) string {
	switch k {
	case store.InitiatorAdmin:
		return "admin"
	case store.InitiatorSystem:
		return "policy"
	case store.InitiatorUpstream:
		return "system"
	default: // the user, at the bridge or through an RP or SP
		return "user"
	}
}

// NewSessionRevoked builds the claims of the SET announcing that session
// sess was revoked by lo, for a receiver with the given audience. jti is
// the outbox delivery ID, stable across retries, so that a receiver
// de-duplicates repeated pushes (RFC 8935 §2.2).
func NewSessionRevoked(issuer string, audience []string, jti string, sess store.Session, lo store.Logout, now time.Time) Claims {
	when := lo.CreatedAt
	if when.IsZero() {
		when = now
	}
	return Claims{
		Issuer:   issuer,
		IssuedAt: now.Unix(),
		ID:       jti,
		Audience: audience,
		Txn:      lo.ID,
		SubID: Subject{
			Format:  "complex",
			User:    &Subject{Format: "iss_sub", Iss: issuer, Sub: sess.UserID},
			Session: &Subject{Format: "opaque", ID: sess.ID},
		},
		Sid: sess.ID,
		Events: map[string]SessionRevoked{EventSessionRevoked: {
			EventTimestamp:   when.Unix(),
			InitiatingEntity: InitiatingEntity(lo.Initiator.Kind),
		}},
	}
}

// Signer signs a JWT with the bridge's current key, setting the given
// explicit type in the JOSE header.
type Signer interface {
	SignJWT(ctx context.Context, typ string, claims any) (string, error)
}

// SessionID returns the session of a verified SET: the complex subject's
// session member, or the sid claim.
func (c Claims) SessionID() (string, error) {
	if c.SubID.Session != nil && c.SubID.Session.ID != "" {
		return c.SubID.Session.ID, nil
	}
	if c.Sid != "" {
		return c.Sid, nil
	}
	return "", fmt.Errorf("ssf: SET names no session")
}
