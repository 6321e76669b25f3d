package sp

import (
	"net/http"
	"net/url"
	"slices"
	"testing"

	"github.com/slobridge/slobridge"
	"github.com/slobridge/slobridge/saml"
	"github.com/slobridge/slobridge/store"
)

// TestUpstreamAskedOncePerSession (SAML Core §3.7.3.2): a user with two
// bridge sessions from one upstream (two browsers, two upstream logins)
// is logged out by one request that ends both (an SP's LogoutRequest
// without SessionIndex); the upstream receives one LogoutRequest per
// upstream session, one after the other in the browser, and the browser
// ends at the logout's destination after the last answer.
func TestUpstreamAskedOncePerSession(t *testing.T) {
	b := newBridge(t, bridgeOptions{upstreams: []UpstreamConfig{corpUpstream(t, map[string]string{saml.BindingRedirect: idpSLO})}})
	s1 := b.session("corp", "alice", "alice@example.com", "_s1")
	s2 := b.session("corp", "alice", "alice@example.com", "_s2")
	lo, err := b.eng.Logout(t.Context(), slobridge.LogoutRequest{SessionIDs: []string{s1.ID, s2.ID},
		Initiator: store.Initiator{Kind: store.InitiatorSP, ID: "https://sp.example.test"}, Browser: true})
	if err != nil || len(lo.SessionIDs) != 2 {
		t.Fatalf("logout: %+v %v", lo, err)
	}
	resp := b.get("/logout/continue/" + lo.ID)
	var asked []string
	for range 3 {
		u, _ := url.Parse(resp.Header.Get("Location"))
		if resp.StatusCode != http.StatusSeeOther || u.Scheme+"://"+u.Host+u.Path != idpSLO {
			break
		}
		m, err := saml.DecodeRedirect(u.RawQuery, saml.Limits{})
		if err != nil {
			t.Fatal(err)
		}
		v := &saml.Validator{Store: b.st}
		req, err := v.LogoutRequest(t.Context(), m, b.spTrust(), idpSLO)
		if err != nil {
			t.Fatalf("the bridge's LogoutRequest does not validate: %v", err)
		}
		if len(req.SessionIndexes) != 1 {
			t.Fatalf("LogoutRequest names SessionIndexes %v, want one", req.SessionIndexes)
		}
		asked = append(asked, req.SessionIndexes[0])
		resp = b.idpResponse(t, saml.BindingRedirect, req.ID, m.RelayState, true)
	}
	slices.Sort(asked)
	if !slices.Equal(asked, []string{"_s1", "_s2"}) {
		t.Fatalf("the upstream was asked about %v, want _s1 and _s2 once each", asked)
	}
	if resp.StatusCode != http.StatusSeeOther || resp.Header.Get("Location") != "/logout/done/"+lo.ID {
		t.Fatalf("after the last answer: %d to %q, want the logout's done step", resp.StatusCode, resp.Header.Get("Location"))
	}
}
