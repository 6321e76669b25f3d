package oidc

import (
	"net/url"
	"testing"

	"github.com/slobridge/slobridge/store"
)

// TestFrontChannelURL: iss and sid are added only when the client requires
// session information, keeping the query the registered URI has
// (Front-Channel Logout 1.0 §2).
func TestFrontChannelURL(t *testing.T) {
	const iss, sid = "https://bridge.example", "s/1+2"
	tests := []struct {
		uri      string
		required bool
		want     url.Values
	}{
		{"https://app.example/fc", false, url.Values{}},
		{"https://app.example/fc", true, url.Values{"iss": {iss}, "sid": {sid}}},
		{"https://app.example/fc?tenant=a&x=1", true, url.Values{"tenant": {"a"}, "x": {"1"}, "iss": {iss}, "sid": {sid}}},
		{"https://app.example/fc?tenant=a", false, url.Values{"tenant": {"a"}}},
	}
	for _, tc := range tests {
		got := FrontChannelURL(tc.uri, tc.required, iss, sid)
		u, err := url.Parse(got)
		if err != nil {
			t.Fatal(err)
		}
		if u.Scheme+"://"+u.Host+u.Path != "https://app.example/fc" || u.Query().Encode() != tc.want.Encode() {
			t.Errorf("FrontChannelURL(%q, %v) = %q, want query %q", tc.uri, tc.required, got, tc.want.Encode())
		}
	}
}

// TestParticipantFor: a client's registration decides its channels and
// URLs as a participant; the key makes a second login the same participant.
func TestParticipantFor(t *testing.T) {
	s := store.Session{ID: "sid-9", UserID: "alice"}
	tests := []struct {
		name string
		md   ClientMetadata
		ch   store.Channel
	}{
		{"no logout channel", ClientMetadata{}, 0},
		{"back", ClientMetadata{BackchannelLogoutURI: "https://a.example/bc"}, store.ChannelBack},
		{"front", ClientMetadata{FrontchannelLogoutURI: "https://a.example/fc", FrontchannelLogoutSessionRequired: true}, store.ChannelFront},
		{"both", ClientMetadata{BackchannelLogoutURI: "https://a.example/bc", FrontchannelLogoutURI: "https://a.example/fc"}, store.ChannelBack | store.ChannelFront},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			p := participantFor(Client{ID: "app", Metadata: tc.md}, s, "https://bridge.example")
			if p.Key != "oidc:app" || p.Kind != ParticipantKind || p.SessionID != s.ID || p.Channels != tc.ch {
				t.Fatalf("participant %+v", p)
			}
			if p.BackChannelURL != tc.md.BackchannelLogoutURI || p.Data[DataSubject] != "alice" || p.Data[DataAlg] != "" {
				t.Fatalf("participant %+v", p)
			}
			if want := FrontChannelURL(tc.md.FrontchannelLogoutURI, tc.md.FrontchannelLogoutSessionRequired, "https://bridge.example", s.ID); tc.md.FrontchannelLogoutURI != "" && p.FrontChannelURL != want {
				t.Fatalf("front-channel URL %q, want %q", p.FrontChannelURL, want)
			}
		})
	}
}
