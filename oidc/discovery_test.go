package oidc

import (
	"encoding/json"
	"net/http"
	"slices"
	"strings"
	"testing"
)

// TestDiscoveryTruthful: the metadata names the issuer exactly, every
// endpoint it lists is served, and the logout, PKCE, grant and response
// type values are what the provider does.
func TestDiscoveryTruthful(t *testing.T) {
	b := newBridgeEngine(t, quietEngine)
	resp := get(t, http.DefaultClient, b.p.Issuer()+PathDiscovery)
	if resp.StatusCode != http.StatusOK || !strings.HasPrefix(resp.Header.Get("Content-Type"), "application/json") {
		t.Fatalf("discovery: HTTP %d %s", resp.StatusCode, resp.Header.Get("Content-Type"))
	}
	var d map[string]any
	if err := json.NewDecoder(resp.Body).Decode(&d); err != nil {
		t.Fatal(err)
	}
	if d["issuer"] != b.p.Issuer() {
		t.Fatalf("issuer %v, want %s", d["issuer"], b.p.Issuer())
	}
	for field, want := range map[string]bool{
		"frontchannel_logout_supported": true, "frontchannel_logout_session_supported": true,
		"backchannel_logout_supported": true, "backchannel_logout_session_supported": true,
		"request_parameter_supported": false, "request_uri_parameter_supported": false,
		"authorization_response_iss_parameter_supported": true,
	} {
		if d[field] != want {
			t.Errorf("%s = %v, want %v", field, d[field], want)
		}
	}
	list := func(field string) []string {
		var out []string
		for _, v := range d[field].([]any) {
			out = append(out, v.(string))
		}
		return out
	}
	if got := list("code_challenge_methods_supported"); !slices.Equal(got, []string{"S256"}) {
		t.Errorf("code_challenge_methods_supported = %v, want [S256] (plain is refused)", got)
	}
	if got := list("scopes_supported"); !slices.Contains(got, "openid") || slices.Contains(got, "offline_access") {
		t.Errorf("scopes_supported = %v: refresh tokens end with the session, so offline_access is not served", got)
	}
	if got := list("response_modes_supported"); !slices.Equal(got, []string{"query", "form_post"}) {
		t.Errorf("response_modes_supported = %v, want [query form_post]", got)
	}
	if got := list("response_types_supported"); !slices.Equal(got, []string{"code"}) {
		t.Errorf("response_types_supported = %v", got)
	}
	if got := list("grant_types_supported"); !slices.Contains(got, "authorization_code") || !slices.Contains(got, "refresh_token") || slices.Contains(got, "implicit") {
		t.Errorf("grant_types_supported = %v", got)
	}
	for _, m := range []string{AuthSecretBasic, AuthSecretPost, AuthNone} {
		if !slices.Contains(list("token_endpoint_auth_methods_supported"), m) {
			t.Errorf("token_endpoint_auth_methods_supported lacks %s", m)
		}
	}
	if got := list("id_token_signing_alg_values_supported"); !slices.Contains(got, "RS256") || !slices.Contains(got, "ES256") {
		t.Errorf("id_token_signing_alg_values_supported = %v", got)
	}
	// Each endpoint exists: a request without credentials is refused by
	// the endpoint itself, never 404.
	for field, method := range map[string]string{
		"authorization_endpoint": http.MethodGet, "token_endpoint": http.MethodPost, "userinfo_endpoint": http.MethodGet,
		"jwks_uri": http.MethodGet, "registration_endpoint": http.MethodPost, "end_session_endpoint": http.MethodGet,
	} {
		u, _ := d[field].(string)
		if !strings.HasPrefix(u, b.p.Issuer()+"/") {
			t.Errorf("%s = %q, not under the issuer", field, u)
			continue
		}
		req, _ := http.NewRequest(method, u, nil)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode == http.StatusNotFound || resp.StatusCode == http.StatusMethodNotAllowed {
			t.Errorf("%s %s: HTTP %d", method, field, resp.StatusCode)
		}
	}
}

// TestDiscoveryWithoutRegistration: with no initial access token configured
// there is no registration endpoint, advertised or served.
func TestDiscoveryWithoutRegistration(t *testing.T) {
	b := newBridgeEngine(t, quietEngine, func(o *Options) { o.RegistrationToken = "" })
	if d := b.p.Discovery(); d.RegistrationEndpoint != "" {
		t.Fatalf("registration_endpoint %q advertised without a registration token", d.RegistrationEndpoint)
	}
	resp, err := http.Post(b.p.Issuer()+PathRegister, "application/json", strings.NewReader(`{"redirect_uris":["https://app.example/cb"]}`))
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusNotFound {
		t.Fatalf("registration without a token configured: HTTP %d, want 404", resp.StatusCode)
	}
}
