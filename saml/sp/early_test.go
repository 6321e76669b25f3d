package sp

import (
	"net/http"
	"testing"
	"time"

	"github.com/slobridge/slobridge/saml"
)

// TestLogoutBeforeResponse (SAML Core §3.7.3.1): the upstream's
// LogoutRequest for a NameID and SessionIndex arrives (over SOAP) before
// the Response of that login; the Response afterwards creates no live
// session. A LogoutRequest without SessionIndex does the same to a
// Response issued before it, but not to a later login.
func TestLogoutBeforeResponse(t *testing.T) {
	for _, tc := range []struct {
		name        string
		index       []string
		laterLogin  bool
		wantSession bool
	}{
		{name: "with the SessionIndex", index: []string{"_s1"}},
		{name: "without SessionIndex", index: nil},
		{name: "without SessionIndex, a login after it", index: nil, laterLogin: true, wantSession: true},
		{name: "another SessionIndex", index: []string{"_other"}, wantSession: true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c := startCrafted(t, 0)
			lr := &saml.LogoutRequest{ID: "_early-" + c.request, IssueInstant: c.now, Destination: c.b.sp.url(PathSLOSOAP),
				Issuer: craftIdP, NameID: saml.NameID{Value: "alice", Format: "urn:oasis:names:tc:SAML:2.0:nameid-format:persistent"},
				SessionIndexes: tc.index}
			signed, err := c.idp.SignEnveloped(lr.Element())
			if err != nil {
				t.Fatal(err)
			}
			env, err := saml.SOAPEnvelope(signed)
			if err != nil {
				t.Fatal(err)
			}
			resp := c.b.post(PathSLOSOAP, "text/xml; charset=utf-8", env)
			if resp.StatusCode != http.StatusOK {
				t.Fatalf("SOAP LogoutRequest answered %d: %s", resp.StatusCode, readBody(t, resp))
			}
			readBody(t, resp)
			if tc.laterLogin {
				// The IdP logs the user in again after its logout.
				later := c.now.Add(2 * time.Second)
				c.resp["IssueInstant"] = ts(later)
				c.a.IssueInstant = ts(later)
			}
			code, body := c.post(t, c.document(t))
			if got := c.b.sessions(); (got == 1) != tc.wantSession {
				t.Fatalf("Response after the LogoutRequest: HTTP %d, %d live sessions, want session %v: %s", code, got, tc.wantSession, body)
			}
			if !tc.wantSession && code != http.StatusForbidden {
				t.Fatalf("refused login answered %d, want 403", code)
			}
		})
	}
}
