package idp

import (
	"context"
	"crypto/x509"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/beevik/etree"

	"github.com/slobridge/slobridge"
	bsaml "github.com/slobridge/slobridge/saml"
	"github.com/slobridge/slobridge/store"
)

// noRedirects is a client that shows redirects instead of following them.
var noRedirects = &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}

// TestFrontChannel drives the iframe page of a front-channel SP in both
// bindings and answers it: the LogoutRequest carries the SP's NameID and
// SessionIndex, and the SP's LogoutResponse is validated and recorded;
// anything but a plain Success makes the logout partial.
func TestFrontChannel(t *testing.T) {
	for _, tc := range []struct {
		name, binding, status, sub string
		destination                string // of the response; default our SLO endpoint
		wantHTTP                   int
		wantOK                     bool
	}{
		{name: "redirect success", binding: BindingRedirect, status: bsaml.StatusSuccess, wantHTTP: http.StatusOK, wantOK: true},
		{name: "post success", binding: BindingPOST, status: bsaml.StatusSuccess, wantHTTP: http.StatusOK, wantOK: true},
		{name: "responder", binding: BindingPOST, status: bsaml.StatusResponder, wantHTTP: http.StatusOK},
		{name: "partial", binding: BindingRedirect, status: bsaml.StatusSuccess, sub: bsaml.StatusPartialLogout, wantHTTP: http.StatusOK},
		{name: "wrong destination", binding: BindingPOST, status: bsaml.StatusSuccess, destination: "https://evil.example/slo", wantHTTP: http.StatusBadRequest},
	} {
		t.Run(tc.name, func(t *testing.T) {
			spFile := filepath.Join(t.TempDir(), "sp.xml")
			if err := os.WriteFile(spFile, corpusSPMetadata(t), 0o600); err != nil {
				t.Fatal(err)
			}
			b := newBridge(t, bridgeOpts{cfg: Config{ServiceProviders: []SPConfig{{MetadataFile: spFile, FrontChannelBinding: tc.binding}}}})
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
			if resp, _ := noRedirects.Get(p.FrontChannelURL); resp == nil || resp.StatusCode != http.StatusBadRequest {
				t.Fatalf("front-channel page before the logout: %v, want 400", resp)
			}
			if resp, _ := noRedirects.Get(b.url + PathFront + "/unknown"); resp == nil || resp.StatusCode != http.StatusNotFound {
				t.Fatalf("unknown front-channel token: %v, want 404", resp)
			}
			lo, err := b.eng.Logout(ctx, slobridge.LogoutRequest{SessionIDs: []string{s.ID}, Initiator: store.Initiator{Kind: store.InitiatorUser}})
			if err != nil {
				t.Fatal(err)
			}
			req := frontRequest(t, p.FrontChannelURL, tc.binding)
			if req.NameID.Value != p.Data[DataNameID] || req.NameID.Format != FormatPersistent ||
				len(req.SessionIndexes) != 1 || req.SessionIndexes[0] != p.Data[DataSessionIndex] ||
				req.Destination != "https://sp.slobridge.test/slo" || req.Issuer != b.idp.EntityID() || req.Reason != bsaml.ReasonUser {
				t.Fatalf("LogoutRequest %+v does not match participant %v", req, p.Data)
			}
			dest := tc.destination
			if dest == "" {
				dest = b.idp.endpoint(PathSLO)
			}
			id, _ := bsaml.NewID(nil)
			r := &bsaml.LogoutResponse{ID: id, InResponseTo: req.ID, IssueInstant: time.Now(), Destination: dest,
				Issuer: corpusSP, Status: tc.status, SubStatus: tc.sub}
			signed, err := testSigner(t, "sp2").SignEnveloped(r.Element())
			if err != nil {
				t.Fatal(err)
			}
			resp, err := http.PostForm(b.url+PathSLO, url.Values{"SAMLResponse": {mustPOSTValue(t, signed)}})
			if err != nil {
				t.Fatal(err)
			}
			resp.Body.Close()
			if resp.StatusCode != tc.wantHTTP {
				t.Fatalf("LogoutResponse answered HTTP %d, want %d", resp.StatusCode, tc.wantHTTP)
			}
			res, err := b.idp.FrontResult(ctx, lo.ID, s.ID, p.Key)
			if err != nil || res.Done != tc.wantOK || (tc.destination != "") != (res.Status == "") {
				t.Fatalf("recorded result %+v (%v), want OK=%v", res, err, tc.wantOK)
			}
			partial, err := b.idp.Partial(ctx, lo.ID, time.Second, true)
			if err != nil || partial == tc.wantOK {
				t.Fatalf("Partial = %v (%v), want %v", partial, err, !tc.wantOK)
			}
		})
	}
}

func mustPOSTValue(t *testing.T, el *etree.Element) string {
	t.Helper()
	v, err := bsaml.POSTValue(el)
	if err != nil {
		t.Fatal(err)
	}
	return v
}

// frontRequest loads the front-channel page and returns the LogoutRequest
// it sends, checked against the bridge's certificate.
func frontRequest(t *testing.T, frontURL, binding string) *bsaml.LogoutRequest {
	t.Helper()
	resp, err := noRedirects.Get(frontURL)
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	var m *bsaml.Message
	switch binding {
	case BindingRedirect:
		loc := resp.Header.Get("Location")
		if resp.StatusCode != http.StatusFound || !strings.HasPrefix(loc, "https://sp.slobridge.test/slo?") {
			t.Fatalf("front page answered %d to %q, want a redirect to the SP", resp.StatusCode, loc)
		}
		_, q, _ := strings.Cut(loc, "?")
		m, err = bsaml.DecodeRedirect(q, bsaml.Limits{})
	default:
		csp := resp.Header.Get("Content-Security-Policy")
		if resp.StatusCode != http.StatusOK || !strings.Contains(csp, "frame-ancestors 'self'") ||
			!strings.Contains(csp, "form-action 'self' https://sp.slobridge.test") {
			t.Fatalf("front page answered %d with CSP %q", resp.StatusCode, csp)
		}
		action, form, ferr := parseForm(string(body))
		if ferr != nil || action != "https://sp.slobridge.test/slo" {
			t.Fatalf("front page form to %q: %v", action, ferr)
		}
		req := httptest.NewRequest(http.MethodPost, "/", strings.NewReader(form.Encode()))
		m, err = bsaml.DecodePOST(req, bsaml.Limits{})
	}
	if err != nil {
		t.Fatal(err)
	}
	el, err := bsaml.Verify(m, bsaml.Trust{EntityID: "bridge", Certs: []*x509.Certificate{testSigner(t, "idp").Cert}})
	if err != nil {
		t.Fatalf("LogoutRequest signature: %v", err)
	}
	lr, err := bsaml.ParseLogoutRequest(el)
	if err != nil {
		t.Fatal(err)
	}
	return lr
}
