package sp

import (
	"bytes"
	"log/slog"
	"strings"
	"testing"
	"time"

	crewjam "github.com/crewjam/saml"

	"github.com/slobridge/slobridge/saml"
)

// TestMissingMappedAttributeLoggedOnce: an assertion without an attribute
// the upstream's mapping names still logs in, and the bridge says so
// once per upstream and claim, not at every login.
func TestMissingMappedAttributeLoggedOnce(t *testing.T) {
	up := corpUpstream(t, map[string]string{saml.BindingRedirect: idpSLO})
	up.Attributes = map[string]string{"email": "mail", "groups": "memberOf"}
	b := newBridge(t, bridgeOptions{upstreams: []UpstreamConfig{up}})
	var logs bytes.Buffer
	b.sp.log = slog.New(slog.NewTextHandler(&logs, nil))
	u := b.sp.reg.Load().byName["corp"]
	a := &crewjam.Assertion{
		Subject: &crewjam.Subject{NameID: &crewjam.NameID{Value: "alice@example.com"}},
		AttributeStatements: []crewjam.AttributeStatement{{Attributes: []crewjam.Attribute{
			{Name: "mail", Values: []crewjam.AttributeValue{{Value: "alice@example.com"}}}}}},
		AuthnStatements: []crewjam.AuthnStatement{{SessionIndex: "_s1", AuthnInstant: time.Now()}},
	}
	for range 3 {
		s, err := b.sp.sessionFrom(u, a, time.Now())
		if err != nil || s.Attributes["email"][0] != "alice@example.com" || s.Attributes["groups"] != nil {
			t.Fatalf("session %+v (%v)", s, err)
		}
	}
	if n := strings.Count(logs.String(), "lacks a mapped attribute"); n != 1 || !strings.Contains(logs.String(), "claim=groups") {
		t.Fatalf("logged %d times:\n%s", n, logs.String())
	}
}
