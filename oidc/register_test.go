package oidc

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"strings"
	"testing"

	"github.com/slobridge/slobridge"
	"github.com/slobridge/slobridge/store"
)

// TestRegistration: RFC 7591 §3.2.1 responses. The bridge picks the
// client_id, returns a secret once (never for a public client), fills the
// defaults, and keeps only the secret's hash.
func TestRegistration(t *testing.T) {
	b := newBridgeEngine(t, quietEngine)
	e := &badEnv{b: b}
	for _, tc := range []struct {
		name       string
		md         ClientMetadata
		wantSecret bool
	}{
		{"confidential with logout channels", ClientMetadata{
			ClientID: "chosen-by-client", ClientName: "App", RedirectURIs: []string{"https://app.example/cb"},
			PostLogoutRedirectURIs: []string{"https://app.example/bye"}, FrontchannelLogoutURI: "https://app.example/fc?tenant=1",
			FrontchannelLogoutSessionRequired: true, BackchannelLogoutURI: "https://app.example/bc",
			BackchannelLogoutSessionRequired: true,
		}, true},
		{"public", ClientMetadata{RedirectURIs: []string{"http://127.0.0.1:8080/cb"}, TokenEndpointAuthMethod: AuthNone}, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			resp := e.register(t, "Bearer "+testIAT, tc.md)
			if resp.StatusCode != http.StatusCreated || resp.Header.Get("Cache-Control") != "no-store" {
				t.Fatalf("HTTP %d, Cache-Control %q", resp.StatusCode, resp.Header.Get("Cache-Control"))
			}
			var raw map[string]any
			if err := json.NewDecoder(resp.Body).Decode(&raw); err != nil {
				t.Fatal(err)
			}
			id, _ := raw["client_id"].(string)
			if id == "" || id == "chosen-by-client" {
				t.Fatalf("client_id %q, want one chosen by the bridge", id)
			}
			secret, hasSecret := raw["client_secret"].(string)
			if hasSecret != tc.wantSecret || (hasSecret && len(secret) < 32) {
				t.Fatalf("client_secret %q, want present=%v", secret, tc.wantSecret)
			}
			if raw["client_secret_expires_at"] != float64(0) || raw["client_id_issued_at"] == nil {
				t.Fatalf("client_secret_expires_at %v, client_id_issued_at %v", raw["client_secret_expires_at"], raw["client_id_issued_at"])
			}
			cl, err := b.p.client(context.Background(), id)
			if err != nil {
				t.Fatal(err)
			}
			want := tc.md
			want.ClientID = id
			if want.TokenEndpointAuthMethod == "" {
				want.TokenEndpointAuthMethod = AuthSecretBasic
			}
			want.GrantTypes, want.ResponseTypes = []string{"authorization_code", "refresh_token"}, []string{"code"}
			got, _ := json.Marshal(cl.Metadata)
			exp, _ := json.Marshal(want)
			if !bytes.Equal(got, exp) {
				t.Fatalf("stored metadata\n%s\nwant\n%s", got, exp)
			}
			if hasSecret && (!cl.checkSecret(secret) || strings.Contains(string(mustJSON(t, b, id)), secret)) {
				t.Fatal("the secret does not check, or is stored in clear")
			}
		})
	}
}

// mustJSON returns the stored record of a client.
func mustJSON(t *testing.T, b *bridge, id string) []byte {
	t.Helper()
	c, err := b.st.GetClient(context.Background(), id)
	if err != nil {
		t.Fatal(err)
	}
	return c.Metadata
}

// TestRegistrationRefused: invalid metadata gets invalid_redirect_uri or
// invalid_client_metadata (RFC 7591 §3.2.2) and stores nothing.
func TestRegistrationRefused(t *testing.T) {
	cb := []string{"https://app.example/cb"}
	tests := []struct {
		name string
		md   ClientMetadata
		body string // raw body instead of md
		want string
	}{
		{name: "no redirect_uris", md: ClientMetadata{}, want: ErrInvalidRedirectURI},
		{name: "redirect_uri with fragment", md: ClientMetadata{RedirectURIs: []string{"https://app.example/cb#frag"}}, want: ErrInvalidRedirectURI},
		{name: "redirect_uri with empty fragment", md: ClientMetadata{RedirectURIs: []string{"https://app.example/cb#"}}, want: ErrInvalidRedirectURI},
		{name: "relative redirect_uri", md: ClientMetadata{RedirectURIs: []string{"/cb"}}, want: ErrInvalidRedirectURI},
		{name: "http redirect_uri off loopback", md: ClientMetadata{RedirectURIs: []string{"http://app.example/cb"}}, want: ErrInvalidRedirectURI},
		{name: "redirect_uri with user info", md: ClientMetadata{RedirectURIs: []string{"https://user:pw@app.example/cb"}}, want: ErrInvalidRedirectURI},
		{name: "custom scheme redirect_uri", md: ClientMetadata{RedirectURIs: []string{"javascript://app.example/%0aalert(1)"}}, want: ErrInvalidRedirectURI},
		{name: "post_logout_redirect_uri with fragment", md: ClientMetadata{RedirectURIs: cb, PostLogoutRedirectURIs: []string{"https://app.example/bye#x"}}, want: ErrInvalidClientMetadata},
		{name: "http frontchannel_logout_uri off loopback", md: ClientMetadata{RedirectURIs: cb, FrontchannelLogoutURI: "http://app.example/fc"}, want: ErrInvalidClientMetadata},
		{name: "relative backchannel_logout_uri", md: ClientMetadata{RedirectURIs: cb, BackchannelLogoutURI: "/bc"}, want: ErrInvalidClientMetadata},
		{name: "unknown auth method", md: ClientMetadata{RedirectURIs: cb, TokenEndpointAuthMethod: "private_key_jwt"}, want: ErrInvalidClientMetadata},
		{name: "HS256 ID tokens", md: ClientMetadata{RedirectURIs: cb, IDTokenSignedResponseAlg: "HS256"}, want: ErrInvalidClientMetadata},
		{name: "unsigned ID tokens", md: ClientMetadata{RedirectURIs: cb, IDTokenSignedResponseAlg: "none"}, want: ErrInvalidClientMetadata},
		{name: "ES512 ID tokens (not offered)", md: ClientMetadata{RedirectURIs: cb, IDTokenSignedResponseAlg: "ES512"}, want: ErrInvalidClientMetadata},
		{name: "implicit grant", md: ClientMetadata{RedirectURIs: cb, GrantTypes: []string{"implicit"}}, want: ErrInvalidClientMetadata},
		{name: "token response type", md: ClientMetadata{RedirectURIs: cb, ResponseTypes: []string{"token"}}, want: ErrInvalidClientMetadata},
		{name: "not JSON", body: "redirect_uris=https://app.example/cb", want: ErrInvalidClientMetadata},
		{name: "oversized body", body: `{"client_name":"` + strings.Repeat("x", maxRegistration) + `","redirect_uris":["https://app.example/cb"]}`, want: ErrInvalidClientMetadata},
	}
	b := newBridgeEngine(t, quietEngine, func(o *Options) { o.AllowPrivateBackchannel = false })
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			before := b.snapshot(t)
			body := tc.body
			if body == "" {
				raw, _ := json.Marshal(tc.md)
				body = string(raw)
			}
			req, _ := http.NewRequest(http.MethodPost, b.p.Issuer()+PathRegister, strings.NewReader(body))
			req.Header.Set("Content-Type", "application/json")
			req.Header.Set("Authorization", "Bearer "+testIAT)
			resp, err := http.DefaultClient.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { resp.Body.Close() })
			checkRefusal(t, resp, asJSON, http.StatusBadRequest, tc.want, "")
			requireUnchanged(t, before, b.snapshot(t))
		})
	}
}

// TestBackchannelHostChecked: with private back-channel receivers not
// allowed, a host name is resolved at registration and refused when it
// points at a loopback or private address; public literals pass.
func TestBackchannelHostChecked(t *testing.T) {
	eng, err := slobridge.NewEngine(slobridge.Options{Store: openStore(t, true), Logger: quietLogger()})
	if err != nil {
		t.Fatal(err)
	}
	p, err := New(Options{
		Issuer: "https://bridge.example", Engine: eng, Authenticator: &testAuth{}, Logger: quietLogger(),
		Cookies: slobridge.SessionCookies{Secret: []byte(strings.Repeat("k", 32))},
	})
	if err != nil {
		t.Fatal(err)
	}
	for uri, ok := range map[string]bool{
		"https://localhost/bc":       false, // resolves to loopback
		"https://127.0.0.1/bc":       false,
		"https://[::1]/bc":           false,
		"https://10.0.0.7/bc":        false,
		"https://[::ffff:10.0.0.7]/": false, // IPv4-mapped private address
		"https://198.18.0.1/bc":      false,
		"https://93.184.215.14/bc":   true,
		"https://[2606:4700::1]/bc":  true,
	} {
		_, err := p.Register(context.Background(), ClientMetadata{RedirectURIs: []string{"https://app.example/cb"}, BackchannelLogoutURI: uri})
		var oe *Error
		switch {
		case ok && err != nil:
			t.Errorf("%s refused: %v", uri, err)
		case !ok && (!errors.As(err, &oe) || oe.Code != ErrInvalidClientMetadata):
			t.Errorf("%s: %v, want invalid_client_metadata", uri, err)
		}
	}
	clients, err := p.st.ListClients(context.Background(), ClientKind)
	if err != nil || len(clients) != 2 {
		t.Fatalf("stored clients %d (%v), want the 2 accepted", len(clients), err)
	}
}

// TestRegistrationUsesTheAddressPolicy: a back-channel URI whose host is a
// cloud metadata or special-purpose address in any spelling is refused at
// registration by the same policy the dialer applies, even with
// allow_private_backchannel (the test bridge sets it).
func TestRegistrationUsesTheAddressPolicy(t *testing.T) {
	b := newBridgeEngine(t, quietEngine)
	e := &badEnv{b: b}
	for _, host := range []string{"[fd00:ec2::254]", "[64:ff9b::a9fe:a9fe]", "[::169.254.169.254]", "[::ffff:169.254.169.254]",
		"100.100.100.200", "169.254.169.254", "[2002:a9fe:a9fe::1]", "198.18.0.1", "192.0.2.1", "[fe80::1]"} {
		resp := e.register(t, "Bearer "+testIAT, ClientMetadata{RedirectURIs: []string{"https://app.example/cb"},
			BackchannelLogoutURI: "https://" + host + "/bc"})
		resp.Body.Close()
		if resp.StatusCode != http.StatusBadRequest {
			t.Errorf("backchannel_logout_uri on %s: HTTP %d, want 400", host, resp.StatusCode)
		}
	}
	resp := e.register(t, "Bearer "+testIAT, ClientMetadata{RedirectURIs: []string{"https://app.example/cb"},
		BackchannelLogoutURI: "https://10.0.0.7/bc"})
	resp.Body.Close()
	if resp.StatusCode != http.StatusCreated {
		t.Errorf("private back-channel host with allow_private_backchannel: HTTP %d, want 201", resp.StatusCode)
	}
}

// TestDisabledClient: a client an operator disabled cannot start a login
// (the person sees unauthorized_client, nothing is redirected) nor redeem a
// code it got before, and is still registered; enabled again it signs in.
// A configured client is changed in the configuration, not here.
func TestDisabledClient(t *testing.T) {
	e := newBadEnv(t)
	ctx := context.Background()
	e.getCode(t, e.app)
	if err := e.b.p.SetDisabled(ctx, e.app.clientID, true); err != nil {
		t.Fatal(err)
	}
	resp := get(t, e.nf, e.authorizeURL(e.app, "", "v"))
	if body := readBody(t, resp); resp.StatusCode != http.StatusBadRequest || resp.Header.Get("Location") != "" || !strings.Contains(body, "disabled") {
		t.Fatalf("authorize for a disabled client: HTTP %d to %q: %s", resp.StatusCode, resp.Header.Get("Location"), body)
	}
	tok := e.tokenRequest(t, e.app.clientID, e.app.oauth.ClientSecret, e.exchangeForm(e.app.url("/callback"), e.verifier))
	var answer map[string]any
	if err := json.NewDecoder(tok.Body).Decode(&answer); err != nil || tok.StatusCode != http.StatusBadRequest || answer["error"] != ErrUnauthorizedClient {
		t.Fatalf("code exchange of a disabled client: HTTP %d %v (%v)", tok.StatusCode, answer, err)
	}
	wrong := e.tokenRequest(t, e.app.clientID, "not-the-secret", e.exchangeForm(e.app.url("/callback"), e.verifier))
	if wrong.StatusCode != http.StatusUnauthorized {
		t.Fatalf("a wrong secret for a disabled client: HTTP %d, want 401 (nothing learnt of its state)", wrong.StatusCode)
	}
	cs, err := e.b.p.Clients(ctx)
	if err != nil {
		t.Fatal(err)
	}
	found := false
	for _, c := range cs {
		if c.ID == e.app.clientID {
			found = c.Disabled
		}
	}
	if !found {
		t.Fatal("Clients does not list the client as disabled")
	}
	if err := e.b.p.SetDisabled(ctx, e.app.clientID, false); err != nil {
		t.Fatal(err)
	}
	signIn(t, e.br, e.app, "")
	if err := e.b.p.SetDisabled(ctx, "no-such-client", true); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("SetDisabled of an unknown client: %v, want ErrNotFound", err)
	}
}
