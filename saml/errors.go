package saml

import (
	"errors"
	"fmt"
	"net/http"
)

// ErrMalformed reports input that is not a well-formed message of the
// binding: bad base64, bad DEFLATE, not XML, a DTD, too large, missing
// parameters. Nothing can be answered in SAML; the HTTP answer is 400.
var ErrMalformed = errors.New("saml: malformed message")

// ErrSignature reports a missing or invalid signature, a signature by a key
// that is not trusted, a refused algorithm, or a signature that does not
// cover the processed element. The sender is not authenticated, so the
// HTTP answer is 400 and no SAML response is sent.
var ErrSignature = errors.New("saml: signature not valid")

// ErrReplay reports a message ID seen before.
var ErrReplay = errors.New("saml: message ID replayed")

// Error is a validation failure of an authenticated message: the sender is
// known (its signature verified), so a SAML response with Status and
// SubStatus can be sent back (SAML Core §3.2.2.2). Errors that wrap
// ErrMalformed or ErrSignature are never *Error.
type Error struct {
	// Status is the top-level status code (StatusRequester,
	// StatusResponder, StatusVersionMismatch).
	Status string
	// SubStatus is the optional second-level code (StatusRequestDenied,
	// StatusUnknownPrincipal ...).
	SubStatus string
	// Err says what failed; it is for logs, not for the peer.
	Err error
}

// Error implements error.
func (e *Error) Error() string { return e.Err.Error() }

// Unwrap returns the underlying error.
func (e *Error) Unwrap() error { return e.Err }

func requester(sub string, format string, args ...any) error {
	return &Error{Status: StatusRequester, SubStatus: sub, Err: fmt.Errorf("saml: "+format, args...)}
}

func malformed(format string, args ...any) error {
	return fmt.Errorf("%w: "+format, append([]any{ErrMalformed}, args...)...)
}

func badSignature(format string, args ...any) error {
	return fmt.Errorf("%w: "+format, append([]any{ErrSignature}, args...)...)
}

// HTTPStatus maps a decode or validation error to the HTTP status to
// answer when no SAML response is sent: 400 for malformed or
// unauthenticated input and for authenticated but invalid requests, 500
// otherwise.
func HTTPStatus(err error) int {
	var se *Error
	switch {
	case errors.Is(err, ErrMalformed), errors.Is(err, ErrSignature), errors.As(err, &se):
		return http.StatusBadRequest
	}
	return http.StatusInternalServerError
}

// StatusOf returns the SAML status codes to answer for err: the codes of an
// *Error, or Responder for anything else.
func StatusOf(err error) (status, sub string) {
	var se *Error
	if errors.As(err, &se) {
		return se.Status, se.SubStatus
	}
	return StatusResponder, ""
}
