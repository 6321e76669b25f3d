package sp

import (
	"encoding/json"
	"errors"
	"mime"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/slobridge/slobridge/saml"
	"github.com/slobridge/slobridge/store"
)

// corpus mirrors the manifest of ../testdata/corpus (written by the saml
// package's TestCorpus -update).
type corpus struct {
	Clock time.Time `json:"clock"`
	Cases []struct {
		Name             string `json:"name"`
		Binding          string `json:"binding"`
		File             string `json:"file"`
		Codec            string `json:"codec"`
		HTTP400          bool   `json:"http400"`
		Status           string `json:"status"`
		SubStatus        string `json:"sub_status"`
		SendTwice        bool   `json:"send_twice"`
		PendingRequestID string `json:"pending_request_id"`
	} `json:"cases"`
}

const corpusRelay = "corpus-relay-1"

// TestNegativeCorpus replays every attack and broken message of the
// corpus against the SP's endpoints: each is answered HTTP 400 or a signed
// LogoutResponse with the expected status, and no session and no pending
// logout changes. On the SOAP endpoint a case the front channel answers
// with 400 gets, instead, a Requester/RequestDenied LogoutResponse in a
// 200 envelope when only its signature failed (the sender and the request
// ID are known), and otherwise a SOAP fault with HTTP 500 (SOAP 1.1 §6.2).
func TestNegativeCorpus(t *testing.T) {
	dir := filepath.Join("..", "testdata", "corpus")
	raw, err := os.ReadFile(filepath.Join(dir, "manifest.json"))
	if err != nil {
		t.Fatal(err)
	}
	var c corpus
	if err := json.Unmarshal(raw, &c); err != nil {
		t.Fatal(err)
	}
	if len(c.Cases) < 25 {
		t.Fatalf("corpus has %d cases", len(c.Cases))
	}
	clock := func() time.Time { return c.Clock }
	for _, cs := range c.Cases {
		t.Run(cs.Name, func(t *testing.T) {
			data, err := os.ReadFile(filepath.Join(dir, cs.File))
			if err != nil {
				t.Fatal(err)
			}
			b := newBridge(t, bridgeOptions{baseURL: "https://bridge.example.test", now: clock,
				upstreams: []UpstreamConfig{corpUpstream(t, allSLO())}, soapWait: 2 * time.Second})
			alice := b.session("corp", "alice", "alice@example.com", "_s1", newReceiver(t, http.StatusOK))
			carol := b.session("corp", "carol", "carol@example.com", "_s1", newReceiver(t, http.StatusOK))
			if cs.PendingRequestID != "" {
				if err := b.sp.putState(t.Context(), nsLogout, corpusRelay, logoutState{Upstream: "corp",
					RequestID: cs.PendingRequestID, LogoutID: "pending", ReturnTo: "/done"}); err != nil {
					t.Fatal(err)
				}
			}
			send := func() *http.Response {
				switch cs.Binding {
				case saml.BindingRedirect:
					return b.get(PathSLO + "?" + string(data))
				case saml.BindingPOST:
					return b.post(PathSLO, "application/x-www-form-urlencoded", data)
				}
				return b.post(PathSLOSOAP, "text/xml", data)
			}
			if cs.SendTwice {
				if r := send(); r.StatusCode != http.StatusSeeOther || !b.ended(carol.ID) {
					t.Fatalf("first delivery answered %d", r.StatusCode)
				}
				carol, _ = b.st.GetSession(t.Context(), carol.ID)
			}
			before := []store.Session{b.get1(alice.ID), b.get1(carol.ID)}
			resp := send()
			switch {
			case cs.HTTP400 && cs.Binding == saml.BindingSOAP && cs.Codec == "signature":
				lr := b.corpusAnswer(t, resp, cs.Binding, requestID(t, cs.Binding, data), c.Clock)
				if resp.StatusCode != http.StatusOK || lr.Status != saml.StatusRequester || lr.SubStatus != saml.StatusRequestDenied {
					t.Fatalf("answered HTTP %d, status %s/%s; want 200 and Requester/RequestDenied", resp.StatusCode, lr.Status, lr.SubStatus)
				}
			case cs.HTTP400 && cs.Binding == saml.BindingSOAP:
				expectSOAPFault(t, resp)
			case cs.HTTP400:
				if resp.StatusCode != http.StatusBadRequest {
					t.Fatalf("answered %d, want 400: %s", resp.StatusCode, readBody(t, resp))
				}
			default:
				lr := b.corpusAnswer(t, resp, cs.Binding, requestID(t, cs.Binding, data), c.Clock)
				if lr.Status != cs.Status || lr.SubStatus != cs.SubStatus {
					t.Fatalf("status %s/%s, want %s/%s", lr.Status, lr.SubStatus, cs.Status, cs.SubStatus)
				}
			}
			for i, s := range before {
				if now := b.get1(s.ID); !now.EndedAt.Equal(s.EndedAt) || now.LogoutID != s.LogoutID {
					t.Errorf("session %d changed: %+v → %+v", i, s, now)
				}
			}
			if cs.PendingRequestID != "" {
				var st logoutState
				if err := b.sp.getState(t.Context(), nsLogout, corpusRelay, &st); err != nil {
					t.Errorf("pending logout consumed by a rejected response: %v", err)
				}
			}
		})
	}
}

func (b *bridge) get1(id string) store.Session {
	b.t.Helper()
	s, err := b.st.GetSession(b.t.Context(), id)
	if err != nil {
		b.t.Fatal(err)
	}
	return s
}

// requestID reads the ID of a corpus LogoutRequest.
func requestID(t *testing.T, binding string, data []byte) string {
	t.Helper()
	var r *http.Request
	switch binding {
	case saml.BindingRedirect:
		r = httptest.NewRequest(http.MethodGet, "/?"+string(data), nil)
	case saml.BindingPOST:
		r = httptest.NewRequest(http.MethodPost, "/", strings.NewReader(string(data)))
		r.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	default:
		r = httptest.NewRequest(http.MethodPost, "/", strings.NewReader(string(data)))
		r.Header.Set("Content-Type", "text/xml")
	}
	m, err := saml.ReadHTTP(r, saml.Limits{})
	if err != nil {
		t.Fatal(err)
	}
	return m.Root().SelectAttrValue("ID", "")
}

// expectSOAPFault checks a SOAP 1.1 fault answer: HTTP 500 (SOAP 1.1
// §6.2), text/xml, an Envelope whose Body holds a Fault.
func expectSOAPFault(t *testing.T, resp *http.Response) {
	t.Helper()
	body := readBody(t, resp)
	if mt, _, _ := mime.ParseMediaType(resp.Header.Get("Content-Type")); resp.StatusCode != http.StatusInternalServerError || mt != "text/xml" {
		t.Fatalf("SOAP refusal answered HTTP %d %q, want 500 text/xml: %.300s", resp.StatusCode, resp.Header.Get("Content-Type"), body)
	}
	r := httptest.NewRequest(http.MethodPost, "/", strings.NewReader(body))
	r.Header.Set("Content-Type", "text/xml")
	if _, err := saml.DecodeSOAP(r, saml.Limits{}); !errors.Is(err, saml.ErrSOAPFault) {
		t.Fatalf("SOAP refusal is not a SOAP fault (%v): %.300s", err, body)
	}
}

// corpusAnswer decodes and validates the bridge's LogoutResponse to a
// corpus request, at the corpus clock.
func (b *bridge) corpusAnswer(t *testing.T, resp *http.Response, binding, inResponseTo string, now time.Time) *saml.LogoutResponse {
	t.Helper()
	var m *saml.Message
	var err error
	dest := idpSLO
	switch {
	case binding == saml.BindingSOAP:
		r := httptest.NewRequest(http.MethodPost, "/", strings.NewReader(readBody(t, resp)))
		r.Header.Set("Content-Type", "text/xml")
		m, err = saml.DecodeSOAP(r, saml.Limits{})
		dest = "soap"
	case resp.StatusCode == http.StatusSeeOther:
		u, _ := url.Parse(resp.Header.Get("Location"))
		if u.Host != "idp.example.test" {
			t.Fatalf("answered a redirect to %s", u)
		}
		m, err = saml.DecodeRedirect(u.RawQuery, saml.Limits{})
	default:
		action, form := parseForm(t, readBody(t, resp))
		if action != idpSLO {
			t.Fatalf("answered %d, a form to %q", resp.StatusCode, action)
		}
		r := httptest.NewRequest(http.MethodPost, "/", strings.NewReader(form.Encode()))
		r.Header.Set("Content-Type", "application/x-www-form-urlencoded")
		m, err = saml.DecodePOST(r, saml.Limits{})
	}
	if err != nil {
		t.Fatalf("decode the answer: %v", err)
	}
	v := &saml.Validator{Store: b.st, Now: func() time.Time { return now }}
	lr, err := v.LogoutResponse(t.Context(), m, b.spTrust(), dest, inResponseTo)
	if err != nil {
		t.Fatalf("the answer does not validate: %v", err)
	}
	return lr
}
