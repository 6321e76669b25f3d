package idp

import (
	"errors"
	"html/template"
	"net/http"

	"github.com/gin-gonic/gin"

	"github.com/slobridge/slobridge"
	bsaml "github.com/slobridge/slobridge/saml"
)

// httpStatus maps an error of a request that cannot be answered in SAML
// to its HTTP status: 400 for anything the sender got wrong (malformed,
// unauthenticated, unknown SP, ACS not in metadata, replay, invalid), 500
// for our own failures.
func httpStatus(err error) int {
	switch {
	case errors.Is(err, ErrDisabledSP):
		return http.StatusForbidden
	case errors.Is(err, ErrUnknownSP), errors.Is(err, errACS), errors.Is(err, bsaml.ErrReplay):
		return http.StatusBadRequest
	}
	return bsaml.HTTPStatus(err)
}

// publicMessage is what the person sees for an error; details go to the
// log only.
func publicMessage(status int) string {
	if status == http.StatusForbidden {
		return "This application is disabled at the sign-in bridge; ask its administrators."
	}
	if status == http.StatusBadRequest {
		return "The sign-in or sign-out request from the application is not valid."
	}
	return "The bridge could not complete the request. Try again later."
}

// renderError logs err and shows the person an error page.
func (idp *IdP) renderError(c *gin.Context, err error) {
	st := httpStatus(err)
	if st >= 500 {
		idp.log.ErrorContext(c.Request.Context(), "saml idp request failed", "path", c.FullPath(), "error", err)
	} else {
		idp.log.WarnContext(c.Request.Context(), "saml idp request refused", "path", c.FullPath(), "error", err)
	}
	if msg, ok := slobridge.Unavailable(err); ok {
		idp.renderPage(c, slobridge.FailureStatus(c.Writer.Header(), err), msg)
		return
	}
	idp.renderPage(c, st, publicMessage(st))
}

var errorPage = template.Must(template.New("error").Parse(`<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>Request refused</title></head>
<body><h1>{{.}}</h1></body></html>`))

// renderPage writes a small HTML page with msg.
func (idp *IdP) renderPage(c *gin.Context, status int, msg string) {
	h := c.Writer.Header()
	h.Set("Cache-Control", "no-store")
	h.Set("Content-Security-Policy", "default-src 'none'; frame-ancestors 'self'")
	h.Set("Content-Type", "text/html; charset=utf-8")
	c.Status(status)
	_ = errorPage.Execute(c.Writer, msg)
}
