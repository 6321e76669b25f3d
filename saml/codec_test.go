package saml

import (
	"bytes"
	"encoding/base64"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"
	"time"
)

const (
	idpEntity = "https://idp.example.test/metadata"
	spEntity  = "https://bridge.example.test/saml/sp/metadata"
	spSLO     = "https://bridge.example.test/saml/sp/slo"
)

func sampleRequest(id string) *LogoutRequest {
	return &LogoutRequest{
		ID: id, IssueInstant: t0, Destination: spSLO, Issuer: idpEntity,
		NameID: NameID{Value: "alice@example.com", Format: "urn:oasis:names:tc:SAML:1.1:nameid-format:emailAddress",
			NameQualifier: idpEntity, SPNameQualifier: spEntity},
		SessionIndexes: []string{"_s1", "_s2"},
	}
}

func queryOf(t *testing.T, u string) string {
	t.Helper()
	p, err := url.Parse(u)
	if err != nil {
		t.Fatal(err)
	}
	return p.RawQuery
}

func TestRedirectRoundTrip(t *testing.T) {
	for _, tc := range []struct {
		name, key, relay string
	}{
		{"rsa", "idp", "state-1"},
		{"ecdsa", "idp-ec", ""},
		{"rsa relay with specials", "idp", "a b&c=d/é"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s := testSigner(t, tc.key)
			u, err := RedirectURL(spSLO+"?x=1", ParamRequest, sampleRequest("_rt1").Element(), tc.relay, s)
			if err != nil {
				t.Fatal(err)
			}
			m, err := DecodeRedirect(queryOf(t, u), Limits{})
			if err != nil {
				t.Fatalf("decode: %v", err)
			}
			if m.RelayState != tc.relay {
				t.Errorf("RelayState = %q, want %q", m.RelayState, tc.relay)
			}
			req, err := testValidator(t).LogoutRequest(ctxT(t), m, testTrust(t, idpEntity, tc.key), spSLO)
			if err != nil {
				t.Fatalf("validate: %v", err)
			}
			want := sampleRequest("_rt1")
			if req.NameID != want.NameID || strings.Join(req.SessionIndexes, ",") != "_s1,_s2" || !req.IssueInstant.Equal(t0) {
				t.Errorf("parsed %+v, want %+v", req, want)
			}
		})
	}
}

// TestRedirectRawOctets checks that the signature is verified over the
// query as received: a sender that escapes with lower-case hex and leaves
// '/' unescaped must still verify, and a re-encoded query must not.
func TestRedirectRawOctets(t *testing.T) {
	s := testSigner(t, "idp")
	u, err := RedirectURL(spSLO, ParamRequest, sampleRequest("_raw1").Element(), "", nil)
	if err != nil {
		t.Fatal(err)
	}
	q := queryOf(t, u)
	q = strings.ReplaceAll(strings.ReplaceAll(q, "%2B", "%2b"), "%2F", "/")
	q += "&SigAlg=http%3a%2f%2fwww.w3.org/2001/04/xmldsig-more%23rsa-sha256"
	sig, err := s.signOctets([]byte(q))
	if err != nil {
		t.Fatal(err)
	}
	good := q + "&Signature=" + url.QueryEscape(base64.StdEncoding.EncodeToString(sig))
	m, err := DecodeRedirect(good, Limits{})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := Verify(m, testTrust(t, idpEntity, "idp")); err != nil {
		t.Fatalf("raw octets not verified: %v", err)
	}
	v, _ := url.ParseQuery(good)
	m2, err := DecodeRedirect(v.Encode(), Limits{})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := Verify(m2, testTrust(t, idpEntity, "idp")); !errors.Is(err, ErrSignature) {
		t.Fatalf("re-encoded query verified: %v", err)
	}
}

func TestEnvelopedRoundTrip(t *testing.T) {
	for _, key := range []string{"idp", "idp-ec"} {
		t.Run(key, func(t *testing.T) {
			signed, err := testSigner(t, key).SignEnveloped(sampleRequest("_env1").Element())
			if err != nil {
				t.Fatal(err)
			}
			if kids := signed.ChildElements(); !is(kids[1], NSDSig, "Signature") {
				t.Fatalf("signature not right after Issuer: %s", kids[1].Tag)
			}
			v, err := POSTValue(signed)
			if err != nil {
				t.Fatal(err)
			}
			body := url.Values{ParamRequest: {v}, ParamRelayState: {"rs"}}.Encode()
			r := httptest.NewRequest(http.MethodPost, "/slo", strings.NewReader(body))
			r.Header.Set("Content-Type", "application/x-www-form-urlencoded")
			m, err := ReadHTTP(r, Limits{})
			if err != nil {
				t.Fatal(err)
			}
			if m.Binding != BindingPOST || m.RelayState != "rs" {
				t.Fatalf("binding %s relay %q", m.Binding, m.RelayState)
			}
			if _, err := testValidator(t).LogoutRequest(ctxT(t), m, testTrust(t, idpEntity, "other", key), spSLO); err != nil {
				t.Fatalf("validate: %v", err)
			}
			if _, err := Verify(m, testTrust(t, idpEntity, "other")); !errors.Is(err, ErrSignature) {
				t.Fatalf("verified with the wrong key: %v", err)
			}
		})
	}
}

func TestSOAPRoundTrip(t *testing.T) {
	s := testSigner(t, "idp")
	resp := &LogoutResponse{ID: "_resp1", InResponseTo: "_req1", IssueInstant: t0, Issuer: idpEntity,
		Status: StatusSuccess, SubStatus: StatusPartialLogout}
	signed, err := s.SignEnveloped(resp.Element())
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Header.Get("SOAPAction") == "" {
			t.Error("no SOAPAction header")
		}
		m, err := DecodeSOAP(r, Limits{})
		if err != nil || m.Name() != "LogoutRequest" {
			t.Errorf("server decode: %v", err)
		}
		_ = WriteSOAP(w, signed)
	}))
	defer srv.Close()
	reqSigned, err := s.SignEnveloped(sampleRequest("_req1").Element())
	if err != nil {
		t.Fatal(err)
	}
	m, err := CallSOAP(ctxT(t), srv.Client(), srv.URL, reqSigned, Limits{}, nil)
	if err != nil {
		t.Fatal(err)
	}
	got, err := testValidator(t).LogoutResponse(ctxT(t), m, testTrust(t, idpEntity, "idp"), spSLO, "_req1")
	if err != nil {
		t.Fatalf("validate: %v", err)
	}
	if !got.Success() || !got.Partial() {
		t.Errorf("status %s/%s", got.Status, got.SubStatus)
	}
}

func TestSOAPFaultIsError(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		WriteSOAPFault(w, http.StatusInternalServerError, "Server", "down")
	}))
	defer srv.Close()
	signed, err := testSigner(t, "sp").SignEnveloped(sampleRequest("_f").Element())
	if err != nil {
		t.Fatal(err)
	}
	if _, err := CallSOAP(ctxT(t), srv.Client(), srv.URL, signed, Limits{}, nil); !errors.Is(err, ErrSOAPFault) {
		t.Fatalf("err = %v, want ErrSOAPFault", err)
	}
}

func TestLogoutResponseChecks(t *testing.T) {
	s := testSigner(t, "idp")
	base := func() *LogoutResponse {
		return &LogoutResponse{ID: "_r", InResponseTo: "_req", IssueInstant: t0, Destination: spSLO,
			Issuer: idpEntity, Status: StatusSuccess}
	}
	for _, tc := range []struct {
		name   string
		mutate func(*LogoutResponse)
		expect string // "ok", "sig", "status"
	}{
		{"ok", func(*LogoutResponse) {}, "ok"},
		{"wrong InResponseTo", func(r *LogoutResponse) { r.InResponseTo = "_other" }, "status"},
		{"no InResponseTo", func(r *LogoutResponse) { r.InResponseTo = "" }, "status"},
		{"no Issuer", func(r *LogoutResponse) { r.Issuer = "" }, "sig"},
		{"other Issuer", func(r *LogoutResponse) { r.Issuer = "https://evil.test" }, "sig"},
		{"wrong Destination", func(r *LogoutResponse) { r.Destination = "https://evil.test/slo" }, "status"},
		{"old", func(r *LogoutResponse) { r.IssueInstant = t0.Add(-time.Hour) }, "status"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := base()
			tc.mutate(r)
			el := r.Element()
			if r.Issuer == "" {
				el.RemoveChild(el.SelectElement("saml:Issuer"))
			}
			u, err := RedirectURL(spSLO, ParamResponse, el, "", s)
			if err != nil {
				t.Fatal(err)
			}
			m, err := DecodeRedirect(queryOf(t, u), Limits{})
			if err != nil {
				t.Fatal(err)
			}
			_, err = testValidator(t).LogoutResponse(ctxT(t), m, testTrust(t, idpEntity, "idp"), spSLO, "_req")
			var se *Error
			switch tc.expect {
			case "ok":
				if err != nil {
					t.Fatal(err)
				}
			case "sig":
				if !errors.Is(err, ErrSignature) {
					t.Fatalf("err = %v, want ErrSignature", err)
				}
			case "status":
				if !errors.As(err, &se) {
					t.Fatalf("err = %v, want *Error", err)
				}
			}
		})
	}
}

func TestDecodeLimits(t *testing.T) {
	big := strings.Repeat("A", 300<<10)
	var defl bytes.Buffer
	_, _ = defl.WriteString(big)
	for _, tc := range []struct{ name, query string }{
		{"oversized query", "SAMLRequest=" + big},
		{"bad base64", "SAMLRequest=%%%%"},
		{"bad deflate", "SAMLRequest=" + url.QueryEscape(base64.StdEncoding.EncodeToString([]byte("not deflate at all")))},
		{"no message", "RelayState=x"},
		{"both", "SAMLRequest=a&SAMLResponse=b"},
		{"repeated", "SAMLRequest=a&SAMLRequest=b"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if _, err := DecodeRedirect(tc.query, Limits{}); !errors.Is(err, ErrMalformed) {
				t.Fatalf("err = %v, want ErrMalformed", err)
			}
		})
	}
}

func TestParseXMLRefusesDTD(t *testing.T) {
	for _, doc := range []string{
		`<!DOCTYPE x [<!ENTITY a "aaaa">]><samlp:LogoutRequest xmlns:samlp="urn:oasis:names:tc:SAML:2.0:protocol">&a;</samlp:LogoutRequest>`,
		`<!DOCTYPE x SYSTEM "file:///etc/passwd"><x/>`,
		`<a/><b/>`,
		`<a>` + strings.Repeat("<b>", 60) + strings.Repeat("</b>", 60) + `</a>`,
	} {
		if _, err := parseXML([]byte(doc)); !errors.Is(err, ErrMalformed) {
			t.Errorf("parseXML(%.40q) err = %v, want ErrMalformed", doc, err)
		}
	}
}

// TestSignEnvelopedPosition checks the Signature goes right after Issuer
// even when the message has more children.
func TestSignEnvelopedPosition(t *testing.T) {
	signed, err := testSigner(t, "sp").SignEnveloped(sampleRequest("_p").Element())
	if err != nil {
		t.Fatal(err)
	}
	var tags []string
	for _, c := range signed.ChildElements() {
		tags = append(tags, c.Tag)
	}
	if got := strings.Join(tags, ","); got != "Issuer,Signature,NameID,SessionIndex,SessionIndex" {
		t.Fatalf("children %s", got)
	}
}

// TestSHA1AllowedPerPeer checks that the SHA-1 refusal is a per-peer
// setting: the corpus' SHA-1 messages verify once the peer allows it.
func TestSHA1AllowedPerPeer(t *testing.T) {
	c, files := loadCorpus(t)
	trust := testTrust(t, idpEntity, "idp")
	trust.AllowSHA1 = true
	n := 0
	for _, cs := range c.Case {
		if !strings.HasPrefix(cs.Name, "sha1-") {
			continue
		}
		n++
		if err := runCorpusCase(t, testValidator(t), cs, files[cs.File], trust); err != nil {
			t.Errorf("%s with SHA-1 allowed: %v", cs.Name, err)
		}
	}
	if n != 2 {
		t.Fatalf("found %d SHA-1 cases, want 2", n)
	}
}

// TestMarkupInTextRefused checks that a signed message whose NameID holds
// a comment is refused rather than read up to the comment.
func TestMarkupInTextRefused(t *testing.T) {
	el := sampleRequest("_cmt").Element()
	nid := el.SelectElement("saml:NameID")
	nid.SetText("alice@example.com")
	nid.CreateComment("")
	nid.CreateCharData(".evil.test")
	u, err := RedirectURL(spSLO, ParamRequest, el, "", testSigner(t, "idp"))
	if err != nil {
		t.Fatal(err)
	}
	m, err := DecodeRedirect(queryOf(t, u), Limits{})
	if err != nil {
		t.Fatal(err)
	}
	_, err = testValidator(t).LogoutRequest(ctxT(t), m, testTrust(t, idpEntity, "idp"), spSLO)
	var se *Error
	if !errors.As(err, &se) || se.Status != StatusRequester {
		t.Fatalf("err = %v, want a Requester error", err)
	}
}

// TestRedirectLenientDecoding checks what the decoder tolerates from
// deployed senders: a '+' left unescaped in the base64, and a RelayState
// longer than the 80 bytes a sender may make (it must be echoed exactly);
// and what it does not: a RelayState beyond MaxRelayStateEcho.
func TestRedirectLenientDecoding(t *testing.T) {
	var q string
	for i := 0; ; i++ {
		u, err := RedirectURL(spSLO, ParamRequest, sampleRequest(fmt.Sprintf("_plus%d", i)).Element(), "", nil)
		if err != nil {
			t.Fatal(err)
		}
		if q = queryOf(t, u); strings.Contains(q, "%2B") {
			break
		}
	}
	if _, err := DecodeRedirect(strings.ReplaceAll(q, "%2B", "+"), Limits{}); err != nil {
		t.Fatalf("unescaped '+': %v", err)
	}
	long := strings.Repeat("r", 300)
	u, err := RedirectURL(spSLO, ParamRequest, sampleRequest("_long").Element(), long, testSigner(t, "idp"))
	if err != nil {
		t.Fatal(err)
	}
	m, err := DecodeRedirect(queryOf(t, u), Limits{})
	if err != nil || m.RelayState != long {
		t.Fatalf("long RelayState: %v", err)
	}
	if _, err := Verify(m, testTrust(t, idpEntity, "idp")); err != nil {
		t.Fatal(err)
	}
	_, err = DecodeRedirect(q+"&RelayState="+strings.Repeat("r", MaxRelayStateEcho+1), Limits{})
	if !errors.Is(err, ErrMalformed) || !strings.Contains(err.Error(), "RelayState") {
		t.Fatalf("oversized RelayState: %v", err)
	}
}
