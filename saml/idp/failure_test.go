package idp

import (
	"context"
	"errors"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/beevik/etree"

	bsaml "github.com/slobridge/slobridge/saml"
	"github.com/slobridge/slobridge/store"
)

// failingEnd is a store whose EndSessions fails: the engine cannot carry
// out a logout.
type failingEnd struct{ store.Store }

func (failingEnd) EndSessions(context.Context, store.LogoutSpec) (store.Logout, []store.Delivery, error) {
	return store.Logout{}, nil, errors.New("disk on fire")
}

// TestSPLogoutBridgeFailure: when the bridge cannot carry out a valid,
// authenticated LogoutRequest, the SP gets a signed LogoutResponse with
// top-level Responder (Core §3.2.2.2) in its binding, not an error page
// or a SOAP fault (Bindings §3.2.3.1), and the session stays as it was.
func TestSPLogoutBridgeFailure(t *testing.T) {
	for _, kind := range []string{"post", "redirect", "soap"} {
		t.Run(kind, func(t *testing.T) {
			spFile := filepath.Join(t.TempDir(), "sp.xml")
			if err := os.WriteFile(spFile, corpusSPMetadata(t), 0o600); err != nil {
				t.Fatal(err)
			}
			b := newBridge(t, bridgeOpts{baseURL: corpusBase,
				cfg:       Config{ServiceProviders: []SPConfig{{MetadataFile: spFile}}},
				wrapStore: func(s store.Store) store.Store { return failingEnd{s} }})
			ctx := context.Background()
			s, err := b.eng.CreateSession(ctx, store.Session{UserID: "alice", ExpiresAt: time.Now().Add(time.Hour)})
			if err != nil {
				t.Fatal(err)
			}
			sp, err := b.idp.ServiceProvider(ctx, corpusSP)
			if err != nil {
				t.Fatal(err)
			}
			iss, err := b.idp.join(ctx, sp, "", s)
			if err != nil {
				t.Fatal(err)
			}
			dest := corpusBase + PathSLO
			if kind == "soap" {
				dest = corpusBase + PathSLOSOAP
			}
			id, _ := bsaml.NewID(nil)
			req := (&bsaml.LogoutRequest{ID: id, IssueInstant: time.Now(), Destination: dest, Issuer: corpusSP,
				NameID: bsaml.NameID{Value: iss.NameID.Value, Format: iss.NameID.Format}, SessionIndexes: []string{iss.SessionIndex}}).Element()
			signer := testSigner(t, "sp2")
			var payload []byte
			switch kind {
			case "post":
				signed, err := signer.SignEnveloped(req)
				if err != nil {
					t.Fatal(err)
				}
				payload = postBody(signed)
			case "redirect":
				u, err := bsaml.RedirectURL(dest, bsaml.ParamRequest, req, "", signer)
				if err != nil {
					t.Fatal(err)
				}
				_, q, _ := strings.Cut(u, "?")
				payload = []byte(q)
			case "soap":
				signed, err := signer.SignEnveloped(req)
				if err != nil {
					t.Fatal(err)
				}
				payload = soapOf(signed)
			}
			resp := send(t, b.srv.URL, kind, payload)
			body, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			var top, irt string
			if kind == "soap" {
				doc := etree.NewDocument()
				if resp.StatusCode != http.StatusOK || doc.ReadFromBytes(body) != nil || doc.FindElement("//LogoutResponse") == nil {
					t.Fatalf("SOAP answer HTTP %d %s, want a LogoutResponse", resp.StatusCode, body)
				}
				top = doc.FindElement("//Status/StatusCode").SelectAttrValue("Value", "")
				irt = doc.FindElement("//LogoutResponse").SelectAttrValue("InResponseTo", "")
			} else {
				top, _ = samlStatus(t, resp, body)
				irt = id
			}
			if top != bsaml.StatusResponder || irt != id {
				t.Fatalf("answer status %q InResponseTo %q, want Responder to %q", top, irt, id)
			}
			if got, err := b.st.GetSession(ctx, s.ID); err != nil || !got.EndedAt.IsZero() {
				t.Fatalf("session %+v (%v), want unchanged", got, err)
			}
		})
	}
}
