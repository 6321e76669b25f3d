package oidc

import (
	"strings"
	"testing"

	"github.com/slobridge/slobridge"
)

// TestNewRefusesBadOptions: New names the option that is wrong.
func TestNewRefusesBadOptions(t *testing.T) {
	eng, err := slobridge.NewEngine(slobridge.Options{Store: openStore(t, true)})
	if err != nil {
		t.Fatal(err)
	}
	good := func() Options {
		return Options{
			Issuer: "https://bridge.example", Engine: eng, Authenticator: &testAuth{},
			Cookies: slobridge.SessionCookies{Secret: []byte(strings.Repeat("k", 32))},
		}
	}
	tests := []struct {
		name   string
		change func(*Options)
		want   string
	}{
		{"no engine", func(o *Options) { o.Engine = nil }, "needs an engine"},
		{"no authenticator", func(o *Options) { o.Authenticator = nil }, "needs an authenticator"},
		{"short cookie secret", func(o *Options) { o.Cookies.Secret = []byte("short") }, "at least 32 bytes"},
		{"issuer with query", func(o *Options) { o.Issuer = "https://bridge.example/?x=1" }, "without query"},
		{"issuer with fragment", func(o *Options) { o.Issuer = "https://bridge.example/#f" }, "without query or fragment"},
		{"http issuer off loopback", func(o *Options) { o.Issuer = "http://bridge.example"; o.AllowLoopbackHTTP = true }, "must use https"},
		{"http loopback issuer not allowed", func(o *Options) { o.Issuer = "http://127.0.0.1:8080" }, "must use https"},
		{"access token alg HS256", func(o *Options) { o.AccessTokenAlg = "HS256" }, `access token algorithm "HS256" is not one of RS256, ES256, PS256, EdDSA`},
		{"signing alg none", func(o *Options) { o.SigningAlg = "none" }, `signing algorithm "none" is not one of RS256, ES256, PS256, EdDSA`},
		{"static client without id", func(o *Options) {
			o.Clients = []StaticClient{{Metadata: ClientMetadata{RedirectURIs: []string{"https://app.example/cb"}}, Secret: strings.Repeat("s", 16)}}
		}, "without client_id"},
		{"static client with a fragment", func(o *Options) {
			o.Clients = []StaticClient{{Metadata: ClientMetadata{ClientID: "app", RedirectURIs: []string{"https://app.example/cb#x"}}, Secret: strings.Repeat("s", 16)}}
		}, "fragment"},
		{"static public client with a secret", func(o *Options) {
			o.Clients = []StaticClient{{Metadata: ClientMetadata{ClientID: "app", RedirectURIs: []string{"https://app.example/cb"}, TokenEndpointAuthMethod: AuthNone}, Secret: strings.Repeat("s", 16)}}
		}, "public client has no secret"},
		{"static client with a short secret", func(o *Options) {
			o.Clients = []StaticClient{{Metadata: ClientMetadata{ClientID: "app", RedirectURIs: []string{"https://app.example/cb"}}, Secret: "short"}}
		}, "at least 16"},
	}
	if _, err := New(good()); err != nil {
		t.Fatalf("good options refused: %v", err)
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			o := good()
			tc.change(&o)
			_, err := New(o)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("New: %v, want an error containing %q", err, tc.want)
			}
		})
	}
}
