package sp

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"errors"
	"fmt"
	"html/template"
	"io"
	"net/http"
	"net/url"
	"strings"

	"github.com/slobridge/slobridge"
	"github.com/slobridge/slobridge/saml"
)

// loginCookiePrefix names the cookie that binds an AuthnRequest's
// RelayState to the browser that started the login, so that a Response
// obtained by someone else cannot be replayed into this browser (login
// CSRF). One cookie per login: several tabs may log in at once.
const loginCookiePrefix = "slobridge_saml_"

// StartLogin implements slobridge.Authenticator: it sends the browser to
// an upstream IdP with a signed AuthnRequest. The SP's login router picks
// the upstream (slobridge.LoginRouter: idp_hint, login_hint domain, the
// app's default, the only one, or the chooser page at PathLogin).
func (sp *SP) StartLogin(w http.ResponseWriter, r *http.Request, returnTo string) error {
	return sp.router.StartLogin(w, r, returnTo)
}

// StartLoginAt sends the browser to the named upstream IdP, for a login
// router over upstreams of several protocols.
func (sp *SP) StartLoginAt(w http.ResponseWriter, r *http.Request, name, returnTo string) error {
	if !localPath(returnTo) {
		return fmt.Errorf("sp: returnTo %q is not a path on the bridge", returnTo)
	}
	u := sp.reg.Load().byName[name]
	if u == nil {
		why := "not configured"
		if w, ok := sp.Unavailable()[name]; ok {
			why = w
		}
		return fmt.Errorf("%w: sp: upstream %q: %s", slobridge.ErrUpstreamUnavailable, name, why)
	}
	return sp.sendAuthnRequest(w, r, u, returnTo)
}

// LoginUpstreams describes the SAML upstreams for a login router, in
// configuration order, those unavailable right now included.
func (sp *SP) LoginUpstreams() []slobridge.LoginUpstream {
	out := make([]slobridge.LoginUpstream, 0, len(sp.opts.Upstreams))
	for _, c := range sp.opts.Upstreams {
		name := c.Name
		lu := slobridge.LoginUpstream{Name: name, DisplayName: c.DisplayName, Domains: c.Domains, Clients: c.Clients,
			AllowedClients: c.AllowedClients,
			Start: func(w http.ResponseWriter, r *http.Request, returnTo string) error {
				return sp.StartLoginAt(w, r, name, returnTo)
			}}
		if lu.DisplayName == "" {
			lu.DisplayName = name
		}
		lu.Unavailable = func() error {
			if why, ok := sp.Unavailable()[name]; ok {
				return errors.New(why)
			}
			return nil
		}
		out = append(out, lu)
	}
	return out
}

// localPath accepts "/x..." but not "//host" or "/\host".
func localPath(p string) bool {
	return strings.HasPrefix(p, "/") && !strings.HasPrefix(p, "//") && !strings.HasPrefix(p, "/\\")
}

// ClientsOf names the app that asked for a login (clientsOf), for a
// login router.
func ClientsOf(r *http.Request, returnTo string) []string { return clientsOf(r, returnTo) }

// clientsOf names the app that asked for a login, from what the OpenID
// Provider and the SAML IdP hand to StartLogin: the client_id of an OIDC
// authorization request (in returnTo or in the request itself), or the
// Issuer of a SAML AuthnRequest in the request (HTTP-Redirect query or an
// already parsed HTTP-POST form). The IdP has authenticated the request;
// here the value only routes the login.
func clientsOf(r *http.Request, returnTo string) []string {
	var out []string
	add := func(s string) {
		if s != "" {
			out = append(out, s)
		}
	}
	if u, err := url.Parse(returnTo); err == nil {
		add(u.Query().Get("client_id"))
	}
	if r == nil {
		return out
	}
	q := r.URL.Query()
	add(q.Get("client_id"))
	if r.PostForm != nil {
		add(r.PostForm.Get("client_id"))
	}
	var m *saml.Message
	if q.Has(saml.ParamRequest) {
		m, _ = saml.DecodeRedirect(r.URL.RawQuery, saml.Limits{})
	} else if r.PostForm != nil && r.PostForm.Get(saml.ParamRequest) != "" {
		body := url.Values{saml.ParamRequest: {r.PostForm.Get(saml.ParamRequest)}}.Encode()
		m, _ = saml.DecodePOST(&http.Request{Body: io.NopCloser(strings.NewReader(body))}, saml.Limits{})
	}
	if m != nil {
		add(m.UnverifiedIssuer())
	}
	return out
}

func (sp *SP) loginMAC(relay string) string {
	m := hmac.New(sha256.New, sp.opts.Cookies.Secret)
	m.Write([]byte("slobridge-saml-login\x00" + relay))
	return base64.RawURLEncoding.EncodeToString(m.Sum(nil))
}

// sendAuthnRequest makes a signed AuthnRequest (Redirect binding with a
// query signature when the IdP offers it, else POST with an enveloped
// signature) and remembers it under an unguessable RelayState.
func (sp *SP) sendAuthnRequest(w http.ResponseWriter, r *http.Request, u *upstream, returnTo string) error {
	ep, ok := u.sso(saml.BindingRedirect, saml.BindingPOST)
	if !ok {
		return fmt.Errorf("sp: upstream %q offers no HTTP-Redirect or HTTP-POST SSO endpoint", u.cfg.Name)
	}
	// crewjam signs nothing here (no SignatureMethod): the signature is
	// made by the binding below.
	req, err := u.csp.MakeAuthenticationRequest(ep.Location, saml.BindingRedirect, saml.BindingPOST)
	if err != nil {
		return fmt.Errorf("sp: make AuthnRequest: %w", err)
	}
	// A login asked for while the browser holds an active bridge session
	// is a re-authentication (OIDC prompt=login or max_age, a downstream
	// ForceAuthn): the upstream must authenticate the user afresh rather
	// than answer from its own session (Core §3.4.1 ForceAuthn), and the
	// ACS keeps that bridge session for the same user.
	st := loginState{Upstream: u.cfg.Name, RequestID: req.ID, ReturnTo: returnTo}
	cur, err := sp.opts.Engine.ActiveSession(r.Context(), sp.opts.Cookies, r)
	switch {
	case err == nil:
		st.SessionID = cur.ID
		force := true
		req.ForceAuthn = &force
	case !errors.Is(err, slobridge.ErrNoSession):
		return fmt.Errorf("sp: read the browser's bridge session: %w", err)
	}
	relay := sp.opts.Engine.NewID()
	if err := sp.putState(r.Context(), nsLogin, relay, st); err != nil {
		return err
	}
	ck := &http.Cookie{Name: loginCookiePrefix + relay, Value: sp.loginMAC(relay), Path: "/",
		MaxAge: int(stateTTL.Seconds()), HttpOnly: true, Secure: sp.opts.Cookies.Secure}
	if sp.opts.Cookies.Secure {
		// The ACS is reached by a cross-site POST from the IdP.
		ck.SameSite = http.SameSiteNoneMode
	}
	http.SetCookie(w, ck)
	// Both bindings carry the AuthnRequest in this answer: Bindings
	// §3.4.5.1 (Redirect) and §3.5.5.1 (POST) want it kept out of caches.
	saml.NoCache(w.Header())
	el := req.Element()
	if ep.Binding == saml.BindingRedirect {
		to, err := saml.RedirectURL(ep.Location, saml.ParamRequest, el, relay, sp.opts.Signer)
		if err != nil {
			return err
		}
		http.Redirect(w, r, to, http.StatusSeeOther)
		return nil
	}
	signed, err := sp.opts.Signer.SignEnveloped(el)
	if err != nil {
		return err
	}
	return saml.WritePOSTForm(w, ep.Location, saml.ParamRequest, signed, relay)
}

var msgPage = template.Must(template.New("msg").Parse(`<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>Single sign-on</title></head>
<body><p>{{.}}</p></body></html>`))
