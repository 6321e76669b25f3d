package idp

import (
	"bytes"
	"context"
	"encoding/base64"
	mrand "math/rand/v2"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/beevik/etree"

	bsaml "github.com/slobridge/slobridge/saml"
	"github.com/slobridge/slobridge/saml/internal/samltest"
	"github.com/slobridge/slobridge/store"
)

// overCap is beyond the IdP's caps on bodies, queries and inflated XML
// and below net/http's own 1 MiB header cap, so that the bridge's cap is
// what refuses it.
const overCap = maxBodyBytes + 16<<10

// limitsWorld is a bridge with the corpus SP registered (it must sign its
// AuthnRequests) and alice's session, in which that SP was issued a
// NameID and SessionIndex.
func limitsWorld(t *testing.T) (*bridge, *corpusWorld, string) {
	t.Helper()
	spFile := filepath.Join(t.TempDir(), "sp.xml")
	if err := os.WriteFile(spFile, corpusSPMetadata(t), 0o600); err != nil {
		t.Fatal(err)
	}
	b := newBridge(t, bridgeOpts{cfg: Config{ServiceProviders: []SPConfig{{MetadataFile: spFile}}},
		baseURL: corpusBase, now: func() time.Time { return corpusNow }, rand: mrand.NewChaCha8([32]byte{})})
	ctx := context.Background()
	s, err := b.eng.CreateSession(ctx, store.Session{UserID: "alice", ExpiresAt: corpusNow.Add(8 * time.Hour)})
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
	return b, &corpusWorld{t: t, sp: testSigner(t, "sp2"), other: testSigner(t, "other"),
		nameID: bsaml.NameID{Value: iss.NameID.Value, Format: iss.NameID.Format,
			NameQualifier: iss.NameID.NameQualifier, SPNameQualifier: iss.NameID.SPNameQualifier},
		si: iss.SessionIndex}, s.ID
}

// TestEndpointLimits hits every IdP endpoint that takes a SAML message
// with an oversized body or query, an inflation bomb (where the binding
// inflates) and a message carrying a DTD. Each is refused — HTTP 400, or
// on the SOAP endpoint a SOAP fault with HTTP 500 — and the session stays
// active; then the same message without the DTD (the control) is
// accepted, so the refusal is the DTD's doing.
func TestEndpointLimits(t *testing.T) {
	form := func(param string, v []byte) []byte {
		return []byte(url.Values{param: {base64.StdEncoding.EncodeToString(v)}}.Encode())
	}
	pad := func() []byte { return []byte(url.Values{"SAMLRequest": {samltest.Oversized(overCap)}}.Encode()) }
	dtdIf := func(dtd bool, x []byte) []byte {
		if dtd {
			return samltest.WithDTD(x)
		}
		return x
	}
	logout := func(w *corpusWorld, path string, sign bool) []byte {
		el := w.logoutRequest("_limits-"+strings.ReplaceAll(path, "/", ""), func(r *bsaml.LogoutRequest) { r.Destination = corpusBase + path })
		if sign {
			el = w.sign(w.sp, el)
		}
		return xmlBytes(el)
	}
	authn := func(w *corpusWorld, sign bool) []byte {
		el := w.authnRequest(corpusSP, "https://sp.slobridge.test/acs")
		if sign {
			el = w.sign(w.sp, el)
		}
		return xmlBytes(el)
	}
	soapEnv := func(x []byte) []byte {
		d := etree.NewDocument()
		if err := d.ReadFromBytes(x); err != nil {
			t.Fatal(err)
		}
		return soapOf(d.Root())
	}
	type req struct{ method, path, ctype string }
	for _, ep := range []struct {
		route req
		// payload is the endpoint's message, with the DTD or without.
		payload func(w *corpusWorld, dtd bool) []byte
		// control is the status of the message without the DTD; ends says
		// it logs alice out.
		control   int
		ends      bool
		oversized []byte
		// bomb is a query whose message inflates beyond the cap.
		bomb []byte
		soap bool
	}{
		{
			route: req{http.MethodGet, PathSSO, ""},
			payload: func(w *corpusWorld, dtd bool) []byte {
				return []byte(samltest.RedirectQuery(t, bsaml.ParamRequest, dtdIf(dtd, authn(w, false)), w.sp.Key))
			},
			control:   http.StatusFound, // to the upstream login
			oversized: []byte("SAMLRequest=" + samltest.Oversized(overCap)),
		},
		{
			route: req{http.MethodPost, PathSSO, "application/x-www-form-urlencoded"},
			payload: func(w *corpusWorld, dtd bool) []byte {
				return form(bsaml.ParamRequest, dtdIf(dtd, authn(w, true)))
			},
			control: http.StatusFound, oversized: pad(),
		},
		{
			route: req{http.MethodGet, PathSLO, ""},
			payload: func(w *corpusWorld, dtd bool) []byte {
				return []byte(samltest.RedirectQuery(t, bsaml.ParamRequest, dtdIf(dtd, logout(w, PathSLO, false)), w.sp.Key))
			},
			control: http.StatusSeeOther, ends: true,
			oversized: []byte("SAMLRequest=" + samltest.Oversized(overCap)),
		},
		{
			route: req{http.MethodPost, PathSLO, "application/x-www-form-urlencoded"},
			payload: func(w *corpusWorld, dtd bool) []byte {
				return form(bsaml.ParamRequest, dtdIf(dtd, logout(w, PathSLO, true)))
			},
			control: http.StatusSeeOther, ends: true, oversized: pad(),
		},
		{
			route: req{http.MethodPost, PathSLOSOAP, "text/xml; charset=utf-8"}, soap: true,
			payload: func(w *corpusWorld, dtd bool) []byte {
				return dtdIf(dtd, soapEnv(logout(w, PathSLOSOAP, true)))
			},
			control: http.StatusOK, ends: true,
			oversized: append([]byte(`<SOAP-ENV:Envelope xmlns:SOAP-ENV="`+bsaml.NSSOAP11+`"><SOAP-ENV:Body>`),
				bytes.Repeat([]byte(" "), overCap)...),
		},
	} {
		t.Run(ep.route.method+" "+ep.route.path, func(t *testing.T) {
			b, w, sid := limitsWorld(t)
			c := &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
			do := func(payload []byte) (*http.Response, string) {
				t.Helper()
				var r *http.Request
				var err error
				if ep.route.method == http.MethodGet {
					r, err = http.NewRequest(http.MethodGet, b.srv.URL+ep.route.path+"?"+string(payload), nil)
				} else {
					r, err = http.NewRequest(http.MethodPost, b.srv.URL+ep.route.path, bytes.NewReader(payload))
					r.Header.Set("Content-Type", ep.route.ctype)
				}
				if err != nil {
					t.Fatal(err)
				}
				resp, err := c.Do(r)
				if err != nil {
					t.Fatal(err)
				}
				defer resp.Body.Close()
				var body bytes.Buffer
				_, _ = body.ReadFrom(resp.Body)
				return resp, body.String()
			}
			refused := func(what string, payload []byte) {
				t.Helper()
				resp, body := do(payload)
				switch {
				case ep.soap:
					if resp.StatusCode != http.StatusInternalServerError || !strings.HasPrefix(resp.Header.Get("Content-Type"), "text/xml") ||
						!strings.Contains(body, "Fault>") {
						t.Errorf("%s: HTTP %d %q, want a SOAP fault with 500 text/xml: %.200s", what, resp.StatusCode, resp.Header.Get("Content-Type"), body)
					}
				case resp.StatusCode != http.StatusBadRequest:
					t.Errorf("%s: HTTP %d, want 400: %.200s", what, resp.StatusCode, body)
				}
				if s, err := b.st.GetSession(context.Background(), sid); err != nil || !s.EndedAt.IsZero() {
					t.Fatalf("%s: session %+v (%v), want active", what, s, err)
				}
			}
			refused("oversized", ep.oversized)
			if ep.route.method == http.MethodGet {
				refused("inflation bomb", []byte(samltest.InflationBomb(t, bsaml.ParamRequest, maxBodyBytes)))
			}
			refused("DTD", ep.payload(w, true))
			resp, body := do(ep.payload(w, false))
			s, err := b.st.GetSession(context.Background(), sid)
			if err != nil || resp.StatusCode != ep.control || s.EndedAt.IsZero() != !ep.ends {
				t.Fatalf("control without the DTD: HTTP %d (want %d), session ended %v (want %v), %v: %.200s",
					resp.StatusCode, ep.control, !s.EndedAt.IsZero(), ep.ends, err, body)
			}
		})
	}
}
