package oidc

import (
	"slices"
	"testing"

	"golang.org/x/oauth2"

	"github.com/slobridge/slobridge"
	"github.com/slobridge/slobridge/store"
)

// TestSigningAlgorithms: oidc.signing_alg signs ID, access and logout
// tokens; a client's registered id_token_signed_response_alg overrides it
// for its ID and logout tokens (Back-Channel Logout §2.4 signs them like
// the ID token); oidc.access_token_alg signs access tokens apart. The RP
// (x/oauth2 + go-oidc, discovering the bridge and fetching its JWKS over
// HTTP like openid-client) verifies every token, at_hash included (SHA-512
// for EdDSA), and the JWKS publishes a key of each algorithm in use.
func TestSigningAlgorithms(t *testing.T) {
	tests := []struct {
		name                    string
		signing, access, client string
		wantID, wantAccess      string
	}{
		{"default RS256", "", "", "", "RS256", "RS256"},
		{"signing_alg ES256", "ES256", "", "", "ES256", "ES256"},
		{"signing_alg PS256", "PS256", "", "", "PS256", "PS256"},
		{"signing_alg EdDSA", "EdDSA", "", "", "EdDSA", "EdDSA"},
		{"client registers ES256", "", "", "ES256", "ES256", "RS256"},
		{"client registers EdDSA over signing_alg PS256", "PS256", "", "EdDSA", "EdDSA", "PS256"},
		{"client registers PS256, access_token_alg ES256", "", "ES256", "PS256", "PS256", "ES256"},
		{"access_token_alg EdDSA apart", "RS256", "EdDSA", "", "RS256", "EdDSA"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			b := newBridge(t, func(o *Options) { o.SigningAlg, o.AccessTokenAlg = tc.signing, tc.access })
			rp := newRP(t, b, rpConfig{Name: "app", AuthMethod: AuthSecretBasic, Alg: tc.client, BackChannel: true})
			starter := newRP(t, b, rpConfig{Name: "starter", AuthMethod: AuthSecretBasic})
			br := browser(t)
			login := signIn(t, br, rp, "") // go-oidc verified the ID token and at_hash
			signIn(t, br, starter, "")
			if alg, typ := jwsHeader(t, login.RawIDToken); alg != tc.wantID || typ != "JWT" {
				t.Fatalf("ID token alg %q typ %q, want %s JWT", alg, typ, tc.wantID)
			}
			if alg, typ := jwsHeader(t, login.AccessToken); alg != tc.wantAccess || typ != "at+jwt" {
				t.Fatalf("access token alg %q typ %q, want %s at+jwt", alg, typ, tc.wantAccess)
			}
			// The bridge itself accepts its access token in every
			// algorithm (introspection through userinfo).
			if _, err := rp.provider.UserInfo(t.Context(), oauth2.StaticTokenSource(&oauth2.Token{AccessToken: login.AccessToken})); err != nil {
				t.Fatalf("userinfo with a %s access token: %v", tc.wantAccess, err)
			}
			set, err := b.p.keys.JWKS(t.Context())
			if err != nil {
				t.Fatal(err)
			}
			var algs []string
			for _, k := range set.Keys {
				algs = append(algs, k.Algorithm)
			}
			for _, want := range []string{tc.wantID, tc.wantAccess} {
				if !slices.Contains(algs, want) {
					t.Fatalf("JWKS algorithms %v lack %s", algs, want)
				}
			}

			// A logout started by the other app: the RP's logout token
			// comes signed like its ID token and verifies with go-oidc.
			if _, err := b.eng.Logout(t.Context(), slobridge.LogoutRequest{SessionIDs: []string{login.SID},
				Initiator: store.Initiator{Kind: store.InitiatorAdmin}}); err != nil {
				t.Fatal(err)
			}
			lo := receive(t, "logout token", rp.backLogouts)
			if lo.Alg != tc.wantID || lo.Typ != "logout+jwt" || lo.Token.SessionID != login.SID {
				t.Fatalf("logout token alg %q typ %q sid %q, want %s logout+jwt %s", lo.Alg, lo.Typ, lo.Token.SessionID, tc.wantID, login.SID)
			}
		})
	}
}

// TestDiscoveryListsSigningAlgorithms: discovery offers every algorithm the
// provider signs with.
func TestDiscoveryListsSigningAlgorithms(t *testing.T) {
	b := newBridge(t)
	rp := newRP(t, b, rpConfig{Name: "app", AuthMethod: AuthSecretBasic})
	var meta struct {
		IDTokenAlgs []string `json:"id_token_signing_alg_values_supported"`
	}
	if err := rp.provider.Claims(&meta); err != nil {
		t.Fatal(err)
	}
	if want := []string{"RS256", "ES256", "PS256", "EdDSA"}; !slices.Equal(meta.IDTokenAlgs, want) {
		t.Fatalf("id_token_signing_alg_values_supported = %v, want %v", meta.IDTokenAlgs, want)
	}
}
