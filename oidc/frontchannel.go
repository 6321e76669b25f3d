package oidc

import (
	"net/url"
	"strconv"

	"github.com/slobridge/slobridge/store"
)

// ParticipantKind is the store.Participant Kind of OIDC clients; the
// back-channel Notifier is registered for it.
const ParticipantKind = "oidc"

// Keys of store.Participant.Data written for OIDC participants.
const (
	// DataSIDRequired is "true" when the client registered
	// backchannel_logout_session_required.
	DataSIDRequired = "backchannel_sid_required"
	// DataSubject is the sub the client knows the user by.
	DataSubject = "sub"
	// DataAlg is the client's signing algorithm, used for its logout tokens.
	DataAlg = "alg"
)

// participantFor describes a client as a participant of session s, with
// its logout channels from its registration (idempotent: same Key).
func participantFor(cl Client, s store.Session, issuer string) store.Participant {
	md := cl.Metadata
	p := store.Participant{
		SessionID: s.ID, Key: ParticipantKind + ":" + cl.ID, Kind: ParticipantKind,
		AppID: cl.ID, Name: md.ClientName,
		Data: map[string]string{
			DataSIDRequired: strconv.FormatBool(md.BackchannelLogoutSessionRequired),
			DataSubject:     s.UserID,
		},
	}
	if a := md.IDTokenSignedResponseAlg; a != "" {
		p.Data[DataAlg] = a
	}
	p.Channels = md.Channels()
	if p.Channels.Has(store.ChannelBack) {
		p.BackChannelURL = md.BackchannelLogoutURI
	}
	if p.Channels.Has(store.ChannelFront) {
		p.FrontChannelURL = FrontChannelURL(md.FrontchannelLogoutURI, md.FrontchannelLogoutSessionRequired, issuer, s.ID)
	}
	return p
}

// Channels are the logout channels the registration asks for.
func (m ClientMetadata) Channels() store.Channel {
	var c store.Channel
	if m.BackchannelLogoutURI != "" {
		c |= store.ChannelBack
	}
	if m.FrontchannelLogoutURI != "" {
		c |= store.ChannelFront
	}
	return c
}

// FrontChannelURL is the URL the logout page loads in an iframe for a
// front-channel client (Front-Channel Logout 1.0 §2): its registered
// frontchannel_logout_uri, with iss and sid added when the client requires
// session information, keeping any query the registered URI already has.
func FrontChannelURL(uri string, sessionRequired bool, issuer, sid string) string {
	if !sessionRequired {
		return uri
	}
	return addQuery(uri, url.Values{"iss": {issuer}, "sid": {sid}})
}
