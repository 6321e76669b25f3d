package oidc

import (
	"context"
	"encoding/json"
	"net/http"
	"net/url"
	"strings"
	"testing"

	jose "github.com/go-jose/go-jose/v4"
	"golang.org/x/oauth2"
)

// codeFor runs an authorization request for a registered client in e's
// signed-in browser and returns the code and its PKCE verifier.
func (e *badEnv) codeFor(t *testing.T, reg RegistrationResponse) (code, verifier string) {
	t.Helper()
	verifier = oauth2.GenerateVerifier()
	q := url.Values{
		"response_type": {"code"}, "client_id": {reg.ClientID}, "scope": {"openid email profile"},
		"redirect_uri": {reg.RedirectURIs[0]}, "state": {"st"}, "nonce": {"n-0S6_WzA2Mj"},
		"code_challenge": {oauth2.S256ChallengeFromVerifier(verifier)}, "code_challenge_method": {"S256"},
	}
	resp := get(t, e.nf, e.b.p.Issuer()+PathAuthorize+"?"+q.Encode())
	loc, err := url.Parse(resp.Header.Get("Location"))
	if err != nil || loc.Query().Get("code") == "" {
		t.Fatalf("authorize: HTTP %d to %q", resp.StatusCode, resp.Header.Get("Location"))
	}
	return loc.Query().Get("code"), verifier
}

// TestTokenEndpointWire: what deployed client libraries read off the token
// endpoint. Success: 200 application/json with Cache-Control no-store and
// Pragma no-cache (RFC 6749 §5.1), token_type Bearer, a numeric
// expires_in, and an ID token with sid, auth_time, nonce and an at_hash
// that matches the access token (OpenID Connect Core §3.1.3.6), whatever
// charset parameter the form's Content-Type carries. Failure: the RFC 6749
// §5.2 JSON shape (error, error_description, nothing else), no-store, and
// for failed client authentication 401 with a Basic challenge. Client
// authentication takes either secret transport, and Basic credentials
// their sender did not form-encode.
func TestTokenEndpointWire(t *testing.T) {
	// A configured client whose id and secret change under form-encoding.
	static := RegistrationResponse{
		ClientMetadata: ClientMetadata{ClientID: "legacy app+1", RedirectURIs: []string{"http://127.0.0.1:9/cb-static"}, TokenEndpointAuthMethod: AuthSecretBasic},
		ClientSecret:   "s3cret+with/special%chars==",
	}
	e := newBadEnv(t, func(o *Options) {
		o.Clients = append(o.Clients, StaticClient{Metadata: static.ClientMetadata, Secret: static.ClientSecret})
	})
	basic := e.b.register(t, ClientMetadata{RedirectURIs: []string{e.app.url("/cb-basic")}, TokenEndpointAuthMethod: AuthSecretBasic})
	post := e.b.register(t, ClientMetadata{RedirectURIs: []string{e.app.url("/cb-post")}, TokenEndpointAuthMethod: AuthSecretPost})
	public := e.b.register(t, ClientMetadata{RedirectURIs: []string{e.app.url("/cb-public")}, TokenEndpointAuthMethod: AuthNone})
	tests := []struct {
		name        string
		reg         RegistrationResponse
		useBasic    bool
		rawBasic    bool   // Basic credentials not form-encoded first
		secret      string // "" for the registered one
		contentType string
		grantType   string
		wantStatus  int
		wantError   string
		wantBasic   bool // a WWW-Authenticate: Basic challenge
	}{
		{"basic, charset=UTF-8", basic, true, false, "", "application/x-www-form-urlencoded; charset=UTF-8", "", http.StatusOK, "", false},
		{"basic, no charset", basic, true, false, "", "application/x-www-form-urlencoded", "", http.StatusOK, "", false},
		{"post, charset=utf-8 unspaced", post, false, false, "", "application/x-www-form-urlencoded;charset=utf-8", "", http.StatusOK, "", false},
		{"basic, wrong secret", basic, true, false, "wrong", "application/x-www-form-urlencoded", "", http.StatusUnauthorized, ErrInvalidClient, true},
		{"post, wrong secret", post, false, false, "wrong", "application/x-www-form-urlencoded", "", http.StatusUnauthorized, ErrInvalidClient, true},
		// Either secret transport works for a secret client (ASP.NET
		// Core and MSAL post the secret, Spring sends Basic).
		{"post client using basic", post, true, false, "", "application/x-www-form-urlencoded", "", http.StatusOK, "", false},
		{"basic client posting its secret", basic, false, false, "", "application/x-www-form-urlencoded", "", http.StatusOK, "", false},
		{"basic, encoded id and secret", static, true, false, "", "application/x-www-form-urlencoded", "", http.StatusOK, "", false},
		{"basic, id and secret sent unencoded", static, true, true, "", "application/x-www-form-urlencoded", "", http.StatusOK, "", false},
		{"basic, unencoded wrong secret", static, true, true, "s3cret+with/special%chars=", "application/x-www-form-urlencoded", "", http.StatusUnauthorized, ErrInvalidClient, true},
		{"public client sending a secret", public, false, false, "some-secret-0123456789", "application/x-www-form-urlencoded", "", http.StatusUnauthorized, ErrInvalidClient, true},
		{"public client sending a secret in Basic", public, true, false, "some-secret-0123456789", "application/x-www-form-urlencoded", "", http.StatusUnauthorized, ErrInvalidClient, true},
		{"public client named in Basic with an empty password", public, true, false, "", "application/x-www-form-urlencoded", "", http.StatusOK, "", false},
		{"unsupported grant", basic, true, false, "", "application/x-www-form-urlencoded", "password", http.StatusBadRequest, ErrUnsupportedGrantType, false},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			code, verifier := e.codeFor(t, tc.reg)
			secret := tc.reg.ClientSecret
			if tc.secret != "" {
				secret = tc.secret
			}
			form := url.Values{"grant_type": {"authorization_code"}, "code": {code},
				"redirect_uri": {tc.reg.RedirectURIs[0]}, "code_verifier": {verifier}}
			if tc.grantType != "" {
				form.Set("grant_type", tc.grantType)
			}
			if !tc.useBasic {
				form.Set("client_id", tc.reg.ClientID)
				form.Set("client_secret", secret)
			}
			req, err := http.NewRequest(http.MethodPost, e.b.p.Issuer()+PathToken, strings.NewReader(form.Encode()))
			if err != nil {
				t.Fatal(err)
			}
			req.Header.Set("Content-Type", tc.contentType)
			switch {
			case tc.rawBasic:
				req.SetBasicAuth(tc.reg.ClientID, secret)
			case tc.useBasic:
				req.SetBasicAuth(url.QueryEscape(tc.reg.ClientID), url.QueryEscape(secret))
			}
			resp, err := http.DefaultClient.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			body := readBody(t, resp)
			if resp.StatusCode != tc.wantStatus {
				t.Fatalf("HTTP %d, want %d: %s", resp.StatusCode, tc.wantStatus, body)
			}
			if ct := resp.Header.Get("Content-Type"); !strings.HasPrefix(ct, "application/json") {
				t.Errorf("Content-Type %q", ct)
			}
			if resp.Header.Get("Cache-Control") != "no-store" || resp.Header.Get("Pragma") != "no-cache" {
				t.Errorf("Cache-Control %q, Pragma %q; want no-store, no-cache", resp.Header.Get("Cache-Control"), resp.Header.Get("Pragma"))
			}
			if ch := resp.Header.Get("WWW-Authenticate"); strings.HasPrefix(ch, "Basic ") != tc.wantBasic {
				t.Errorf("WWW-Authenticate %q, want a Basic challenge: %v", ch, tc.wantBasic)
			}
			var raw map[string]any
			if err := json.Unmarshal([]byte(body), &raw); err != nil {
				t.Fatalf("body is not JSON: %s", body)
			}
			if tc.wantError != "" {
				desc, _ := raw["error_description"].(string)
				if raw["error"] != tc.wantError || desc == "" || len(raw) != 2 {
					t.Fatalf("error body %s, want exactly error=%s and error_description", body, tc.wantError)
				}
				return
			}
			checkTokenResponse(t, e, raw)
		})
	}
}

// checkTokenResponse checks a successful token response and its ID token.
func checkTokenResponse(t *testing.T, e *badEnv, raw map[string]any) {
	t.Helper()
	at, _ := raw["access_token"].(string)
	idt, _ := raw["id_token"].(string)
	exp, isNum := raw["expires_in"].(float64)
	if at == "" || idt == "" || raw["token_type"] != "Bearer" || !isNum || exp <= 0 || raw["refresh_token"] == "" {
		t.Fatalf("token response %v", raw)
	}
	jws, err := jose.ParseSigned(idt, []jose.SignatureAlgorithm{jose.RS256})
	if err != nil {
		t.Fatal(err)
	}
	payload, err := e.b.p.keys.VerifySignature(context.Background(), idt)
	if err != nil {
		t.Fatalf("ID token signature: %v", err)
	}
	if jws.Signatures[0].Header.KeyID == "" {
		t.Fatal("ID token header has no kid")
	}
	var c map[string]any
	if err := json.Unmarshal(payload, &c); err != nil {
		t.Fatal(err)
	}
	for _, k := range []string{"iss", "sub", "aud", "exp", "iat", "auth_time", "sid", "at_hash"} {
		if _, ok := c[k]; !ok {
			t.Errorf("ID token lacks %s: %v", k, c)
		}
	}
	if c["nonce"] != "n-0S6_WzA2Mj" || c["sid"] != e.login.SID || c["at_hash"] != leftHalfHash("RS256", at) {
		t.Errorf("ID token nonce %v sid %v (want %s) at_hash %v (want %s)", c["nonce"], c["sid"], e.login.SID, c["at_hash"], leftHalfHash("RS256", at))
	}
}

// TestJWKSMembers: every published key names its kid, use "sig" and alg
// (libraries such as oauth4webapi and Microsoft.IdentityModel match on
// them) and carries no private member.
func TestJWKSMembers(t *testing.T) {
	b := newBridgeEngine(t, quietEngine)
	if err := b.p.RotateKey(context.Background(), "ES256"); err != nil {
		t.Fatal(err)
	}
	resp := get(t, http.DefaultClient, b.p.Issuer()+PathJWKS)
	var set struct {
		Keys []map[string]any `json:"keys"`
	}
	if err := json.NewDecoder(resp.Body).Decode(&set); err != nil {
		t.Fatal(err)
	}
	want := map[string]string{"RS256": "RSA", "ES256": "EC"}
	seen := map[string]bool{}
	for _, k := range set.Keys {
		alg, _ := k["alg"].(string)
		if kid, _ := k["kid"].(string); kid == "" || k["use"] != "sig" || want[alg] == "" || k["kty"] != want[alg] {
			t.Errorf("key %v: want kid, use sig, alg RS256/ES256 with its kty", k)
		}
		for _, private := range []string{"d", "p", "q", "dp", "dq", "qi"} {
			if _, ok := k[private]; ok {
				t.Fatalf("key %v publishes private member %s", k["kid"], private)
			}
		}
		seen[alg] = true
	}
	if !seen["RS256"] || !seen["ES256"] {
		t.Fatalf("JWKS algs %v, want RS256 and ES256", seen)
	}
}

// TestRefreshIDToken: the ID token of a refresh keeps iss, sub, aud, azp,
// auth_time and sid of the original, carries no nonce (OpenID Connect Core
// §12.2 as clarified by errata: openid-client and Spring Security reject a
// nonce they did not send), and its at_hash matches the new access token;
// the refresh token is rotated and the answer is not cacheable.
func TestRefreshIDToken(t *testing.T) {
	e := newBadEnv(t)
	tests := []struct {
		name string
		md   ClientMetadata
	}{
		{"confidential client", ClientMetadata{RedirectURIs: []string{e.app.url("/cb-conf")}, TokenEndpointAuthMethod: AuthSecretBasic}},
		{"public client", ClientMetadata{RedirectURIs: []string{e.app.url("/cb-pub")}, TokenEndpointAuthMethod: AuthNone}},
	}
	claims := func(t *testing.T, idt string) map[string]any {
		t.Helper()
		payload, err := e.b.p.keys.VerifySignature(context.Background(), idt)
		if err != nil {
			t.Fatal(err)
		}
		var c map[string]any
		if err := json.Unmarshal(payload, &c); err != nil {
			t.Fatal(err)
		}
		return c
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			reg := e.b.register(t, tc.md)
			post := func(form url.Values) (*http.Response, TokenResponse) {
				t.Helper()
				id, secret := "", ""
				if reg.ClientSecret != "" {
					id, secret = reg.ClientID, reg.ClientSecret
				} else {
					form.Set("client_id", reg.ClientID)
				}
				resp := e.tokenRequest(t, id, secret, form)
				var tr TokenResponse
				if err := json.NewDecoder(resp.Body).Decode(&tr); err != nil || resp.StatusCode != http.StatusOK {
					t.Fatalf("token request: HTTP %d, %v", resp.StatusCode, err)
				}
				return resp, tr
			}
			code, verifier := e.codeFor(t, reg)
			_, first := post(url.Values{"grant_type": {"authorization_code"}, "code": {code},
				"redirect_uri": {reg.RedirectURIs[0]}, "code_verifier": {verifier}})
			resp, second := post(url.Values{"grant_type": {"refresh_token"}, "refresh_token": {first.RefreshToken}})
			if resp.Header.Get("Cache-Control") != "no-store" || resp.Header.Get("Pragma") != "no-cache" {
				t.Errorf("refresh answer Cache-Control %q Pragma %q", resp.Header.Get("Cache-Control"), resp.Header.Get("Pragma"))
			}
			if second.IDToken == "" || second.RefreshToken == "" || second.RefreshToken == first.RefreshToken {
				t.Fatalf("refresh answer lacks an ID token or a rotated refresh token")
			}
			old, now := claims(t, first.IDToken), claims(t, second.IDToken)
			for _, k := range []string{"iss", "sub", "azp", "auth_time", "sid"} {
				if old[k] != now[k] || now[k] == nil {
					t.Errorf("%s changed on refresh: %v → %v", k, old[k], now[k])
				}
			}
			if a, b := old["aud"].([]any), now["aud"].([]any); len(a) != 1 || len(b) != 1 || a[0] != b[0] {
				t.Errorf("aud changed on refresh: %v → %v", old["aud"], now["aud"])
			}
			if _, ok := now["nonce"]; ok || old["nonce"] == nil {
				t.Errorf("nonce: original %v, refreshed %v; want it only in the original", old["nonce"], now["nonce"])
			}
			if now["at_hash"] != leftHalfHash("RS256", second.AccessToken) {
				t.Errorf("refreshed at_hash %v does not match the new access token", now["at_hash"])
			}
		})
	}
}
