package oidc

import (
	"cmp"
	"context"
	"io"
	"net/http"
	"net/url"
	"regexp"
	"slices"
	"strings"
	"testing"

	jose "github.com/go-jose/go-jose/v4"
	"golang.org/x/oauth2"

	"github.com/slobridge/slobridge"
	"github.com/slobridge/slobridge/store"
)

// signIn drives the browser through rp's /login and returns the login the
// RP completed. It fails the test when the RP refused the callback.
func signIn(tb testing.TB, br *http.Client, rp *testRP, query string) rpLogin {
	tb.Helper()
	u := rp.url("/login")
	if query != "" {
		u += "?" + query
	}
	resp, err := br.Get(u)
	if err != nil {
		tb.Fatalf("%s: sign in: %v", rp.cfg.Name, err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK || resp.Request.URL.Path != "/callback" {
		tb.Fatalf("%s: sign in ended at %s with HTTP %d: %s", rp.cfg.Name, resp.Request.URL, resp.StatusCode, body)
	}
	return receive(tb, rp.cfg.Name+" login", rp.logins)
}

// bridgeSID returns the session ID the browser's bridge cookie carries.
func (b *bridge) bridgeSID(tb testing.TB, br *http.Client) string {
	tb.Helper()
	u, _ := url.Parse(b.p.Issuer())
	for _, c := range br.Jar.Cookies(u) {
		if c.Name == slobridge.SessionCookieName {
			sid, _, _ := strings.Cut(c.Value, ".")
			return sid
		}
	}
	tb.Fatal("the browser has no bridge session cookie")
	return ""
}

// TestCodeFlowGoOIDC shows that an RP built on golang.org/x/oauth2 and
// go-oidc completes the authorization code flow with PKCE against the
// bridge on 127.0.0.1, verifies the ID token (signature, iss, aud, exp,
// nonce, at_hash) and finds the bridge session's sid in it; the exchange
// makes the client a participant with the channels it registered.
func TestCodeFlowGoOIDC(t *testing.T) {
	tests := []struct {
		name      string
		cfg       rpConfig
		want      store.Channel
		accessAlg string // Options.AccessTokenAlg, "" for the default
	}{
		{"client_secret_basic RS256 back-channel", rpConfig{Name: "basic", AuthMethod: AuthSecretBasic, BackChannel: true}, store.ChannelBack, ""},
		{"client_secret_post ES256 front-channel", rpConfig{Name: "post", AuthMethod: AuthSecretPost, Alg: "ES256", FrontChannel: true}, store.ChannelFront, "ES256"},
		{"public client with PKCE, both channels", rpConfig{Name: "public", AuthMethod: AuthNone, BackChannel: true, FrontChannel: true}, store.ChannelBack | store.ChannelFront, "RS256"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			b := newBridge(t, func(o *Options) { o.AccessTokenAlg = tc.accessAlg })
			rp := newRP(t, b, tc.cfg)
			br := browser(t)
			login := signIn(t, br, rp, "")

			sid := b.bridgeSID(t, br)
			if login.SID != sid {
				t.Fatalf("ID token sid = %q, want the bridge session %q", login.SID, sid)
			}
			s, err := b.st.GetSession(t.Context(), sid)
			if err != nil {
				t.Fatalf("session: %v", err)
			}
			if login.Subject != s.UserID || login.Subject != "alice" {
				t.Fatalf("sub = %q, want %q", login.Subject, s.UserID)
			}
			if login.AuthTime.Unix() != s.AuthTime.Unix() {
				t.Fatalf("auth_time = %v, want %v", login.AuthTime, s.AuthTime)
			}
			if login.RefreshToken == "" || login.AccessToken == "" {
				t.Fatal("token response lacks access_token or refresh_token")
			}
			wantAlg := cmp.Or(tc.accessAlg, "RS256")
			if alg, typ := jwsHeader(t, login.AccessToken); alg != wantAlg || typ != "at+jwt" {
				t.Fatalf("access token alg %q typ %q, want %s at+jwt", alg, typ, wantAlg)
			}
			if alg, typ := jwsHeader(t, login.RawIDToken); alg != cmp.Or(tc.cfg.Alg, "RS256") || typ != "JWT" {
				t.Fatalf("ID token alg %q typ %q", alg, typ)
			}
			parts, err := b.st.ListParticipants(t.Context(), sid)
			if err != nil {
				t.Fatal(err)
			}
			if len(parts) != 1 || parts[0].AppID != rp.clientID || parts[0].Kind != ParticipantKind || parts[0].Channels != tc.want {
				t.Fatalf("participants = %+v, want one %s participant %s", parts, tc.want, rp.clientID)
			}
			ui, err := rp.provider.UserInfo(context.Background(), oauth2.StaticTokenSource(&oauth2.Token{AccessToken: login.AccessToken}))
			if err != nil {
				t.Fatalf("userinfo: %v", err)
			}
			if ui.Subject != "alice" || ui.Email != "alice@example.com" {
				t.Fatalf("userinfo = sub %q email %q", ui.Subject, ui.Email)
			}
		})
	}
}

// TestSSOAndSingleLogout: the second client's authorization needs no second
// upstream login; both clients become participants of one bridge session;
// one end-session (RP-Initiated Logout with id_token_hint) ends the session,
// the back-channel RP receives a logout token it accepts with go-oidc's
// VerifyLogout, the logout page frames the front-channel RP with iss and
// sid, and the browser ends at the registered post_logout_redirect_uri with
// state. The browser here is an HTTP client that steps through the
// redirects; TestFrontChannelLogoutChromium runs the same in Chromium.
func TestSSOAndSingleLogout(t *testing.T) {
	ctx := t.Context()
	b := newBridge(t)
	back := newRP(t, b, rpConfig{Name: "back-app", AuthMethod: AuthSecretBasic, BackChannel: true})
	front := newRP(t, b, rpConfig{Name: "front-app", AuthMethod: AuthSecretPost, FrontChannel: true})
	br := browser(t)

	first := signIn(t, br, back, "")
	if got := b.auth.calls.Load(); got != 1 {
		t.Fatalf("upstream logins after the first client = %d, want 1", got)
	}
	second := signIn(t, br, front, "")
	if got := b.auth.calls.Load(); got != 1 {
		t.Fatalf("upstream logins after the second client = %d, want still 1 (SSO)", got)
	}
	if first.SID != second.SID {
		t.Fatalf("sid differs between clients: %q and %q", first.SID, second.SID)
	}
	sid := first.SID
	parts, err := b.st.ListParticipants(ctx, sid)
	if err != nil {
		t.Fatal(err)
	}
	var keys []string
	for _, p := range parts {
		keys = append(keys, p.AppID)
	}
	if !slices.Equal(keys, []string{back.clientID, front.clientID}) {
		t.Fatalf("participants = %v, want [%s %s]", keys, back.clientID, front.clientID)
	}
	// A second sign-in at the same client is the same participant.
	signIn(t, br, back, "")
	if parts, _ := b.st.ListParticipants(ctx, sid); len(parts) != 2 {
		t.Fatalf("participants after a repeated login = %d, want 2", len(parts))
	}

	// A third app, with no logout channel, asks for the logout: it is
	// answered at its post_logout_redirect_uri, the others are notified
	// (the initiator is not: slobridge.InitiatorKey).
	starter := newRP(t, b, rpConfig{Name: "starter", AuthMethod: AuthSecretBasic})
	signIn(t, br, starter, "")
	nf := noFollow(br)
	resp := get(t, nf, starter.url("/logout?state=st-123"))
	endSession := resp.Header.Get("Location")
	resp = get(t, nf, endSession)
	if resp.StatusCode != http.StatusSeeOther {
		t.Fatalf("end-session: HTTP %d, want 303 to the logout page", resp.StatusCode)
	}
	page := b.p.Issuer() + resp.Header.Get("Location")
	if s, _ := b.st.GetSession(ctx, sid); s.EndedAt.IsZero() {
		t.Fatal("the session is still active after end-session")
	}

	resp = get(t, nf, page)
	body := readBody(t, resp)
	wantFrame := FrontChannelURL(front.url("/frontchannel"), true, b.p.Issuer(), sid)
	if !strings.Contains(body, `src="`+htmlAttr(wantFrame)+`"`) {
		t.Fatalf("logout page lacks the iframe %s:\n%s", wantFrame, body)
	}
	if strings.Contains(body, back.url("/")) {
		t.Fatalf("logout page frames the back-channel-only app:\n%s", body)
	}
	if cc := resp.Header.Get("Cache-Control"); cc != "no-store" {
		t.Fatalf("logout page Cache-Control = %q", cc)
	}
	if csp := resp.Header.Get("Content-Security-Policy"); !strings.Contains(csp, "frame-src "+front.srv.URL+";") {
		t.Fatalf("logout page CSP %q does not limit frames to %s", csp, front.srv.URL)
	}

	lt := receive(t, "back-channel logout token", back.backLogouts)
	if lt.Typ != "logout+jwt" || lt.Token.SessionID != sid || lt.Token.Subject != "alice" ||
		lt.Token.Issuer != b.p.Issuer() || !slices.Equal(lt.Token.Audience, []string{back.clientID}) {
		t.Fatalf("logout token = typ %q %+v", lt.Typ, lt.Token)
	}
	if d := lt.Token.Expiry.Sub(lt.Token.IssuedAt); d != logoutTokenTTL {
		t.Fatalf("logout token lives %v, want %v", d, logoutTokenTTL)
	}
	var raw map[string]any
	if err := lt.Token.Claims(&raw); err != nil {
		t.Fatal(err)
	}
	if _, ok := raw["nonce"]; ok {
		t.Fatal("logout token carries a nonce")
	}
	if ev, ok := raw["events"].(map[string]any)[BackchannelLogoutEvent]; !ok || len(ev.(map[string]any)) != 0 {
		t.Fatalf("logout token events = %v", raw["events"])
	}

	// Continue as the page's script (or its meta refresh) does.
	resp = get(t, nf, b.p.Issuer()+continueURL(t, body))
	resp = get(t, nf, b.p.Issuer()+resp.Header.Get("Location"))
	dest, err := url.Parse(resp.Header.Get("Location"))
	if err != nil {
		t.Fatal(err)
	}
	state := dest.Query().Get("state")
	dest.RawQuery = ""
	if dest.String() != starter.url("/after-logout") || state != "st-123" {
		t.Fatalf("final redirect = %s with state %q, want the starter app's post_logout_redirect_uri with state st-123", resp.Header.Get("Location"), state)
	}

	// Both apps are logged out at the bridge: prompt=none now fails.
	resp = get(t, br, front.url("/login?prompt=none"))
	resp.Body.Close()
	q := receive(t, "login_required", front.loginErrors)
	if q.Get("error") != ErrLoginRequired || q.Get("iss") != b.p.Issuer() {
		t.Fatalf("prompt=none after logout: %v", q)
	}
	st, err := b.eng.Status(ctx, mustLogoutID(t, b, sid))
	if err != nil {
		t.Fatal(err)
	}
	if len(st.Logout.Participants) != 3 || st.Logout.ExcludeKey != ParticipantKind+":"+starter.clientID {
		t.Fatalf("logout snapshot has %d participants, excludes %q; want 3, the starter excluded", len(st.Logout.Participants), st.Logout.ExcludeKey)
	}
}

// jwsHeader returns the alg and typ of a compact JWS.
func jwsHeader(tb testing.TB, raw string) (alg, typ string) {
	tb.Helper()
	jws, err := jose.ParseSigned(raw, joseAlgs)
	if err != nil || len(jws.Signatures) != 1 {
		tb.Fatalf("parse JWS: %v", err)
	}
	h := jws.Signatures[0].Header
	typ, _ = h.ExtraHeaders[jose.HeaderType].(string)
	return h.Algorithm, typ
}

func get(tb testing.TB, c *http.Client, u string) *http.Response {
	tb.Helper()
	resp, err := c.Get(u)
	if err != nil {
		tb.Fatalf("GET %s: %v", u, err)
	}
	tb.Cleanup(func() { resp.Body.Close() })
	return resp
}

func readBody(tb testing.TB, resp *http.Response) string {
	tb.Helper()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		tb.Fatal(err)
	}
	return string(b)
}

// htmlAttr escapes a URL the way html/template writes it in src="…".
func htmlAttr(s string) string { return strings.ReplaceAll(s, "&", "&amp;") }

// continueRE finds the logout page's continue step (its link, meta
// refresh and script all lead there).
var continueRE = regexp.MustCompile(`/logout/continue/[A-Za-z0-9_-]+`)

// continueURL extracts the continue step of the logout page.
func continueURL(tb testing.TB, body string) string {
	tb.Helper()
	u := continueRE.FindString(body)
	if u == "" {
		tb.Fatalf("logout page has no continue step:\n%s", body)
	}
	return u
}

func mustLogoutID(tb testing.TB, b *bridge, sid string) string {
	tb.Helper()
	s, err := b.st.GetSession(context.Background(), sid)
	if err != nil || s.LogoutID == "" {
		tb.Fatalf("session %s has no logout (%v)", sid, err)
	}
	return s.LogoutID
}
