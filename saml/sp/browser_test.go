package sp

import (
	"cmp"
	"context"
	"encoding/json"
	"encoding/xml"
	"fmt"
	"html/template"
	"io"
	"log"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
	crewjam "github.com/crewjam/saml"
	"github.com/crewjam/saml/samlidp"
	dsig "github.com/russellhaering/goxmldsig"

	"github.com/slobridge/slobridge"
	"github.com/slobridge/slobridge/saml"
	"github.com/slobridge/slobridge/store"
)

// chromium starts headless Chromium with a fresh profile; without it the
// test is skipped, or fails when CI=true.
func chromium(t *testing.T) context.Context {
	t.Helper()
	path := "/usr/bin/chromium"
	if p := os.Getenv("SLOBRIDGE_CHROMIUM"); p != "" {
		path = p
	}
	if _, err := os.Stat(path); err != nil {
		msg := "headless Chromium not found at " + path + ": install the chromium package or set SLOBRIDGE_CHROMIUM (required when CI=true)"
		if os.Getenv("CI") == "true" {
			t.Fatal(msg)
		}
		t.Skip(msg)
	}
	opts := []chromedp.ExecAllocatorOption{
		chromedp.ExecPath(path), chromedp.Headless, chromedp.NoSandbox, chromedp.DisableGPU,
		chromedp.NoFirstRun, chromedp.NoDefaultBrowserCheck, chromedp.UserDataDir(t.TempDir()),
		chromedp.Flag("disable-quic", true), chromedp.Flag("disable-background-networking", true),
		chromedp.Flag("disable-component-update", true), chromedp.Flag("disable-sync", true),
	}
	actx, cancelAlloc := chromedp.NewExecAllocator(context.Background(), opts...)
	ctx, cancel := chromedp.NewContext(actx)
	t.Cleanup(func() { cancel(); cancelAlloc() })
	if err := chromedp.Do(ctx); err != nil {
		t.Fatalf("start Chromium: %v", err)
	}
	return ctx
}

// waitPage polls the browser until it is at a URL starting with prefix
// and the body text contains want; it returns the body text.
func waitPage(t *testing.T, ctx context.Context, prefix, want string) string {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	var loc, txt string
	for time.Now().Before(deadline) {
		lctx, cancel := context.WithTimeout(ctx, 5*time.Second)
		if l, err := chromedp.Run(lctx, chromedp.Location()); err == nil {
			loc = l
			if strings.HasPrefix(loc, prefix) {
				if s, err := chromedp.Run(lctx, chromedp.Evaluate[string](`document.body ? document.body.innerText : ""`)); err == nil {
					txt = s
				}
			}
		}
		cancel()
		if strings.HasPrefix(loc, prefix) && strings.Contains(txt, want) {
			return txt
		}
		time.Sleep(50 * time.Millisecond)
	}
	t.Fatalf("the browser is at %q showing %.200q; want %q at %q…", loc, txt, want, prefix)
	return ""
}

// browserIdP is crewjam's samlidp plus the logout side a real IdP has: a
// page that starts an IdP-initiated logout by the POST binding, and an SLO
// endpoint that receives the bridge's LogoutResponse.
type browserIdP struct {
	srv       *httptest.Server
	entityID  string
	responses chan *saml.Message
	// bridge and requests serve the bridge's LogoutRequests (GET /slo).
	bridge   *bridge
	requests chan *saml.LogoutRequest
	// logoutStatus, when set, is the status of its LogoutResponses to the
	// bridge (default Success).
	logoutStatus string
}

func newBrowserIdP(t *testing.T) *browserIdP {
	t.Helper()
	signer := loadSigner(t, "idp")
	mux := http.NewServeMux()
	p := &browserIdP{srv: httptest.NewServer(mux), responses: make(chan *saml.Message, 4), requests: make(chan *saml.LogoutRequest, 4)}
	t.Cleanup(p.srv.Close)
	u, _ := url.Parse(p.srv.URL)
	p.entityID = p.srv.URL + "/metadata"
	// The login form posts straight to /sso, so that the IdP answers the
	// AuthnRequest once the password checks out.
	form := template.Must(template.New("login").Parse(`<!doctype html><html><body><form method="post" action="` + p.srv.URL + `/sso">` +
		`<input name="user"><input name="password" type="password">` +
		`<input type="hidden" name="SAMLRequest" value="{{.SAMLRequest}}"><input type="hidden" name="RelayState" value="{{.RelayState}}">` +
		`<button id="login" type="submit">Log in</button></form></body></html>`))
	idp, err := samlidp.New(samlidp.Options{URL: *u, Key: signer.Key, Signer: signer.Key, Certificate: signer.Cert,
		Store: &samlidp.MemoryStore{}, Logger: log.New(io.Discard, "", 0), LoginFormTemplate: form})
	if err != nil {
		t.Fatal(err)
	}
	idp.IDP.SignatureMethod = dsig.RSASHA256SignatureMethod
	mux.Handle("/", idp)
	mux.HandleFunc("GET /slo", func(w http.ResponseWriter, r *http.Request) { p.answerLogout(t, w, r) })
	mux.HandleFunc("POST /slo", func(w http.ResponseWriter, r *http.Request) {
		m, err := saml.DecodePOST(r, saml.Limits{})
		if err != nil {
			http.Error(w, err.Error(), http.StatusBadRequest)
			return
		}
		p.responses <- m
		_, _ = fmt.Fprint(w, `<!doctype html><p id="result">idp-logged-out</p>`)
	})
	user := `{"name":"alice","password":"correct horse","email":"alice@example.com","groups":["staff"]}`
	req, _ := http.NewRequest(http.MethodPut, p.srv.URL+"/users/alice", strings.NewReader(user))
	if resp, err := p.srv.Client().Do(req); err != nil || resp.StatusCode/100 != 2 {
		t.Fatalf("add user: %v %v", err, resp)
	}
	return p
}

// metadataFile is the samlidp metadata with the SLO endpoints added.
func (p *browserIdP) metadataFile(t *testing.T) string {
	t.Helper()
	resp, err := p.srv.Client().Get(p.srv.URL + "/metadata")
	if err != nil {
		t.Fatal(err)
	}
	var ed crewjam.EntityDescriptor
	if err := xml.Unmarshal([]byte(readBody(t, resp)), &ed); err != nil {
		t.Fatal(err)
	}
	ed.IDPSSODescriptors[0].SingleLogoutServices = []crewjam.Endpoint{
		{Binding: saml.BindingRedirect, Location: p.srv.URL + "/slo"},
		{Binding: saml.BindingPOST, Location: p.srv.URL + "/slo"}}
	b, err := xml.Marshal(ed)
	if err != nil {
		t.Fatal(err)
	}
	return writeFile(t, "idp.xml", b)
}

// startLogoutPage is the IdP's auto-submitting POST of a signed
// LogoutRequest for session s to the bridge.
func (p *browserIdP) startLogoutPage(t *testing.T, b *bridge, s store.Session) (string, string) {
	t.Helper()
	id, _ := saml.NewID(nil)
	req := &saml.LogoutRequest{ID: id, IssueInstant: time.Now(), Destination: b.sp.url(PathSLO), Issuer: p.entityID,
		NameID: saml.NameID{Value: s.NameID.Value, Format: s.NameID.Format}, SessionIndexes: []string{s.SessionIndex}}
	signed, err := loadSigner(t, "idp").SignEnveloped(req.Element())
	if err != nil {
		t.Fatal(err)
	}
	v, _ := saml.POSTValue(signed)
	page := `<!doctype html><form id="f" method="post" action="` + b.sp.url(PathSLO) + `">` +
		`<input type="hidden" name="SAMLRequest" value="` + v + `"><input type="hidden" name="RelayState" value="idp-state"></form>` +
		`<script>document.getElementById("f").submit()</script>`
	return writePage(t, p, page), id
}

func writePage(t *testing.T, p *browserIdP, html string) string {
	t.Helper()
	path := fmt.Sprintf("/page/%d", time.Now().UnixNano())
	p.srv.Config.Handler.(*http.ServeMux).HandleFunc(path, func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/html; charset=utf-8")
		_, _ = io.WriteString(w, html)
	})
	return p.srv.URL + path
}

// TestBrowserLoginAndIdPLogout runs a real browser through a login at the
// real IdP and an IdP-initiated POST-binding logout: the bridge session
// ends, its participant is notified, and the bridge's LogoutResponse,
// auto-submitted by the browser under the page's CSP, reaches the IdP and
// validates.
func TestBrowserLoginAndIdPLogout(t *testing.T) {
	ctx := chromium(t)
	idp := newBrowserIdP(t)
	b := newBridge(t, bridgeOptions{upstreams: []UpstreamConfig{{Name: "corp", MetadataFile: idp.metadataFile(t)}}})
	registerSP(t, idp.srv, b)

	s := browserLogin(t, ctx, b, idp)
	recv := newReceiver(t, http.StatusOK)
	if _, err := b.eng.AddParticipant(t.Context(), store.Participant{SessionID: s.ID, Kind: "http", AppID: "app",
		Channels: store.ChannelBack, BackChannelURL: recv.srv.URL}); err != nil {
		t.Fatal(err)
	}

	page, reqID := idp.startLogoutPage(t, b, s)
	if err := chromedp.Do(ctx, chromedp.Navigate(page)); err != nil {
		t.Fatal(err)
	}
	waitPage(t, ctx, idp.srv.URL+"/slo", "idp-logged-out")
	m := <-idp.responses
	v := &saml.Validator{Store: b.st}
	lr, err := v.LogoutResponse(t.Context(), m, b.spTrust(), idp.srv.URL+"/slo", reqID)
	if err != nil {
		t.Fatalf("LogoutResponse: %v", err)
	}
	if !lr.Success() || lr.Partial() || m.RelayState != "idp-state" {
		t.Fatalf("status %s/%s relay %q", lr.Status, lr.SubStatus, m.RelayState)
	}
	if !b.ended(s.ID) || recv.count() != 1 {
		t.Fatalf("ended=%v notified=%d", b.ended(s.ID), recv.count())
	}
	if err := chromedp.Do(ctx, chromedp.Navigate(b.srv.URL+"/test/whoami")); err != nil {
		t.Fatal(err)
	}
	waitPage(t, ctx, b.srv.URL+"/test/whoami", "no session")
}

// answerLogout is the IdP's side of a logout the bridge starts: validate
// the Redirect-binding LogoutRequest and send the browser back with a
// signed LogoutResponse.
func (p *browserIdP) answerLogout(t *testing.T, w http.ResponseWriter, r *http.Request) {
	m, err := saml.DecodeRedirect(r.URL.RawQuery, saml.Limits{})
	if err != nil {
		http.Error(w, err.Error(), http.StatusBadRequest)
		return
	}
	v := &saml.Validator{Store: p.bridge.st}
	req, err := v.LogoutRequest(r.Context(), m, p.bridge.spTrust(), p.srv.URL+"/slo")
	if err != nil {
		http.Error(w, err.Error(), http.StatusBadRequest)
		return
	}
	p.requests <- req
	id, _ := saml.NewID(nil)
	resp := &saml.LogoutResponse{ID: id, InResponseTo: req.ID, IssueInstant: time.Now(), Destination: p.bridge.sp.url(PathSLO),
		Issuer: p.entityID, Status: cmp.Or(p.logoutStatus, saml.StatusSuccess)}
	u, err := saml.RedirectURL(p.bridge.sp.url(PathSLO), saml.ParamResponse, resp.Element(), m.RelayState, loadSigner(t, "idp"))
	if err != nil {
		http.Error(w, err.Error(), http.StatusInternalServerError)
		return
	}
	http.Redirect(w, r, u, http.StatusSeeOther)
}

// browserLogin logs the browser in at the IdP and returns the session.
func browserLogin(t *testing.T, ctx context.Context, b *bridge, idp *browserIdP) store.Session {
	t.Helper()
	if err := chromedp.Do(ctx, chromedp.Navigate(b.srv.URL+"/test/login")); err != nil {
		t.Fatal(err)
	}
	waitPage(t, ctx, idp.srv.URL+"/sso", "")
	if err := chromedp.Do(ctx,
		chromedp.SendKeys(chromedp.CSS(`input[name=user]`), "alice"),
		chromedp.SendKeys(chromedp.CSS(`input[name=password]`), "correct horse"),
		chromedp.Click(chromedp.CSS(`#login`))); err != nil {
		t.Fatal(err)
	}
	txt := waitPage(t, ctx, b.srv.URL+"/test/whoami", "alice@example.com")
	var s store.Session
	if err := json.Unmarshal([]byte(txt), &s); err != nil {
		t.Fatalf("whoami %q: %v", txt, err)
	}
	if s.SessionIndex == "" || s.NameID.Value != "alice@example.com" {
		t.Fatalf("session %+v", s)
	}
	return s
}

// TestBrowserLogoutTowardUpstream logs a browser in, then logs it out at
// the bridge: the logout page sends it to the IdP with a signed
// Redirect-binding LogoutRequest naming the session, the IdP answers, and
// the browser ends on the bridge's "logged out" page.
func TestBrowserLogoutTowardUpstream(t *testing.T) {
	ctx := chromium(t)
	idp := newBrowserIdP(t)
	b := newBridge(t, bridgeOptions{upstreams: []UpstreamConfig{{Name: "corp", MetadataFile: idp.metadataFile(t)}}})
	idp.bridge = b
	registerSP(t, idp.srv, b)
	s := browserLogin(t, ctx, b, idp)

	lo, err := b.eng.Logout(t.Context(), slobridge.LogoutRequest{SessionIDs: []string{s.ID}, Initiator: store.Initiator{Kind: store.InitiatorUser},
		Browser: true})
	if err != nil {
		t.Fatal(err)
	}
	if err := chromedp.Do(ctx, chromedp.Navigate(b.srv.URL+slobridge.LogoutPagePath(lo.ID))); err != nil {
		t.Fatal(err)
	}
	waitPage(t, ctx, b.srv.URL+"/logout/done/", "You are logged out")
	req := <-idp.requests
	if req.NameID.Value != s.NameID.Value || req.NameID.Format != s.NameID.Format || len(req.SessionIndexes) != 1 ||
		req.SessionIndexes[0] != s.SessionIndex {
		t.Fatalf("LogoutRequest names %+v %v, want the session's %+v %s", req.NameID, req.SessionIndexes, s.NameID, s.SessionIndex)
	}
}
