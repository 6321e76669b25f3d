package saml

import (
	"crypto/rand"
	"encoding/base64"
	"errors"
	"html/template"
	"io"
	"net/http"
	"net/url"
	"slices"
	"strings"

	"github.com/beevik/etree"
)

// DecodePOST decodes an HTTP-POST binding message (Bindings §3.5) from a
// form body of at most lim.MaxBody bytes: SAMLRequest or SAMLResponse,
// base64 without DEFLATE, and RelayState.
func DecodePOST(r *http.Request, lim Limits) (*Message, error) {
	body, err := io.ReadAll(io.LimitReader(r.Body, lim.body()+1))
	if err != nil {
		return nil, malformed("read body: %v", err)
	}
	if int64(len(body)) > lim.body() {
		return nil, malformed("body larger than %d bytes", lim.body())
	}
	form, err := url.ParseQuery(string(body))
	if err != nil {
		return nil, malformed("form: %v", err)
	}
	for _, k := range []string{ParamRequest, ParamResponse, ParamRelayState} {
		if len(form[k]) > 1 {
			return nil, malformed("form field %s repeated", k)
		}
	}
	param := ParamRequest
	switch {
	case form.Has(ParamRequest) && form.Has(ParamResponse):
		return nil, malformed("both SAMLRequest and SAMLResponse present")
	case form.Has(ParamResponse):
		param = ParamResponse
	case !form.Has(ParamRequest):
		return nil, malformed("no SAMLRequest or SAMLResponse field")
	}
	xmlData, err := decodeBase64(form.Get(param))
	if err != nil {
		return nil, err
	}
	m, err := newMessage(BindingPOST, param, trimBOM(xmlData), lim)
	if err != nil {
		return nil, err
	}
	m.RelayState = form.Get(ParamRelayState)
	if len(m.RelayState) > MaxRelayStateEcho {
		return nil, malformed("RelayState longer than %d bytes", MaxRelayStateEcho)
	}
	return m, nil
}

// postForm is the auto-submitting form of the HTTP-POST binding. The
// <noscript> button lets a browser without JavaScript continue.
var postForm = template.Must(template.New("post").Parse(`<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>Continue</title></head>
<body>
<form id="saml" method="post" action="{{.URL}}">
<input type="hidden" name="{{.Param}}" value="{{.Value}}">
{{if .RelayState}}<input type="hidden" name="RelayState" value="{{.RelayState}}">{{end}}
<noscript><p>JavaScript is off: press the button to continue.</p><button type="submit">Continue</button></noscript>
</form>
<script nonce="{{.Nonce}}">document.getElementById("saml").submit();</script>
</body></html>`))

// POSTValue returns the base64 form value of a (signed) protocol message
// for the HTTP-POST binding.
func POSTValue(el *etree.Element) (string, error) {
	doc := etree.NewDocument()
	doc.SetRoot(el.Copy())
	b, err := doc.WriteToBytes()
	if err != nil {
		return "", err
	}
	return base64.StdEncoding.EncodeToString(b), nil
}

// WritePOSTForm answers with the auto-submitting HTML form that carries the
// protocol message el (already signed with Signer.SignEnveloped) to
// endpoint by the HTTP-POST binding (Bindings §3.5.4). The page's CSP
// allows only its own nonce-bearing script and a form post to endpoint,
// whose answer may come back to the bridge (FormAction).
func WritePOSTForm(w http.ResponseWriter, endpoint, param string, el *etree.Element, relayState string) error {
	return WritePOSTFormFramed(w, endpoint, param, el, relayState, nil)
}

// WritePOSTFormFramed is WritePOSTForm for a page that may render inside
// an iframe of the given origins (frame-ancestors; 'none' when empty): the
// LogoutResponse to an IdP that propagates logout in iframes of its own
// page. Only bare http(s) origins are kept.
func WritePOSTFormFramed(w http.ResponseWriter, endpoint, param string, el *etree.Element, relayState string, frameAncestors []string) error {
	if len(relayState) > MaxRelayStateEcho {
		return errors.New("saml: RelayState too long")
	}
	u, err := url.Parse(endpoint)
	if err != nil || (u.Scheme != "https" && u.Scheme != "http") || u.Host == "" {
		return errors.New("saml: POST endpoint is not an absolute http(s) URL")
	}
	v, err := POSTValue(el)
	if err != nil {
		return err
	}
	var nb [16]byte
	if _, err := rand.Read(nb[:]); err != nil {
		return err
	}
	nonce := base64.RawStdEncoding.EncodeToString(nb[:])
	h := w.Header()
	h.Set("Content-Type", "text/html; charset=utf-8")
	NoCache(h)
	h.Set("Content-Security-Policy", "default-src 'none'; script-src 'nonce-"+nonce+"'; form-action "+FormAction(endpoint)+"; base-uri 'none'; frame-ancestors "+ancestorList(frameAncestors))
	h.Set("Referrer-Policy", "no-referrer")
	w.WriteHeader(http.StatusOK)
	return postForm.Execute(w, struct {
		URL                             template.URL
		Param, Value, RelayState, Nonce string
	}{template.URL(endpoint), param, v, relayState, nonce})
}

// SendFront sends the unsigned protocol message el to loc through the
// browser, the one front-channel sender of both sides of the bridge: by
// HTTP-Redirect with a query signature (303 See Other, right after a GET
// or a POST), or by HTTP-POST with an enveloped signature in an
// auto-submitting form that the origins of frameAncestors may frame
// (none when empty). The answer is never cached (NoCache).
func SendFront(w http.ResponseWriter, r *http.Request, binding, loc, param string, el *etree.Element, relay string,
	signer *Signer, frameAncestors ...string) error {
	NoCache(w.Header())
	if binding == BindingRedirect {
		to, err := RedirectURL(loc, param, el, relay, signer)
		if err != nil {
			return err
		}
		http.Redirect(w, r, to, http.StatusSeeOther)
		return nil
	}
	signed, err := signer.SignEnveloped(el)
	if err != nil {
		return err
	}
	return WritePOSTFormFramed(w, loc, param, signed, relay, frameAncestors)
}

// FormAction is the CSP form-action source list of a page that posts a
// SAML message to endpoint: the endpoint's origin, and 'self', the
// bridge. Chromium applies form-action to every redirect that follows the
// form submission, and a peer may answer a POSTed message with an
// HTTP-Redirect one (Bindings §3.4 and §3.5 let it choose): its 302 sends
// the browser back to the bridge, which must be allowed. Nothing else is.
func FormAction(endpoint string) string {
	if o := Origin(endpoint); o != "" {
		return "'self' " + o
	}
	return "'self'"
}

// NoCache sets the headers that keep HTTP caches and the browser from
// storing a response that carries a SAML protocol message: Cache-Control
// "no-cache, no-store" and Pragma "no-cache" (Bindings §3.4.5.1 for
// HTTP-Redirect, §3.5.5.1 for HTTP-POST; the SOAP answers get them too).
func NoCache(h http.Header) {
	h.Set("Cache-Control", "no-cache, no-store")
	h.Set("Pragma", "no-cache")
}

// ancestorList is a CSP frame-ancestors source list: the distinct bare
// http(s) origins of origins, or 'none'.
func ancestorList(origins []string) string {
	var out []string
	for _, o := range origins {
		if Origin(o) == o && o != "" && !slices.Contains(out, o) {
			out = append(out, o)
		}
	}
	if len(out) == 0 {
		return "'none'"
	}
	return strings.Join(out, " ")
}

// Origin returns the origin (scheme://host[:port]) of an absolute http(s)
// URL, or "" for anything else (relative, other schemes, no host, a host
// with characters no origin has).
func Origin(raw string) string {
	u, err := url.Parse(raw)
	if err != nil || (u.Scheme != "https" && u.Scheme != "http") || u.Host == "" || u.User != nil ||
		strings.ContainsAny(u.Host, "*;',\" \t") {
		return ""
	}
	return u.Scheme + "://" + u.Host
}
