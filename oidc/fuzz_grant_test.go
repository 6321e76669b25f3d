package oidc

import (
	"context"
	"encoding/base64"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/slobridge/slobridge/store"
)

// FuzzTokenEndpoint posts arbitrary form bodies with arbitrary
// Authorization headers to the token endpoint of a bridge with a
// registered client, a live authorization code and a refresh token (the
// seeds hold both, valid and reused): it never answers 5xx and never
// panics.
func FuzzTokenEndpoint(f *testing.F) {
	b := newBridgeStore(f, openStore(f, true), quietEngine)
	ctx := context.Background()
	reg := b.register(f, ClientMetadata{RedirectURIs: []string{"http://127.0.0.1:9/cb"}, ClientName: "fuzz"})
	cl, err := b.p.client(ctx, reg.ClientID)
	if err != nil {
		f.Fatal(err)
	}
	now := b.clock.Now()
	s, err := b.eng.CreateSession(ctx, store.Session{UserID: "alice", AuthTime: now, ExpiresAt: now.Add(24 * time.Hour)})
	if err != nil {
		f.Fatal(err)
	}
	code, err := b.p.IssueCode(ctx, AuthRequest{ClientID: cl.ID, RedirectURI: "http://127.0.0.1:9/cb", Scope: "openid"}, s, now)
	if err != nil {
		f.Fatal(err)
	}
	code2, _ := b.p.IssueCode(ctx, AuthRequest{ClientID: cl.ID, RedirectURI: "http://127.0.0.1:9/cb", Scope: "openid"}, s, now)
	tok, err := b.p.ExchangeCode(ctx, cl, code2, "http://127.0.0.1:9/cb", "")
	if err != nil {
		f.Fatal(err)
	}
	basic := "Basic " + basicValue(reg.ClientID, reg.ClientSecret)
	for _, seed := range []struct{ auth, body string }{
		{basic, "grant_type=authorization_code&code=" + code + "&redirect_uri=http%3A%2F%2F127.0.0.1%3A9%2Fcb"},
		{basic, "grant_type=authorization_code&code=" + code2 + "&redirect_uri=http%3A%2F%2F127.0.0.1%3A9%2Fcb"},
		{basic, "grant_type=refresh_token&refresh_token=" + tok.RefreshToken},
		{"", "grant_type=refresh_token&refresh_token=" + tok.RefreshToken + "&client_id=" + reg.ClientID + "&client_secret=" + reg.ClientSecret},
		{"Basic !!!", "grant_type=authorization_code&code=x&code=y"},
		{"Bearer x", "%zz"},
		{basic, "grant_type=client_credentials&scope=openid"},
		{"", ""},
	} {
		f.Add(seed.auth, seed.body)
	}
	f.Fuzz(func(t *testing.T, auth, body string) {
		req := httptest.NewRequest(http.MethodPost, "/oidc/token", strings.NewReader(body))
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
		if auth != "" {
			req.Header["Authorization"] = []string{auth}
		}
		rec := httptest.NewRecorder()
		b.srv.Config.Handler.ServeHTTP(rec, req)
		if rec.Code >= 500 {
			t.Fatalf("HTTP %d for %q %q: %s", rec.Code, auth, body, rec.Body)
		}
	})
}

// FuzzIDTokenHint validates end-session requests with arbitrary
// id_token_hint and client_id values: no panic, and a hint is accepted
// only when it is a genuine ID token of this provider.
func FuzzIDTokenHint(f *testing.F) {
	b := newBridgeStore(f, openStore(f, true), quietEngine)
	ctx := context.Background()
	reg := b.register(f, ClientMetadata{RedirectURIs: []string{"http://127.0.0.1:9/cb"}, ClientName: "fuzz"})
	cl, _ := b.p.client(ctx, reg.ClientID)
	now := b.clock.Now()
	s, err := b.eng.CreateSession(ctx, store.Session{UserID: "alice", AuthTime: now, ExpiresAt: now.Add(time.Hour)})
	if err != nil {
		f.Fatal(err)
	}
	code, _ := b.p.IssueCode(ctx, AuthRequest{ClientID: cl.ID, RedirectURI: "http://127.0.0.1:9/cb", Scope: "openid"}, s, now)
	tok, err := b.p.ExchangeCode(ctx, cl, code, "http://127.0.0.1:9/cb", "")
	if err != nil {
		f.Fatal(err)
	}
	for _, h := range []string{tok.IDToken, tok.AccessToken, "a.b.c", "eyJhbGciOiJub25lIn0.e30.", tok.IDToken + "x", ""} {
		f.Add(h, reg.ClientID)
		f.Add(h, "")
	}
	f.Fuzz(func(t *testing.T, hint, clientID string) {
		es, err := b.p.ValidateEndSessionRequest(ctx, EndSessionRequest{IDTokenHint: hint, ClientID: clientID})
		if err != nil {
			if e, ok := err.(*Error); ok && e.Status >= 500 {
				t.Fatalf("server error for hint %q: %v", hint, err)
			}
			return
		}
		if hint != "" && (!es.Hinted || hint != tok.IDToken && !strings.HasPrefix(hint, tok.IDToken[:strings.LastIndex(tok.IDToken, ".")])) {
			t.Fatalf("accepted hint %q as %+v", hint, es)
		}
	})
}

// basicValue is the RFC 6749 §2.3.1 encoding of client credentials.
func basicValue(id, secret string) string {
	return base64.StdEncoding.EncodeToString([]byte(url.QueryEscape(id) + ":" + url.QueryEscape(secret)))
}
