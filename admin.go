package slobridge

import (
	"crypto/sha256"
	"crypto/subtle"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"strings"

	"github.com/gin-gonic/gin"

	"github.com/slobridge/slobridge/store"
)

// AdminPrefix is the path prefix of the admin API.
const AdminPrefix = "/admin/v1"

// DefaultAdminMaxBody caps admin request bodies when AdminOptions.MaxBody
// is zero. Admin requests are tiny JSON documents; anything larger is a
// mistake or an attack and is refused with 413 before it is parsed.
const DefaultAdminMaxBody = 64 << 10

// AdminOptions configure the admin API.
type AdminOptions struct {
	// Engine performs the logouts and status queries. Required.
	Engine *Engine
	// Token is the bearer token every admin request must carry
	// (Authorization: Bearer …). Required: an empty token would open the
	// API to anyone, so NewAdmin refuses it.
	Token string
	// TokenName names the token in the logout's initiator ID and the logs
	// (never the token itself); default "admin".
	TokenName string
	// MaxBody caps request bodies in bytes; default DefaultAdminMaxBody.
	MaxBody int64
	// Logger defaults to slog.Default().
	Logger *slog.Logger
}

// Admin is the operator API under AdminPrefix:
//
//	GET  /admin/v1/users/{user}/sessions   the user's sessions (404 when none)
//	POST /admin/v1/logouts                 {"session_id":"…"} or {"user_id":"…"}
//	GET  /admin/v1/logouts/{id}            the logout's delivery status
//	POST /admin/v1/logouts/{id}/retry      reset failed deliveries to pending
//
// Every request needs the bearer token; errors are JSON documents
// {"error":"…","error_description":"…"} with 400, 401, 404, 409, 413 or
// 500, and a refused request changes nothing.
type Admin struct {
	opts      AdminOptions
	tokenHash [sha256.Size]byte
}

// NewAdmin validates opts and returns the admin API.
func NewAdmin(opts AdminOptions) (*Admin, error) {
	if opts.Engine == nil {
		return nil, errors.New("slobridge: admin API needs an engine")
	}
	if opts.Token == "" {
		return nil, errors.New("slobridge: admin API needs a token")
	}
	if opts.TokenName == "" {
		opts.TokenName = "admin"
	}
	if opts.MaxBody <= 0 {
		opts.MaxBody = DefaultAdminMaxBody
	}
	if opts.Logger == nil {
		opts.Logger = slog.Default()
	}
	return &Admin{opts: opts, tokenHash: sha256.Sum256([]byte(opts.Token))}, nil
}

// Mount registers the admin routes under AdminPrefix on r and returns the
// authenticated, body-capped route group, on which the wiring adds the
// admin routes of protocol packages (receivers, SAML SPs).
func (a *Admin) Mount(r gin.IRouter) *gin.RouterGroup {
	g := r.Group(AdminPrefix, a.authenticate, a.limitBody)
	g.GET("/users/:user_id/sessions", a.handleUserSessions)
	g.POST("/logouts", a.handleLogout)
	g.GET("/logouts/:logout_id", a.handleStatus)
	g.POST("/logouts/:logout_id/retry", a.handleRetry)
	return g
}

// WriteAdminError answers an admin request with a JSON AdminError and
// aborts the handler chain.
func WriteAdminError(c *gin.Context, status int, code, desc string) {
	adminError(c, status, code, desc)
}

// DecodeAdminJSON decodes an admin request body holding exactly one JSON
// object with known fields only into v. On failure it has answered 400 (or
// 413 for a body over the cap) and returns false.
func DecodeAdminJSON(c *gin.Context, v any) bool {
	status, aerr := decodeStrict(c.Request.Body, v)
	if status != 0 {
		adminError(c, status, aerr.Error, aerr.Description)
		return false
	}
	return true
}

// decodeStrict decodes one JSON object with known fields only.
func decodeStrict(r io.Reader, v any) (int, AdminError) {
	dec := json.NewDecoder(r)
	dec.DisallowUnknownFields()
	err := dec.Decode(v)
	if err == nil {
		if _, terr := dec.Token(); !errors.Is(terr, io.EOF) {
			err = terr
			if err == nil {
				err = errors.New("body must hold exactly one JSON object")
			}
		}
	}
	if err == nil {
		return 0, AdminError{}
	}
	var tooBig *http.MaxBytesError
	if errors.As(err, &tooBig) {
		return http.StatusRequestEntityTooLarge, AdminError{"request_too_large", fmt.Sprintf("request body exceeds %d bytes", tooBig.Limit)}
	}
	return http.StatusBadRequest, AdminError{"invalid_request", "body is not a valid JSON request: " + err.Error()}
}

// AdminError is the JSON body of every admin API error.
type AdminError struct {
	Error       string `json:"error"`
	Description string `json:"error_description"`
}

func adminError(c *gin.Context, status int, code, desc string) {
	c.Header("Cache-Control", "no-store")
	c.AbortWithStatusJSON(status, AdminError{Error: code, Description: desc})
}

// authenticate checks the bearer token. Both sides are hashed before the
// constant-time comparison so that neither the content nor the length of
// the configured token leaks through timing.
func (a *Admin) authenticate(c *gin.Context) {
	h := c.GetHeader("Authorization")
	scheme, tok, ok := strings.Cut(h, " ")
	if !ok || !strings.EqualFold(scheme, "Bearer") || tok == "" {
		c.Header("WWW-Authenticate", `Bearer realm="slobridge-admin"`)
		adminError(c, http.StatusUnauthorized, "unauthorized", "a bearer token is required")
		return
	}
	got := sha256.Sum256([]byte(strings.TrimSpace(tok)))
	if subtle.ConstantTimeCompare(got[:], a.tokenHash[:]) != 1 {
		c.Header("WWW-Authenticate", `Bearer realm="slobridge-admin", error="invalid_token"`)
		a.opts.Logger.WarnContext(c.Request.Context(), "admin API: wrong token", "remote", c.ClientIP(), "path", c.FullPath())
		adminError(c, http.StatusUnauthorized, "invalid_token", "the bearer token is not valid")
		return
	}
	c.Next()
}

// limitBody refuses a declared oversized body at once and caps the rest.
func (a *Admin) limitBody(c *gin.Context) {
	if c.Request.ContentLength > a.opts.MaxBody {
		adminError(c, http.StatusRequestEntityTooLarge, "request_too_large",
			fmt.Sprintf("request body exceeds %d bytes", a.opts.MaxBody))
		return
	}
	c.Request.Body = http.MaxBytesReader(c.Writer, c.Request.Body, a.opts.MaxBody)
	c.Next()
}

// AdminLogoutRequest is the body of POST /admin/v1/logouts: exactly one of
// SessionID or UserID.
type AdminLogoutRequest struct {
	SessionID string `json:"session_id,omitempty"`
	UserID    string `json:"user_id,omitempty"`
}

// AdminSessions is the answer of GET /admin/v1/users/{user}/sessions.
type AdminSessions struct {
	UserID   string         `json:"user_id"`
	Sessions []AdminSession `json:"sessions"`
}

// AdminSession is one session of a user with its state and participants
// (the session's own fields are inlined).
type AdminSession struct {
	store.Session
	// Active is true when the session is neither ended nor expired.
	Active       bool                `json:"active"`
	Participants []store.Participant `json:"participants"`
}

// AdminLogoutResponse is the answer of POST /admin/v1/logouts.
type AdminLogoutResponse struct {
	Logout store.Logout `json:"logout"`
	// StatusURL is the path of the logout's status in this API.
	StatusURL string `json:"status_url"`
}

// AdminRetryResponse is the answer of POST /admin/v1/logouts/{id}/retry.
type AdminRetryResponse struct {
	LogoutID string `json:"logout_id"`
	Reset    int    `json:"reset"`
}

func (a *Admin) handleUserSessions(c *gin.Context) {
	ctx := c.Request.Context()
	user := c.Param("user_id")
	ss, err := a.opts.Engine.Store().ListSessionsByUser(ctx, user)
	if err != nil {
		a.internal(c, "list sessions", err)
		return
	}
	if len(ss) == 0 {
		adminError(c, http.StatusNotFound, "not_found", "the user has no sessions")
		return
	}
	out := AdminSessions{UserID: user, Sessions: make([]AdminSession, 0, len(ss))}
	now := a.opts.Engine.Now()
	for _, s := range ss {
		ps, err := a.opts.Engine.Store().ListParticipants(ctx, s.ID)
		if err != nil {
			a.internal(c, "list participants", err)
			return
		}
		out.Sessions = append(out.Sessions, AdminSession{Session: s, Active: s.Active(now), Participants: ps})
	}
	c.Header("Cache-Control", "no-store")
	c.JSON(http.StatusOK, out)
}

// decodeLogoutRequest reads and checks the logout body: one JSON object,
// known fields only, exactly one target.
func decodeLogoutRequest(r io.Reader) (AdminLogoutRequest, int, AdminError) {
	var req AdminLogoutRequest
	if status, aerr := decodeStrict(r, &req); status != 0 {
		return req, status, aerr
	}
	if (req.SessionID == "") == (req.UserID == "") {
		return req, http.StatusBadRequest, AdminError{"invalid_request", "give exactly one of session_id and user_id"}
	}
	return req, 0, AdminError{}
}

func (a *Admin) handleLogout(c *gin.Context) {
	ctx := c.Request.Context()
	req, status, aerr := decodeLogoutRequest(c.Request.Body)
	if status != 0 {
		adminError(c, status, aerr.Error, aerr.Description)
		return
	}
	lr := LogoutRequest{Initiator: store.Initiator{Kind: store.InitiatorAdmin, ID: a.opts.TokenName}}
	if req.SessionID != "" {
		lr.SessionIDs = []string{req.SessionID}
	} else {
		ss, err := a.opts.Engine.Store().ListSessionsByUser(ctx, req.UserID)
		if err != nil {
			a.internal(c, "list sessions", err)
			return
		}
		if len(ss) == 0 {
			adminError(c, http.StatusNotFound, "not_found", "the user has no sessions")
			return
		}
		lr.UserID = req.UserID
	}
	lo, err := a.opts.Engine.Logout(ctx, lr)
	switch {
	case errors.Is(err, store.ErrNotFound):
		adminError(c, http.StatusNotFound, "not_found", "no such session")
		return
	case err != nil:
		a.internal(c, "logout", err)
		return
	case len(lo.SessionIDs) == 0:
		adminError(c, http.StatusConflict, "no_active_session", "nothing to log out: the session(s) already ended or expired")
		return
	}
	a.opts.Logger.InfoContext(ctx, "admin logout", "logout_id", lo.ID, "token", a.opts.TokenName,
		"sessions", len(lo.SessionIDs), "by_user", req.UserID != "")
	c.Header("Cache-Control", "no-store")
	c.Header("Location", AdminPrefix+"/logouts/"+lo.ID)
	c.JSON(http.StatusCreated, AdminLogoutResponse{Logout: lo, StatusURL: AdminPrefix + "/logouts/" + lo.ID})
}

func (a *Admin) handleStatus(c *gin.Context) {
	st, err := a.opts.Engine.Status(c.Request.Context(), c.Param("logout_id"))
	switch {
	case errors.Is(err, store.ErrNotFound):
		adminError(c, http.StatusNotFound, "not_found", "no such logout")
		return
	case err != nil:
		a.internal(c, "logout status", err)
		return
	}
	c.Header("Cache-Control", "no-store")
	c.JSON(http.StatusOK, st)
}

func (a *Admin) handleRetry(c *gin.Context) {
	id := c.Param("logout_id")
	n, err := a.opts.Engine.RetryFailed(c.Request.Context(), id)
	switch {
	case errors.Is(err, store.ErrNotFound):
		adminError(c, http.StatusNotFound, "not_found", "no such logout")
		return
	case err != nil:
		a.internal(c, "retry", err)
		return
	}
	c.Header("Cache-Control", "no-store")
	c.JSON(http.StatusOK, AdminRetryResponse{LogoutID: id, Reset: n})
}

// internal logs err and answers 500 (503 when the store is unavailable)
// without its detail.
func (a *Admin) internal(c *gin.Context, op string, err error) {
	a.opts.Logger.ErrorContext(c.Request.Context(), "admin API: "+op, "err", err)
	if msg, ok := Unavailable(err); ok {
		c.Header("Retry-After", RetryAfter)
		adminError(c, http.StatusServiceUnavailable, "unavailable", msg)
		return
	}
	adminError(c, http.StatusInternalServerError, "server_error", "internal error; see the server log")
}
