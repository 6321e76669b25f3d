package sp

import (
	"bufio"
	"context"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
	"github.com/gin-gonic/gin"

	"github.com/slobridge/slobridge"
	"github.com/slobridge/slobridge/saml"
	"github.com/slobridge/slobridge/saml/idp"
	"github.com/slobridge/slobridge/store"
)

// pysaml2Python is the interpreter that has Debian's python3-pysaml2.
const pysaml2Python = "/usr/bin/python3"

// requirePysaml2 skips the test when pysaml2 or xmlsec1 is missing
// (failing instead when CI=true).
func requirePysaml2(t *testing.T) {
	t.Helper()
	err := exec.Command(pysaml2Python, "-c", "import saml2.client").Run()
	if err == nil {
		_, err = exec.LookPath("xmlsec1")
	}
	if err != nil {
		msg := "pysaml2 is not available (apt-get install python3-pysaml2 xmlsec1): " + err.Error()
		if os.Getenv("CI") == "true" {
			t.Fatal(msg)
		}
		t.Skip(msg)
	}
}

// pysaml2SP is a running saml/testdata/pysaml2/sp.py.
type pysaml2SP struct {
	url string
	mu  sync.Mutex
	log strings.Builder
}

func (p *pysaml2SP) logText() string {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.log.String()
}

// startPysaml2SP starts the pysaml2 SP trusting the bridge's IdP
// metadata (fetched from the bridge), with its own key pair.
func startPysaml2SP(t *testing.T, bridgeURL string, o pysaml2Opts) *pysaml2SP {
	t.Helper()
	resp, err := http.Get(bridgeURL + idp.PathMetadata)
	if err != nil {
		t.Fatal(err)
	}
	md, err := io.ReadAll(resp.Body)
	resp.Body.Close()
	if err != nil || resp.StatusCode != http.StatusOK {
		t.Fatalf("bridge IdP metadata: HTTP %d %v", resp.StatusCode, err)
	}
	mdFile := writeFile(t, "bridge-idp.xml", md)
	args := []string{filepath.Join("..", "testdata", "pysaml2", "sp.py"), mdFile,
		filepath.Join("..", "idp", "testdata", "sp1.key"), filepath.Join("..", "idp", "testdata", "sp1.crt")}
	if o.failLogout {
		args = append(args, "--fail-logout")
	}
	if o.redirectIn {
		args = append(args, "--answer-post")
	}
	cmd := exec.Command(pysaml2Python, args...)
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	p := &pysaml2SP{}
	cmd.Stderr = writerFunc(func(b []byte) (int, error) {
		p.mu.Lock()
		defer p.mu.Unlock()
		return p.log.Write(b)
	})
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = cmd.Process.Kill(); _ = cmd.Wait() })
	line := make(chan string, 1)
	go func() {
		sc := bufio.NewScanner(stdout)
		for sc.Scan() {
			if u, ok := strings.CutPrefix(sc.Text(), "listening "); ok {
				line <- u
			}
		}
	}()
	select {
	case p.url = <-line:
	case <-time.After(30 * time.Second):
		t.Fatalf("the pysaml2 SP did not start:\n%s", p.logText())
	}
	return p
}

type writerFunc func([]byte) (int, error)

func (f writerFunc) Write(b []byte) (int, error) { return f(b) }

// TestBrowserUpstreamLogoutWithPysaml2SP is the interop acceptance test of
// issue 13 with a third-party SP: pysaml2 logs in through the bridge's
// IdP in Chromium; the upstream IdP then starts a browser logout, and the
// bridge tells pysaml2 in an iframe of the logout page or by the top-level
// redirect chain, by each binding combination: POST in with an
// HTTP-Redirect answer, and Redirect in with an HTTP-POST answer. Each
// hop must pass the bridge's CSP (form-action follows the form's
// redirects). The bridge records the answer well before its front-channel
// wait ends, and the upstream gets Success; when pysaml2 answers an error,
// the upstream gets PartialLogout and the status page shows pysaml2
// failed with its status.
func TestBrowserUpstreamLogoutWithPysaml2SP(t *testing.T) {
	requirePysaml2(t)
	for _, tc := range []struct {
		name string
		o    pysaml2Opts
	}{
		{"iframe, POST in, Redirect out", pysaml2Opts{}},
		{"iframe, Redirect in, POST out", pysaml2Opts{redirectIn: true}},
		{"top-level, POST in, Redirect out", pysaml2Opts{topLevel: true}},
		{"top-level, Redirect in, POST out", pysaml2Opts{topLevel: true, redirectIn: true}},
		{"iframe, SP answers an error", pysaml2Opts{failLogout: true}},
		{"top-level, SP answers an error", pysaml2Opts{failLogout: true, topLevel: true}},
	} {
		t.Run(tc.name, func(t *testing.T) { pysaml2UpstreamLogout(t, tc.o) })
	}
}

// pysaml2World is a bridge with its SAML IdP and a browser upstream IdP,
// a pysaml2 SP registered at the bridge's IdP, and Chromium logged in at
// both (the bridge session s).
type pysaml2World struct {
	ctx context.Context
	up  *browserIdP
	b   *bridge
	ip  *idp.IdP
	py  *pysaml2SP
	sp  *idp.SP
	s   store.Session
}

// pysaml2Opts choose how the pysaml2 SP is told about a logout and how it
// answers.
type pysaml2Opts struct {
	// failLogout: it answers Responder/RequestDenied.
	failLogout bool
	// redirectIn: its LogoutRequest comes by HTTP-Redirect and it answers
	// by HTTP-POST (else POST in, Redirect out).
	redirectIn bool
	// topLevel: it is told by the top-level redirect chain, not in an
	// iframe of the logout page.
	topLevel bool
}

func newPysaml2World(t *testing.T, o pysaml2Opts) *pysaml2World {
	t.Helper()
	ctx := chromium(t)
	up := newBrowserIdP(t)
	var ip *idp.IdP
	b := newBridge(t, bridgeOptions{
		upstreams: []UpstreamConfig{{Name: "corp", MetadataFile: up.metadataFile(t)}},
		mount: func(r *gin.Engine, eng *slobridge.Engine, sp *SP, base string) {
			var err error
			ip, err = idp.New(context.Background(), idp.Options{BaseURL: base, Engine: eng, Cookies: sp.opts.Cookies,
				Authenticator: sp, Signer: loadSigner(t, "sp"), AllowLoopbackHTTP: true, Logger: quietLogger()})
			if err != nil {
				t.Fatalf("idp.New: %v", err)
			}
			ip.Mount(r)
			eng.SetNotifier(idp.ClientKind, ip.Notifier(slobridge.NewBackChannelClient(slobridge.ClientOptions{AllowLoopback: true})))
			eng.SetFrontChannel(idp.ClientKind, ip)
		},
	})
	up.bridge = b
	registerSP(t, up.srv, b)
	py := startPysaml2SP(t, b.srv.URL, o)
	binding := "post"
	if o.redirectIn {
		binding = "redirect"
	}
	spCfg, err := ip.Register(t.Context(), idp.SPConfig{MetadataURL: py.url + "/metadata", Name: "pysaml2 app",
		NameID: "persistent", LogoutChannels: []string{"front"}, FrontChannelBinding: binding, FrontChannelTopLevel: o.topLevel})
	if err != nil {
		t.Fatalf("register the pysaml2 SP: %v", err)
	}
	s := browserLogin(t, ctx, b, up)
	if err := chromedp.Do(ctx, chromedp.Navigate(py.url+"/login")); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("pysaml2 said:\n%s", py.logText())
		}
	})
	if who := waitPage(t, ctx, py.url+"/whoami", "logged in: "); strings.Contains(who, "nobody") {
		t.Fatalf("pysaml2 after the login: %q", who)
	}
	return &pysaml2World{ctx: ctx, up: up, b: b, ip: ip, py: py, sp: spCfg, s: s}
}

func pysaml2UpstreamLogout(t *testing.T, o pysaml2Opts) {
	fail := o.failLogout
	w := newPysaml2World(t, o)
	ctx, up, b, ip, py, spCfg, s := w.ctx, w.up, w.b, w.ip, w.py, w.sp, w.s

	page, reqID := up.startLogoutPage(t, b, s)
	if err := chromedp.Do(ctx, chromedp.Navigate(page)); err != nil {
		t.Fatal(err)
	}
	var m *saml.Message
	select {
	case m = <-up.responses:
	case <-time.After(60 * time.Second):
		t.Fatalf("no LogoutResponse reached the upstream; pysaml2 said:\n%s", py.logText())
	}
	v := &saml.Validator{Store: b.st}
	lr, err := v.LogoutResponse(t.Context(), m, b.spTrust(), up.srv.URL+"/slo", reqID)
	if err != nil {
		t.Fatalf("LogoutResponse: %v", err)
	}
	ended, err := b.st.GetSession(t.Context(), s.ID)
	if err != nil || ended.EndedAt.IsZero() {
		t.Fatalf("session %+v (%v), want ended", ended, err)
	}
	key := idp.ParticipantKey(spCfg.EntityID)
	res, err := ip.FrontResult(t.Context(), ended.LogoutID, s.ID, key)
	if err != nil {
		t.Fatalf("pysaml2's Redirect answer was not recorded (blocked by the iframe's CSP?): %v\npysaml2 said:\n%s", err, py.logText())
	}
	lo, err := b.st.GetLogout(t.Context(), ended.LogoutID)
	if err != nil {
		t.Fatal(err)
	}
	// The front-channel wait is 5 s: an answer the browser blocked would
	// only be noticed when it ends, and never recorded.
	t.Logf("pysaml2's answer recorded %s after the logout began", res.At.Sub(lo.CreatedAt).Round(time.Millisecond))

	if !fail {
		if !res.Done || !lr.Success() || lr.Partial() || m.RelayState != "idp-state" {
			t.Fatalf("pysaml2 answered %+v; the upstream got %s/%s relay %q, want Success", res, lr.Status, lr.SubStatus, m.RelayState)
		}
		if err := chromedp.Do(ctx, chromedp.Navigate(py.url+"/whoami")); err != nil {
			t.Fatal(err)
		}
		waitPage(t, ctx, py.url+"/whoami", "logged in: nobody")
		return
	}
	if res.Done || res.Status != saml.StatusResponder || !strings.HasSuffix(res.SubStatus, ":RequestDenied") {
		t.Fatalf("pysaml2's error recorded as %+v, want Responder/RequestDenied", res)
	}
	if !lr.Success() || !lr.Partial() {
		t.Fatalf("the upstream got %s/%s, want Success/PartialLogout", lr.Status, lr.SubStatus)
	}
	// The status page shows the SP failed, with what it answered.
	resp := b.get(slobridge.LogoutPagePath(ended.LogoutID) + "?step=final")
	body := readBody(t, resp)
	row := body[strings.Index(body, "pysaml2 app"):]
	if i := strings.Index(row, "</tr>"); i > 0 {
		row = row[:i]
	}
	if !strings.Contains(row, "failed") || !strings.Contains(row, "RequestDenied") {
		t.Fatalf("status page row of pysaml2: %s\nwant failed with RequestDenied", row)
	}
	if st, err := b.eng.Status(t.Context(), ended.LogoutID); err != nil || st.Logout.Initiator.Kind != store.InitiatorUpstream {
		t.Fatalf("status %+v %v", st.Logout.Initiator, err)
	}
}

// TestBrowserSPLogoutWithUpstreamFailing is an acceptance test of issue 13
// (point 2): pysaml2 starts a browser logout (HTTP-Redirect); the bridge
// ends the session and sends the browser to the upstream IdP, which
// answers Responder; pysaml2 gets Success/PartialLogout, checked by
// pysaml2 itself. With the upstream answering Success, it gets Success.
func TestBrowserSPLogoutWithUpstreamFailing(t *testing.T) {
	requirePysaml2(t)
	for _, tc := range []struct {
		name, upstream, want string
	}{
		{"upstream fails", saml.StatusResponder, "pysaml2 sp: logout answered: " + saml.StatusSuccess + " " + saml.StatusPartialLogout},
		{"upstream confirms", "", "pysaml2 sp: logout answered: " + saml.StatusSuccess},
	} {
		t.Run(tc.name, func(t *testing.T) {
			w := newPysaml2World(t, pysaml2Opts{})
			w.up.logoutStatus = tc.upstream
			if err := chromedp.Do(w.ctx, chromedp.Navigate(w.py.url+"/logout")); err != nil {
				t.Fatal(err)
			}
			got := waitPage(t, w.ctx, w.py.url+"/slo", "logout answered: ")
			if strings.TrimSpace(got) != tc.want {
				t.Fatalf("pysaml2 shows %q, want %q", got, tc.want)
			}
			req := <-w.up.requests
			if req.NameID.Value != w.s.NameID.Value {
				t.Fatalf("the upstream was asked about %q, want %q", req.NameID.Value, w.s.NameID.Value)
			}
			ended, err := w.b.st.GetSession(t.Context(), w.s.ID)
			if err != nil || ended.EndedAt.IsZero() {
				t.Fatalf("session %+v (%v), want ended", ended, err)
			}
			out, err := w.b.eng.Outcome(t.Context(), ended.LogoutID, time.Second, true)
			if err != nil || out.Complete != (tc.upstream == "") {
				t.Fatalf("outcome %+v (%v)", out, err)
			}
		})
	}
}
