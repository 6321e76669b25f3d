package sp

import (
	"context"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"

	gooidc "github.com/coreos/go-oidc/v3/oidc"
	"github.com/gin-gonic/gin"

	"github.com/slobridge/slobridge"
	"github.com/slobridge/slobridge/oidc"
)

// logoutInbox is an OIDC relying party's back-channel logout endpoint
// that keeps the logout tokens it receives.
type logoutInbox struct {
	url    string
	mu     sync.Mutex
	tokens []string
}

func newLogoutInbox(t *testing.T) *logoutInbox {
	in := &logoutInbox{}
	srv := newReceiverFunc(t, func(w http.ResponseWriter, r *http.Request) {
		if err := r.ParseForm(); err != nil {
			w.WriteHeader(http.StatusBadRequest)
			return
		}
		in.mu.Lock()
		in.tokens = append(in.tokens, r.PostForm.Get("logout_token"))
		in.mu.Unlock()
	})
	in.url = srv
	return in
}

func (in *logoutInbox) got() []string {
	in.mu.Lock()
	defer in.mu.Unlock()
	return append([]string(nil), in.tokens...)
}

// newReceiverFunc serves h on 127.0.0.1 until the test ends.
func newReceiverFunc(t *testing.T, h http.HandlerFunc) string {
	srv := httptest.NewServer(h)
	t.Cleanup(srv.Close)
	return srv.URL
}

// oidcRP is a confidential OIDC client of the bridge.
type oidcRP struct {
	id, secret, redirect string
	inbox                *logoutInbox
}

// authorizeURL is the RP's authorization request with PKCE S256.
func (rp oidcRP) authorizeURL(base, prompt, verifier string) string {
	sum := sha256.Sum256([]byte(verifier))
	q := url.Values{"client_id": {rp.id}, "redirect_uri": {rp.redirect}, "response_type": {"code"},
		"scope": {"openid email"}, "state": {"st-" + rp.id}, "nonce": {"n-" + rp.id},
		"code_challenge": {base64.RawURLEncoding.EncodeToString(sum[:])}, "code_challenge_method": {"S256"}}
	if prompt != "" {
		q.Set("prompt", prompt)
	}
	return base + oidc.PathAuthorize + "?" + q.Encode()
}

// finish follows the ACS redirect back through the authorization resume
// to the RP's callback, exchanges the code and returns the verified ID
// token and its raw form.
func (rp oidcRP) finish(t *testing.T, b *bridge, acs *http.Response, verifier string, v *gooidc.IDTokenVerifier) (*gooidc.IDToken, string) {
	t.Helper()
	resp := b.get(acs.Header.Get("Location"))
	loc, err := url.Parse(resp.Header.Get("Location"))
	if resp.StatusCode != http.StatusFound || err != nil || !strings.HasPrefix(loc.String(), rp.redirect) ||
		loc.Query().Get("code") == "" || loc.Query().Get("state") != "st-"+rp.id {
		t.Fatalf("resume answered %d %q, want the RP's callback with a code", resp.StatusCode, resp.Header.Get("Location"))
	}
	req, _ := http.NewRequest(http.MethodPost, b.srv.URL+oidc.PathToken, strings.NewReader(url.Values{
		"grant_type": {"authorization_code"}, "code": {loc.Query().Get("code")}, "redirect_uri": {rp.redirect},
		"code_verifier": {verifier}}.Encode()))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.SetBasicAuth(rp.id, rp.secret)
	tr, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(tr.Body)
	tr.Body.Close()
	var tok struct {
		IDToken string `json:"id_token"`
	}
	if tr.StatusCode != http.StatusOK || json.Unmarshal(body, &tok) != nil || tok.IDToken == "" {
		t.Fatalf("token endpoint: %d %s", tr.StatusCode, body)
	}
	idt, err := v.Verify(context.Background(), tok.IDToken)
	if err != nil {
		t.Fatalf("ID token of %s does not verify: %v", rp.id, err)
	}
	if idt.Nonce != "n-"+rp.id {
		t.Fatalf("ID token nonce %q", idt.Nonce)
	}
	return idt, tok.IDToken
}

// idClaims are the session claims of an ID token.
type idClaims struct {
	SID      string `json:"sid"`
	AuthTime int64  `json:"auth_time"`
}

func claimsOf(t *testing.T, idt *gooidc.IDToken) idClaims {
	t.Helper()
	var c idClaims
	if err := idt.Claims(&c); err != nil || c.SID == "" || c.AuthTime == 0 {
		t.Fatalf("ID token claims %+v: %v", c, err)
	}
	return c
}

// TestOIDCPromptLoginKeepsSid runs the OpenID Provider over the SAML
// upstream (crewjam samlidp): app1 signs alice in; app2 asks for
// prompt=login, the bridge sends the upstream a ForceAuthn AuthnRequest,
// alice authenticates again (a new upstream session) and app2's ID token
// names the same sid as app1's, with a later auth_time. An end-session
// with app2's ID token then sends both apps a logout token for that sid,
// and the session carries the upstream's new SessionIndex.
func TestOIDCPromptLoginKeepsSid(t *testing.T) {
	_, idpSrv := realIdP(t, true)
	rps := []oidcRP{{id: "app1", secret: "app1-secret-0123456789"}, {id: "app2", secret: "app2-secret-0123456789"}}
	var clients []oidc.StaticClient
	for i := range rps {
		rps[i].inbox = newLogoutInbox(t)
		rps[i].redirect = rps[i].inbox.url + "/cb"
		clients = append(clients, oidc.StaticClient{Secret: rps[i].secret, Metadata: oidc.ClientMetadata{
			ClientID: rps[i].id, RedirectURIs: []string{rps[i].redirect},
			BackchannelLogoutURI: rps[i].inbox.url + "/backchannel", BackchannelLogoutSessionRequired: true}})
	}
	b := newBridge(t, bridgeOptions{
		upstreams: []UpstreamConfig{{Name: "corp", MetadataURL: idpSrv.URL + "/metadata"}},
		mount: func(r *gin.Engine, eng *slobridge.Engine, sp *SP, base string) {
			p, err := oidc.New(oidc.Options{Issuer: base, Engine: eng, Cookies: sp.opts.Cookies, Authenticator: sp,
				Logger: quietLogger(), Clients: clients, AllowLoopbackHTTP: true, AllowPrivateBackchannel: true})
			if err != nil {
				t.Fatalf("oidc.New: %v", err)
			}
			eng.SetNotifier(oidc.ParticipantKind, p.BackChannelNotifier(
				slobridge.NewBackChannelClient(slobridge.ClientOptions{AllowLoopback: true, AllowPrivate: true})))
			p.Mount(r)
		},
	})
	registerSP(t, idpSrv, b)
	ctx := gooidc.ClientContext(context.Background(), http.DefaultClient)
	discovered, err := gooidc.NewProvider(ctx, b.srv.URL)
	if err != nil {
		t.Fatalf("discovery: %v", err)
	}

	verifier1 := "verifier-app1-0123456789012345678901234567890123"
	acs, _ := b.loginVia(t, rps[0].authorizeURL(b.srv.URL, "", verifier1), "alice", false)
	idt1, _ := rps[0].finish(t, b, acs, verifier1, discovered.Verifier(&gooidc.Config{ClientID: "app1"}))
	c1 := claimsOf(t, idt1)
	first, err := b.st.GetSession(t.Context(), c1.SID)
	if err != nil {
		t.Fatal(err)
	}

	verifier2 := "verifier-app2-0123456789012345678901234567890123"
	acs, force := b.loginVia(t, rps[1].authorizeURL(b.srv.URL, "login", verifier2), "alice", true)
	if !force {
		t.Error("prompt=login with a bridge session did not send the upstream ForceAuthn")
	}
	idt2, raw2 := rps[1].finish(t, b, acs, verifier2, discovered.Verifier(&gooidc.Config{ClientID: "app2"}))
	c2 := claimsOf(t, idt2)
	if c2.SID != c1.SID {
		t.Fatalf("prompt=login gave sid %s, app1 holds %s", c2.SID, c1.SID)
	}
	if c2.AuthTime < c1.AuthTime {
		t.Fatalf("auth_time went back from %d to %d", c1.AuthTime, c2.AuthTime)
	}
	s, err := b.st.GetSession(t.Context(), c1.SID)
	if err != nil {
		t.Fatal(err)
	}
	if s.SessionIndex == first.SessionIndex || len(s.PriorLogins) != 1 {
		t.Fatalf("session after prompt=login: SessionIndex %q (was %q), prior logins %+v", s.SessionIndex, first.SessionIndex, s.PriorLogins)
	}

	resp := b.get(oidc.PathEndSession + "?" + url.Values{"id_token_hint": {raw2}, "client_id": {"app2"}}.Encode())
	if resp.StatusCode != http.StatusSeeOther {
		t.Fatalf("end-session answered %d: %s", resp.StatusCode, readBody(t, resp))
	}
	if !b.ended(c1.SID) {
		t.Fatal("end-session did not end the session")
	}
	// app2 started the logout: app1 is notified, app2 is answered directly
	// (slobridge.InitiatorKey).
	waitFor(t, "app1's logout token", func() bool { return len(rps[0].inbox.got()) == 1 })
	lt, err := discovered.Verifier(&gooidc.Config{ClientID: rps[0].id}).VerifyLogout(context.Background(), rps[0].inbox.got()[0])
	if err != nil {
		t.Fatalf("%s: logout token does not verify: %v", rps[0].id, err)
	}
	if lt.SessionID != c1.SID {
		t.Fatalf("%s: logout token sid %q, want %q", rps[0].id, lt.SessionID, c1.SID)
	}
	time.Sleep(100 * time.Millisecond)
	if got := rps[1].inbox.got(); len(got) != 0 {
		t.Fatalf("app2, which started the logout, was sent %d logout tokens", len(got))
	}
}
