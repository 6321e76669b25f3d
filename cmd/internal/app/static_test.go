package app

import (
	"net/http"
	"net/http/cookiejar"
	"net/http/httptest"
	"net/url"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"github.com/slobridge/slobridge"
	"github.com/slobridge/slobridge/store"
)

func TestLocalPath(t *testing.T) {
	tests := []struct {
		in   string
		want bool
	}{
		{"/oidc/authorize/resume?id=abc", true},
		{"/saml/idp/sso/resume?id=x", true},
		{"", false},
		{"oidc/authorize", false},
		{"//evil.example.com/x", false},
		{"/\\evil.example.com", false},
		{"https://evil.example.com/", false},
		{"javascript:alert(1)", false},
	}
	for _, tt := range tests {
		if got := localPath(tt.in); got != tt.want {
			t.Errorf("localPath(%q) = %v, want %v", tt.in, got, tt.want)
		}
	}
}

// TestStaticLoginRefusesBadInput drives the development login form with
// forged, foreign and expired requests: each gets an error page and no
// session.
func TestStaticLoginRefusesBadInput(t *testing.T) {
	doc := strings.NewReplacer("{{DB}}", filepath.Join(t.TempDir(), "static.db"), "{{RP}}", "http://127.0.0.1:1", "{{SSF}}", "http://127.0.0.1:2").Replace(wiringConfig)
	a, base := startApp(t, doc, map[string]string{
		"COOKIE": strings.Repeat("c", 40), "ADMIN": "admin-token-0123456789", "PASSWORD": "alice-password",
		"APP1_SECRET": "app1-secret-0123456789", "SSF_AUTH": "Bearer x",
	})
	auth := a.static
	if auth == nil {
		t.Fatal("no static authenticator")
	}
	rec := httptest.NewRecorder()
	if err := auth.StartLogin(rec, httptest.NewRequest("GET", "/", nil), "//evil.example.com/"); err == nil {
		t.Fatal("StartLogin accepted an off-site return path")
	}

	// A real pending login, started by browser A.
	jar, _ := cookiejar.New(nil)
	browserA := &http.Client{Jar: jar}
	rec = httptest.NewRecorder()
	if err := auth.StartLogin(rec, httptest.NewRequest("GET", "/", nil), "/healthz"); err != nil {
		t.Fatal(err)
	}
	u, _ := url.Parse(base)
	jar.SetCookies(u, rec.Result().Cookies())
	id := regexp.MustCompile(`id=([^&]+)`).FindStringSubmatch(rec.Header().Get("Location"))[1]

	post := func(c *http.Client, form url.Values) int {
		t.Helper()
		resp, err := c.PostForm(base+PathStaticLogin, form)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		return resp.StatusCode
	}
	good := url.Values{"id": {id}, "username": {"alice"}, "password": {"alice-password"}}
	tests := []struct {
		name   string
		client *http.Client
		form   url.Values
		want   int
	}{
		{"another browser (no login cookie)", http.DefaultClient, good, http.StatusBadRequest},
		{"unknown login id", browserA, url.Values{"id": {"forged"}, "username": {"alice"}, "password": {"alice-password"}}, http.StatusBadRequest},
		{"unknown user", browserA, url.Values{"id": {id}, "username": {"mallory"}, "password": {"alice-password"}}, http.StatusUnauthorized},
		{"wrong password", browserA, url.Values{"id": {id}, "username": {"alice"}, "password": {"alice-passwor"}}, http.StatusUnauthorized},
	}
	for _, tt := range tests {
		if got := post(tt.client, tt.form); got != tt.want {
			t.Errorf("%s: %d, want %d", tt.name, got, tt.want)
		}
	}
	if n, err := a.Store().CountActiveSessions(t.Context(), a.Engine().Now()); err != nil || n != 0 {
		t.Fatalf("refused logins created %d sessions (%v)", n, err)
	}
	if code, _ := get(t, http.DefaultClient, base+PathStaticLogin+"?id=forged"); code != http.StatusBadRequest {
		t.Errorf("form for an unknown login: %d", code)
	}
	// The good login works once (it goes to /healthz), and not twice.
	if got := post(browserA, good); got != http.StatusOK {
		t.Fatalf("good login: %d", got)
	}
	if got := post(browserA, good); got != http.StatusBadRequest {
		t.Fatalf("replayed login: %d", got)
	}
	if n, _ := a.Store().CountActiveSessions(t.Context(), a.Engine().Now()); n != 1 {
		t.Fatalf("%d sessions after one good login", n)
	}
}

// TestStaticReloginKeepsOrReplacesTheSession logs in twice in one browser:
// as the same user the bridge session is kept, as another user the old one
// is logged out and a new one made.
func TestStaticReloginKeepsOrReplacesTheSession(t *testing.T) {
	doc := strings.NewReplacer("{{DB}}", filepath.Join(t.TempDir(), "relogin.db"), "{{RP}}", "http://127.0.0.1:1", "{{SSF}}", "http://127.0.0.1:2").Replace(wiringConfig)
	doc = strings.Replace(doc, "        password: {env: PASSWORD}\n", "        password: {env: PASSWORD}\n      - username: bob\n        password: {env: PASSWORD}\n", 1)
	a, base := startApp(t, doc, map[string]string{
		"COOKIE": strings.Repeat("c", 40), "ADMIN": "admin-token-0123456789", "PASSWORD": "alice-password",
		"APP1_SECRET": "app1-secret-0123456789", "SSF_AUTH": "Bearer x",
	})
	jar, _ := cookiejar.New(nil)
	browser := &http.Client{Jar: jar}
	u, _ := url.Parse(base)
	var landed string // where the browser ended after the last login
	login := func(user string) string {
		t.Helper()
		rec := httptest.NewRecorder()
		req := httptest.NewRequest("GET", "/", nil)
		for _, c := range jar.Cookies(u) {
			req.AddCookie(c)
		}
		if err := a.static.StartLogin(rec, req, "/healthz"); err != nil {
			t.Fatal(err)
		}
		jar.SetCookies(u, rec.Result().Cookies())
		id := regexp.MustCompile(`id=([^&]+)`).FindStringSubmatch(rec.Header().Get("Location"))[1]
		resp, err := browser.PostForm(base+PathStaticLogin, url.Values{"id": {id}, "username": {user}, "password": {"alice-password"}})
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		landed = resp.Request.URL.Path
		for _, c := range jar.Cookies(u) {
			if c.Name == "slobridge_session" {
				sid, _, _ := strings.Cut(c.Value, ".")
				return sid
			}
		}
		t.Fatal("no session cookie")
		return ""
	}
	first := login("alice")
	if again := login("alice"); again != first {
		t.Fatalf("re-login as the same user made a new session %s (had %s)", again, first)
	}
	if landed != "/healthz" {
		t.Fatalf("re-login ended at %s, want its destination", landed)
	}
	// An app notified through the browser joins alice's session: bob's
	// login passes through the logout page that notifies it.
	if _, err := a.Engine().AddParticipant(t.Context(), store.Participant{SessionID: first, Kind: "oidc", AppID: "front",
		Channels: store.ChannelFront, FrontChannelURL: "http://127.0.0.1:1/fc"}); err != nil {
		t.Fatal(err)
	}
	other := login("bob")
	if other == first {
		t.Fatal("login as another user kept the first user's session")
	}
	s, err := a.Store().GetSession(t.Context(), first)
	if err != nil || s.Active(a.Engine().Now()) {
		t.Fatalf("alice's session after bob logged in: %+v %v", s, err)
	}
	if landed != slobridge.LogoutPagePath(s.LogoutID) {
		t.Fatalf("bob's login ended at %s, want the logout page of alice's session %s", landed, slobridge.LogoutPagePath(s.LogoutID))
	}
}
