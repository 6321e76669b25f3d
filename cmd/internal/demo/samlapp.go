package demo

import (
	"context"
	"crypto/rand"
	"encoding/xml"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"sync"
	"time"

	crewjam "github.com/crewjam/saml"
	"github.com/crewjam/saml/samlsp"
	dsig "github.com/russellhaering/goxmldsig"

	bsaml "github.com/slobridge/slobridge/saml"
	"github.com/slobridge/slobridge/store"
)

// How the SAML app learns that its login ended.
const (
	EndedBySAMLRequest = "SAML LogoutRequest from the bridge (front-channel, HTTP-Redirect in an iframe)"
	EndedBySAMLSOAP    = "SAML LogoutRequest from the bridge over SOAP (back-channel)"
	EndedBySAMLHere    = "you logged out here (SP-initiated SAML logout)"
)

// The SAML app's single-logout endpoints: HTTP-Redirect (browser) and
// SOAP (the bridge's back channel, Bindings §3.2).
const (
	samlAppPathSLO     = "/saml/slo"
	samlAppPathSLOSOAP = "/saml/slo/soap"
)

// maxSOAPBody caps a SOAP LogoutRequest: a signed request with its
// certificate is a few kilobytes.
const maxSOAPBody = 64 << 10

// Session attributes the app keeps beside samlsp's: the NameID exactly as
// issued, which a LogoutRequest must repeat (Profiles §4.4.4.1).
const (
	attrNameIDFormat    = "NameIDFormat"
	attrNameQualifier   = "NameQualifier"
	attrSPNameQualifier = "SPNameQualifier"
	attrSessionIndex    = "SessionIndex"
)

// SAMLApp is the demo SAML service provider: crewjam's samlsp middleware
// for login (signed AuthnRequests, signed assertions, a JWT session
// cookie) plus single logout, which samlsp does not implement: a
// LogoutRequest from the bridge ends the login it names, whether it comes
// through the browser (/saml/slo, HTTP-Redirect) or server to server
// (/saml/slo/soap, SOAP: the only way the bridge can reach the app when
// an operator logs a user out and there is no browser), and "Log out"
// sends the bridge a signed LogoutRequest. The app registers both with the
// bridge, so a browser logout tells it twice; every notice after the first
// only adds to the list the page shows.
type SAMLApp struct {
	name   string
	base   string
	opts   samlsp.Options
	signer *bsaml.Signer
	v      *bsaml.Validator
	log    *slog.Logger

	mu     sync.Mutex
	mw     *samlsp.Middleware
	idp    bsaml.Trust
	idpSLO string
	// ended lists, per login (loginKey), how the app was told that it
	// ended, first notice first. The sessions are samlsp's signed cookies,
	// so a logout is remembered here and checked on every page view.
	ended   map[string][]string
	pending map[string]bool // our LogoutRequest IDs
}

// NewSAMLApp returns the app at base; Connect links it to the bridge.
func NewSAMLApp(name, base string, signer *bsaml.Signer, replay store.Store, logger *slog.Logger) (*SAMLApp, error) {
	u, err := url.Parse(base)
	if err != nil {
		return nil, fmt.Errorf("demo saml app: %w", err)
	}
	opts := samlsp.Options{URL: *u, Key: signer.Key, Certificate: signer.Cert, SignRequest: true,
		CookieName: "demo_saml_session", CookieSameSite: http.SameSiteLaxMode,
		LogoutBindings: []string{crewjam.HTTPRedirectBinding}}
	return &SAMLApp{name: name, base: base, opts: opts, signer: signer, v: &bsaml.Validator{Store: replay},
		log: logger, ended: map[string][]string{}, pending: map[string]bool{}}, nil
}

// MetadataXML is the SP's metadata, for the bridge's configuration:
// samlsp's, with a SOAP SingleLogoutService after the HTTP-Redirect one
// (samlsp publishes only browser bindings).
func (a *SAMLApp) MetadataXML() ([]byte, error) {
	sp := samlsp.DefaultServiceProvider(a.opts)
	configureSP(&sp)
	md := sp.Metadata()
	if len(md.SPSSODescriptors) != 1 {
		return nil, errors.New("demo saml app: samlsp metadata has no SPSSODescriptor")
	}
	d := &md.SPSSODescriptors[0]
	d.SingleLogoutServices = append(d.SingleLogoutServices,
		crewjam.Endpoint{Binding: crewjam.SOAPBinding, Location: a.base + samlAppPathSLOSOAP})
	b, err := xml.MarshalIndent(md, "", "  ")
	if err != nil {
		return nil, fmt.Errorf("demo saml app: metadata: %w", err)
	}
	return b, nil
}

// Connect fetches the bridge's IdP metadata and builds the middleware.
func (a *SAMLApp) Connect(ctx context.Context, idpMetadataURL string) error {
	u, err := url.Parse(idpMetadataURL)
	if err != nil {
		return fmt.Errorf("demo saml app: %w", err)
	}
	md, err := samlsp.FetchMetadata(ctx, http.DefaultClient, *u)
	if err != nil {
		return fmt.Errorf("demo saml app: bridge IdP metadata: %w", err)
	}
	if len(md.IDPSSODescriptors) == 0 {
		return errors.New("demo saml app: the bridge's metadata has no IDPSSODescriptor")
	}
	trust := bsaml.Trust{EntityID: md.EntityID}
	for _, kd := range md.IDPSSODescriptors[0].KeyDescriptors {
		if kd.Use != "" && kd.Use != "signing" {
			continue
		}
		for _, c := range kd.KeyInfo.X509Data.X509Certificates {
			cert, err := bsaml.ParseCertificateBase64(c.Data)
			if err != nil {
				return fmt.Errorf("demo saml app: bridge IdP certificate: %w", err)
			}
			trust.Certs = append(trust.Certs, cert)
		}
	}
	opts := a.opts
	opts.IDPMetadata = md
	mw, err := samlsp.New(opts)
	if err != nil {
		return fmt.Errorf("demo saml app: %w", err)
	}
	configureSP(&mw.ServiceProvider)
	sessions := samlsp.DefaultSessionProvider(opts)
	sessions.Codec = nameIDCodec{samlsp.DefaultSessionCodec(opts)}
	mw.Session = sessions
	slo := mw.ServiceProvider.GetSLOBindingLocation(crewjam.HTTPRedirectBinding)
	if len(trust.Certs) == 0 || slo == "" {
		return errors.New("demo saml app: the bridge's IdP metadata lacks a signing certificate or an HTTP-Redirect SLO endpoint")
	}
	a.mu.Lock()
	a.mw, a.idp, a.idpSLO = mw, trust, slo
	a.mu.Unlock()
	return nil
}

// configureSP sets what samlsp's options cannot: RSA-SHA256 for signed
// AuthnRequests (samlsp defaults to RSA-SHA1, which the bridge rightly
// refuses) and the email NameID format the bridge is configured to issue
// to this app (samlsp asks for transient by default).
func configureSP(sp *crewjam.ServiceProvider) {
	sp.SignatureMethod = dsig.RSASHA256SignatureMethod
	sp.AuthnNameIDFormat = crewjam.EmailAddressNameIDFormat
}

// nameIDCodec keeps the NameID's format and qualifiers in the session.
type nameIDCodec struct{ samlsp.JWTSessionCodec }

// New implements samlsp.SessionCodec.
func (c nameIDCodec) New(assertion *crewjam.Assertion) (samlsp.Session, error) {
	s, err := c.JWTSessionCodec.New(assertion)
	if err != nil {
		return nil, err
	}
	claims, ok := s.(samlsp.JWTSessionClaims)
	if !ok || assertion.Subject == nil || assertion.Subject.NameID == nil {
		return s, nil
	}
	n := assertion.Subject.NameID
	claims.Attributes[attrNameIDFormat] = []string{n.Format}
	claims.Attributes[attrNameQualifier] = []string{n.NameQualifier}
	claims.Attributes[attrSPNameQualifier] = []string{n.SPNameQualifier}
	return claims, nil
}

// Handler serves the app.
func (a *SAMLApp) Handler() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /{$}", a.home)
	mux.HandleFunc("GET /favicon.ico", noFavicon)
	mux.HandleFunc("GET /login", a.login)
	mux.HandleFunc("POST /logout", a.logout)
	mux.HandleFunc("GET /saml/metadata", a.metadata)
	mux.HandleFunc(samlAppPathSLO, a.handleSLO)
	mux.Handle(samlAppPathSLOSOAP, a.soapEndpoint())
	mux.HandleFunc("/saml/", func(w http.ResponseWriter, r *http.Request) {
		mw := a.middleware()
		if mw == nil {
			http.Error(w, "the app is not connected to the bridge yet", http.StatusServiceUnavailable)
			return
		}
		mw.ServeHTTP(w, r)
	})
	return mux
}

func (a *SAMLApp) middleware() *samlsp.Middleware {
	a.mu.Lock()
	defer a.mu.Unlock()
	return a.mw
}

// claims returns the browser's samlsp session.
func (a *SAMLApp) claims(r *http.Request) (samlsp.JWTSessionClaims, bool) {
	mw := a.middleware()
	if mw == nil {
		return samlsp.JWTSessionClaims{}, false
	}
	s, err := mw.Session.GetSession(r)
	if err != nil {
		return samlsp.JWTSessionClaims{}, false
	}
	c, ok := s.(samlsp.JWTSessionClaims)
	return c, ok
}

// loginKey names one login of the app: the NameID as issued (value,
// Format and qualifiers: SAML Core §8.3 compares them all) and the
// SessionIndex, empty for "every session of this NameID".
func loginKey(n bsaml.NameID, sessionIndex string) string {
	return strings.Join([]string{n.Format, n.NameQualifier, n.SPNameQualifier, n.Value, sessionIndex}, "\x00")
}

// claimsNameID is the NameID of a samlsp session, as the bridge issued it.
func claimsNameID(c samlsp.JWTSessionClaims) bsaml.NameID {
	return bsaml.NameID{Value: c.Subject, Format: c.Attributes.Get(attrNameIDFormat),
		NameQualifier: c.Attributes.Get(attrNameQualifier), SPNameQualifier: c.Attributes.Get(attrSPNameQualifier)}
}

// endLogins records that the logins of nameID with one of the session
// indexes (every login of nameID when there is none) ended, and how. It is
// idempotent: a notice already recorded for a login is not added again,
// and the first notice stays first, so being told twice (front and back
// channel) changes nothing but the list of notices.
func (a *SAMLApp) endLogins(nameID bsaml.NameID, indexes []string, how string) {
	if len(indexes) == 0 {
		indexes = []string{""}
	}
	a.mu.Lock()
	defer a.mu.Unlock()
	for _, idx := range indexes {
		k := loginKey(nameID, idx)
		if !slices.Contains(a.ended[k], how) {
			a.ended[k] = append(a.ended[k], how)
		}
	}
}

// endedBy lists how the login of c was reported ended, first notice
// first; empty while it lasts.
func (a *SAMLApp) endedBy(c samlsp.JWTSessionClaims) []string {
	n := claimsNameID(c)
	a.mu.Lock()
	defer a.mu.Unlock()
	var out []string
	for _, k := range []string{loginKey(n, c.Attributes.Get(attrSessionIndex)), loginKey(n, "")} {
		for _, how := range a.ended[k] {
			if !slices.Contains(out, how) {
				out = append(out, how)
			}
		}
	}
	return out
}

func (a *SAMLApp) home(w http.ResponseWriter, r *http.Request) {
	v := appView{App: a.name, Protocol: "SAML 2.0", SIDLabel: "SessionIndex (the bridge session as the bridge named it to this app)",
		Channel:          "SAML single logout (front-channel HTTP-Redirect, and SOAP back-channel when there is no browser)",
		LoggedOutJustNow: r.URL.Query().Get("logged_out") == "1"}
	if c, ok := a.claims(r); ok {
		v.User, v.Email, v.SID = c.Subject, c.Attributes.Get("email"), c.Attributes.Get(attrSessionIndex)
		if v.Notices = a.endedBy(c); len(v.Notices) > 0 {
			v.EndedBy = v.Notices[0]
		}
		v.LoggedIn = v.EndedBy == ""
	}
	renderApp(w, v)
}

// metadata serves MetadataXML, which samlsp's own /saml/metadata lacks
// the SOAP endpoint of.
func (a *SAMLApp) metadata(w http.ResponseWriter, _ *http.Request) {
	b, err := a.MetadataXML()
	if err != nil {
		a.log.Error("saml app: metadata", "err", err)
		http.Error(w, "internal error", http.StatusInternalServerError)
		return
	}
	w.Header().Set("Content-Type", "application/samlmetadata+xml")
	_, _ = w.Write(b)
}

func (a *SAMLApp) login(w http.ResponseWriter, r *http.Request) {
	mw := a.middleware()
	if mw == nil {
		http.Error(w, "the app is not connected to the bridge yet", http.StatusServiceUnavailable)
		return
	}
	// samlsp returns the browser to the URL that started the login; that
	// must be the home page, not /login (which would start over).
	home := r.Clone(r.Context())
	home.URL.Path, home.URL.RawQuery = "/", ""
	home.RequestURI = "/"
	mw.HandleStartAuthFlow(w, home)
}

// logout is SP-initiated logout: a signed LogoutRequest to the bridge
// with the NameID and SessionIndex of this login.
func (a *SAMLApp) logout(w http.ResponseWriter, r *http.Request) {
	c, ok := a.claims(r)
	if !ok || len(a.endedBy(c)) > 0 {
		http.Redirect(w, r, "/", http.StatusSeeOther)
		return
	}
	id, err := bsaml.NewID(rand.Reader)
	if err != nil {
		http.Error(w, "internal error", http.StatusInternalServerError)
		return
	}
	a.mu.Lock()
	slo, entityID := a.idpSLO, a.mw.ServiceProvider.EntityID
	if entityID == "" {
		entityID = a.mw.ServiceProvider.MetadataURL.String()
	}
	a.mu.Unlock()
	now := time.Now()
	lr := &bsaml.LogoutRequest{ID: id, IssueInstant: now, NotOnOrAfter: now.Add(10 * time.Minute),
		Destination: slo, Issuer: entityID, Reason: bsaml.ReasonUser, NameID: claimsNameID(c)}
	if idx := c.Attributes.Get(attrSessionIndex); idx != "" {
		lr.SessionIndexes = []string{idx}
	}
	loc, err := bsaml.RedirectURL(slo, bsaml.ParamRequest, lr.Element(), id, a.signer)
	if err != nil {
		http.Error(w, "internal error", http.StatusInternalServerError)
		return
	}
	a.mu.Lock()
	a.pending[id] = true
	a.mu.Unlock()
	a.endLogins(lr.NameID, lr.SessionIndexes, EndedBySAMLHere)
	http.Redirect(w, r, loc, http.StatusFound)
}

// handleSLO receives the bridge's LogoutRequest (in the logout page's
// iframe) or its LogoutResponse to our LogoutRequest.
func (a *SAMLApp) handleSLO(w http.ResponseWriter, r *http.Request) {
	ctx := r.Context()
	m, err := bsaml.ReadHTTP(r, bsaml.Limits{})
	if err != nil {
		http.Error(w, "not a SAML logout message", http.StatusBadRequest)
		return
	}
	a.mu.Lock()
	trust, slo := a.idp, a.idpSLO
	a.mu.Unlock()
	dest := a.base + samlAppPathSLO
	if !m.IsRequest() {
		a.mu.Lock()
		ok := a.pending[m.RelayState]
		delete(a.pending, m.RelayState)
		a.mu.Unlock()
		if !ok {
			http.Error(w, "unexpected logout response", http.StatusBadRequest)
			return
		}
		if _, err := a.v.LogoutResponse(ctx, m, trust, dest, m.RelayState); err != nil {
			a.log.WarnContext(ctx, "saml app: LogoutResponse refused", "err", err)
			http.Error(w, "the bridge's logout response was refused", http.StatusBadRequest)
			return
		}
		http.Redirect(w, r, "/?logged_out=1", http.StatusSeeOther)
		return
	}
	lr, err := a.v.LogoutRequest(ctx, m, trust, dest)
	status, sub := bsaml.StatusSuccess, ""
	if err != nil {
		var se *bsaml.Error
		if !errors.As(err, &se) {
			a.log.WarnContext(ctx, "saml app: LogoutRequest refused", "err", err)
			http.Error(w, "logout request refused", http.StatusBadRequest)
			return
		}
		a.log.WarnContext(ctx, "saml app: LogoutRequest refused", "err", err)
		status, sub = se.Status, se.SubStatus
	} else {
		a.endLogins(lr.NameID, lr.SessionIndexes, EndedBySAMLRequest)
	}
	id, err := bsaml.NewID(rand.Reader)
	if err != nil {
		http.Error(w, "internal error", http.StatusInternalServerError)
		return
	}
	resp := &bsaml.LogoutResponse{ID: id, IssueInstant: time.Now(), Destination: slo, Issuer: a.entityID(),
		Status: status, SubStatus: sub}
	if lr != nil {
		resp.InResponseTo = lr.ID
	} else {
		// Authenticated but refused (a status, not HTTP 400): the answer
		// still names the request.
		resp.InResponseTo = m.Root().SelectAttrValue("ID", "")
	}
	loc, err := bsaml.RedirectURL(slo, bsaml.ParamResponse, resp.Element(), m.RelayState, a.signer)
	if err != nil {
		http.Error(w, "internal error", http.StatusInternalServerError)
		return
	}
	http.Redirect(w, r, loc, http.StatusFound)
}

// entityID is the app's SAML entity ID (samlsp's default: the metadata
// URL).
func (a *SAMLApp) entityID() string {
	if mw := a.middleware(); mw != nil {
		if mw.ServiceProvider.EntityID != "" {
			return mw.ServiceProvider.EntityID
		}
		return mw.ServiceProvider.MetadataURL.String()
	}
	return a.opts.URL.JoinPath("saml", "metadata").String()
}

// soapEndpoint is the SOAP SingleLogoutService (Bindings §3.2, Profiles
// §4.4.3.3): the bridge's back channel, used when there is no browser (an
// operator's "log out everywhere") and alongside the front channel for
// browser logouts. Only a LogoutRequest signed by the bridge's IdP key,
// from the bridge, addressed to this endpoint (or to none, as SOAP
// allows), fresh and not seen before, is acted on (Validator.LogoutRequest);
// it ends the logins of its NameID with its SessionIndexes and is answered
// with a signed LogoutResponse in response to it. A request that cannot be
// authenticated gets a SOAP fault and changes nothing; an authenticated
// one that fails a protocol check gets a LogoutResponse with that status.
// A request for a login already ended is answered Success: the login is
// gone either way, and the bridge may tell the app by both channels.
func (a *SAMLApp) soapEndpoint() *soapLogout {
	return &soapLogout{log: a.log, what: "saml app", v: a.v, signer: a.signer,
		url: a.base + samlAppPathSLOSOAP, issuer: a.entityID,
		peer: func() (bsaml.Trust, string) {
			a.mu.Lock()
			defer a.mu.Unlock()
			return a.idp, "the app is not connected to the bridge yet"
		},
		end: func(_ context.Context, lr *bsaml.LogoutRequest) {
			a.endLogins(lr.NameID, lr.SessionIndexes, EndedBySAMLSOAP)
		},
	}
}
