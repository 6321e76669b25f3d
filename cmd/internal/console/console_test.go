package console

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"net/url"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/gin-gonic/gin"

	"github.com/slobridge/slobridge"
	"github.com/slobridge/slobridge/store"
	"github.com/slobridge/slobridge/store/bolt"
)

// loginRecorder is an authenticator that records where a login would
// return to.
type loginRecorder struct {
	mu      sync.Mutex
	returns []string
}

func (l *loginRecorder) StartLogin(w http.ResponseWriter, r *http.Request, returnTo string) error {
	l.mu.Lock()
	l.returns = append(l.returns, returnTo)
	l.mu.Unlock()
	http.Redirect(w, r, "/upstream-login", http.StatusSeeOther)
	return nil
}

// harness is a console over a real engine and bbolt store, with bob an
// operator and eve not.
type harness struct {
	srv     *httptest.Server
	eng     *slobridge.Engine
	cookies slobridge.SessionCookies
	login   *loginRecorder
	logs    *bytes.Buffer
	bob     store.Session
	eve     store.Session
	// streams counts the requests for event streams.
	streams atomic.Int32
}

func newHarness(t *testing.T, users, groups []string) *harness {
	t.Helper()
	return newHarnessApps(t, users, groups, []App{{Kind: "saml", ID: `https://sp.example/"><b>x</b>`, Name: `<iframe src=javascript:alert(5)>`, Channels: "back"}})
}

// newHarnessApps is newHarness with the registered apps the Apps page
// lists.
func newHarnessApps(t *testing.T, users, groups []string, apps []App) *harness {
	t.Helper()
	gin.SetMode(gin.ReleaseMode)
	db, err := bolt.Open(filepath.Join(t.TempDir(), "c.db"), bolt.Options{NoSync: true})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = db.Close() })
	eng, err := slobridge.NewEngine(slobridge.Options{Store: db, Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		t.Fatal(err)
	}
	h := &harness{eng: eng, cookies: slobridge.SessionCookies{Secret: bytes.Repeat([]byte("k"), 32), Path: "/"},
		login: &loginRecorder{}, logs: &bytes.Buffer{}}
	h.srv = httptest.NewUnstartedServer(nil)
	c, err := New(Options{Engine: eng, Cookies: h.cookies, Authenticator: h.login, BaseURL: "http://" + h.srv.Listener.Addr().String(),
		AllowedUsers: users, AllowedGroups: groups,
		Apps:       func(context.Context) ([]App, error) { return apps, nil },
		AppActions: &fakeActions{},
		Logger:     slog.New(slog.NewJSONHandler(h.logs, nil))})
	if err != nil {
		t.Fatal(err)
	}
	r := gin.New()
	r.Use(func(g *gin.Context) {
		if strings.HasSuffix(g.Request.URL.Path, "/events") {
			h.streams.Add(1)
		}
	})
	c.Mount(r)
	h.srv.Config.Handler = r
	h.srv.Start()
	t.Cleanup(h.srv.Close)
	ctx := context.Background()
	exp := time.Now().Add(time.Hour)
	if h.bob, err = eng.CreateSession(ctx, store.Session{UserID: "bob", ExpiresAt: exp}); err != nil {
		t.Fatal(err)
	}
	if h.eve, err = eng.CreateSession(ctx, store.Session{UserID: "eve", ExpiresAt: exp}); err != nil {
		t.Fatal(err)
	}
	return h
}

// cookie is the bridge session cookie of s.
func (h *harness) cookie(s store.Session) *http.Cookie {
	rec := httptest.NewRecorder()
	h.cookies.Set(rec, s.ID, s.ExpiresAt)
	return rec.Result().Cookies()[0]
}

// do sends a request without following redirects.
func (h *harness) do(t *testing.T, method, path string, ck *http.Cookie, form url.Values, hdr map[string]string) (int, http.Header, string) {
	t.Helper()
	var body io.Reader
	if form != nil {
		body = strings.NewReader(form.Encode())
	}
	req, _ := http.NewRequest(method, h.srv.URL+path, body)
	if form != nil {
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	}
	if ck != nil {
		req.AddCookie(ck)
	}
	for k, v := range hdr {
		req.Header.Set(k, v)
	}
	c := &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	resp, err := c.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, resp.Header, string(b)
}

// csrf reads the CSRF token of a console page.
func csrf(t *testing.T, page string) string {
	t.Helper()
	m := regexp.MustCompile(`name="csrf" value="([^"]+)"`).FindStringSubmatch(page)
	if m == nil {
		t.Fatalf("no CSRF token in the page:\n%s", page)
	}
	return m[1]
}

// TestConsoleRefusals: no session goes through the upstream login (the
// admin token, as a cookie or a bearer token, is no session); a
// signed-in non-operator gets 403; a POST without the CSRF token, with a
// foreign Origin or cross-site Fetch metadata is refused and changes
// nothing; each refusal and the action leave an audit line.
func TestConsoleRefusals(t *testing.T) {
	h := newHarness(t, []string{"bob"}, []string{"sso-admins"})
	const adminToken = "the-admin-api-token-0123456789"
	for name, ck := range map[string]*http.Cookie{"no cookie": nil,
		"admin token as cookie": {Name: slobridge.SessionCookieName, Value: adminToken}} {
		code, hdr, _ := h.do(t, "GET", "/admin/?q=alice", ck, nil, map[string]string{"Authorization": "Bearer " + adminToken})
		if code != http.StatusSeeOther || hdr.Get("Location") != "/upstream-login" {
			t.Fatalf("%s: %d %s, want the upstream login", name, code, hdr.Get("Location"))
		}
	}
	if len(h.login.returns) != 2 || h.login.returns[0] != "/admin/?q=alice" {
		t.Fatalf("logins returned to %q", h.login.returns)
	}
	if code, _, body := h.do(t, "GET", "/admin/", h.cookie(h.eve), nil, nil); code != 403 || !strings.Contains(body, "not an operator") {
		t.Fatalf("eve: %d %s", code, body)
	}
	if code, _, _ := h.do(t, "POST", "/admin/logout", nil, url.Values{"user": {"eve"}, "reason": {"x"}}, nil); code != 403 {
		t.Fatalf("a POST without a session: %d", code)
	}

	bob := h.cookie(h.bob)
	_, _, page := h.do(t, "GET", "/admin/logout?user=eve", bob, nil, nil)
	token := csrf(t, page)
	form := url.Values{"user": {"eve"}, "reason": {"leaving"}, "csrf": {token}}
	refusals := []struct {
		name string
		form url.Values
		hdr  map[string]string
	}{
		{"no CSRF token", url.Values{"user": {"eve"}, "reason": {"leaving"}}, nil},
		{"another session's CSRF token", url.Values{"user": {"eve"}, "reason": {"leaving"}, "csrf": {"AAAA" + token[4:]}}, nil},
		{"a foreign Origin", form, map[string]string{"Origin": "https://evil.example"}},
		{"cross-site Fetch metadata", form, map[string]string{"Sec-Fetch-Site": "cross-site"}},
	}
	for _, r := range refusals {
		code, _, body := h.do(t, "POST", "/admin/logout", bob, r.form, r.hdr)
		if code != 403 || !strings.Contains(body, "refused") {
			t.Fatalf("%s: %d %s", r.name, code, body)
		}
		if s, _ := h.eng.Store().GetSession(context.Background(), h.eve.ID); !s.EndedAt.IsZero() {
			t.Fatalf("%s ended eve's session", r.name)
		}
	}
	code, hdr, _ := h.do(t, "POST", "/admin/logout", bob, form, map[string]string{"Origin": h.srv.URL, "Sec-Fetch-Site": "same-origin"})
	if code != http.StatusSeeOther || !strings.HasPrefix(hdr.Get("Location"), "/admin/logouts/") {
		t.Fatalf("the operator's logout: %d %s", code, hdr.Get("Location"))
	}
	if s, _ := h.eng.Store().GetSession(context.Background(), h.eve.ID); s.EndedAt.IsZero() {
		t.Fatal("the operator's logout did not end eve's session")
	}
	logs := h.logs.String()
	for _, want := range []string{`"operator":"eve","operator_session":"` + h.eve.ID + `","action":"access"`,
		`"result":"missing or wrong CSRF token"`, `"result":"cross-site request (Origin https://evil.example)"`,
		`"result":"cross-site request (Sec-Fetch-Site cross-site)"`,
		`"operator":"bob","operator_session":"` + h.bob.ID + `","action":"logout","target":"user eve","reason":"leaving","result":"started logout `} {
		if !strings.Contains(logs, want) {
			t.Errorf("the audit log lacks %s:\n%s", want, logs)
		}
	}
}

// TestConsoleEscapes: user attributes, upstream NameIDs and app names
// reach the page as text, never as markup.
func TestConsoleEscapes(t *testing.T) {
	h := newHarness(t, []string{"bob"}, []string{"sso-admins"})
	ctx := context.Background()
	s, err := h.eng.CreateSession(ctx, store.Session{UserID: "alice", Upstream: "corp", ExpiresAt: time.Now().Add(time.Hour),
		NameID:     store.NameID{Value: `"><script>alert(1)</script>`},
		Attributes: map[string][]string{"email": {"alice@example.com"}, "name": {`<img src=x onerror=alert(2)>`}}})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := h.eng.Store().AddParticipant(ctx, store.Participant{SessionID: s.ID, Key: "saml:x", Kind: "saml",
		AppID: `https://sp.example/"onmouseover="alert(3)`, Name: `<svg onload=alert(4)>`, Channels: store.ChannelBack, JoinedAt: time.Now()}); err != nil {
		t.Fatal(err)
	}
	code, _, page := h.do(t, "GET", "/admin/?q=alice@example.com", h.cookie(h.bob), nil, nil)
	if code != 200 {
		t.Fatalf("search: %d", code)
	}
	_, _, apps := h.do(t, "GET", "/admin/apps", h.cookie(h.bob), nil, nil)
	if strings.Contains(apps, "<iframe") || strings.Contains(apps, "<b>x</b>") || !strings.Contains(apps, "&lt;iframe src=javascript:alert(5)&gt;") {
		t.Errorf("the Apps page does not escape app names and IDs:\n%s", apps)
	}
	for _, raw := range []string{"<script>alert(1)", "<img src=x", "<svg onload", `"onmouseover="`} {
		if strings.Contains(page, raw) {
			t.Errorf("the page carries %q unescaped", raw)
		}
	}
	for _, esc := range []string{"&lt;script&gt;alert(1)&lt;/script&gt;", "&lt;img src=x onerror=alert(2)&gt;", "&lt;svg onload=alert(4)&gt;"} {
		if !strings.Contains(page, esc) {
			t.Errorf("the page lacks the escaped text %q", esc)
		}
	}
}

// TestConsoleOff: with no operator configured the console says how to
// turn it on, and serves nothing else.
func TestConsoleOff(t *testing.T) {
	h2 := newHarness(t, nil, nil)
	code, _, body := h2.do(t, "GET", "/admin/", h2.cookie(h2.bob), nil, nil)
	if code != 404 || !strings.Contains(body, "admin.console.allowed_users") {
		t.Fatalf("console off: %d %s", code, body)
	}
	if code, _, _ := h2.do(t, "GET", "/admin/logouts", h2.cookie(h2.bob), nil, nil); code != 404 {
		t.Fatalf("a page of the console while off: %d", code)
	}
}

// TestConsoleAdmitsByGroup: a user whose groups attribute holds an
// allowed group is an operator.
func TestConsoleAdmitsByGroup(t *testing.T) {
	h := newHarness(t, []string{"bob"}, []string{"sso-admins"})
	carol, err := h.eng.CreateSession(context.Background(), store.Session{UserID: "carol", ExpiresAt: time.Now().Add(time.Hour),
		Attributes: map[string][]string{"groups": {"staff", "sso-admins"}}})
	if err != nil {
		t.Fatal(err)
	}
	if code, _, body := h.do(t, "GET", "/admin/", h.cookie(carol), nil, nil); code != 200 || !strings.Contains(body, `<span id="operator">carol</span>`) {
		t.Fatalf("carol of sso-admins: %d %s", code, body)
	}
}

// TestConsoleDeliveries: the Deliveries page groups what is failing by
// receiver host with counts and the last error; a delivery's page lists
// its attempts; Retry now needs the CSRF token, sends that one delivery
// again and leaves an audit line.
func TestConsoleDeliveries(t *testing.T) {
	h := newHarness(t, []string{"bob"}, nil)
	ctx := context.Background()
	st := h.eng.Store()
	for i, host := range []string{"payroll.example", "payroll.example", "wiki.example"} {
		s, err := h.eng.CreateSession(ctx, store.Session{UserID: fmt.Sprintf("u%d", i), ExpiresAt: time.Now().Add(time.Hour)})
		if err != nil {
			t.Fatal(err)
		}
		if _, err := st.AddParticipant(ctx, store.Participant{SessionID: s.ID, Key: "oidc:" + host, Kind: "oidc", AppID: host, Name: host,
			Channels: store.ChannelBack, BackChannelURL: "https://" + host + "/logout", JoinedAt: time.Now()}); err != nil {
			t.Fatal(err)
		}
		if _, err := h.eng.Logout(ctx, slobridge.LogoutRequest{SessionIDs: []string{s.ID}, Initiator: store.Initiator{Kind: store.InitiatorAdmin}}); err != nil {
			t.Fatal(err)
		}
	}
	ds, err := st.ClaimDueDeliveries(ctx, "test", time.Now().Add(time.Minute), time.Minute, 10)
	if err != nil || len(ds) != 3 {
		t.Fatalf("claim: %d, %v", len(ds), err)
	}
	byHost := map[string][]store.Delivery{}
	for _, d := range ds {
		host := d.Participant.AppID
		state, next := store.DeliveryFailed, time.Time{}
		if len(byHost[host]) == 1 || host == "wiki.example" {
			state, next = store.DeliveryRetrying, time.Now().Add(time.Hour)
		}
		if _, err := st.CompleteAttempt(ctx, d.ID, "test", store.Attempt{At: time.Now(), StatusCode: 503, Error: "HTTP 503 from " + host},
			state, next); err != nil {
			t.Fatal(err)
		}
		byHost[host] = append(byHost[host], d)
	}
	bob := h.cookie(h.bob)
	code, _, page := h.do(t, "GET", "/admin/deliveries", bob, nil, nil)
	if code != 200 {
		t.Fatalf("Deliveries: %d", code)
	}
	for _, want := range []string{`<p id="totals">2 retrying, 1 given up.</p>`,
		`<tr data-host="https://payroll.example:443"><td><code>https://payroll.example:443</code></td><td class="retrying">1</td><td class="failed">1</td>`,
		`<td class="error">HTTP 503 from payroll.example</td>`,
		`<tr data-host="https://wiki.example:443"><td><code>https://wiki.example:443</code></td><td class="retrying">1</td><td class="failed">0</td>`} {
		if !strings.Contains(page, want) {
			t.Errorf("the Deliveries page lacks %s:\n%s", want, page)
		}
	}
	if i, j := strings.Index(page, `data-host="https://payroll.example:443"`), strings.Index(page, `data-host="https://wiki.example:443"`); i > j {
		t.Error("the host with more failures is not listed first")
	}

	failed := byHost["payroll.example"][0]
	code, _, page = h.do(t, "GET", "/admin/deliveries/"+failed.ID, bob, nil, nil)
	if code != 200 || !strings.Contains(page, `<tr class="attempt" data-ok="false"><td>1</td>`) ||
		!strings.Contains(page, `<td>503</td><td class="error">HTTP 503 from payroll.example</td>`) || !strings.Contains(page, `id="retry-delivery"`) {
		t.Fatalf("the delivery's page: %d\n%s", code, page)
	}
	if code, _, _ := h.do(t, "POST", "/admin/deliveries/"+failed.ID+"/retry", bob, url.Values{}, nil); code != 403 {
		t.Fatalf("Retry now without the CSRF token: %d", code)
	}
	if d, _ := st.GetDelivery(ctx, failed.ID); d.State != store.DeliveryFailed {
		t.Fatalf("a refused retry changed the delivery to %s", d.State)
	}
	code, hdr, _ := h.do(t, "POST", "/admin/deliveries/"+failed.ID+"/retry", bob, url.Values{"csrf": {csrf(t, page)}}, nil)
	if code != http.StatusSeeOther || hdr.Get("Location") != "/admin/deliveries/"+failed.ID {
		t.Fatalf("Retry now: %d %s", code, hdr.Get("Location"))
	}
	if d, _ := st.GetDelivery(ctx, failed.ID); d.State != store.DeliveryPending {
		t.Fatalf("after Retry now the delivery is %s, want pending", d.State)
	}
	if code, _, _ := h.do(t, "GET", "/admin/deliveries/nope", bob, nil, nil); code != 404 {
		t.Fatalf("an unknown delivery: %d", code)
	}
	want := `"action":"retry","target":"delivery ` + failed.ID + ` of logout ` + failed.LogoutID + `","reason":"","result":"sent again"`
	if !strings.Contains(h.logs.String(), want) {
		t.Errorf("the audit log lacks %s:\n%s", want, h.logs.String())
	}
}

// TestConsoleAppsPages: the Apps page lists 100 apps at a time with links
// to the neighbouring pages, and refuses a position past the end.
func TestConsoleAppsPages(t *testing.T) {
	var apps []App
	for i := range 250 {
		apps = append(apps, App{Kind: "oidc", ID: fmt.Sprintf("app-%03d", i), Name: fmt.Sprintf("App %03d", i), Channels: "back"})
	}
	h := newHarnessApps(t, []string{"bob"}, nil, apps)
	bob := h.cookie(h.bob)
	rows := regexp.MustCompile(`<tr data-app="([^"]+)">`)
	for _, c := range []struct {
		from, first, last string
		n                 int
		prev, next        string
	}{
		{"", "app-000", "app-099", 100, "", `href="/admin/apps?from=100"`},
		{"100", "app-100", "app-199", 100, `href="/admin/apps?from=0"`, `href="/admin/apps?from=200"`},
		{"200", "app-200", "app-249", 50, `href="/admin/apps?from=100"`, ""},
	} {
		code, _, page := h.do(t, "GET", "/admin/apps?from="+c.from, bob, nil, nil)
		got := rows.FindAllStringSubmatch(page, -1)
		if code != 200 || len(got) != c.n || got[0][1] != c.first || got[len(got)-1][1] != c.last {
			t.Fatalf("apps from %q: %d, %d rows", c.from, code, len(got))
		}
		if !strings.Contains(page, `<p id="count">250 app(s)`) || (c.prev != "") != strings.Contains(page, `id="prev"`) ||
			!strings.Contains(page, c.prev) || (c.next != "") != strings.Contains(page, `id="next"`) || !strings.Contains(page, c.next) {
			t.Errorf("apps from %q: count or links wrong:\n%s", c.from, page)
		}
	}
	for _, bad := range []string{"250", "-1", "x"} {
		if code, _, _ := h.do(t, "GET", "/admin/apps?from="+bad, bob, nil, nil); code != 400 {
			t.Errorf("apps from %s: %d, want 400", bad, code)
		}
	}
}

// fakeActions records app actions; metadata "bad" is refused as the
// operator's mistake.
type fakeActions struct {
	mu       sync.Mutex
	disabled map[string]bool
}

func (f *fakeActions) RegisterSAML(_ context.Context, u string, md []byte, name string) (App, error) {
	if string(md) == "bad" {
		return App{}, fmt.Errorf("%w: metadata is not an EntityDescriptor <b>here</b>", ErrInvalidApp)
	}
	return App{Kind: "saml", ID: "https://sp.example", Name: name}, nil
}

func (f *fakeActions) RegisterOIDC(_ context.Context, form OIDCClientForm) (App, string, error) {
	return App{Kind: "oidc", ID: "client-1", Name: form.Name}, "s3cr3t-shown-once", nil
}

func (f *fakeActions) SetDisabled(_ context.Context, kind, id string, disabled bool) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.disabled == nil {
		f.disabled = map[string]bool{}
	}
	f.disabled[kind+" "+id] = disabled
	return nil
}

// TestConsoleAppActions: registering and disabling apps needs the CSRF
// token; the operator's mistakes come back as 400 with why (escaped); a
// registration shows the new client's secret once; each action leaves an
// audit line.
func TestConsoleAppActions(t *testing.T) {
	h := newHarness(t, []string{"bob"}, nil)
	bob := h.cookie(h.bob)
	_, _, page := h.do(t, "GET", "/admin/apps", bob, nil, nil)
	token := csrf(t, page)
	if !strings.Contains(page, `id="register-saml"`) || !strings.Contains(page, `id="register-oidc"`) {
		t.Fatalf("the Apps page has no registration forms:\n%s", page)
	}
	if code, _, _ := h.do(t, "POST", "/admin/apps/disable", bob, url.Values{"kind": {"saml"}, "id": {"x"}, "disabled": {"true"}}, nil); code != 403 {
		t.Fatalf("disable without the CSRF token: %d", code)
	}
	cases := []struct {
		path string
		form url.Values
		code int
		want string
	}{
		{"/admin/apps/saml", url.Values{"metadata_url": {"https://sp.example/md"}, "metadata": {"<x/>"}}, 400, "one of the two"},
		{"/admin/apps/saml", url.Values{"metadata": {"bad"}}, 400, "metadata is not an EntityDescriptor &lt;b&gt;here&lt;/b&gt;"},
		{"/admin/apps/saml", url.Values{"metadata": {strings.Repeat("x", 600<<10)}}, 403, "too large form"},
		{"/admin/apps/saml", url.Values{"metadata_url": {"https://sp.example/md"}, "name": {"<i>SP</i>"}}, 200, `<span id="registered-name">&lt;i&gt;SP&lt;/i&gt;</span>`},
		{"/admin/apps/oidc", url.Values{"name": {"Payroll"}, "redirect_uris": {"https://p.example/cb\n\n"}}, 200, `<code id="secret">s3cr3t-shown-once</code>`},
		{"/admin/apps/disable", url.Values{"kind": {"saml"}, "id": {"https://sp.example"}, "disabled": {"true"}}, 303, ""},
	}
	for _, c := range cases {
		c.form.Set("csrf", token)
		code, _, body := h.do(t, "POST", c.path, bob, c.form, nil)
		if code != c.code || !strings.Contains(body, c.want) {
			t.Errorf("POST %s %v: %d, want %d with %q:\n%s", c.path, c.form, code, c.code, c.want, body)
		}
	}
	logs := h.logs.String()
	for _, want := range []string{`"action":"register saml sp","target":"sp https://sp.example","reason":"","result":"registered"`,
		`"action":"register oidc client","target":"client client-1"`, `"action":"disable app","target":"saml https://sp.example","reason":"","result":"done"`,
		`"action":"register saml sp","target":"","reason":"","result":"refused: console: invalid app: metadata is not an EntityDescriptor`} {
		if !strings.Contains(logs, want) {
			t.Errorf("the audit log lacks %s", want)
		}
	}
	if strings.Contains(logs, "s3cr3t-shown-once") {
		t.Error("the audit log holds the client secret")
	}
}

// TestConsoleSearchByUpstreamAndApp: the Sessions page lists the sessions
// at an upstream or that an app joined, 50 at a time, newest first, ended
// ones included, with a link to the older ones.
func TestConsoleSearchByUpstreamAndApp(t *testing.T) {
	h := newHarness(t, []string{"bob"}, nil)
	ctx := context.Background()
	st := h.eng.Store()
	t0 := time.Now().Add(-time.Hour)
	for i := range 60 {
		s := store.Session{ID: fmt.Sprintf("s%02d", i), UserID: fmt.Sprintf("u%02d", i), Upstream: "corp", CreatedAt: t0.Add(time.Duration(i) * time.Second),
			ExpiresAt: time.Now().Add(time.Hour)}
		if i%2 == 1 {
			s.Upstream = "partner"
		}
		if err := st.CreateSession(ctx, s); err != nil {
			t.Fatal(err)
		}
		if i < 55 {
			if _, err := st.AddParticipant(ctx, store.Participant{SessionID: s.ID, Key: "oidc:payroll", Kind: "oidc", AppID: "payroll", Name: "Payroll", JoinedAt: time.Now()}); err != nil {
				t.Fatal(err)
			}
		}
	}
	bob := h.cookie(h.bob)
	ids := regexp.MustCompile(`data-session="([^"]+)"`)
	older := regexp.MustCompile(`<a id="older" href="/admin/\?([^"]+)"`)
	code, _, page := h.do(t, "GET", "/admin/?by=app&q=payroll", bob, nil, nil)
	got := ids.FindAllStringSubmatch(page, -1)
	if code != 200 || len(got) != 50 || got[0][1] != "s54" || got[49][1] != "s05" || !strings.Contains(page, `<h2 id="listed">Sessions <code>payroll</code> joined`) {
		t.Fatalf("sessions payroll joined: %d, %d listed:\n%s", code, len(got), page)
	}
	m := older.FindStringSubmatch(page)
	if m == nil {
		t.Fatal("no link to the older sessions")
	}
	_, _, page = h.do(t, "GET", "/admin/?"+strings.ReplaceAll(m[1], "&amp;", "&"), bob, nil, nil)
	if got := ids.FindAllStringSubmatch(page, -1); len(got) != 5 || got[0][1] != "s04" || got[4][1] != "s00" || older.MatchString(page) {
		t.Fatalf("the older sessions payroll joined: %v", got)
	}
	_, _, page = h.do(t, "GET", "/admin/?by=upstream&q=partner", bob, nil, nil)
	if got := ids.FindAllStringSubmatch(page, -1); len(got) != 30 || got[0][1] != "s59" || !strings.Contains(page, `Sessions at <code>partner</code>`) {
		t.Fatalf("sessions at partner: %d listed", len(got))
	}
	if code, _, _ := h.do(t, "GET", "/admin/?by=nonsense&q=x", bob, nil, nil); code != 400 {
		t.Fatalf("search by nonsense: %d", code)
	}
}

// TestConsoleLogoutsPages: the Logouts page lists 50 logouts and links to
// the older ones, which the link opens.
func TestConsoleLogoutsPages(t *testing.T) {
	h := newHarness(t, []string{"bob"}, nil)
	ctx := context.Background()
	for i := range 51 {
		s, err := h.eng.CreateSession(ctx, store.Session{UserID: fmt.Sprintf("u%02d", i), ExpiresAt: time.Now().Add(time.Hour)})
		if err != nil {
			t.Fatal(err)
		}
		if _, err := h.eng.Logout(ctx, slobridge.LogoutRequest{SessionIDs: []string{s.ID}, Initiator: store.Initiator{Kind: store.InitiatorAdmin}}); err != nil {
			t.Fatal(err)
		}
	}
	bob := h.cookie(h.bob)
	rows := regexp.MustCompile(`<tr data-logout="`)
	_, _, page := h.do(t, "GET", "/admin/logouts", bob, nil, nil)
	m := regexp.MustCompile(`<a id="older" href="(/admin/logouts\?[^"]+)"`).FindStringSubmatch(page)
	if n := len(rows.FindAllString(page, -1)); n != 50 || m == nil {
		t.Fatalf("first page: %d logouts, link %v", n, m)
	}
	code, _, page := h.do(t, "GET", strings.ReplaceAll(m[1], "&amp;", "&"), bob, nil, nil)
	if n := len(rows.FindAllString(page, -1)); code != 200 || n != 1 || strings.Contains(page, `id="older"`) {
		t.Fatalf("second page: %d, %d logouts", code, n)
	}
}

// TestConsoleLogoutEvents: a logout's event stream sends the signature of
// its status now and again after each change, and ends when the logout is
// done; an unknown logout is 404.
func TestConsoleLogoutEvents(t *testing.T) {
	h := newHarness(t, []string{"bob"}, nil)
	ctx := context.Background()
	st := h.eng.Store()
	s, err := h.eng.CreateSession(ctx, store.Session{UserID: "alice", ExpiresAt: time.Now().Add(time.Hour)})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := st.AddParticipant(ctx, store.Participant{SessionID: s.ID, Key: "oidc:app", Kind: "oidc", AppID: "app", Channels: store.ChannelBack,
		BackChannelURL: "https://app.example/bc", JoinedAt: time.Now()}); err != nil {
		t.Fatal(err)
	}
	lo, err := h.eng.Logout(ctx, slobridge.LogoutRequest{SessionIDs: []string{s.ID}, Initiator: store.Initiator{Kind: store.InitiatorAdmin}})
	if err != nil {
		t.Fatal(err)
	}
	// The status page is rendered with the signature the stream starts
	// from: a page that saw another would reload at once, and again.
	_, _, page := h.do(t, "GET", "/admin/logouts/"+lo.ID, h.cookie(h.bob), nil, nil)
	m := regexp.MustCompile(`e\.data !== "([0-9a-f]+)"`).FindStringSubmatch(page)
	if m == nil {
		t.Fatalf("the running logout's page does not follow its stream:\n%s", page)
	}
	req, _ := http.NewRequest("GET", h.srv.URL+"/admin/logouts/"+lo.ID+"/events", nil)
	req.AddCookie(h.cookie(h.bob))
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != 200 || resp.Header.Get("Content-Type") != "text/event-stream" {
		t.Fatalf("events: %d %s", resp.StatusCode, resp.Header.Get("Content-Type"))
	}
	lines := make(chan string, 16)
	go func() {
		defer close(lines)
		sc := bufio.NewScanner(resp.Body)
		for sc.Scan() {
			if l, ok := strings.CutPrefix(sc.Text(), "data: "); ok {
				lines <- l
			}
		}
	}()
	first := <-lines
	if first != m[1] {
		t.Fatalf("the stream starts from %s, the page was rendered from %s", first, m[1])
	}
	// The delivery is attempted and delivered: the stream announces the
	// change and ends (the logout is done).
	ds, err := st.ClaimDueDeliveries(ctx, "test", time.Now().Add(time.Minute), time.Minute, 1)
	if err != nil || len(ds) != 1 {
		t.Fatalf("claim: %v", err)
	}
	if _, err := st.CompleteAttempt(ctx, ds[0].ID, "test", store.Attempt{At: time.Now(), OK: true, StatusCode: 200}, store.DeliveryDelivered, time.Time{}); err != nil {
		t.Fatal(err)
	}
	var rest []string
	for l := range lines {
		rest = append(rest, l)
	}
	if len(rest) == 0 || rest[len(rest)-1] == first {
		t.Fatalf("the stream sent %q then %v; want a new signature after the delivery", first, rest)
	}
	req, _ = http.NewRequest("GET", h.srv.URL+"/admin/logouts/nope/events", nil)
	req.AddCookie(h.cookie(h.bob))
	if resp, err := http.DefaultClient.Do(req); err != nil || resp.StatusCode != 404 {
		t.Fatalf("events of an unknown logout: %v %v", resp.StatusCode, err)
	}
}
