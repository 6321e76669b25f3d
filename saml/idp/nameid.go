package idp

import (
	"cmp"
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"net/url"
	"time"

	"github.com/slobridge/slobridge"
	bsaml "github.com/slobridge/slobridge/saml"
	"github.com/slobridge/slobridge/store"
)

// Keys of store.Participant.Data for SAML participants: what the SP was
// issued, so that every LogoutRequest toward it carries the same NameID
// and SessionIndex (SAML Core §3.7.1, Profiles §4.4.4.1).
const (
	DataNameID          = "name_id"
	DataNameIDFormat    = "name_id_format"
	DataNameQualifier   = "name_qualifier"
	DataSPNameQualifier = "sp_name_qualifier"
	DataSessionIndex    = "session_index"
	// DataFrontBinding is "redirect" or "post".
	DataFrontBinding = "front_binding"
	// DataFrontLocation is the SP's SingleLogoutService for that binding.
	DataFrontLocation = "front_location"
	// DataTopLevel is "true" for an SP notified by the top-level redirect
	// chain rather than an iframe (SPConfig.FrontChannelTopLevel); the
	// logout page knows the key.
	DataTopLevel = slobridge.DataTopLevel
)

// Record namespaces of the IdP.
const (
	// nsSessionIndex maps a SessionIndex we issued to its session and SP.
	nsSessionIndex = "saml-idp-session-index"
	// nsNameID maps (SP, NameID value) to the bridge user, for
	// LogoutRequests without a SessionIndex.
	nsNameID = "saml-idp-name-id"
	// nsFront maps a front-channel token to its session and SP.
	nsFront = "saml-idp-front"
	// nsAuthn holds an AuthnRequest parked during the upstream login.
	nsAuthn = store.VolatilePrefix + "saml-idp-authn"
	// nsPendingLogout maps the ID of a front-channel LogoutRequest we sent
	// to its logout and participant, to check the LogoutResponse.
	nsPendingLogout = "saml-idp-pending-logout"
	// nsLogoutReply holds what to answer the SP that started a browser
	// logout, keyed by logout ID.
	nsLogoutReply = "saml-idp-logout-reply"
	// nsReplay is the replay namespace of incoming message IDs.
	nsReplay = "saml-idp-message"
)

// recordGrace keeps session-bound records a while after the session's
// expiry, for logouts that arrive late.
const recordGrace = time.Hour

// ParticipantKey returns the participant key of an SP in a session.
func ParticipantKey(entityID string) string { return ClientKind + ":" + entityID }

// sessionRef is the value of the session-bound records.
type sessionRef struct {
	SessionID string `json:"sid"`
	SP        string `json:"sp"`
	UserID    string `json:"user_id,omitempty"`
}

// issued is what one SP received inside one bridge session.
type issued struct {
	NameID       store.NameID
	SessionIndex string
}

func issuedFrom(p store.Participant) issued {
	return issued{
		NameID: store.NameID{
			Value: p.Data[DataNameID], Format: p.Data[DataNameIDFormat],
			NameQualifier: p.Data[DataNameQualifier], SPNameQualifier: p.Data[DataSPNameQualifier],
		},
		SessionIndex: p.Data[DataSessionIndex],
	}
}

// policyOf returns the NameID policy that issues NameID Format URI
// format; false for a format the bridge does not issue.
func policyOf(format string) (string, bool) {
	switch format {
	case FormatPersistent:
		return NameIDPersistent, true
	case FormatTransient:
		return NameIDTransient, true
	case FormatEmail:
		return NameIDEmail, true
	}
	return "", false
}

// formatOf returns the NameID Format URI of an SP's NameID policy.
func formatOf(policy string) string {
	switch policy {
	case NameIDEmail:
		return FormatEmail
	case NameIDTransient:
		return FormatTransient
	}
	return FormatPersistent
}

// pairwise returns the pairwise persistent NameID of a user at an SP: an
// HMAC, so it is stable, opaque, and different at every SP.
func (idp *IdP) pairwise(userID, entityID string) string {
	m := hmac.New(sha256.New, idp.opts.PairwiseSecret)
	m.Write([]byte(userID + "\x00" + entityID))
	return base64.RawURLEncoding.EncodeToString(m.Sum(nil))
}

// nameIDFor makes the NameID an SP gets for a session under its policy.
func (idp *IdP) nameIDFor(sp *SP, policy string, s store.Session) (store.NameID, error) {
	switch policy {
	case NameIDEmail:
		emails := s.Attributes["email"]
		if len(emails) == 0 || emails[0] == "" {
			return store.NameID{}, &bsaml.Error{Status: bsaml.StatusResponder, SubStatus: statusInvalidNameIDPolicy,
				Err: fmt.Errorf("saml idp: SP %s wants an email NameID and the session has no email", sp.EntityID)}
		}
		return store.NameID{Value: emails[0], Format: FormatEmail}, nil
	case NameIDTransient:
		v, err := idp.newID()
		if err != nil {
			return store.NameID{}, err
		}
		return store.NameID{Value: v, Format: FormatTransient, NameQualifier: idp.entityID, SPNameQualifier: sp.EntityID}, nil
	}
	return store.NameID{Value: idp.pairwise(s.UserID, sp.EntityID), Format: FormatPersistent,
		NameQualifier: idp.entityID, SPNameQualifier: sp.EntityID}, nil
}

// join makes sp a participant of session s, or returns what it was issued
// when it already is one: a second login of the same SP in the same
// session gets the same NameID and SessionIndex.
func (idp *IdP) join(ctx context.Context, sp *SP, policy string, s store.Session) (issued, error) {
	key := ParticipantKey(sp.EntityID)
	if p, ok, err := idp.participant(ctx, s.ID, key); err != nil || ok {
		return issuedFrom(p), err
	}
	nid, err := idp.nameIDFor(sp, cmp.Or(policy, sp.NameIDPolicy), s)
	if err != nil {
		return issued{}, err
	}
	si, err := idp.token(16)
	if err != nil {
		return issued{}, err
	}
	iss := issued{NameID: nid, SessionIndex: si}
	p := store.Participant{
		SessionID: s.ID, Key: key, Kind: ClientKind, AppID: sp.EntityID, Name: sp.Name,
		Channels: sp.channels(),
		Data: map[string]string{
			DataNameID: nid.Value, DataNameIDFormat: nid.Format, DataNameQualifier: nid.NameQualifier,
			DataSPNameQualifier: nid.SPNameQualifier, DataSessionIndex: si,
		},
	}
	expires := s.ExpiresAt.Add(recordGrace)
	ref := sessionRef{SessionID: s.ID, SP: sp.EntityID, UserID: s.UserID}
	if p.Channels.Has(store.ChannelBack) {
		p.BackChannelURL = sp.SLOLocation(URISOAP)
	}
	if p.Channels.Has(store.ChannelFront) {
		p.Data[DataFrontBinding] = sp.Config.FrontChannelBinding
		p.Data[DataFrontLocation] = sp.SLOLocation(bindingURI(sp.Config.FrontChannelBinding))
		if sp.Config.FrontChannelTopLevel {
			// No iframe: the logout page must not frame it.
			p.Data[DataTopLevel] = "true"
		} else {
			tok, err := idp.token(24)
			if err != nil {
				return issued{}, err
			}
			if err := idp.putRef(ctx, nsFront, tok, ref, expires); err != nil {
				return issued{}, err
			}
			p.FrontChannelURL = idp.endpoint(PathFront + "/" + tok)
			if u, err := url.Parse(p.Data[DataFrontLocation]); err == nil && u.Host != "" {
				p.Data[slobridge.DataFrameOrigins] = u.Scheme + "://" + u.Host
			}
		}
	}
	if err := idp.putRef(ctx, nsSessionIndex, si, ref, expires); err != nil {
		return issued{}, err
	}
	if err := idp.keepNameID(ctx, nameIDKey(sp.EntityID, nid.Value), ref, expires.Add(nameIDSlack)); err != nil {
		return issued{}, err
	}
	added, err := idp.eng.AddParticipant(ctx, p)
	if err != nil {
		return issued{}, fmt.Errorf("saml idp: record SP %s as participant: %w", sp.EntityID, err)
	}
	if !added {
		// A concurrent login of the same SP won; use what it issued.
		got, ok, err := idp.participant(ctx, s.ID, key)
		if err != nil || !ok {
			return issued{}, fmt.Errorf("saml idp: participant %s vanished: %v", key, err)
		}
		return issuedFrom(got), nil
	}
	idp.log.InfoContext(ctx, "saml sp joined session", "sid", s.ID, "participant", key, "channels", p.Channels.String())
	return iss, nil
}

// nameIDSlack is how much longer than the session a NameID record is
// written to last: a record that maps a NameID to its user a little longer
// than needed is harmless (logouts still match sessions by participant),
// and it spares the user's next logins a replacement (two commits).
const nameIDSlack = 24 * time.Hour

// keepNameID records that the (SP, NameID) key names ref's user until at
// least expires (less nameIDSlack). A LogoutRequest without SessionIndex means every session
// of the principal (Core §3.7.1), so the record must outlive the user's
// latest session, not the first: when one already exists with an earlier
// expiry, it is replaced by one that lasts (a few tries against
// concurrent logins; the user is the same in every version, so a login
// never fails over it).
func (idp *IdP) keepNameID(ctx context.Context, key string, ref sessionRef, expires time.Time) error {
	for range 4 {
		err := idp.putRef(ctx, nsNameID, key, ref, expires)
		if !errors.Is(err, store.ErrAlreadyExists) {
			return err
		}
		old, err := idp.st.GetRecord(ctx, nsNameID, key, idp.now())
		if errors.Is(err, store.ErrNotFound) {
			continue // expired or replaced meanwhile: put again
		}
		if err != nil {
			return fmt.Errorf("saml idp: read NameID record: %w", err)
		}
		// The record is written with nameIDSlack to spare, so that the
		// user's later logins (concurrent ones included) mostly find it
		// lasting long enough and write nothing more.
		if !old.ExpiresAt.Before(expires.Add(-nameIDSlack)) {
			return nil
		}
		if err := idp.st.DeleteRecord(ctx, nsNameID, key); err != nil {
			return fmt.Errorf("saml idp: replace NameID record: %w", err)
		}
	}
	// Other logins of the user kept replacing it: one of them stands, and
	// the user is the same in every version.
	return nil
}

// participant returns the participant with key of session sid.
func (idp *IdP) participant(ctx context.Context, sid, key string) (store.Participant, bool, error) {
	ps, err := idp.st.ListParticipants(ctx, sid)
	if err != nil {
		return store.Participant{}, false, fmt.Errorf("saml idp: list participants: %w", err)
	}
	for _, p := range ps {
		if p.Key == key {
			return p, true, nil
		}
	}
	return store.Participant{}, false, nil
}

// nameIDKey is the record key of a NameID issued to an SP: a hash of the
// SP's entity ID and the value, so that any characters in either make a
// key every store backend can hold (no NUL byte).
func nameIDKey(entityID, value string) string {
	h := sha256.Sum256([]byte(entityID + "\x00" + value))
	return base64.RawURLEncoding.EncodeToString(h[:])
}

func (idp *IdP) putRef(ctx context.Context, ns, key string, ref sessionRef, expires time.Time) error {
	val, err := json.Marshal(ref)
	if err != nil {
		return err
	}
	err = idp.st.PutRecord(ctx, store.Record{Namespace: ns, Key: key, Value: val, ExpiresAt: expires})
	if err != nil {
		return fmt.Errorf("saml idp: store %s record: %w", ns, err)
	}
	return nil
}

func (idp *IdP) getRef(ctx context.Context, ns, key string) (sessionRef, error) {
	rec, err := idp.st.GetRecord(ctx, ns, key, idp.now())
	if err != nil {
		return sessionRef{}, err
	}
	var ref sessionRef
	if err := json.Unmarshal(rec.Value, &ref); err != nil {
		return sessionRef{}, fmt.Errorf("saml idp: decode %s record: %w", ns, err)
	}
	return ref, nil
}
