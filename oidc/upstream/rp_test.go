package upstream

import (
	"context"
	"crypto"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"encoding/pem"
	"fmt"
	"html"
	"io"
	"log/slog"
	"net/http"
	"net/http/cookiejar"
	"net/http/httptest"
	"net/url"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/gin-gonic/gin"
	jose "github.com/go-jose/go-jose/v4"

	"github.com/slobridge/slobridge"
	"github.com/slobridge/slobridge/oidc"
	"github.com/slobridge/slobridge/store"
	"github.com/slobridge/slobridge/store/bolt"
)

// durable makes newEngine sync its bbolt file, as in production; only
// the benchmarks set it.
var durable bool

// upperAlg is the upper OP's signing algorithm (oidc.Options.SigningAlg;
// empty: its default, RS256); only the benchmarks set it.
var upperAlg string

func quiet() *slog.Logger { return slog.New(slog.NewTextHandler(io.Discard, nil)) }

// newEngine starts an engine over a fresh bbolt file (not synced: the
// benchmarks set durable).
func newEngine(t testing.TB) *slobridge.Engine {
	t.Helper()
	db, err := bolt.Open(filepath.Join(t.TempDir(), "b.db"), bolt.Options{NoSync: !durable})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = db.Close() })
	eng, err := slobridge.NewEngine(slobridge.Options{Store: db, Logger: quiet(), BackoffBase: 50 * time.Millisecond, PollInterval: 50 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { defer close(done); _ = eng.Run(ctx) }()
	t.Cleanup(func() { cancel(); <-done })
	return eng
}

// userAuth logs "alice" in at once (the upper bridge's own upstream).
type userAuth struct {
	eng     *slobridge.Engine
	cookies slobridge.SessionCookies
	logins  int
}

func (a *userAuth) StartLogin(w http.ResponseWriter, r *http.Request, returnTo string) error {
	a.logins++
	est, err := a.eng.EstablishLogin(r.Context(), a.cookies.BrowserSessionID(r), store.Session{UserID: "alice",
		Attributes: map[string][]string{"email": {"alice@example.com"}, "name": {"Alice"}}, ExpiresAt: a.eng.Now().Add(time.Hour)})
	if err != nil {
		return err
	}
	a.cookies.Set(w, est.Session.ID, est.Session.ExpiresAt)
	http.Redirect(w, r, returnTo, http.StatusSeeOther)
	return nil
}

// upper is an upstream OpenID Provider: a slobridge OP over its own engine.
type upper struct {
	// issuer is http://localhost:port: a cookie jar keeps cookies by host,
	// not port, so the two bridges on 127.0.0.1 would overwrite each
	// other's session cookie.
	issuer string
	srv    *httptest.Server
	eng    *slobridge.Engine
	p      *oidc.Provider
	auth   *userAuth
}

// lower is a bridge whose upstream is the upper OP.
type lower struct {
	srv     *httptest.Server
	eng     *slobridge.Engine
	rp      *RP
	cookies slobridge.SessionCookies
}

// startLower starts a bridge whose upstream OP is at issuer, registered
// there as client lower-bridge, with test routes: /start begins a login
// that ends at /done; /logout-start logs the browser's session out with
// the upstream leg last, ending at /bye.
func startLower(t testing.TB, issuer string, mods ...func(*Config)) *lower {
	t.Helper()
	gin.SetMode(gin.ReleaseMode)
	lo := &lower{eng: newEngine(t), cookies: slobridge.SessionCookies{Secret: []byte(strings.Repeat("l", 32))}}
	lo.srv = httptest.NewUnstartedServer(nil)
	lowerBase := "http://" + lo.srv.Listener.Addr().String()
	cfg := Config{Name: "corp", Issuer: issuer, ClientID: "lower-bridge", ClientSecret: "lower-secret-0123456789"}
	for _, m := range mods {
		m(&cfg)
	}
	rp, err := New(Options{Engine: lo.eng, Cookies: lo.cookies, BaseURL: lowerBase, Logger: quiet(), Upstream: cfg})
	if err != nil {
		t.Fatal(err)
	}
	lo.rp = rp
	lr := gin.New()
	rp.Mount(lr)
	lr.GET("/start", func(c *gin.Context) {
		if err := rp.StartLogin(c.Writer, c.Request, "/done"); err != nil {
			c.String(http.StatusServiceUnavailable, err.Error())
		}
	})
	lr.GET("/done", func(c *gin.Context) { c.String(http.StatusOK, "signed in") })
	// A logout with a browser of the bridge session the browser holds,
	// as the logout page runs it after the downstream apps: the upstream
	// leg comes last.
	lr.GET("/logout-start", func(c *gin.Context) {
		sid, err := lo.cookies.SessionID(c.Request)
		if err != nil {
			c.String(http.StatusBadRequest, "no session")
			return
		}
		lg, err := lo.eng.Logout(c.Request.Context(), slobridge.LogoutRequest{SessionIDs: []string{sid},
			Initiator: store.Initiator{Kind: store.InitiatorUser}, Browser: true})
		if err != nil {
			c.String(http.StatusInternalServerError, err.Error())
			return
		}
		c.Header("X-Logout-Id", lg.ID)
		started, err := rp.StartLogout(c.Writer, c.Request, lg, "/bye?logout="+lg.ID)
		if err != nil {
			c.String(http.StatusInternalServerError, err.Error())
		} else if !started {
			c.Redirect(http.StatusSeeOther, "/bye?logout="+lg.ID)
		}
	})
	lr.GET("/bye", func(c *gin.Context) { c.String(http.StatusOK, "logged out") })
	lo.srv.Config.Handler = lr
	lo.srv.Start()
	t.Cleanup(lo.srv.Close)
	return lo
}

// chain starts an upper OP and a lower bridge registered at it as a
// confidential client with a back-channel logout URI.
func chain(t testing.TB) (*upper, *lower) {
	t.Helper()
	up := &upper{eng: newEngine(t)}
	up.srv = httptest.NewUnstartedServer(nil)
	upCookies := slobridge.SessionCookies{Secret: []byte(strings.Repeat("u", 32))}
	up.auth = &userAuth{eng: up.eng, cookies: upCookies}
	up.issuer = "http://localhost:" + strings.TrimPrefix(up.srv.Listener.Addr().String(), "127.0.0.1:")
	lo := startLower(t, up.issuer)
	rp := lo.rp
	p, err := oidc.New(oidc.Options{Issuer: up.issuer, Engine: up.eng, Cookies: upCookies, Authenticator: up.auth, Logger: quiet(),
		AllowLoopbackHTTP: true, AllowPrivateBackchannel: true, SigningAlg: upperAlg,
		Clients: []oidc.StaticClient{{Secret: "lower-secret-0123456789", Metadata: oidc.ClientMetadata{
			ClientID: "lower-bridge", RedirectURIs: []string{rp.RedirectURI()}, PostLogoutRedirectURIs: []string{rp.PostLogoutRedirectURI()},
			BackchannelLogoutURI: rp.BackchannelLogoutURI(), BackchannelLogoutSessionRequired: true}}}})
	if err != nil {
		t.Fatal(err)
	}
	up.p = p
	up.eng.SetNotifier(oidc.ParticipantKind, p.BackChannelNotifier(slobridge.NewBackChannelClient(slobridge.ClientOptions{AllowLoopback: true, AllowPrivate: true})))
	lp, err := slobridge.NewLogoutPage(slobridge.LogoutPageOptions{Engine: up.eng, Logger: quiet()})
	if err != nil {
		t.Fatal(err)
	}
	ur := gin.New()
	p.Mount(ur)
	lp.Mount(ur)
	up.srv.Config.Handler = ur
	up.srv.Start()
	t.Cleanup(up.srv.Close)
	return up, lo
}

// browser is a cookie-keeping HTTP client that follows redirects.
func browser(t testing.TB) *http.Client {
	jar, _ := cookiejar.New(nil)
	return &http.Client{Jar: jar, Timeout: 10 * time.Second}
}

// get fetches u and returns the final URL, status and body.
func get(t testing.TB, c *http.Client, u string) (*url.URL, int, string) {
	t.Helper()
	resp, err := c.Get(u)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.Request.URL, resp.StatusCode, string(b)
}

// signIn logs a browser in at the lower bridge through the upper OP and
// returns the lower session.
func signIn(t *testing.T, up *upper, lo *lower, br *http.Client) store.Session {
	t.Helper()
	final, status, body := get(t, br, lo.srv.URL+"/start")
	if status != http.StatusOK || final.Path != "/done" {
		t.Fatalf("sign-in ended at %s with %d: %s", final, status, body)
	}
	u, _ := url.Parse(lo.srv.URL)
	var sid string
	for _, c := range br.Jar.Cookies(u) {
		if c.Name == slobridge.SessionCookieName {
			sid, _, _ = strings.Cut(c.Value, ".")
		}
	}
	s, err := lo.eng.Store().GetSession(t.Context(), sid)
	if err != nil {
		t.Fatalf("the lower bridge's session: %v", err)
	}
	return s
}

// TestLoginThroughUpstreamOP: the code flow through an upstream OpenID
// Provider (a slobridge OP) makes a lower bridge session that records the
// upstream, its subject and its sid, with the mapped attributes.
func TestLoginThroughUpstreamOP(t *testing.T) {
	up, lo := chain(t)
	s := signIn(t, up, lo, browser(t))
	upSessions, err := up.eng.Store().ListSessionsByUser(t.Context(), "alice")
	if err != nil || len(upSessions) != 1 {
		t.Fatalf("upper sessions: %v %v", upSessions, err)
	}
	if s.Upstream != "corp" || s.UserID != "alice" || s.NameID.Value != "alice" || s.SessionIndex != upSessions[0].ID {
		t.Fatalf("lower session %+v, want upstream corp, user alice, sid %s", s, upSessions[0].ID)
	}
	if got := s.Attributes["email"]; len(got) != 1 || got[0] != "alice@example.com" {
		t.Fatalf("attributes %v", s.Attributes)
	}
}

// TestUpstreamBackchannelLogoutEndsTheSession: a logout at the upper OP
// sends the lower bridge a logout token, which ends its session.
func TestUpstreamBackchannelLogoutEndsTheSession(t *testing.T) {
	up, lo := chain(t)
	s := signIn(t, up, lo, browser(t))
	if _, err := up.eng.Logout(t.Context(), slobridge.LogoutRequest{SessionIDs: []string{s.SessionIndex},
		Initiator: store.Initiator{Kind: store.InitiatorAdmin}}); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(10 * time.Second)
	for {
		got, err := lo.eng.Store().GetSession(t.Context(), s.ID)
		if err != nil {
			t.Fatal(err)
		}
		if !got.EndedAt.IsZero() {
			if got.LogoutID == "" {
				t.Fatal("ended without a logout")
			}
			lg, err := lo.eng.Store().GetLogout(t.Context(), got.LogoutID)
			if err != nil || lg.Initiator.Kind != store.InitiatorUpstream || lg.Initiator.ID != "corp" {
				t.Fatalf("logout %+v, %v: want initiator upstream corp", lg, err)
			}
			return
		}
		if time.Now().After(deadline) {
			t.Fatal("the upper OP's back-channel logout did not end the lower session")
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// upperKey returns the upper OP's current signing key of alg.
func upperKey(t *testing.T, up *upper, alg string) (crypto.Signer, string) {
	t.Helper()
	if _, code, _ := get(t, http.DefaultClient, up.issuer+oidc.PathJWKS); code != http.StatusOK {
		t.Fatalf("JWKS: %d", code)
	}
	keys, err := up.eng.Store().ListKeys(t.Context(), oidc.KeyUse)
	if err != nil {
		t.Fatal(err)
	}
	for _, k := range keys {
		if k.Algorithm != alg {
			continue
		}
		blk, _ := pem.Decode(k.PrivatePEM)
		priv, err := x509.ParsePKCS8PrivateKey(blk.Bytes)
		if err != nil {
			t.Fatal(err)
		}
		return priv.(crypto.Signer), k.ID
	}
	t.Fatalf("no %s key at the upper OP", alg)
	return nil, ""
}

// signed signs claims with key (kid, alg) and the JOSE typ.
func signed(t *testing.T, key any, kid string, alg jose.SignatureAlgorithm, typ string, claims map[string]any) string {
	t.Helper()
	opts := &jose.SignerOptions{}
	if typ != "" {
		opts = opts.WithType(jose.ContentType(typ))
	}
	s, err := jose.NewSigner(jose.SigningKey{Algorithm: alg, Key: jose.JSONWebKey{Key: key, KeyID: kid}}, opts)
	if err != nil {
		t.Fatal(err)
	}
	b, _ := json.Marshal(claims)
	jws, err := s.Sign(b)
	if err != nil {
		t.Fatal(err)
	}
	out, err := jws.CompactSerialize()
	if err != nil {
		t.Fatal(err)
	}
	return out
}

// TestBackchannelLogoutRefusesBadTokens: each bad logout token is refused
// with 400 and a JSON error, never cached, and ends no session; a valid
// token for an unknown sid answers 200 and ends nothing; the valid one
// ends the session, and its replay is refused.
func TestBackchannelLogoutRefusesBadTokens(t *testing.T) {
	up, lo := chain(t)
	s := signIn(t, up, lo, browser(t))
	key, kid := upperKey(t, up, "RS256")
	otherKey, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	now := time.Now()
	valid := func() map[string]any {
		return map[string]any{"iss": up.issuer, "aud": "lower-bridge", "iat": now.Unix(), "exp": now.Add(2 * time.Minute).Unix(),
			"jti": fmt.Sprint("jti-", time.Now().UnixNano()), "sub": "alice", "sid": s.SessionIndex,
			"events": map[string]any{backchannelEvent: map[string]any{}}}
	}
	with := func(k string, v any) map[string]any {
		c := valid()
		if v == nil {
			delete(c, k)
		} else {
			c[k] = v
		}
		return c
	}
	unsigned := func(claims map[string]any) string {
		h := `{"alg":"none","typ":"logout+jwt"}`
		b, _ := json.Marshal(claims)
		return b64(h) + "." + b64(string(b)) + "."
	}
	replayed := signed(t, key, kid, jose.RS256, "logout+jwt", with("sid", "unknown-sid"))
	tests := []struct {
		name  string
		body  string
		want  int
		first bool // sent once before, with 200 (the replay case)
	}{
		{"alg none", form(unsigned(valid())), 400, false},
		{"unsigned (RS256 header, no signature)", form(stripSignature(signed(t, key, kid, jose.RS256, "logout+jwt", valid()))), 400, false},
		{"signed by another key", form(signed(t, otherKey, kid, jose.RS256, "logout+jwt", valid())), 400, false},
		{"wrong iss", form(signed(t, key, kid, jose.RS256, "logout+jwt", with("iss", "https://evil.example"))), 400, false},
		{"wrong aud", form(signed(t, key, kid, jose.RS256, "logout+jwt", with("aud", "someone-else"))), 400, false},
		{"nonce present", form(signed(t, key, kid, jose.RS256, "logout+jwt", with("nonce", "n"))), 400, false},
		{"no events", form(signed(t, key, kid, jose.RS256, "logout+jwt", with("events", nil))), 400, false},
		{"event not an object", form(signed(t, key, kid, jose.RS256, "logout+jwt", with("events", map[string]any{backchannelEvent: "yes"}))), 400, false},
		{"neither sid nor sub", form(signed(t, key, kid, jose.RS256, "logout+jwt", func() map[string]any { c := with("sid", nil); delete(c, "sub"); return c }())), 400, false},
		{"expired", form(signed(t, key, kid, jose.RS256, "logout+jwt", with("exp", now.Add(-time.Minute).Unix()))), 400, false},
		{"iat far in the future", form(signed(t, key, kid, jose.RS256, "logout+jwt", with("iat", now.Add(time.Hour).Unix()))), 400, false},
		{"no iat", form(signed(t, key, kid, jose.RS256, "logout+jwt", with("iat", nil))), 400, false},
		{"no jti", form(signed(t, key, kid, jose.RS256, "logout+jwt", with("jti", nil))), 400, false},
		{"an ID token (typ JWT)", form(signed(t, key, kid, jose.RS256, "JWT", with("events", nil))), 400, false},
		{"an ID token typed like a logout token but with a nonce", form(signed(t, key, kid, jose.RS256, "", with("nonce", "abc"))), 400, false},
		{"a 2 MB body", form(strings.Repeat("a", 2<<20)), 400, false},
		{"no logout_token", "other=1", 400, false},
		{"valid, unknown sid", form(signed(t, key, kid, jose.RS256, "logout+jwt", func() map[string]any { c := with("sid", "unknown-sid"); delete(c, "sub"); return c }())), 200, false},
		{"replayed jti", form(replayed), 400, true},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if tc.first {
				if code, _, _ := post(t, lo.rp.BackchannelLogoutURI(), tc.body); code != 200 {
					t.Fatalf("first use: %d", code)
				}
			}
			code, hdr, body := post(t, lo.rp.BackchannelLogoutURI(), tc.body)
			if code != tc.want || hdr.Get("Cache-Control") != "no-store" {
				t.Fatalf("HTTP %d Cache-Control %q: %s; want %d no-store", code, hdr.Get("Cache-Control"), body, tc.want)
			}
			if tc.want == 400 && !strings.Contains(body, `"error":"invalid_request"`) {
				t.Fatalf("body %s lacks the JSON error", body)
			}
			got, err := lo.eng.Store().GetSession(t.Context(), s.ID)
			if err != nil || !got.EndedAt.IsZero() {
				t.Fatalf("the session ended (%v)", err)
			}
		})
	}
	// The valid token ends the session: here with its sid alone (the
	// upper OP's own tokens, in TestUpstreamBackchannelLogoutEndsTheSession,
	// carry sub and sid).
	if code, _, body := post(t, lo.rp.BackchannelLogoutURI(), form(signed(t, key, kid, jose.RS256, "logout+jwt", with("sub", nil)))); code != 200 {
		t.Fatalf("valid logout token: %d %s", code, body)
	}
	if got, _ := lo.eng.Store().GetSession(t.Context(), s.ID); got.EndedAt.IsZero() {
		t.Fatal("a valid logout token did not end the session")
	}
}

// stripSignature drops a compact JWS's signature, keeping its header.
func stripSignature(tok string) string { return tok[:strings.LastIndex(tok, ".")+1] }

func b64(s string) string { return base64.RawURLEncoding.EncodeToString([]byte(s)) }

func form(tok string) string { return "logout_token=" + url.QueryEscape(tok) }

func post(t *testing.T, u, body string) (int, http.Header, string) {
	t.Helper()
	resp, err := http.Post(u, "application/x-www-form-urlencoded", strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, resp.Header, string(b)
}

// TestLoginRefusals: a callback in another browser, a replayed callback
// and an upstream that answers with an error each end on an error page
// and make no session.
func TestLoginRefusals(t *testing.T) {
	up, lo := chain(t)
	// A browser that starts a login, stopped at the redirect to the
	// lower bridge's callback.
	started := func() (*http.Client, string) {
		br := browser(t)
		br.CheckRedirect = func(req *http.Request, via []*http.Request) error {
			if strings.HasPrefix(req.URL.String(), lo.rp.RedirectURI()) {
				return http.ErrUseLastResponse
			}
			return nil
		}
		resp, err := br.Get(lo.srv.URL + "/start")
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		loc := resp.Header.Get("Location")
		if !strings.HasPrefix(loc, lo.rp.RedirectURI()) {
			t.Fatalf("stopped at %d %q", resp.StatusCode, loc)
		}
		br.CheckRedirect = nil
		return br, loc
	}
	count := func() int {
		n, err := lo.eng.Store().CountActiveSessions(t.Context(), time.Now())
		if err != nil {
			t.Fatal(err)
		}
		return n
	}

	_, callback := started()
	if _, code, body := get(t, browser(t), callback); code != 400 || !strings.Contains(body, "not started in this browser") {
		t.Fatalf("callback in another browser: %d %s", code, body)
	}
	br, callback := started()
	if _, code, body := get(t, br, callback); code != 200 || !strings.Contains(body, "signed in") {
		t.Fatalf("callback: %d %s", code, body)
	}
	if count() != 1 {
		t.Fatal("no session after the callback")
	}
	// The same callback again (the code replayed): the state is used.
	// The browser that made it still has — or an attacker replays — the
	// state cookie as it was.
	br2 := browser(t)
	u, _ := url.Parse(callback)
	br2.Jar.SetCookies(u, []*http.Cookie{{Name: stateCookie, Value: u.Query().Get("state"), Path: u.Path}})
	if _, code, body := get(t, br2, callback); code != 400 || !strings.Contains(body, "expired or was already completed") {
		t.Fatalf("replayed callback: %d %s", code, body)
	}
	// The upstream answers with an error.
	br3, callback := started()
	cu, _ := url.Parse(callback)
	q := cu.Query()
	q.Del("code")
	q.Set("error", "access_denied")
	cu.RawQuery = q.Encode()
	if _, code, body := get(t, br3, cu.String()); code != 502 || !strings.Contains(body, "did not sign you in (access_denied)") {
		t.Fatalf("upstream error: %d %s", code, body)
	}
	// A callback whose iss is another issuer.
	br4, callback := started()
	cu, _ = url.Parse(callback)
	q = cu.Query()
	q.Set("iss", "https://evil.example")
	cu.RawQuery = q.Encode()
	if _, code, body := get(t, br4, cu.String()); code != 400 || !strings.Contains(body, "expected identity provider") {
		t.Fatalf("wrong iss: %d %s", code, body)
	}
	if n := count(); n != 1 {
		t.Fatalf("%d sessions, want only the one good login", n)
	}
	_ = up
}

// TestRPInitiatedLogoutEndsTheUpstreamSession: a logout at the lower
// bridge ends with the browser at the upper OP's end-session endpoint
// (client_id, post_logout_redirect_uri, state); the person confirms
// there, the upper session ends, the browser comes back through the
// bridge's post-logout redirect URI, the upstream leg is recorded done,
// and the next sign-in has to log in at the upper OP again.
func TestRPInitiatedLogoutEndsTheUpstreamSession(t *testing.T) {
	up, lo := chain(t)
	br := browser(t)
	s := signIn(t, up, lo, br)
	// The browser goes to the upper OP's end-session endpoint, which asks
	// the person to confirm (RP-Initiated Logout §2: no id_token_hint), then
	// through its logout page and back through the bridge's post-logout
	// redirect URI.
	var hops []string
	br.CheckRedirect = func(req *http.Request, via []*http.Request) error {
		hops = append(hops, req.URL.String())
		return nil
	}
	final, code, page := get(t, br, lo.srv.URL+"/logout-start")
	if final.Path == oidc.PathEndSession && strings.Contains(page, `action="`+oidc.PathConfirm+`"`) {
		fields := url.Values{}
		for _, f := range regexp.MustCompile(`<input type="hidden" name="([^"]+)" value="([^"]*)">`).FindAllStringSubmatch(page, -1) {
			fields.Set(f[1], html.UnescapeString(f[2]))
		}
		resp, err := br.PostForm(up.issuer+oidc.PathConfirm, fields)
		if err != nil {
			t.Fatal(err)
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		final, code, page = resp.Request.URL, resp.StatusCode, string(b)
		if m := regexp.MustCompile(`id="continue" class="button" href="([^"]+)"`).FindStringSubmatch(page); m != nil && final.Path != "/bye" {
			cont, _ := final.Parse(html.UnescapeString(m[1]))
			final, code, page = get(t, br, cont.String())
		}
	}
	br.CheckRedirect = nil
	if code != http.StatusOK || final.Path != "/bye" {
		t.Fatalf("logout ended at %s (%d): %s", final, code, page)
	}
	var endSession *url.URL
	for _, h := range hops {
		if u, _ := url.Parse(h); u.Path == oidc.PathEndSession && strings.HasPrefix(h, up.issuer) {
			endSession = u
		}
	}
	if endSession == nil {
		t.Fatalf("the browser never went to the upper OP's end-session endpoint: %v", hops)
	}
	if q := endSession.Query(); q.Get("client_id") != "lower-bridge" || q.Get("post_logout_redirect_uri") != lo.rp.PostLogoutRedirectURI() ||
		q.Get("state") == "" || q.Get("logout_hint") != "alice" {
		t.Fatalf("end-session request %s", endSession)
	}
	if !slices.ContainsFunc(hops, func(h string) bool { return strings.HasPrefix(h, lo.rp.PostLogoutRedirectURI()+"?state=") }) {
		t.Fatalf("the browser did not come back through the post-logout redirect URI: %v", hops)
	}
	upS, err := up.eng.Store().GetSession(t.Context(), s.SessionIndex)
	if err != nil || upS.EndedAt.IsZero() {
		t.Fatalf("the upper session is still active (%v); hops %v", err, hops)
	}
	leg, err := lo.eng.BrowserLegState(t.Context(), final.Query().Get("logout"), "", slobridge.UpstreamLeg)
	if err != nil || leg.Result == nil || !leg.Result.Done {
		t.Fatalf("upstream leg %+v, %v: want done", leg, err)
	}
	before := up.auth.logins
	signIn(t, up, lo, br)
	if up.auth.logins != before+1 {
		t.Fatal("the next sign-in did not log in at the upper OP again")
	}
}

// TestLogoutWithoutEndSessionSaysSo: with skip_end_session the browser is
// not sent to the OP and the upstream leg records why the upstream session
// was not ended.
func TestLogoutWithoutEndSessionSaysSo(t *testing.T) {
	up, lo := chain(t)
	lo.rp.cfg.NoEndSession = true
	br := browser(t)
	signIn(t, up, lo, br)
	final, code, _ := get(t, br, lo.srv.URL+"/logout-start")
	if code != http.StatusOK || final.Path != "/bye" {
		t.Fatalf("logout ended at %s (%d)", final, code)
	}
	leg, err := lo.eng.BrowserLegState(t.Context(), final.Query().Get("logout"), "", slobridge.UpstreamLeg)
	if err != nil || leg.Result == nil || leg.Result.Done || !strings.Contains(leg.Result.Error, "could not be ended") {
		t.Fatalf("upstream leg %+v, %v: want failed with the reason", leg.Result, err)
	}
}

// TestReauthenticationAsksTheOPAfresh: a login started while the browser
// holds an active bridge session (a downstream prompt=login, max_age or
// ForceAuthn) asks the OP for prompt=login and max_age=0; the OP signs the
// user in again and the bridge keeps the same session.
func TestReauthenticationAsksTheOPAfresh(t *testing.T) {
	up, lo := chain(t)
	br := browser(t)
	first := signIn(t, up, lo, br)
	var authorize *url.URL
	br.CheckRedirect = func(req *http.Request, via []*http.Request) error {
		if req.URL.Path == oidc.PathAuthorize {
			authorize = req.URL
		}
		return nil
	}
	before := up.auth.logins
	again := signIn(t, up, lo, br)
	if authorize == nil || authorize.Query().Get("prompt") != "login" || authorize.Query().Get("max_age") != "0" {
		t.Fatalf("the re-login's authorization request %v lacks prompt=login and max_age=0", authorize)
	}
	if up.auth.logins != before+1 {
		t.Fatal("the upper OP did not sign the user in again")
	}
	if again.ID != first.ID {
		t.Fatalf("the re-login made session %s, want the same session %s", again.ID, first.ID)
	}
	// A first login (no bridge session) does not force one.
	authorize = nil
	br2 := browser(t)
	br2.CheckRedirect = br.CheckRedirect
	signIn(t, up, lo, br2)
	if authorize == nil || authorize.Query().Has("prompt") || authorize.Query().Has("max_age") {
		t.Fatalf("a first login's authorization request %v forces a new login", authorize)
	}
}
