package sp

import (
	"errors"
	"strings"
	"testing"
	"time"

	crewjam "github.com/crewjam/saml"

	"github.com/slobridge/slobridge/store"
)

// TestAssertionReplay feeds one genuine Response from the real IdP to two
// logins that expect the same request ID: the assertion-ID cache refuses
// the second even though everything else matches.
func TestAssertionReplay(t *testing.T) {
	_, idpSrv := realIdP(t, true)
	b := newBridge(t, bridgeOptions{upstreams: []UpstreamConfig{{Name: "corp", MetadataURL: idpSrv.URL + "/metadata"}}})
	registerSP(t, idpSrv, b)
	_, form := idpLogin(t, b)
	var st loginState
	if err := b.sp.getState(t.Context(), nsLogin, form.Get("RelayState"), &st); err != nil {
		t.Fatal(err)
	}
	u := b.sp.reg.Load().byName["corp"]
	if _, err := b.sp.consumeResponse(t.Context(), u, st, form.Get("SAMLResponse")); err != nil {
		t.Fatalf("first use: %v", err)
	}
	_, err := b.sp.consumeResponse(t.Context(), u, st, form.Get("SAMLResponse"))
	if !errors.Is(err, store.ErrReplay) {
		t.Fatalf("second use: %v, want a replay", err)
	}
}

func TestSessionFromAssertion(t *testing.T) {
	now := time.Date(2026, 3, 4, 5, 6, 7, 0, time.UTC)
	sp := &SP{opts: Options{SessionMaxAge: 8 * time.Hour, ClockSkew: time.Minute}}
	up := &upstream{cfg: UpstreamConfig{Name: "corp", UserIDPrefix: "corp:", UserIDAttribute: "uid",
		Attributes: map[string]string{"email": "mail", "groups": "urn:oid:groups"}}}
	at := func(d time.Duration) *time.Time { x := now.Add(d); return &x }
	base := func() *crewjam.Assertion {
		return &crewjam.Assertion{
			Subject: &crewjam.Subject{NameID: &crewjam.NameID{Value: "AbC123", Format: "urn:oasis:names:tc:SAML:2.0:nameid-format:persistent",
				NameQualifier: "https://idp", SPNameQualifier: "https://sp"}},
			AuthnStatements: []crewjam.AuthnStatement{{AuthnInstant: now.Add(-time.Minute), SessionIndex: "_idx", SessionNotOnOrAfter: at(time.Hour)}},
			AttributeStatements: []crewjam.AttributeStatement{{Attributes: []crewjam.Attribute{
				{Name: "urn:oid:0.9.2342.19200300.100.1.1", FriendlyName: "uid", Values: []crewjam.AttributeValue{{Value: "alice"}}},
				{Name: "urn:oid:mail", FriendlyName: "mail", Values: []crewjam.AttributeValue{{Value: "alice@example.com"}}},
				{Name: "urn:oid:groups", Values: []crewjam.AttributeValue{{Value: "a"}, {Value: "b"}, {Value: "a"}}},
			}}},
		}
	}
	for _, tc := range []struct {
		name    string
		mutate  func(*crewjam.Assertion)
		wantErr string
		check   func(*testing.T, store.Session)
	}{
		{"mapped", func(*crewjam.Assertion) {}, "", func(t *testing.T, s store.Session) {
			if s.UserID != "corp:alice" || s.SessionIndex != "_idx" || s.NameID.Value != "AbC123" ||
				s.NameID.NameQualifier != "https://idp" || s.NameID.SPNameQualifier != "https://sp" ||
				!s.ExpiresAt.Equal(now.Add(time.Hour)) || !s.AuthTime.Equal(now.Add(-time.Minute)) {
				t.Errorf("session %+v", s)
			}
			if strings.Join(s.Attributes["groups"], ",") != "a,b" || s.Attributes["email"][0] != "alice@example.com" {
				t.Errorf("attributes %v", s.Attributes)
			}
		}},
		{"no SessionNotOnOrAfter", func(a *crewjam.Assertion) { a.AuthnStatements[0].SessionNotOnOrAfter = nil }, "",
			func(t *testing.T, s store.Session) {
				if !s.ExpiresAt.Equal(now.Add(8 * time.Hour)) {
					t.Errorf("expiry %v", s.ExpiresAt)
				}
			}},
		{"SessionNotOnOrAfter passed", func(a *crewjam.Assertion) { a.AuthnStatements[0].SessionNotOnOrAfter = at(-time.Second) }, "SessionNotOnOrAfter", nil},
		{"no NameID", func(a *crewjam.Assertion) { a.Subject.NameID = nil }, "NameID", nil},
		{"no AuthnStatement", func(a *crewjam.Assertion) { a.AuthnStatements = nil }, "AuthnStatement", nil},
		{"no user ID attribute", func(a *crewjam.Assertion) {
			a.AttributeStatements[0].Attributes = a.AttributeStatements[0].Attributes[1:]
		}, "user ID attribute", nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			a := base()
			tc.mutate(a)
			s, err := sp.sessionFrom(up, a, now)
			if tc.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
					t.Fatalf("err = %v, want %q", err, tc.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			tc.check(t, s)
		})
	}
}
