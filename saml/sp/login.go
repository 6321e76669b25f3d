package sp

import (
	"cmp"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"errors"
	"fmt"
	"html/template"
	"io"
	"net/http"
	"net/url"
	"slices"
	"strings"

	"github.com/gin-gonic/gin"

	"github.com/slobridge/slobridge"
	"github.com/slobridge/slobridge/saml"
	"github.com/slobridge/slobridge/store"
)

// loginCookiePrefix names the cookie that binds an AuthnRequest's
// RelayState to the browser that started the login, so that a Response
// obtained by someone else cannot be replayed into this browser (login
// CSRF). One cookie per login: several tabs may log in at once.
const loginCookiePrefix = "slobridge_saml_"

// StartLogin implements slobridge.Authenticator: it sends the browser to
// the upstream IdP with a signed AuthnRequest. The upstream is the only
// one, the one whose Clients list the app asking (an OIDC client_id or a
// SAML SP entity ID, see clientsOf), or the one the person picks on the
// chooser page.
func (sp *SP) StartLogin(w http.ResponseWriter, r *http.Request, returnTo string) error {
	if !localPath(returnTo) {
		return fmt.Errorf("sp: returnTo %q is not a path on the bridge", returnTo)
	}
	reg := sp.reg.Load()
	if len(reg.order) == 0 {
		// Every upstream is unavailable (Unavailable): say so, and when to
		// come back, rather than show an empty chooser.
		w.Header().Set("Cache-Control", "no-store")
		w.Header().Set("Retry-After", slobridge.RetryAfter)
		w.Header().Set("Content-Security-Policy", "default-src 'none'")
		w.Header().Set("Content-Type", "text/html; charset=utf-8")
		w.WriteHeader(http.StatusServiceUnavailable)
		return msgPage.Execute(w, "The identity provider cannot be reached right now; try again in a minute.")
	}
	u := pickUpstream(reg, r, returnTo)
	if u == nil {
		token := sp.opts.Engine.NewID()
		if err := sp.putState(r.Context(), nsChoose, token, returnTo); err != nil {
			return err
		}
		w.Header().Set("Cache-Control", "no-store")
		http.Redirect(w, r, sp.url(PathLogin)+"?state="+url.QueryEscape(token), http.StatusSeeOther)
		return nil
	}
	return sp.sendAuthnRequest(w, r, u, returnTo)
}

// localPath accepts "/x..." but not "//host" or "/\host".
func localPath(p string) bool {
	return strings.HasPrefix(p, "/") && !strings.HasPrefix(p, "//") && !strings.HasPrefix(p, "/\\")
}

// pickUpstream chooses the upstream for a login: the only one, or the one
// whose Clients list the app asking for the login, else nil (chooser).
func pickUpstream(reg *registry, r *http.Request, returnTo string) *upstream {
	if len(reg.order) == 1 && len(reg.down) == 0 {
		return reg.order[0]
	}
	for _, client := range clientsOf(r, returnTo) {
		for _, u := range reg.order {
			if slices.Contains(u.cfg.Clients, client) {
				return u
			}
		}
	}
	return nil
}

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

// handleLogin is the chooser: GET ?state=T shows the upstreams, GET
// ?state=T&upstream=N starts the login there.
func (sp *SP) handleLogin(c *gin.Context) {
	ctx := c.Request.Context()
	token := c.Query("state")
	var returnTo string
	if err := sp.getState(ctx, nsChoose, token, &returnTo); err != nil {
		if errors.Is(err, store.ErrNotFound) {
			sp.page(c, http.StatusBadRequest, "This login has expired; go back to the application and try again.")
			return
		}
		sp.badRequest(c, "login state", err)
		return
	}
	reg := sp.reg.Load()
	name := c.Query("upstream")
	if name == "" {
		type choice struct{ Name, URL string }
		var cs []choice
		for _, u := range reg.order {
			cs = append(cs, choice{u.displayName(), sp.url(PathLogin) + "?state=" + url.QueryEscape(token) + "&upstream=" + url.QueryEscape(u.cfg.Name)})
		}
		for _, d := range reg.down {
			// Shown, without a link: the person learns why it is missing.
			cs = append(cs, choice{Name: cmp.Or(d.cfg.DisplayName, d.cfg.Name)})
		}
		c.Header("Cache-Control", "no-store")
		c.Header("Content-Security-Policy", "default-src 'none'")
		c.Header("Content-Type", "text/html; charset=utf-8")
		c.Status(http.StatusOK)
		_ = chooserPage.Execute(c.Writer, cs)
		return
	}
	u := reg.byName[name]
	if u == nil {
		sp.page(c, http.StatusBadRequest, "Unknown identity provider.")
		return
	}
	if err := sp.takeState(ctx, nsChoose, token, &returnTo); err != nil {
		sp.page(c, http.StatusBadRequest, "This login has expired; go back to the application and try again.")
		return
	}
	if err := sp.sendAuthnRequest(c.Writer, c.Request, u, returnTo); err != nil {
		sp.log.ErrorContext(ctx, "start SAML login", "upstream", name, "error", err)
		sp.failPage(c, err, "The login could not be started.")
	}
}

var chooserPage = template.Must(template.New("chooser").Parse(`<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>Sign in</title></head>
<body><h1>Sign in with</h1><ul>
{{range .}}<li>{{if .URL}}<a href="{{.URL}}">{{.Name}}</a>{{else}}{{.Name}} (unavailable right now){{end}}</li>
{{end}}</ul></body></html>`))

var msgPage = template.Must(template.New("msg").Parse(`<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>Single sign-on</title></head>
<body><p>{{.}}</p></body></html>`))
