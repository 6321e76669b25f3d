package idp

import (
	"context"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/slobridge/slobridge"
	"github.com/slobridge/slobridge/store"
)

// TestFramedPOSTAncestors checks the frame-ancestors of the HTTP-POST page
// that the logout page frames for a front-channel SP. CSP checks every
// ancestor, so when an upstream IdP frames the logout page of a logout it
// started (and recorded with Engine.SetFrameAncestors) that IdP must be
// allowed as well as the bridge; for any other logout, and for an origin
// recorded for a logout another party started, only the bridge ('self').
// The top-level chain's POST page allows that IdP alone, or nobody.
func TestFramedPOSTAncestors(t *testing.T) {
	const idpOrigin = "https://idp.example.test"
	for _, tc := range []struct {
		name      string
		initiator store.InitiatorKind
		// chain: the SP is notified by the top-level chain, whose POST
		// page is top-level — unless the whole logout runs in the IdP's
		// iframe.
		chain bool
		want  string
	}{
		{"upstream-initiated", store.InitiatorUpstream, false, "'self' " + idpOrigin},
		{"sp-initiated", store.InitiatorSP, false, "'self'"},
		{"user-initiated", store.InitiatorUser, false, "'self'"},
		{"upstream-initiated chain", store.InitiatorUpstream, true, idpOrigin},
		{"user-initiated chain", store.InitiatorUser, true, "'none'"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			spFile := filepath.Join(t.TempDir(), "sp.xml")
			if err := os.WriteFile(spFile, corpusSPMetadata(t), 0o600); err != nil {
				t.Fatal(err)
			}
			b := newBridge(t, bridgeOpts{cfg: Config{ServiceProviders: []SPConfig{{MetadataFile: spFile, FrontChannelBinding: BindingPOST, FrontChannelTopLevel: tc.chain}}}})
			ctx := context.Background()
			s, err := b.eng.CreateSession(ctx, store.Session{UserID: "alice", ExpiresAt: time.Now().Add(time.Hour)})
			if err != nil {
				t.Fatal(err)
			}
			sp, _ := b.idp.ServiceProvider(ctx, corpusSP)
			if _, err := b.idp.join(ctx, sp, "", s); err != nil {
				t.Fatal(err)
			}
			p, _, _ := b.idp.participant(ctx, s.ID, ParticipantKey(corpusSP))
			lo, err := b.eng.Logout(ctx, slobridge.LogoutRequest{SessionIDs: []string{s.ID}, Initiator: store.Initiator{Kind: tc.initiator, ID: "corp"}})
			if err != nil {
				t.Fatal(err)
			}
			if err := b.eng.SetFrameAncestors(ctx, lo.ID, []string{idpOrigin, "https://*.evil.example", "'unsafe-inline'"}, time.Hour); err != nil {
				t.Fatal(err)
			}
			var resp *http.Response
			if tc.chain {
				rec := httptest.NewRecorder()
				if sent, err := b.idp.NextTopLevel(rec, httptest.NewRequest(http.MethodGet, "/logout/continue/"+lo.ID, nil), lo, "/logout/continue/"+lo.ID); !sent || err != nil {
					t.Fatalf("top-level chain: sent %v, %v", sent, err)
				}
				resp = rec.Result()
			} else if resp, err = noRedirects.Get(p.FrontChannelURL); err != nil {
				t.Fatal(err)
			}
			resp.Body.Close()
			var got string
			for d := range strings.SplitSeq(resp.Header.Get("Content-Security-Policy"), ";") {
				if v, ok := strings.CutPrefix(strings.TrimSpace(d), "frame-ancestors "); ok {
					got = v
				}
			}
			if resp.StatusCode != 200 || got != tc.want {
				t.Fatalf("framed POST page: HTTP %d, frame-ancestors %q; want 200 and %q", resp.StatusCode, got, tc.want)
			}
		})
	}
}
