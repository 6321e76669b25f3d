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
	EndedBySAMLHere    = "you logged out here (SP-initiated SAML logout)"
)

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
// cookie) plus single logout at /saml/slo, which samlsp does not
// implement: a LogoutRequest from the bridge ends the login it names, and
// "Log out" sends the bridge a signed LogoutRequest.
type SAMLApp struct {
	name   string
	base   string
	opts   samlsp.Options
	signer *bsaml.Signer
	v      *bsaml.Validator
	log    *slog.Logger

	mu      sync.Mutex
	mw      *samlsp.Middleware
	idp     bsaml.Trust
	idpSLO  string
	ended   map[string]string // "idx:"+SessionIndex or "sub:"+NameID -> how
	pending map[string]bool   // our LogoutRequest IDs
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
		log: logger, ended: map[string]string{}, pending: map[string]bool{}}, nil
}

// MetadataXML is the SP's metadata, for the bridge's configuration.
func (a *SAMLApp) MetadataXML() ([]byte, error) {
	sp := samlsp.DefaultServiceProvider(a.opts)
	configureSP(&sp)
	b, err := xml.MarshalIndent(sp.Metadata(), "", "  ")
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
	mux.HandleFunc("GET /login", a.login)
	mux.HandleFunc("POST /logout", a.logout)
	mux.HandleFunc("/saml/slo", a.handleSLO)
	mux.HandleFunc("/saml/", func(w http.ResponseWriter, r *http.Request) { a.middleware().ServeHTTP(w, r) })
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

// endedBy says how the login of c ended, empty while it lasts.
func (a *SAMLApp) endedBy(c samlsp.JWTSessionClaims) string {
	a.mu.Lock()
	defer a.mu.Unlock()
	if how := a.ended["idx:"+c.Attributes.Get(attrSessionIndex)]; how != "" {
		return how
	}
	return a.ended["sub:"+c.Subject]
}

func (a *SAMLApp) home(w http.ResponseWriter, r *http.Request) {
	v := appView{App: a.name, Protocol: "SAML 2.0", Channel: "SAML single logout (front-channel, HTTP-Redirect)",
		LoggedOutJustNow: r.URL.Query().Get("logged_out") == "1"}
	if c, ok := a.claims(r); ok {
		v.User, v.Email, v.SID = c.Subject, c.Attributes.Get("email"), c.Attributes.Get(attrSessionIndex)
		v.EndedBy = a.endedBy(c)
		v.LoggedIn = v.EndedBy == ""
	}
	renderApp(w, v)
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
	if !ok || a.endedBy(c) != "" {
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
		Destination: slo, Issuer: entityID, Reason: bsaml.ReasonUser,
		NameID: bsaml.NameID{Value: c.Subject, Format: c.Attributes.Get(attrNameIDFormat),
			NameQualifier: c.Attributes.Get(attrNameQualifier), SPNameQualifier: c.Attributes.Get(attrSPNameQualifier)}}
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
	a.ended["idx:"+c.Attributes.Get(attrSessionIndex)] = EndedBySAMLHere
	a.mu.Unlock()
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
	dest := a.base + "/saml/slo"
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
	status := bsaml.StatusSuccess
	if err != nil {
		var se *bsaml.Error
		if !errors.As(err, &se) {
			a.log.WarnContext(ctx, "saml app: LogoutRequest refused", "err", err)
			http.Error(w, "logout request refused", http.StatusBadRequest)
			return
		}
		status = se.Status
	} else {
		a.mu.Lock()
		for _, idx := range lr.SessionIndexes {
			a.ended["idx:"+idx] = EndedBySAMLRequest
		}
		if len(lr.SessionIndexes) == 0 {
			a.ended["sub:"+lr.NameID.Value] = EndedBySAMLRequest
		}
		a.mu.Unlock()
	}
	id, err := bsaml.NewID(rand.Reader)
	if err != nil {
		http.Error(w, "internal error", http.StatusInternalServerError)
		return
	}
	entityID := a.opts.URL.JoinPath("saml", "metadata").String()
	if mw := a.middleware(); mw != nil {
		entityID = mw.ServiceProvider.MetadataURL.String()
	}
	resp := &bsaml.LogoutResponse{ID: id, IssueInstant: time.Now(), Destination: slo, Issuer: entityID, Status: status}
	if lr != nil {
		resp.InResponseTo = lr.ID
	}
	loc, err := bsaml.RedirectURL(slo, bsaml.ParamResponse, resp.Element(), m.RelayState, a.signer)
	if err != nil {
		http.Error(w, "internal error", http.StatusInternalServerError)
		return
	}
	http.Redirect(w, r, loc, http.StatusFound)
}
