package oidc

import (
	"crypto/sha256"
	"encoding/base64"
	"html/template"
	"net/http"
	"net/url"
	"sort"

	"github.com/gin-gonic/gin"
)

// Response modes of the authorization endpoint. query is the default of
// the code flow (OAuth 2.0 Multiple Response Type Encoding Practices
// §2.1); form_post (OAuth 2.0 Form Post Response Mode §2) is what
// ASP.NET Core's OpenID Connect handler, and so Microsoft.Identity.Web,
// asks for unless told otherwise.
const (
	ResponseModeQuery    = "query"
	ResponseModeFormPost = "form_post"
)

// responseModes are the response modes served, in discovery order.
var responseModes = []string{ResponseModeQuery, ResponseModeFormPost}

// formPostScript submits the form as soon as the page loads. Its hash is
// the only script the page's Content-Security-Policy allows. Framing is
// not forbidden: like the query-mode redirect, the page may answer a
// silent (prompt=none) request made in a hidden iframe, and it shows
// nothing to click.
const formPostScript = `document.forms[0].submit();`

var formPostCSP = func() string {
	sum := sha256.Sum256([]byte(formPostScript))
	return "default-src 'none'; script-src 'sha256-" + base64.StdEncoding.EncodeToString(sum[:]) +
		"'; base-uri 'none'"
}()

var formPostPage = template.Must(template.New("form_post").Parse(`<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>Signing in…</title></head>
<body><form method="post" action="{{.Action}}">
{{range .Fields}}<input type="hidden" name="{{.Name}}" value="{{.Value}}">
{{end}}<noscript><p>JavaScript is off: press the button to continue.</p><button type="submit">Continue</button></noscript>
</form><script>` + formPostScript + `</script></body></html>`))

type formField struct{ Name, Value string }

// authResponse delivers authorization response (or error) parameters to
// the validated redirect URI of r: appended to its query in a 302 by
// default, or, for response_mode=form_post, as hidden fields of an HTML
// form that the browser POSTs there (Form Post Response Mode §2). Both
// are marked not cacheable.
func (p *Provider) authResponse(c *gin.Context, r AuthRequest, q url.Values) {
	c.Header("Cache-Control", "no-store")
	c.Header("Pragma", "no-cache")
	if r.ResponseMode != ResponseModeFormPost {
		c.Redirect(http.StatusFound, addQuery(r.RedirectURI, q))
		return
	}
	names := make([]string, 0, len(q))
	for k := range q {
		names = append(names, k)
	}
	sort.Strings(names)
	fields := make([]formField, 0, len(names))
	for _, k := range names {
		for _, v := range q[k] {
			fields = append(fields, formField{k, v})
		}
	}
	c.Header("Content-Security-Policy", formPostCSP)
	c.Header("Content-Type", "text/html; charset=utf-8")
	c.Status(http.StatusOK)
	// The redirect URI was matched exactly against the registration, so it
	// is an absolute http(s) URL that html/template passes through intact.
	data := struct {
		Action string
		Fields []formField
	}{r.RedirectURI, fields}
	if err := formPostPage.Execute(c.Writer, data); err != nil {
		p.log.ErrorContext(c.Request.Context(), "render form_post response", "error", err)
	}
}
