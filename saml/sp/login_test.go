package sp

import (
	"bytes"
	"encoding/json"
	"encoding/xml"
	"io"
	"log"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"

	"github.com/crewjam/saml/samlidp"
	dsig "github.com/russellhaering/goxmldsig"

	"github.com/slobridge/slobridge/store"
)

// realIdP runs crewjam's samlidp on 127.0.0.1 with the test IdP key, one
// user, and the bridge registered as a service provider.
func realIdP(t *testing.T, sha256 bool) (*samlidp.Server, *httptest.Server) {
	t.Helper()
	signer := loadSigner(t, "idp")
	mux := http.NewServeMux()
	srv := httptest.NewServer(mux)
	t.Cleanup(srv.Close)
	u, _ := url.Parse(srv.URL)
	idp, err := samlidp.New(samlidp.Options{URL: *u, Key: signer.Key, Signer: signer.Key, Certificate: signer.Cert,
		Store: &samlidp.MemoryStore{}, Logger: log.New(io.Discard, "", 0)})
	if err != nil {
		t.Fatal(err)
	}
	if sha256 {
		idp.IDP.SignatureMethod = dsig.RSASHA256SignatureMethod
	}
	mux.Handle("/", idp)
	user := `{"name":"alice","password":"correct horse","email":"alice@example.com","groups":["staff","admins"],"common_name":"Alice Liddell"}`
	req, _ := http.NewRequest(http.MethodPut, srv.URL+"/users/alice", strings.NewReader(user))
	resp, err := srv.Client().Do(req)
	if err != nil || resp.StatusCode/100 != 2 {
		t.Fatalf("add user: %v %v", err, resp)
	}
	return idp, srv
}

func registerSP(t *testing.T, idpSrv *httptest.Server, b *bridge) {
	t.Helper()
	md, err := xml.Marshal(b.sp.Metadata())
	if err != nil {
		t.Fatal(err)
	}
	req, _ := http.NewRequest(http.MethodPut, idpSrv.URL+"/services/bridge", bytes.NewReader(md))
	resp, err := idpSrv.Client().Do(req)
	if err != nil || resp.StatusCode/100 != 2 {
		t.Fatalf("register SP at IdP: %v %v", err, resp)
	}
}

// idpLogin drives a browser-like client through the IdP: bridge → IdP
// (HTTP-Redirect AuthnRequest) → login form → IdP session → the IdP's
// auto-submitting form to the ACS, returned unposted.
func idpLogin(t *testing.T, b *bridge) (string, url.Values) {
	t.Helper()
	resp := b.get("/test/login")
	if resp.StatusCode != http.StatusSeeOther {
		t.Fatalf("start login: %d %s", resp.StatusCode, readBody(t, resp))
	}
	loc := resp.Header.Get("Location")
	if !strings.Contains(loc, "SAMLRequest=") || !strings.Contains(loc, "&SigAlg=") || !strings.Contains(loc, "&Signature=") {
		t.Fatalf("AuthnRequest redirect is not signed: %s", loc)
	}
	resp, err := b.client.Get(loc)
	if err != nil {
		t.Fatal(err)
	}
	action, form := parseForm(t, readBody(t, resp))
	form.Set("user", "alice")
	form.Set("password", "correct horse")
	resp, err = b.client.PostForm(action, form)
	if err != nil || resp.StatusCode != http.StatusOK {
		t.Fatalf("IdP login: %v %v", err, resp)
	}
	readBody(t, resp)
	// With its session cookie set, the IdP answers the AuthnRequest.
	resp, err = b.client.Get(loc)
	if err != nil {
		t.Fatal(err)
	}
	acs, form := parseForm(t, readBody(t, resp))
	if acs != b.sp.url(PathACS) || form.Get("SAMLResponse") == "" {
		t.Fatalf("IdP answered a form to %q without a response", acs)
	}
	return acs, form
}

// loginThroughIdP logs in through the IdP and returns the ACS answer.
func loginThroughIdP(t *testing.T, b *bridge) *http.Response {
	t.Helper()
	acs, form := idpLogin(t, b)
	return b.post(acs, "application/x-www-form-urlencoded", []byte(form.Encode()))
}

func TestLoginAtRealIdP(t *testing.T) {
	idp, idpSrv := realIdP(t, true)
	_ = idp
	b := newBridge(t, bridgeOptions{upstreams: []UpstreamConfig{{
		Name: "corp", MetadataURL: idpSrv.URL + "/metadata",
		Attributes: map[string]string{"email": "mail", "groups": "eduPersonAffiliation", "name": "urn:oid:2.5.4.3"},
	}}})
	registerSP(t, idpSrv, b)
	resp := loginThroughIdP(t, b)
	if resp.StatusCode != http.StatusSeeOther || !strings.HasPrefix(resp.Header.Get("Location"), "/test/whoami") {
		t.Fatalf("ACS answered %d %s", resp.StatusCode, readBody(t, resp))
	}
	resp = b.get(resp.Header.Get("Location"))
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("no bridge session after login: %d", resp.StatusCode)
	}
	var s store.Session
	if err := json.Unmarshal([]byte(readBody(t, resp)), &s); err != nil {
		t.Fatal(err)
	}
	if s.Upstream != "corp" || s.UserID != "alice@example.com" || s.NameID.Value != "alice@example.com" ||
		s.NameID.Format == "" || s.SessionIndex == "" {
		t.Fatalf("session does not hold the upstream NameID and SessionIndex: %+v", s)
	}
	stored, err := b.st.GetSession(t.Context(), s.ID)
	if err != nil || stored.NameID != s.NameID {
		t.Fatalf("stored session %+v, %v", stored, err)
	}
	if got := s.Attributes["email"]; len(got) != 1 || got[0] != "alice@example.com" {
		t.Errorf("email claim = %v", got)
	}
	if got := s.Attributes["groups"]; len(got) != 2 {
		t.Errorf("groups claim = %v", got)
	}
	if got := s.Attributes["name"]; len(got) != 1 || got[0] != "Alice Liddell" {
		t.Errorf("name claim = %v", got)
	}
}

// TestLoginRejects checks the ACS refusals: a response replayed into a
// second login, one whose login was not started by this browser, and
// RSA-SHA1 signatures when the upstream does not allow SHA-1.
func TestLoginRejects(t *testing.T) {
	t.Run("replayed response", func(t *testing.T) {
		_, idpSrv := realIdP(t, true)
		b := newBridge(t, bridgeOptions{upstreams: []UpstreamConfig{{Name: "corp", MetadataURL: idpSrv.URL + "/metadata"}}})
		registerSP(t, idpSrv, b)
		acs, form := idpLogin(t, b)
		if r := b.post(acs, "application/x-www-form-urlencoded", []byte(form.Encode())); r.StatusCode != http.StatusSeeOther {
			t.Fatalf("first post: %d", r.StatusCode)
		}
		if r := b.post(acs, "application/x-www-form-urlencoded", []byte(form.Encode())); r.StatusCode != http.StatusBadRequest {
			t.Fatalf("replayed response answered %d, want 400", r.StatusCode)
		}
	})
	t.Run("other browser", func(t *testing.T) {
		_, idpSrv := realIdP(t, true)
		b := newBridge(t, bridgeOptions{upstreams: []UpstreamConfig{{Name: "corp", MetadataURL: idpSrv.URL + "/metadata"}}})
		registerSP(t, idpSrv, b)
		acs, form := idpLogin(t, b)
		victim := &http.Client{CheckRedirect: b.client.CheckRedirect}
		r, err := victim.PostForm(b.local(acs), form)
		if err != nil {
			t.Fatal(err)
		}
		if r.StatusCode != http.StatusBadRequest {
			t.Fatalf("response posted from another browser answered %d, want 400", r.StatusCode)
		}
		if r := b.post(acs, "application/x-www-form-urlencoded", []byte(form.Encode())); r.StatusCode != http.StatusSeeOther {
			t.Fatalf("the login's own browser answered %d after the refused attempt", r.StatusCode)
		}
	})
	t.Run("sha1 refused", func(t *testing.T) {
		_, idpSrv := realIdP(t, false)
		b := newBridge(t, bridgeOptions{upstreams: []UpstreamConfig{{Name: "corp", MetadataURL: idpSrv.URL + "/metadata"}}})
		registerSP(t, idpSrv, b)
		if resp := loginThroughIdP(t, b); resp.StatusCode != http.StatusBadRequest {
			t.Fatalf("SHA-1 signed response answered %d, want 400", resp.StatusCode)
		}
		n, _ := b.st.CountActiveSessions(t.Context(), b.eng.Now())
		if n != 0 {
			t.Fatalf("%d sessions after a refused login", n)
		}
	})
}
