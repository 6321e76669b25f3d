package demo

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/json"
	"encoding/xml"
	"errors"
	"fmt"
	"html/template"
	"io"
	"log"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"net/url"
	"slices"
	"strings"
	"sync"
	"time"

	crewjam "github.com/crewjam/saml"
	"github.com/crewjam/saml/samlidp"
	dsig "github.com/russellhaering/goxmldsig"

	bsaml "github.com/slobridge/slobridge/saml"
	"github.com/slobridge/slobridge/store"
)

// nameIDTransient is the NameID Format samlidp issues.
const nameIDTransient = "urn:oasis:names:tc:SAML:2.0:nameid-format:transient"

// upstreamCookie is samlidp's session cookie.
const upstreamCookie = "session"

// UpstreamIdP is the demo's upstream SAML IdP. crewjam's samlidp does the
// login form, the sessions and SSO; it has no single logout, so this type
// adds it at /slo (HTTP-Redirect, browser logouts) and /slo/soap (SOAP:
// the bridge's back channel for logouts without a browser, such as an
// operator's "log out everywhere"): a LogoutRequest from the bridge ends
// the matching samlidp session and is answered with a signed
// LogoutResponse, and "Log out" on the IdP's page sends the bridge a
// signed LogoutRequest (IdP-initiated logout). Only samlidp's metadata, SSO and login routes are
// exposed: its user, service and session routes have no authentication.
type UpstreamIdP struct {
	base     string
	entityID string
	srv      *samlidp.Server
	signer   *bsaml.Signer
	v        *bsaml.Validator
	log      *slog.Logger

	mu        sync.Mutex
	bridge    bsaml.Trust
	bridgeSLO string
	// pending holds the IDs of our LogoutRequests awaiting an answer.
	pending map[string]time.Time
}

// NewUpstreamIdP returns the IdP served at base with the demo users.
// replay keeps the IDs of messages received (replay check).
func NewUpstreamIdP(base string, signer *bsaml.Signer, users []User, replay store.Store, logger *slog.Logger) (*UpstreamIdP, error) {
	u, err := url.Parse(base)
	if err != nil {
		return nil, fmt.Errorf("demo upstream: %w", err)
	}
	srv, err := samlidp.New(samlidp.Options{URL: *u, Key: signer.Key, Signer: signer.Key, Certificate: signer.Cert,
		Store: &samlidp.MemoryStore{}, Logger: log.New(io.Discard, "", 0), LoginFormTemplate: upstreamLoginTmpl})
	if err != nil {
		return nil, fmt.Errorf("demo upstream: %w", err)
	}
	srv.IDP.SignatureMethod = dsig.RSASHA256SignatureMethod
	srv.IDP.LogoutURL = *u.JoinPath("slo")
	up := &UpstreamIdP{base: strings.TrimSuffix(base, "/"), entityID: srv.IDP.Metadata().EntityID, srv: srv,
		signer: signer, v: &bsaml.Validator{Store: replay}, log: logger, pending: map[string]time.Time{}}
	for _, usr := range users {
		pw := usr.Password
		given, _, _ := strings.Cut(usr.Name, " ")
		body, err := jsonBody(samlidp.User{PlaintextPassword: &pw, Email: usr.Email, CommonName: usr.Name,
			GivenName: given, Groups: []string{"staff"}})
		if err != nil {
			return nil, err
		}
		if err := up.admin(http.MethodPut, "/users/"+url.PathEscape(usr.Username), body); err != nil {
			return nil, fmt.Errorf("demo upstream: add user %s: %w", usr.Username, err)
		}
	}
	return up, nil
}

// admin calls one of samlidp's (unexposed) admin routes in-process.
func (u *UpstreamIdP) admin(method, path string, body []byte) error {
	rec := httptest.NewRecorder()
	u.srv.ServeHTTP(rec, httptest.NewRequest(method, path, bytes.NewReader(body)))
	if rec.Code/100 != 2 {
		return fmt.Errorf("%s %s: HTTP %d %s", method, path, rec.Code, strings.TrimSpace(rec.Body.String()))
	}
	return nil
}

// The upstream IdP's single-logout endpoints.
const (
	upstreamPathSLO     = "/slo"
	upstreamPathSLOSOAP = "/slo/soap"
)

// MetadataXML is the IdP's metadata: samlidp's, whose SingleLogoutService
// is the HTTP-Redirect one, with the SOAP one added after it.
func (u *UpstreamIdP) MetadataXML() ([]byte, error) {
	md := u.srv.IDP.Metadata()
	if len(md.IDPSSODescriptors) != 1 {
		return nil, errors.New("demo upstream: samlidp metadata has no IDPSSODescriptor")
	}
	d := &md.IDPSSODescriptors[0]
	d.SingleLogoutServices = append(d.SingleLogoutServices,
		crewjam.Endpoint{Binding: crewjam.SOAPBinding, Location: u.base + upstreamPathSLOSOAP})
	b, err := xml.MarshalIndent(md, "", "  ")
	if err != nil {
		return nil, fmt.Errorf("demo upstream: metadata: %w", err)
	}
	return b, nil
}

// RegisterSP fetches the bridge's SP metadata, registers the bridge at
// samlidp and keeps its signing certificates and SLO endpoint.
func (u *UpstreamIdP) RegisterSP(ctx context.Context, metadataURL string) error {
	raw, err := fetch(ctx, metadataURL)
	if err != nil {
		return fmt.Errorf("demo upstream: bridge SP metadata: %w", err)
	}
	var ed crewjam.EntityDescriptor
	if err := xml.Unmarshal(raw, &ed); err != nil || len(ed.SPSSODescriptors) == 0 {
		return fmt.Errorf("demo upstream: bridge SP metadata is not an SP EntityDescriptor: %v", err)
	}
	sp := ed.SPSSODescriptors[0]
	trust := bsaml.Trust{EntityID: ed.EntityID}
	for _, kd := range sp.KeyDescriptors {
		if kd.Use != "" && kd.Use != "signing" {
			continue
		}
		for _, c := range kd.KeyInfo.X509Data.X509Certificates {
			cert, err := bsaml.ParseCertificateBase64(c.Data)
			if err != nil {
				return fmt.Errorf("demo upstream: bridge SP certificate: %w", err)
			}
			trust.Certs = append(trust.Certs, cert)
		}
	}
	var slo string
	for _, ep := range sp.SingleLogoutServices {
		if ep.Binding == crewjam.HTTPRedirectBinding {
			slo = ep.Location
			break
		}
	}
	if len(trust.Certs) == 0 || slo == "" {
		return errors.New("demo upstream: bridge SP metadata lacks a signing certificate or an HTTP-Redirect SLO endpoint")
	}
	if err := u.admin(http.MethodPut, "/services/bridge", raw); err != nil {
		return fmt.Errorf("demo upstream: register the bridge: %w", err)
	}
	u.mu.Lock()
	u.bridge, u.bridgeSLO = trust, slo
	u.mu.Unlock()
	return nil
}

// Handler serves the IdP's page, metadata, SSO, login and SLO (browser and
// SOAP).
func (u *UpstreamIdP) Handler() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /{$}", u.home)
	mux.HandleFunc("GET /favicon.ico", noFavicon)
	mux.HandleFunc("GET /metadata", u.metadata)
	mux.Handle("/sso", u.srv)
	mux.Handle("/login", u.srv)
	mux.HandleFunc(upstreamPathSLO, u.handleSLO)
	mux.Handle(upstreamPathSLOSOAP, u.soapEndpoint())
	mux.HandleFunc("POST /logout", u.startLogout)
	return mux
}

// session returns the browser's samlidp session, if any.
func (u *UpstreamIdP) session(r *http.Request) (string, *crewjam.Session) {
	c, err := r.Cookie(upstreamCookie)
	if err != nil {
		return "", nil
	}
	var s crewjam.Session
	if err := u.srv.Store.Get("/sessions/"+c.Value, &s); err != nil || time.Now().After(s.ExpireTime) {
		return "", nil
	}
	return c.Value, &s
}

func (u *UpstreamIdP) home(w http.ResponseWriter, r *http.Request) {
	_, s := u.session(r)
	v := upstreamView{Message: r.URL.Query().Get("msg")}
	if s != nil {
		v.User, v.Email = s.UserName, s.UserEmail
	}
	renderUpstream(w, http.StatusOK, v)
}

// endSessions deletes the samlidp sessions of nameID with one of the
// session indexes (all of its sessions when none is given).
func (u *UpstreamIdP) endSessions(nameID string, indexes []string) int {
	ids, err := u.srv.Store.List("/sessions/")
	if err != nil {
		return 0
	}
	n := 0
	for _, id := range ids {
		var s crewjam.Session
		if u.srv.Store.Get("/sessions/"+id, &s) != nil || s.NameID != nameID {
			continue
		}
		if len(indexes) > 0 && !slices.Contains(indexes, s.Index) {
			continue
		}
		if u.srv.Store.Delete("/sessions/"+id) == nil {
			n++
		}
	}
	return n
}

// handleSLO receives the bridge's LogoutRequest (the bridge started the
// logout) or its LogoutResponse (we started it).
func (u *UpstreamIdP) handleSLO(w http.ResponseWriter, r *http.Request) {
	ctx := r.Context()
	m, err := bsaml.ReadHTTP(r, bsaml.Limits{})
	if err != nil {
		renderUpstream(w, http.StatusBadRequest, upstreamView{Message: "Not a SAML logout message."})
		return
	}
	u.mu.Lock()
	trust, slo := u.bridge, u.bridgeSLO
	u.mu.Unlock()
	if !m.IsRequest() {
		u.finishLogout(w, r, m, trust)
		return
	}
	lr, err := u.v.LogoutRequest(ctx, m, trust, u.base+upstreamPathSLO)
	if err == nil {
		err = u.checkNameID(lr.NameID, trust.EntityID)
	}
	status, sub := bsaml.StatusSuccess, ""
	if err != nil {
		var se *bsaml.Error
		if !errors.As(err, &se) {
			u.log.WarnContext(ctx, "upstream: LogoutRequest refused", "err", err)
			renderUpstream(w, http.StatusBadRequest, upstreamView{Message: "The logout request was refused."})
			return
		}
		u.log.WarnContext(ctx, "upstream: LogoutRequest refused", "err", err)
		status, sub = se.Status, se.SubStatus
	} else {
		n := u.endSessions(lr.NameID.Value, lr.SessionIndexes)
		u.log.InfoContext(ctx, "upstream: session ended by the bridge", "sessions", n)
		http.SetCookie(w, &http.Cookie{Name: upstreamCookie, Value: "", Path: "/", MaxAge: -1, HttpOnly: true})
	}
	id, err := bsaml.NewID(rand.Reader)
	if err != nil {
		http.Error(w, "internal error", http.StatusInternalServerError)
		return
	}
	resp := &bsaml.LogoutResponse{ID: id, IssueInstant: time.Now(), Destination: slo, Issuer: u.entityID,
		Status: status, SubStatus: sub, InResponseTo: m.Root().SelectAttrValue("ID", "")}
	loc, err := bsaml.RedirectURL(slo, bsaml.ParamResponse, resp.Element(), m.RelayState, u.signer)
	if err != nil {
		http.Error(w, "internal error", http.StatusInternalServerError)
		return
	}
	http.Redirect(w, r, loc, http.StatusFound)
}

// metadata serves MetadataXML (samlidp's own lacks the SOAP endpoint).
func (u *UpstreamIdP) metadata(w http.ResponseWriter, _ *http.Request) {
	b, err := u.MetadataXML()
	if err != nil {
		u.log.Error("upstream: metadata", "err", err)
		http.Error(w, "internal error", http.StatusInternalServerError)
		return
	}
	w.Header().Set("Content-Type", "application/samlmetadata+xml")
	_, _ = w.Write(b)
}

// checkNameID refuses a LogoutRequest whose NameID this IdP cannot have
// issued to the bridge: samlidp issues transient NameIDs qualified by its
// own entity ID and the SP's (SAML Core §8.3.8); a qualifier that is
// present must be ours.
func (u *UpstreamIdP) checkNameID(n bsaml.NameID, bridge string) error {
	if n.Format != "" && n.Format != nameIDTransient {
		return &bsaml.Error{Status: bsaml.StatusRequester, SubStatus: bsaml.StatusUnknownPrincipal,
			Err: fmt.Errorf("NameID Format %q was not issued here", n.Format)}
	}
	if (n.NameQualifier != "" && n.NameQualifier != u.entityID) || (n.SPNameQualifier != "" && n.SPNameQualifier != bridge) {
		return &bsaml.Error{Status: bsaml.StatusRequester, SubStatus: bsaml.StatusUnknownPrincipal,
			Err: fmt.Errorf("NameID qualifiers %q/%q are not this IdP's and the bridge's", n.NameQualifier, n.SPNameQualifier)}
	}
	return nil
}

// soapEndpoint is the SOAP SingleLogoutService (Bindings §3.2, Profiles
// §4.4.3): the bridge sends it a LogoutRequest when a logout has no
// browser to carry one (an operator's "log out everywhere", or a
// downstream SP's SOAP logout). Only a LogoutRequest signed by the
// bridge's SP key, from the bridge, addressed to this endpoint (or to
// none, as SOAP allows), fresh and not seen before is acted on
// (Validator.LogoutRequest): the samlidp sessions of its NameID with its
// SessionIndexes end, and a signed LogoutResponse in response to it
// answers. A message that cannot be authenticated gets a SOAP fault; an
// authenticated one that fails a protocol check gets a LogoutResponse with
// that status. Sessions already gone are answered Success: the user is
// logged out here either way.
func (u *UpstreamIdP) soapEndpoint() *soapLogout {
	return &soapLogout{log: u.log, what: "upstream", v: u.v, signer: u.signer,
		url: u.base + upstreamPathSLOSOAP, issuer: func() string { return u.entityID },
		peer: func() (bsaml.Trust, string) {
			u.mu.Lock()
			defer u.mu.Unlock()
			return u.bridge, "no service provider is registered yet"
		},
		check: func(lr *bsaml.LogoutRequest, peer bsaml.Trust) error { return u.checkNameID(lr.NameID, peer.EntityID) },
		end: func(_ context.Context, lr *bsaml.LogoutRequest) {
			u.endSessions(lr.NameID.Value, lr.SessionIndexes)
		},
	}
}

// startLogout is IdP-initiated logout: it ends the IdP session and sends
// the bridge a LogoutRequest for it.
func (u *UpstreamIdP) startLogout(w http.ResponseWriter, r *http.Request) {
	if o := r.Header.Get("Origin"); o != "" && o != u.base {
		http.Error(w, "cross-origin logout refused", http.StatusForbidden)
		return
	}
	id, s := u.session(r)
	http.SetCookie(w, &http.Cookie{Name: upstreamCookie, Value: "", Path: "/", MaxAge: -1, HttpOnly: true})
	if s == nil {
		http.Redirect(w, r, "/?msg="+url.QueryEscape("You had no session here."), http.StatusSeeOther)
		return
	}
	_ = u.srv.Store.Delete("/sessions/" + id)
	u.mu.Lock()
	trust, slo := u.bridge, u.bridgeSLO
	u.mu.Unlock()
	reqID, err := bsaml.NewID(rand.Reader)
	if err != nil {
		http.Error(w, "internal error", http.StatusInternalServerError)
		return
	}
	now := time.Now()
	lr := &bsaml.LogoutRequest{ID: reqID, IssueInstant: now, NotOnOrAfter: now.Add(10 * time.Minute),
		Destination: slo, Issuer: u.entityID, Reason: bsaml.ReasonUser,
		NameID:         bsaml.NameID{Format: nameIDTransient, NameQualifier: u.entityID, SPNameQualifier: trust.EntityID, Value: s.NameID},
		SessionIndexes: []string{s.Index}}
	loc, err := bsaml.RedirectURL(slo, bsaml.ParamRequest, lr.Element(), reqID, u.signer)
	if err != nil {
		http.Error(w, "internal error", http.StatusInternalServerError)
		return
	}
	u.mu.Lock()
	u.pending[reqID] = now
	u.mu.Unlock()
	http.Redirect(w, r, loc, http.StatusFound)
}

// finishLogout checks the bridge's LogoutResponse to our LogoutRequest
// (named by the RelayState we sent with it).
func (u *UpstreamIdP) finishLogout(w http.ResponseWriter, r *http.Request, m *bsaml.Message, trust bsaml.Trust) {
	u.mu.Lock()
	_, ok := u.pending[m.RelayState]
	delete(u.pending, m.RelayState)
	u.mu.Unlock()
	if !ok {
		renderUpstream(w, http.StatusBadRequest, upstreamView{Message: "Unexpected logout response."})
		return
	}
	res, err := u.v.LogoutResponse(r.Context(), m, trust, u.base+upstreamPathSLO, m.RelayState)
	if err != nil {
		u.log.WarnContext(r.Context(), "upstream: LogoutResponse refused", "err", err)
		renderUpstream(w, http.StatusBadRequest, upstreamView{Message: "The bridge's logout response was refused."})
		return
	}
	msg := "You are logged out here and the bridge logged you out of every app."
	if res.Partial() || !res.Success() {
		msg = "You are logged out here; the bridge could not log you out of every app (" + res.Status + " " + res.SubStatus + ")."
	}
	http.Redirect(w, r, "/?msg="+url.QueryEscape(msg), http.StatusSeeOther)
}

// fetch GETs a small document.
func fetch(ctx context.Context, u string) ([]byte, error) {
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u, nil)
	if err != nil {
		return nil, err
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("GET %s: HTTP %d", u, resp.StatusCode)
	}
	return io.ReadAll(io.LimitReader(resp.Body, 1<<20))
}

type upstreamView struct {
	User, Email, Message string
}

func renderUpstream(w http.ResponseWriter, status int, v upstreamView) {
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	w.Header().Set("Cache-Control", "no-store")
	// No form-action: Chromium applies it to the redirect chain after a
	// form post, and "Log out" posts here and is redirected to the bridge.
	w.Header().Set("Content-Security-Policy", "default-src 'none'; style-src 'unsafe-inline'; frame-ancestors 'none'")
	w.WriteHeader(status)
	_ = upstreamPage.Execute(w, v)
}

var upstreamPage = template.Must(template.New("upstream").Parse(`<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>Upstream IdP</title>
<style>
body{font-family:system-ui,sans-serif;max-width:44rem;margin:2rem auto;padding:0 1rem;color:#1d2433;background:#fbf8f2}
.card{border:1px solid #d9cfbd;border-radius:.5rem;padding:1rem 1.25rem;margin:1rem 0;background:#fff}
.ok{color:#0a7a34;font-weight:600}.bad{color:#b3261e;font-weight:600}
button{font-size:1rem;padding:.4rem 1rem;border-radius:.4rem;border:1px solid #1d2433;background:#fff;cursor:pointer}
</style></head><body>
<h1>Upstream identity provider</h1>
<p>The company IdP (crewjam/saml samlidp). The bridge is one of its SAML service providers.</p>
{{if .Message}}<p id="message">{{.Message}}</p>{{end}}
<div class="card">
{{if .User}}<p id="state" class="ok">Logged in as <strong>{{.User}}</strong> ({{.Email}})</p>
<form method="post" action="/logout"><button id="logout" type="submit">Log out here and everywhere</button></form>
{{else}}<p id="state" class="bad">No session at the upstream IdP</p>{{end}}
</div>
</body></html>`))

// upstreamLoginTmpl is samlidp's login form. It posts back to the SSO
// endpoint with the AuthnRequest (HTTP-POST binding) so that the login
// continues to the bridge; samlidp's default posts to /login, which only
// answers the new session as JSON.
var upstreamLoginTmpl = template.Must(template.New("login").Parse(`<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>Sign in — upstream IdP</title>
<style>
body{font-family:system-ui,sans-serif;max-width:24rem;margin:3rem auto;padding:0 1rem;color:#1d2433;background:#fbf8f2}
label{display:block;margin:.6rem 0}input{font-size:1rem;padding:.3rem;width:100%}
button{font-size:1rem;padding:.4rem 1rem;margin-top:.6rem}
</style></head><body>
<h1>Sign in</h1>
<p>Upstream identity provider (demo)</p>
{{if .Toast}}<p role="alert">{{.Toast}}</p>{{end}}
<form method="post" action="/sso">
<label>Username <input type="text" name="user" autocomplete="username" autofocus></label>
<label>Password <input type="password" name="password" autocomplete="current-password"></label>
<input type="hidden" name="SAMLRequest" value="{{.SAMLRequest}}">
<input type="hidden" name="RelayState" value="{{.RelayState}}">
<button type="submit">Sign in</button>
</form>
</body></html>`))

// jsonBody encodes a samlidp admin request body.
func jsonBody(v any) ([]byte, error) {
	b, err := json.Marshal(v)
	if err != nil {
		return nil, fmt.Errorf("demo upstream: %w", err)
	}
	return b, nil
}
