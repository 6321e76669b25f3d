package oidc

import (
	"encoding/json"
	"net/http"
	"net/url"
	"testing"

	"golang.org/x/oauth2"
)

// TestStaticClient: a client from the configuration signs in with the code
// flow and its configured secret (stored only as a hash), and becomes a
// participant like a registered one.
func TestStaticClient(t *testing.T) {
	const secret = "static-client-secret-0123456789"
	redirect := "http://127.0.0.1:1/callback"
	b := newBridgeEngine(t, quietEngine, func(o *Options) {
		o.Clients = []StaticClient{{Secret: secret, Metadata: ClientMetadata{
			ClientID: "static-app", ClientName: "Static", RedirectURIs: []string{redirect},
			BackchannelLogoutURI: "http://127.0.0.1:1/bc",
		}}}
	})
	cl, err := b.p.client(t.Context(), "static-app")
	if err != nil || cl.SecretHash == "" || cl.SecretHash == secret || !cl.checkSecret(secret) {
		t.Fatalf("static client %+v (%v)", cl, err)
	}
	br := browser(t)
	nf := noFollow(br)
	verifier := oauth2.GenerateVerifier()
	q := url.Values{
		"response_type": {"code"}, "client_id": {"static-app"}, "scope": {"openid"}, "redirect_uri": {redirect},
		"state": {"s"}, "code_challenge": {oauth2.S256ChallengeFromVerifier(verifier)}, "code_challenge_method": {"S256"},
	}
	resp := get(t, nf, b.p.Issuer()+PathAuthorize+"?"+q.Encode()) // upstream login
	resp = get(t, nf, b.p.Issuer()+resp.Header.Get("Location"))   // resume
	loc, err := url.Parse(resp.Header.Get("Location"))
	if err != nil || loc.Query().Get("code") == "" {
		t.Fatalf("no code: HTTP %d to %q", resp.StatusCode, resp.Header.Get("Location"))
	}
	e := &badEnv{b: b, code: loc.Query().Get("code")}
	if resp := e.tokenRequest(t, "static-app", secret+"x", e.exchangeForm(redirect, verifier)); resp.StatusCode != http.StatusUnauthorized {
		t.Fatalf("wrong secret: HTTP %d", resp.StatusCode)
	}
	resp = e.tokenRequest(t, "static-app", secret, e.exchangeForm(redirect, verifier))
	var tr TokenResponse
	if err := json.NewDecoder(resp.Body).Decode(&tr); err != nil || resp.StatusCode != http.StatusOK || tr.IDToken == "" {
		t.Fatalf("exchange: HTTP %d (%v)", resp.StatusCode, err)
	}
	sid := b.bridgeSID(t, br)
	parts, err := b.st.ListParticipants(t.Context(), sid)
	if err != nil || len(parts) != 1 || parts[0].AppID != "static-app" || parts[0].BackChannelURL != "http://127.0.0.1:1/bc" {
		t.Fatalf("participants %+v (%v)", parts, err)
	}
}
