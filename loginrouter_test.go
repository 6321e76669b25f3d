package slobridge

import (
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"path/filepath"
	"strings"
	"testing"

	"github.com/gin-gonic/gin"
)

// routerHarness serves a login router over three upstreams, each of
// which answers a login by naming itself.
type routerHarness struct {
	srv     *httptest.Server
	started []string
	down    map[string]bool
	ups     []LoginUpstream
}

func newRouterHarness(t *testing.T) *routerHarness {
	t.Helper()
	e, _ := runEngine(t, testOptions(openStore(t, filepath.Join(t.TempDir(), "r.db"))))
	h := &routerHarness{down: map[string]bool{}}
	up := func(name, display string, domains, clients, allowed []string) LoginUpstream {
		return LoginUpstream{Name: name, DisplayName: display, Domains: domains, Clients: clients, AllowedClients: allowed,
			Start: func(w http.ResponseWriter, r *http.Request, returnTo string) error {
				h.started = append(h.started, name)
				if h.down[name] {
					return fmt.Errorf("%w: %s is down", ErrUpstreamUnavailable, name)
				}
				_, err := io.WriteString(w, "login at "+name+" for "+returnTo)
				return err
			},
			Unavailable: func() error {
				if h.down[name] {
					return errors.New(name + " metadata unreachable")
				}
				return nil
			}}
	}
	h.ups = []LoginUpstream{
		up("corp", "Corp <Entra>", []string{"corp.example"}, []string{"payroll"}, nil),
		up("partner", "", []string{"partner.example"}, nil, []string{"portal", "wiki"}),
		up("social", "Google", nil, nil, []string{"portal"}),
	}
	lr, err := NewLoginRouter(LoginRouterOptions{Engine: e, Upstreams: func() []LoginUpstream { return h.ups },
		ClientsOf: func(r *http.Request, returnTo string) []string {
			u, _ := url.Parse(returnTo)
			return []string{u.Query().Get("client_id")}
		}, ChooserPath: "/login/upstream"})
	if err != nil {
		t.Fatal(err)
	}
	gin.SetMode(gin.ReleaseMode)
	g := gin.New()
	lr.Mount(g)
	g.GET("/start", func(c *gin.Context) {
		if err := lr.StartLogin(c.Writer, c.Request, c.Query("return")); err != nil {
			c.String(FailureStatus(c.Writer.Header(), err), err.Error())
		}
	})
	h.srv = httptest.NewServer(g)
	t.Cleanup(h.srv.Close)
	return h
}

// get fetches a path without following redirects.
func (h *routerHarness) get(t *testing.T, path string) (int, string, string) {
	t.Helper()
	c := &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	resp, err := c.Get(h.srv.URL + path)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, resp.Header.Get("Location"), string(b)
}

// start begins a login for an authorization request of client with the
// extra query.
func (h *routerHarness) start(t *testing.T, client, extra string) (int, string, string) {
	ret := "/oidc/authorize?client_id=" + client
	if extra != "" {
		ret += "&" + extra
	}
	return h.get(t, "/start?return="+url.QueryEscape(ret))
}

// TestLoginRouterRoutes: the upstream of a login by idp_hint, login_hint
// domain, the app's default, the only one the app may use, or the chooser;
// an app that may use none is refused.
func TestLoginRouterRoutes(t *testing.T) {
	h := newRouterHarness(t)
	tests := []struct {
		name, client, extra string
		status              int
		want                string // upstream started, "chooser" or a page text
	}{
		{"idp_hint", "portal", "idp_hint=social", 200, "social"},
		{"kc_idp_hint", "portal", "kc_idp_hint=partner", 200, "partner"},
		{"idp_hint of an upstream the app may not use is ignored", "payroll", "idp_hint=social", 200, "corp"},
		{"login_hint domain", "portal", "login_hint=Bob@Partner.Example", 200, "partner"},
		{"login_hint domain beats the app's default", "payroll", "login_hint=eve%40partner.example", 200, "corp"},
		{"the app's default", "payroll", "", 200, "corp"},
		{"the only upstream the app may use", "intranet", "", 200, "corp"},
		{"several: the chooser", "portal", "", 303, "chooser"},
		{"wiki may use corp and partner: the chooser", "wiki", "", 303, "chooser"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			h.started = nil
			code, loc, body := h.start(t, tc.client, tc.extra)
			if code != tc.status {
				t.Fatalf("HTTP %d (%s), want %d", code, body, tc.status)
			}
			switch tc.want {
			case "chooser":
				if !strings.HasPrefix(loc, "/login/upstream?state=") || len(h.started) != 0 {
					t.Fatalf("Location %q, started %v; want the chooser", loc, h.started)
				}
			default:
				if len(h.started) != 1 || h.started[0] != tc.want || !strings.Contains(body, "client_id="+tc.client) {
					t.Fatalf("started %v (%s), want %s with the return path", h.started, body, tc.want)
				}
			}
		})
	}
}

// TestLoginRouterChooser: the chooser lists only the upstreams the app
// may use (names escaped, unavailable ones without a link), starts the
// chosen one once, and refuses an upstream the app may not use.
func TestLoginRouterChooser(t *testing.T) {
	h := newRouterHarness(t)
	h.down["social"] = true
	_, loc, _ := h.start(t, "wiki", "")
	code, _, page := h.get(t, loc)
	if code != 200 || !strings.Contains(page, "Corp &lt;Entra&gt;") || !strings.Contains(page, "upstream=partner") ||
		strings.Contains(page, "Google") {
		t.Fatalf("chooser for wiki (%d):\n%s", code, page)
	}
	_, loc2, _ := h.start(t, "portal", "")
	if _, _, page := h.get(t, loc2); !strings.Contains(page, "Google (unavailable right now)") || strings.Contains(page, "upstream=social") {
		t.Fatalf("chooser with social down:\n%s", page)
	}
	if code, _, body := h.get(t, loc+"&upstream=social"); code != 400 || len(h.started) != 0 {
		t.Fatalf("choosing an upstream wiki may not use: %d %s (started %v)", code, body, h.started)
	}
	_, loc, _ = h.start(t, "wiki", "")
	if code, _, body := h.get(t, loc+"&upstream=partner"); code != 200 || !strings.Contains(body, "login at partner for /oidc/authorize?client_id=wiki") {
		t.Fatalf("choosing partner: %d %s", code, body)
	}
	if code, _, body := h.get(t, loc+"&upstream=partner"); code != 400 || !strings.Contains(body, "expired") {
		t.Fatalf("the same choice again: %d %s", code, body)
	}
}

// TestLoginRouterRefusals: an app that may use no upstream gets 403; a
// routed upstream that is down is still asked (it reports its own
// unavailability: an OP not yet discovered tries again); when no rule
// picks one and every upstream the app may use is down, 503.
func TestLoginRouterRefusals(t *testing.T) {
	h := newRouterHarness(t)
	h.ups[0].AllowedClients = []string{"payroll"}
	code, _, body := h.start(t, "intranet", "idp_hint=partner")
	if code != 403 || !strings.Contains(body, "may not sign in") || len(h.started) != 0 {
		t.Fatalf("an app no upstream allows: %d %s", code, body)
	}
	h.down["corp"] = true
	code, _, body = h.start(t, "payroll", "")
	if code != 503 || !strings.Contains(body, "cannot be reached") || len(h.started) != 1 {
		t.Fatalf("payroll with corp down: %d %s (started %v)", code, body, h.started)
	}
	h.down["partner"], h.down["social"] = true, true
	h.started = nil
	code, _, body = h.start(t, "portal", "")
	if code != 503 || !strings.Contains(body, "cannot be reached") || len(h.started) != 0 {
		t.Fatalf("portal with every upstream down: %d %s", code, body)
	}
}
