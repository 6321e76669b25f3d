package oidc

import (
	"errors"
	"fmt"
	"html/template"
	"net/http"
	"net/url"

	"github.com/gin-gonic/gin"

	"github.com/slobridge/slobridge"
)

// OAuth 2.0 and OpenID Connect error codes (RFC 6749 §4.1.2.1, §5.2;
// OpenID Connect Core §3.1.2.6; RFC 7591 §3.2.2; RFC 6750 §3.1).
const (
	ErrInvalidRequest          = "invalid_request"
	ErrUnauthorizedClient      = "unauthorized_client"
	ErrAccessDenied            = "access_denied"
	ErrUnsupportedResponseType = "unsupported_response_type"
	ErrInvalidScope            = "invalid_scope"
	ErrServerError             = "server_error"
	ErrInvalidClient           = "invalid_client"
	ErrInvalidGrant            = "invalid_grant"
	ErrUnsupportedGrantType    = "unsupported_grant_type"
	ErrLoginRequired           = "login_required"
	ErrRequestNotSupported     = "request_not_supported"
	ErrRequestURINotSupported  = "request_uri_not_supported"
	ErrInvalidRedirectURI      = "invalid_redirect_uri"
	ErrInvalidClientMetadata   = "invalid_client_metadata"
	ErrInvalidToken            = "invalid_token"
	// ErrTemporarilyUnavailable is RFC 6749 §4.1.2.1's code for a server
	// that cannot serve now; the bridge also answers it, with HTTP 503
	// and Retry-After, from the JSON endpoints while its store is
	// unreachable or out of space.
	ErrTemporarilyUnavailable = "temporarily_unavailable"
)

// Error is a protocol error: the OAuth error code and description the
// client sees, the HTTP status, and private detail that is only logged.
type Error struct {
	Code        string
	Description string
	Status      int
	// Err is the private cause; logged, never shown.
	Err error
}

// Error implements error.
func (e *Error) Error() string {
	if e.Err != nil {
		return fmt.Sprintf("%s: %s: %v", e.Code, e.Description, e.Err)
	}
	return e.Code + ": " + e.Description
}

// Unwrap returns the private cause.
func (e *Error) Unwrap() error { return e.Err }

func oauthErr(code string, status int, desc string) *Error {
	return &Error{Code: code, Description: desc, Status: status}
}

// serverErr is the answer to a failure of the bridge itself: 503
// temporarily_unavailable when the store is unreachable or out of space
// (the client may retry; a person is told why), 500 server_error for
// anything else.
func serverErr(err error) *Error {
	if msg, ok := slobridge.Unavailable(err); ok {
		return &Error{Code: ErrTemporarilyUnavailable, Status: http.StatusServiceUnavailable, Err: err, Description: msg}
	}
	return &Error{Code: ErrServerError, Description: "internal error", Status: http.StatusInternalServerError, Err: err}
}

// setRetryAfter adds Retry-After to a 503.
func setRetryAfter(c *gin.Context, oe *Error) {
	if oe.Status == http.StatusServiceUnavailable {
		c.Header("Retry-After", slobridge.RetryAfter)
	}
}

// asError converts any error into an *Error (a server error when it is not
// one already).
func asError(err error) *Error {
	var oe *Error
	if errors.As(err, &oe) {
		return oe
	}
	return serverErr(err)
}

// renderJSONError writes an OAuth error response (RFC 6749 §5.2) with
// Cache-Control: no-store.
func (p *Provider) renderJSONError(c *gin.Context, err error) {
	oe := asError(err)
	p.logError(c, oe)
	c.Header("Cache-Control", "no-store")
	c.Header("Pragma", "no-cache")
	if oe.Status == http.StatusUnauthorized && oe.Code == ErrInvalidClient {
		c.Header("WWW-Authenticate", `Basic realm="slobridge", charset="UTF-8"`)
	}
	if oe.Code == ErrInvalidToken {
		c.Header("WWW-Authenticate", fmt.Sprintf(`Bearer error=%q, error_description=%q`, oe.Code, oe.Description))
	}
	setRetryAfter(c, oe)
	c.JSON(oe.Status, gin.H{"error": oe.Code, "error_description": oe.Description})
}

// redirectError sends the browser back to the validated redirect URI of r
// with an authorization error (RFC 6749 §4.1.2.1), state and iss (RFC
// 9207), in r's response mode.
func (p *Provider) redirectError(c *gin.Context, r AuthRequest, err error) {
	oe := asError(err)
	p.logError(c, oe)
	q := url.Values{"error": {oe.Code}, "error_description": {oe.Description}, "iss": {p.opts.Issuer}}
	if r.State != "" {
		q.Set("state", r.State)
	}
	p.authResponse(c, r, q)
}

var errorPage = template.Must(template.New("error").Parse(`<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>Sign-in error</title></head>
<body><h1>Something went wrong</h1>
<p>{{.Description}}</p>
<p><small>Error: {{.Code}}</small></p>
</body></html>`))

// renderErrorPage shows an error to the person at the browser. It is used
// when the client or the redirect URI cannot be trusted, so the browser is
// never redirected (RFC 6749 §4.1.2.1; RP-Initiated Logout §3).
func (p *Provider) renderErrorPage(c *gin.Context, err error) {
	oe := asError(err)
	p.logError(c, oe)
	c.Header("Cache-Control", "no-store")
	c.Header("Content-Security-Policy", "default-src 'none'")
	c.Header("Content-Type", "text/html; charset=utf-8")
	setRetryAfter(c, oe)
	c.Status(oe.Status)
	if err := errorPage.Execute(c.Writer, oe); err != nil {
		p.log.ErrorContext(c.Request.Context(), "render error page", "error", err)
	}
}

func (p *Provider) logError(c *gin.Context, oe *Error) {
	ctx := c.Request.Context()
	if oe.Status >= 500 {
		p.log.ErrorContext(ctx, "oidc request failed", "path", c.FullPath(), "error_code", oe.Code, "error", oe.Error())
		return
	}
	p.log.InfoContext(ctx, "oidc request refused", "path", c.FullPath(), "error_code", oe.Code, "error", oe.Error())
}

// addQuery returns u with q added to its query, keeping what u already
// carries (OpenID Connect Core §3.1.2.5; Front-Channel Logout §2).
func addQuery(u string, q url.Values) string {
	pu, err := url.Parse(u)
	if err != nil {
		return u
	}
	if pu.RawQuery == "" {
		pu.RawQuery = q.Encode()
	} else {
		pu.RawQuery += "&" + q.Encode()
	}
	return pu.String()
}
