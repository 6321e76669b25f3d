package sp

import (
	"bytes"
	"encoding/base64"
	"net/http"
	"net/http/cookiejar"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/slobridge/slobridge/saml"
	"github.com/slobridge/slobridge/saml/internal/samltest"
)

// overCap is beyond the default caps on bodies, queries and inflated XML
// (saml.DefaultMaxBody, saml.DefaultMaxXML) and below net/http's own 1 MiB
// header cap, so that the bridge's cap is what refuses it.
const overCap = saml.DefaultMaxBody + 16<<10

// TestEndpointLimits hits every SP endpoint that takes a SAML message
// with an oversized body or query, an inflation bomb (where the binding
// inflates) and a message carrying a DTD. Each is refused — HTTP 400, or
// on the SOAP endpoint a SOAP fault with HTTP 500 — and no session ends;
// then the same message without the DTD (the control) is accepted, so the
// refusal is the DTD's doing.
func TestEndpointLimits(t *testing.T) {
	form := func(param, v string) []byte { return []byte(url.Values{param: {v}}.Encode()) }
	idpKey := loadSigner(t, "idp")
	// logout builds a signed (POST, SOAP) or unsigned (Redirect, signed in
	// the query) LogoutRequest for alice's session _s1, as XML bytes.
	logout := func(b *bridge, path string, sign bool) []byte {
		el := newRequest(t, b.sp.url(path), "alice@example.com", "_s1").Element()
		if sign {
			var err error
			if el, err = idpKey.SignEnveloped(el); err != nil {
				t.Fatal(err)
			}
		}
		return elementBytes(t, el)
	}
	soap := func(xmlDoc []byte) []byte {
		head, tail := `<SOAP-ENV:Envelope xmlns:SOAP-ENV="`+saml.NSSOAP11+`"><SOAP-ENV:Body>`, `</SOAP-ENV:Body></SOAP-ENV:Envelope>`
		return []byte(head + strings.TrimPrefix(string(xmlDoc), `<?xml version="1.0" encoding="UTF-8"?>`) + tail)
	}
	type send func(b *bridge, dtd bool) *http.Response
	for _, ep := range []struct {
		route string
		// payload sends the endpoint's message, with the DTD or without.
		payload send
		// control is the status of the message without the DTD.
		control int
		// oversized and bomb send what exceeds the caps.
		oversized, bomb func(b *bridge) *http.Response
		soap            bool
	}{
		{
			route: "GET " + PathSLO,
			payload: func(b *bridge, dtd bool) *http.Response {
				x := logout(b, PathSLO, false)
				if dtd {
					x = samltest.WithDTD(x)
				}
				return b.get(PathSLO + "?" + samltest.RedirectQuery(t, saml.ParamRequest, x, idpKey.Key))
			},
			control:   http.StatusSeeOther,
			oversized: func(b *bridge) *http.Response { return b.get(PathSLO + "?SAMLRequest=" + samltest.Oversized(overCap)) },
			bomb: func(b *bridge) *http.Response {
				return b.get(PathSLO + "?" + samltest.InflationBomb(t, saml.ParamRequest, saml.DefaultMaxXML))
			},
		},
		{
			route: "POST " + PathSLO,
			payload: func(b *bridge, dtd bool) *http.Response {
				x := logout(b, PathSLO, true)
				if dtd {
					x = samltest.WithDTD(x)
				}
				return b.post(PathSLO, "application/x-www-form-urlencoded", form(saml.ParamRequest, base64.StdEncoding.EncodeToString(x)))
			},
			control: http.StatusSeeOther,
			oversized: func(b *bridge) *http.Response {
				return b.post(PathSLO, "application/x-www-form-urlencoded", form(saml.ParamRequest, samltest.Oversized(overCap)))
			},
		},
		{
			route: "POST " + PathSLOSOAP, soap: true,
			payload: func(b *bridge, dtd bool) *http.Response {
				env := soap(logout(b, PathSLOSOAP, true))
				if dtd {
					env = samltest.WithDTD(env)
				}
				return b.post(PathSLOSOAP, "text/xml; charset=utf-8", env)
			},
			control: http.StatusOK,
			oversized: func(b *bridge) *http.Response {
				pad := bytes.Repeat([]byte(" "), overCap)
				return b.post(PathSLOSOAP, "text/xml; charset=utf-8", soap(append(logout(b, PathSLOSOAP, true), pad...)))
			},
		},
	} {
		t.Run(ep.route, func(t *testing.T) {
			b := newBridge(t, bridgeOptions{upstreams: []UpstreamConfig{corpUpstream(t, allSLO())}, soapWait: 2 * time.Second})
			s := b.session("corp", "alice", "alice@example.com", "_s1", newReceiver(t, http.StatusOK))
			refused := func(what string, resp *http.Response) {
				t.Helper()
				body := readBody(t, resp)
				switch {
				case ep.soap:
					if resp.StatusCode != http.StatusInternalServerError || !strings.HasPrefix(resp.Header.Get("Content-Type"), "text/xml") ||
						!strings.Contains(body, "Fault>") {
						t.Errorf("%s: HTTP %d %q, want a SOAP fault with 500 text/xml: %.200s", what, resp.StatusCode, resp.Header.Get("Content-Type"), body)
					}
				case resp.StatusCode != http.StatusBadRequest:
					t.Errorf("%s: HTTP %d, want 400: %.200s", what, resp.StatusCode, body)
				}
				if b.ended(s.ID) {
					t.Fatalf("%s ended the session", what)
				}
			}
			refused("oversized", ep.oversized(b))
			if ep.bomb != nil {
				refused("inflation bomb", ep.bomb(b))
			}
			refused("DTD", ep.payload(b, true))
			resp := ep.payload(b, false)
			readBody(t, resp)
			if resp.StatusCode != ep.control || !b.ended(s.ID) {
				t.Fatalf("control without the DTD: HTTP %d (want %d), session ended %v", resp.StatusCode, ep.control, b.ended(s.ID))
			}
		})
	}

	t.Run("POST "+PathACS, func(t *testing.T) {
		_, idpSrv := realIdP(t, true)
		b := newBridge(t, bridgeOptions{upstreams: []UpstreamConfig{{Name: "corp", MetadataURL: idpSrv.URL + "/metadata"}}})
		registerSP(t, idpSrv, b)
		if resp := b.post(PathACS, "application/x-www-form-urlencoded", form(saml.ParamResponse, samltest.Oversized(overCap))); resp.StatusCode != http.StatusBadRequest {
			t.Errorf("oversized: HTTP %d, want 400", resp.StatusCode)
		}
		acs, f := idpLogin(t, b)
		x, err := base64.StdEncoding.DecodeString(f.Get(saml.ParamResponse))
		if err != nil {
			t.Fatal(err)
		}
		f.Set(saml.ParamResponse, base64.StdEncoding.EncodeToString(samltest.WithDTD(x)))
		if resp := b.post(acs, "application/x-www-form-urlencoded", []byte(f.Encode())); resp.StatusCode != http.StatusBadRequest {
			t.Errorf("DTD: HTTP %d, want 400: %.200s", resp.StatusCode, readBody(t, resp))
		}
		if n, _ := b.st.CountActiveSessions(t.Context(), b.eng.Now()); n != 0 {
			t.Fatalf("%d sessions after refused responses", n)
		}
		// The control: a fresh login's response, unchanged, is accepted (a
		// new browser, so that the IdP shows its login form again).
		jar, _ := cookiejar.New(nil)
		b.client.Jar = jar
		if resp := loginThroughIdP(t, b); resp.StatusCode != http.StatusSeeOther {
			t.Fatalf("control login: HTTP %d: %.200s", resp.StatusCode, readBody(t, resp))
		}
	})
}
