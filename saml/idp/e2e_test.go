package idp

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
	gooidc "github.com/coreos/go-oidc/v3/oidc"

	"github.com/slobridge/slobridge"
	"github.com/slobridge/slobridge/oidc"
	bsaml "github.com/slobridge/slobridge/saml"
	"github.com/slobridge/slobridge/saml/internal/samltest"
	"github.com/slobridge/slobridge/store"
)

func timeNow() time.Time { return time.Now().UTC() }

// newChromium starts headless Chromium with a fresh profile; without it
// the test is skipped, or fails when CI=true.
func newChromium(t *testing.T) context.Context {
	t.Helper()
	path := "/usr/bin/chromium"
	if p := os.Getenv("SLOBRIDGE_CHROMIUM"); p != "" {
		path = p
	}
	if _, err := os.Stat(path); err != nil {
		msg := "headless Chromium not found at " + path + ": install the chromium package or set SLOBRIDGE_CHROMIUM"
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

// browse loads u and waits until the page at a URL starting with want
// shows #result, whose text it returns.
func browse(t *testing.T, ctx context.Context, u, want string) string {
	t.Helper()
	nctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	if err := chromedp.Do(nctx, chromedp.Navigate(u)); err != nil {
		t.Fatalf("navigate %s: %v", u, err)
	}
	deadline := time.Now().Add(40 * time.Second)
	var loc string
	for time.Now().Before(deadline) {
		lctx, lcancel := context.WithTimeout(ctx, 5*time.Second)
		l, err := chromedp.Run(lctx, chromedp.Location())
		if err == nil {
			loc = l
		}
		if err == nil && strings.HasPrefix(loc, want) {
			txt, err := chromedp.Run(lctx, chromedp.Evaluate[string](`(document.getElementById("result")||{}).textContent||""`))
			if err == nil && txt != "" {
				lcancel()
				return txt
			}
		}
		lcancel()
		time.Sleep(50 * time.Millisecond)
	}
	t.Fatalf("the browser is at %q, want a result page at %q…", loc, want)
	return ""
}

// oidcReceiver is the back-channel logout endpoint of an OIDC relying
// party: it verifies each logout token with go-oidc against the bridge's
// JWKS and checks its claims (Back-Channel Logout 1.0 §2.4, §2.6).
type oidcReceiver struct {
	srv      *httptest.Server
	clientID string
	issuer   string
	keys     *gooidc.RemoteKeySet
	mu       sync.Mutex
	sids     []string
	errs     []error
}

func newOIDCReceiver(t *testing.T, issuer, clientID string) *oidcReceiver {
	h := &oidcReceiver{clientID: clientID, issuer: issuer,
		keys: gooidc.NewRemoteKeySet(context.Background(), issuer+oidc.PathJWKS)}
	h.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		sid, err := h.check(r)
		h.mu.Lock()
		h.sids = append(h.sids, sid)
		h.errs = append(h.errs, err)
		h.mu.Unlock()
		if err != nil {
			http.Error(w, err.Error(), http.StatusBadRequest)
			return
		}
		w.Header().Set("Cache-Control", "no-store")
		w.WriteHeader(http.StatusOK)
	}))
	t.Cleanup(h.srv.Close)
	return h
}

func (h *oidcReceiver) check(r *http.Request) (string, error) {
	if err := r.ParseForm(); err != nil {
		return "", err
	}
	tok := r.PostForm.Get("logout_token")
	payload, err := h.keys.VerifySignature(r.Context(), tok)
	if err != nil {
		return "", fmt.Errorf("logout token signature: %w", err)
	}
	hdr, _ := base64.RawURLEncoding.DecodeString(strings.Split(tok, ".")[0])
	var head struct {
		Typ string `json:"typ"`
	}
	var c struct {
		Iss    string                     `json:"iss"`
		Aud    any                        `json:"aud"`
		Sid    string                     `json:"sid"`
		Nonce  *string                    `json:"nonce"`
		Events map[string]json.RawMessage `json:"events"`
	}
	if json.Unmarshal(hdr, &head) != nil || json.Unmarshal(payload, &c) != nil {
		return "", errors.New("logout token is not JSON")
	}
	_, hasEvent := c.Events[oidc.BackchannelLogoutEvent]
	if head.Typ != "logout+jwt" || c.Iss != h.issuer || !strings.Contains(fmt.Sprint(c.Aud), h.clientID) ||
		!hasEvent || c.Nonce != nil || c.Sid == "" {
		return "", fmt.Errorf("logout token claims %+v typ %q", c, head.Typ)
	}
	return c.Sid, nil
}

func (h *oidcReceiver) got() ([]string, []error) {
	h.mu.Lock()
	defer h.mu.Unlock()
	return append([]string(nil), h.sids...), append([]error(nil), h.errs...)
}

// e2e is the world of the end-to-end tests: the bridge and three SPs.
type e2e struct {
	b   *bridge
	sp1 *crewjamSP
	sp2 *gosamlSP
	sp3 *gosamlSP
}

// newE2E starts SP1 (registered from a metadata file in the
// configuration), the bridge, SP2 (registered through Register from its
// metadata URL) and SP3 (SOAP back channel, registered from a file).
// e2eOpts adjust the world of an end-to-end test.
type e2eOpts struct {
	engine func(*slobridge.Options)
	cfg    func(*Config)
	sp1    func(*crewjamSP)
	sp2    func(*gosamlSP)
	// upstream and upstreamName: see bridgeOpts.
	upstream     func(t testing.TB, eng *slobridge.Engine, url string)
	upstreamName string
}

func newE2E(t *testing.T, o e2eOpts) *e2e {
	t.Helper()
	xmlsec := samltest.RequireTool(t, "xmlsec1")
	dir := t.TempDir()
	sp1 := newCrewjamSP(t)
	if o.sp1 != nil {
		o.sp1(sp1)
	}
	sp1File := filepath.Join(dir, "sp1.xml")
	if err := os.WriteFile(sp1File, sp1.metadata(t), 0o600); err != nil {
		t.Fatal(err)
	}
	sp2 := newGosamlSP(t, "sp2")
	if o.sp2 != nil {
		o.sp2(sp2)
	}
	sp3 := newGosamlSP(t, "sp3")
	sp3.soap = newSOAPSP(t, xmlsec)
	sp3.soap.issuer = sp3.entityID
	// samlsp asks for a transient NameID.
	cfg := Config{ServiceProviders: []SPConfig{{MetadataFile: sp1File, Name: "SP one (samlsp)", NameID: NameIDTransient}}}
	if o.cfg != nil {
		o.cfg(&cfg)
	}
	b := newBridge(t, bridgeOpts{cfg: cfg, engine: o.engine, upstream: o.upstream, upstreamName: o.upstreamName, before: func(u string) {
		sp2.start(u)
		sp3.start(u)
	}})
	sp1.setIDP(t, b.url)
	ctx := context.Background()
	if _, err := b.idp.Register(ctx, SPConfig{MetadataURL: sp2.url + "/metadata", Name: "SP two (gosaml2)"}); err != nil {
		t.Fatalf("register sp2: %v", err)
	}
	md3, err := sp3.metadata()
	if err != nil {
		t.Fatal(err)
	}
	sp3File := filepath.Join(dir, "sp3.xml")
	if err := os.WriteFile(sp3File, md3, 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := b.idp.Register(ctx, SPConfig{MetadataFile: sp3File, Name: "SP three (SOAP)"}); err != nil {
		t.Fatalf("register sp3: %v", err)
	}
	return &e2e{b: b, sp1: sp1, sp2: sp2, sp3: sp3}
}

// activeSession returns alice's only bridge session.
func (w *e2e) activeSession(t *testing.T) store.Session {
	t.Helper()
	ss, err := w.b.st.ListSessionsByUser(context.Background(), "alice")
	if err != nil || len(ss) != 1 {
		t.Fatalf("sessions of alice = %d (%v), want 1", len(ss), err)
	}
	return ss[0]
}

// TestBrowserSSOAndSPInitiatedLogout is the acceptance path of issue 5:
// two SPs not written here (crewjam samlsp, gosaml2) and a SOAP SP log in
// through the bridge with one upstream login; gosaml2 starts a logout; the
// bridge ends the session, samlsp gets its LogoutRequest in the logout
// page's iframe, the SOAP SP and an OIDC-like back-channel receiver are
// notified, and gosaml2 verifies the LogoutResponse.
func TestBrowserSSOAndSPInitiatedLogout(t *testing.T) {
	for _, tc := range []struct {
		name, logoutPath string
		sp2              func(*gosamlSP)
		cfg              func(*Config)
	}{
		// gosaml2's own metadata (HTTP-POST SLO); its request and our
		// response by HTTP-POST, both checked by gosaml2.
		{name: "post", logoutPath: "/logout"},
		// An HTTP-Redirect request (gosaml2 signs the query); our
		// HTTP-Redirect response's query signature is checked by openssl.
		{name: "redirect", logoutPath: "/logout?binding=redirect", sp2: func(g *gosamlSP) { g.openssl = samltest.RequireTool(t, "openssl") }},
		// samlsp is notified by a top-level redirect chain instead of an
		// iframe (SPConfig.FrontChannelTopLevel).
		{name: "top-level chain", logoutPath: "/logout", cfg: func(c *Config) { c.ServiceProviders[0].FrontChannelTopLevel = true }},
	} {
		t.Run(tc.name, func(t *testing.T) {
			w := newE2E(t, e2eOpts{sp2: tc.sp2, cfg: tc.cfg})
			ctx := newChromium(t)
			recv := newOIDCReceiver(t, w.b.url, "oidc-rp")
			s := browserLogins(t, ctx, w)
			// An OIDC relying party with back-channel logout in the same
			// session, as the OpenID Provider records it after a code flow.
			if _, err := w.b.eng.AddParticipant(context.Background(), store.Participant{
				SessionID: s.ID, Key: oidc.ParticipantKind + ":oidc-rp", Kind: oidc.ParticipantKind, AppID: "oidc-rp",
				Channels: store.ChannelBack, BackChannelURL: recv.srv.URL,
				Data: map[string]string{oidc.DataSubject: s.UserID, oidc.DataSIDRequired: "true"},
			}); err != nil {
				t.Fatal(err)
			}

			got := browse(t, ctx, w.sp2.url+tc.logoutPath, w.sp2.url+"/slo")
			if got != "sp2 logged out: "+bsaml.StatusSuccess+" " {
				t.Fatalf("sp2 logout page = %q (validation error %v)", got, w.sp2.logoutErr)
			}
			w.sp2.mu.Lock()
			if w.sp2.logoutErr != nil || w.sp2.logoutInResponseTo != w.sp2.logoutRequestID || w.sp2.logoutSubStatus != "" {
				t.Errorf("LogoutResponse error %v InResponseTo %q sub-status %q, want %q and none",
					w.sp2.logoutErr, w.sp2.logoutInResponseTo, w.sp2.logoutSubStatus, w.sp2.logoutRequestID)
			}
			if wantRedirect := tc.sp2 != nil; (w.sp2.redirectResponses == 1) != wantRedirect || w.sp2.logoutResponses != 1 {
				t.Errorf("sp2 got %d LogoutResponses, %d by HTTP-Redirect", w.sp2.logoutResponses, w.sp2.redirectResponses)
			}
			w.sp2.mu.Unlock()

			ended, err := w.b.st.GetSession(context.Background(), s.ID)
			if err != nil || ended.EndedAt.IsZero() || ended.LogoutID == "" {
				t.Fatalf("session after logout = %+v (%v), want ended", ended, err)
			}
			checkNotified(t, w, ended, recv)
		})
	}
}

// browserLogins logs Chromium in at the three SPs; only the first needs
// the upstream login. It returns the bridge session.
func browserLogins(t *testing.T, ctx context.Context, w *e2e) store.Session {
	t.Helper()
	if got := browse(t, ctx, w.sp1.url+"/app", w.sp1.url+"/app"); got != "sp1 hello alice@example.com" {
		t.Fatalf("sp1 page = %q", got)
	}
	if got := browse(t, ctx, w.sp2.url+"/login", w.sp2.url+"/acs"); got != "sp2 logged in as alice@example.com" {
		t.Fatalf("sp2 page = %q (login error %v)", got, w.sp2.loginErr)
	}
	if got := browse(t, ctx, w.sp3.url+"/login", w.sp3.url+"/acs"); got != "sp3 logged in as alice@example.com" {
		t.Fatalf("sp3 page = %q (login error %v)", got, w.sp3.loginErr)
	}
	if n := w.b.auth.logins.Load(); n != 1 {
		t.Fatalf("upstream logins = %d, want 1: the second and third SP must reuse the bridge session", n)
	}
	s := w.activeSession(t)
	checkParticipants(t, w, s)
	return s
}

// checkParticipants: each SP is a participant with its own NameID and a
// SessionIndex unique to (session, SP), equal to what the SP received.
func checkParticipants(t *testing.T, w *e2e, s store.Session) {
	t.Helper()
	ps, err := w.b.st.ListParticipants(context.Background(), s.ID)
	if err != nil || len(ps) != 3 {
		t.Fatalf("participants = %+v (%v), want 3", ps, err)
	}
	byApp := map[string]store.Participant{}
	seenSI := map[string]bool{}
	for _, p := range ps {
		byApp[p.AppID] = p
		if si := p.Data[DataSessionIndex]; si == "" || seenSI[si] {
			t.Errorf("participant %s SessionIndex %q is empty or shared", p.Key, si)
		}
		seenSI[p.Data[DataSessionIndex]] = true
	}
	p1, p2, p3 := byApp[w.sp1.entityID()], byApp[w.sp2.entityID()], byApp[w.sp3.entityID()]
	w.sp1.mu.Lock()
	if p1.Data[DataNameID] != w.sp1.subject || p1.Data[DataSessionIndex] != w.sp1.sessionIndex {
		t.Errorf("sp1 got NameID %q SI %q, participant has %v", w.sp1.subject, w.sp1.sessionIndex, p1.Data)
	}
	w.sp1.mu.Unlock()
	if p2.Data[DataNameID] != w.sp2.nameID || p2.Data[DataSessionIndex] != w.sp2.sessionIndex {
		t.Errorf("sp2 got NameID %q SI %q, participant has %v", w.sp2.nameID, w.sp2.sessionIndex, p2.Data)
	}
	if p1.Data[DataNameID] == p2.Data[DataNameID] {
		t.Errorf("persistent NameIDs of two SPs are equal (%q): they must be pairwise", p1.Data[DataNameID])
	}
	framed := strings.HasPrefix(p1.FrontChannelURL, w.b.url+PathFront+"/")
	if p1.Channels != store.ChannelFront || framed == (p1.Data[DataTopLevel] == "true") {
		t.Errorf("sp1 participant channels %v front URL %q top-level %q", p1.Channels, p1.FrontChannelURL, p1.Data[DataTopLevel])
	}
	if p3.Channels != store.ChannelBack || p3.BackChannelURL != w.sp3.url+"/soap" {
		t.Errorf("sp3 participant channels %v back URL %q", p3.Channels, p3.BackChannelURL)
	}
}

// checkNotified: samlsp got a verified LogoutRequest with its NameID and
// SessionIndex, its LogoutResponse was recorded as Success, the SOAP SP's
// request verified with xmlsec1, the OIDC receiver got a valid logout
// token, and the status shows it.
func checkNotified(t *testing.T, w *e2e, s store.Session, recv *oidcReceiver) {
	t.Helper()
	ctx := context.Background()
	w.sp1.mu.Lock()
	if len(w.sp1.logouts) != 1 {
		t.Errorf("sp1 received %d LogoutRequests, want 1", len(w.sp1.logouts))
	} else if g := w.sp1.logouts[0]; g.Verified != nil || g.NameID != w.sp1.subject || g.SessionIndex != w.sp1.sessionIndex ||
		g.Issuer != w.b.idp.EntityID() || g.Destination != w.sp1.url+"/saml/slo" {
		t.Errorf("sp1 LogoutRequest %+v, want NameID %q SI %q", g, w.sp1.subject, w.sp1.sessionIndex)
	}
	w.sp1.mu.Unlock()
	res, err := w.b.idp.FrontResult(ctx, s.LogoutID, s.ID, ParticipantKey(w.sp1.entityID()))
	if err != nil || !res.Done || res.Status != bsaml.StatusSuccess {
		t.Errorf("sp1 front-channel result %+v (%v), want Success recorded", res, err)
	}
	waitFor(t, "back-channel deliveries", 10*time.Second, func() bool {
		st, err := w.b.eng.Status(ctx, s.LogoutID)
		return err == nil && st.Done
	})
	if sids, errs := recv.got(); len(sids) != 1 || errs[0] != nil || sids[0] != s.ID {
		t.Errorf("OIDC receiver got sids %v errors %v, want one valid logout token for %s", sids, errs, s.ID)
	}
	w.sp3.soap.mu.Lock()
	if len(w.sp3.soap.got) != 1 {
		t.Errorf("sp3 received %d SOAP LogoutRequests, want 1", len(w.sp3.soap.got))
	} else if g := w.sp3.soap.got[0]; g.Verified != nil || g.NameID != w.sp3.nameID || g.SessionIndex != w.sp3.sessionIndex {
		t.Errorf("sp3 LogoutRequest %+v, want verified with NameID %q SI %q", g, w.sp3.nameID, w.sp3.sessionIndex)
	}
	w.sp3.soap.mu.Unlock()
	st, err := w.b.eng.Status(ctx, s.LogoutID)
	if err != nil {
		t.Fatal(err)
	}
	want := map[string]string{
		ParticipantKey(w.sp1.entityID()): slobridge.StateFrontChannel,
		ParticipantKey(w.sp2.entityID()): slobridge.StateInitiator,
		ParticipantKey(w.sp3.entityID()): string(store.DeliveryDelivered),
		"oidc:oidc-rp":                   string(store.DeliveryDelivered),
	}
	for _, row := range st.Participants {
		if want[row.Key] != row.State {
			t.Errorf("status of %s = %q, want %q", row.Key, row.State, want[row.Key])
		}
	}
	if st.Logout.Initiator.Kind != store.InitiatorSP || st.Logout.Initiator.ID != w.sp2.entityID() {
		t.Errorf("initiator = %+v", st.Logout.Initiator)
	}
}

// TestBrowserLogoutStartedBySamlsp: samlsp (crewjam) starts the logout
// with a LogoutRequest that has no SessionIndex; the bridge ends the
// session in which it issued that NameID, gosaml2 receives and validates
// its LogoutRequest in the logout page's iframe and answers, the SOAP SP
// and the OIDC receiver are notified, and crewjam validates the bridge's
// LogoutResponse.
//
// In the second case gosaml2 answers the POSTed LogoutRequest by
// HTTP-Redirect: its 302 back to the bridge follows the form submission,
// which the page's CSP form-action must allow (Chromium blocked it while
// form-action named only the SP), and the answer is recorded before the
// bridge answers samlsp.
func TestBrowserLogoutStartedBySamlsp(t *testing.T) {
	for _, tc := range []struct {
		name     string
		redirect bool
	}{{"POST in, POST out", false}, {"POST in, Redirect out", true}} {
		t.Run(tc.name, func(t *testing.T) {
			browserLogoutStartedBySamlsp(t, tc.redirect)
		})
	}
}

func browserLogoutStartedBySamlsp(t *testing.T, redirect bool) {
	w := newE2E(t, e2eOpts{sp2: func(g *gosamlSP) { g.answerRedirect = redirect }})
	ctx := newChromium(t)
	recv := newOIDCReceiver(t, w.b.url, "oidc-rp")
	s := browserLogins(t, ctx, w)
	if _, err := w.b.eng.AddParticipant(context.Background(), store.Participant{
		SessionID: s.ID, Key: oidc.ParticipantKind + ":oidc-rp", Kind: oidc.ParticipantKind, AppID: "oidc-rp",
		Channels: store.ChannelBack, BackChannelURL: recv.srv.URL, Data: map[string]string{oidc.DataSubject: s.UserID},
	}); err != nil {
		t.Fatal(err)
	}
	if got := browse(t, ctx, w.sp1.url+"/logout", w.sp1.url+"/saml/slo"); got != "sp1 logged out" {
		t.Fatalf("sp1 logout page = %q (crewjam validation: %v)", got, w.sp1.logoutResult)
	}
	w.sp1.mu.Lock()
	if w.sp1.logoutResult != nil || w.sp1.logoutChecked != 1 {
		t.Errorf("crewjam checked %d LogoutResponses: %v", w.sp1.logoutChecked, w.sp1.logoutResult)
	}
	// Bindings §3.5.3: the RelayState of the request comes back unchanged.
	if w.sp1.logoutRelay != "sp1-relay" {
		t.Errorf("LogoutResponse RelayState = %q, want the request's %q", w.sp1.logoutRelay, "sp1-relay")
	}
	w.sp1.mu.Unlock()
	ended, err := w.b.st.GetSession(context.Background(), s.ID)
	if err != nil || ended.EndedAt.IsZero() {
		t.Fatalf("session %+v (%v), want ended", ended, err)
	}
	w.sp2.mu.Lock()
	if len(w.sp2.slo) != 1 || w.sp2.slo[0].Verified != nil || w.sp2.slo[0].NameID != w.sp2.nameID ||
		w.sp2.slo[0].SessionIndex != w.sp2.sessionIndex {
		t.Errorf("gosaml2 received %+v, want one valid LogoutRequest with NameID %q SI %q", w.sp2.slo, w.sp2.nameID, w.sp2.sessionIndex)
	}
	w.sp2.mu.Unlock()
	bctx := context.Background()
	if res, err := w.b.idp.FrontResult(bctx, ended.LogoutID, s.ID, ParticipantKey(w.sp2.entityID())); err != nil || !res.Done {
		t.Errorf("gosaml2's LogoutResponse recorded as %+v (%v), want Success", res, err)
	}
	waitFor(t, "back-channel deliveries", 10*time.Second, func() bool {
		st, err := w.b.eng.Status(bctx, ended.LogoutID)
		return err == nil && st.Done
	})
	if sids, errs := recv.got(); len(sids) != 1 || errs[0] != nil {
		t.Errorf("OIDC receiver got %v %v, want one valid logout token", sids, errs)
	}
	st, _ := w.b.eng.Status(bctx, ended.LogoutID)
	want := map[string]string{
		ParticipantKey(w.sp1.entityID()): slobridge.StateInitiator,
		ParticipantKey(w.sp2.entityID()): slobridge.StateFrontChannel,
		ParticipantKey(w.sp3.entityID()): string(store.DeliveryDelivered),
		"oidc:oidc-rp":                   string(store.DeliveryDelivered),
	}
	for _, row := range st.Participants {
		if want[row.Key] != row.State {
			t.Errorf("status of %s = %q, want %q", row.Key, row.State, want[row.Key])
		}
	}
}
