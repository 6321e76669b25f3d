// Package admin is the operator API of the bridge, all of it in one
// place: sessions, logouts with their status and outcome, retries, SSF
// receivers and SAML SP registration, behind a bearer token. The CLI
// (slobridge admin) is its client.
package admin

import (
	"context"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/gin-gonic/gin"

	"github.com/slobridge/slobridge"
	"github.com/slobridge/slobridge/saml/idp"
	"github.com/slobridge/slobridge/store"
)

// Prefix is the path prefix of the admin API.
const Prefix = "/admin/v1"

// DefaultMaxBody caps admin request bodies when Options.MaxBody
// is zero. Admin requests are tiny JSON documents; anything larger is a
// mistake or an attack and is refused with 413 before it is parsed.
const DefaultMaxBody = 64 << 10

// Options configure the admin API.
type Options struct {
	// Engine performs the logouts and status queries. Required.
	Engine *slobridge.Engine
	// Token is the bearer token every admin request must carry
	// (Authorization: Bearer …). Required: an empty token would open the
	// API to anyone, so New refuses it.
	Token string
	// TokenName names the token in the logout's initiator ID and the logs
	// (never the token itself); default "admin".
	TokenName string
	// MaxBody caps request bodies in bytes; default DefaultMaxBody.
	MaxBody int64
	// SAMLIdP, when set, serves POST /admin/v1/saml/sps (SAML SP
	// registration); nil when the bridge is no SAML IdP.
	SAMLIdP *idp.IdP
	// Upstreams names the upstream IdPs, so that GET users/{user}/sessions
	// also finds a user by the NameID an upstream knows them by.
	Upstreams []string
	// UpstreamState describes the upstream IdPs and whether each is
	// usable now, for GET /admin/v1/upstreams; nil lists none.
	UpstreamState func() []Upstream
	// ReceiversAllowHTTP accepts http:// push URLs for SSF receivers
	// (ssf.allow_http, development only).
	ReceiversAllowHTTP bool
	// Logger defaults to slog.Default().
	Logger *slog.Logger
}

// API is the operator API under Prefix:
//
//	GET  /admin/v1/users/{user}/sessions   the user's sessions (404 when none)
//	POST /admin/v1/logouts                 {"session_id":"…"} or {"user_id":"…"}
//	GET    /admin/v1/logouts               the logouts, newest first (?limit, before_time, before_id)
//	GET    /admin/v1/logouts/{id}          the logout's status and outcome
//	POST   /admin/v1/logouts/{id}/retry    reset failed deliveries to pending
//	GET    /admin/v1/receivers             list SSF receivers (authorization redacted)
//	PUT    /admin/v1/receivers/{id}        register or replace a receiver
//	DELETE /admin/v1/receivers/{id}        remove a receiver
//	POST   /admin/v1/saml/sps              register a SAML SP from its metadata URL
//	GET    /admin/v1/upstreams             the upstream IdPs, their state and what to register there
//
// Every request needs the bearer token; errors are JSON documents
// {"error":"…","error_description":"…"} with 400, 401, 404, 409, 413 or
// 500, and a refused request changes nothing.
type API struct {
	opts      Options
	tokenHash [sha256.Size]byte
}

// New validates opts and returns the admin API.
func New(opts Options) (*API, error) {
	if opts.Engine == nil {
		return nil, errors.New("admin: admin API needs an engine")
	}
	if opts.Token == "" {
		return nil, errors.New("admin: admin API needs a token")
	}
	if opts.TokenName == "" {
		opts.TokenName = "admin"
	}
	if opts.MaxBody <= 0 {
		opts.MaxBody = DefaultMaxBody
	}
	if opts.Logger == nil {
		opts.Logger = slog.Default()
	}
	return &API{opts: opts, tokenHash: sha256.Sum256([]byte(opts.Token))}, nil
}

// Mount registers every admin route under Prefix on r, behind the bearer
// token and the body cap.
func (a *API) Mount(r gin.IRouter) {
	g := r.Group(Prefix, a.authenticate, a.limitBody)
	g.GET("/users/:user_id/sessions", a.handleUserSessions)
	g.POST("/logouts", a.handleLogout)
	g.GET("/logouts", a.handleListLogouts)
	g.GET("/logouts/:logout_id", a.handleStatus)
	g.POST("/logouts/:logout_id/retry", a.handleRetry)
	g.GET("/receivers", a.handleListReceivers)
	g.GET("/upstreams", a.handleUpstreams)
	g.PUT("/receivers/:id", a.handlePutReceiver)
	g.DELETE("/receivers/:id", a.handleDeleteReceiver)
	if a.opts.SAMLIdP != nil {
		g.POST("/saml/sps", a.handleRegisterSP)
	}
}

// handleUpstreams lists the upstream IdPs with their state.
func (a *API) handleUpstreams(c *gin.Context) {
	out := Upstreams{Upstreams: []Upstream{}}
	if a.opts.UpstreamState != nil {
		out.Upstreams = append(out.Upstreams, a.opts.UpstreamState()...)
	}
	c.Header("Cache-Control", "no-store")
	c.JSON(http.StatusOK, out)
}

// WriteError answers an admin request with a JSON Error and
// aborts the handler chain.
func WriteError(c *gin.Context, status int, code, desc string) {
	adminError(c, status, code, desc)
}

// DecodeJSON decodes an admin request body holding exactly one JSON
// object with known fields only into v. On failure it has answered 400 (or
// 413 for a body over the cap) and returns false.
func DecodeJSON(c *gin.Context, v any) bool {
	status, aerr := decodeStrict(c.Request.Body, v)
	if status != 0 {
		adminError(c, status, aerr.Error, aerr.Description)
		return false
	}
	return true
}

// decodeStrict decodes one JSON object with known fields only.
func decodeStrict(r io.Reader, v any) (int, Error) {
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
		return 0, Error{}
	}
	var tooBig *http.MaxBytesError
	if errors.As(err, &tooBig) {
		return http.StatusRequestEntityTooLarge, Error{"request_too_large", fmt.Sprintf("request body exceeds %d bytes", tooBig.Limit)}
	}
	return http.StatusBadRequest, Error{"invalid_request", "body is not a valid JSON request: " + err.Error()}
}

// Error is the JSON body of every admin API error.
type Error struct {
	Error       string `json:"error"`
	Description string `json:"error_description"`
}

func adminError(c *gin.Context, status int, code, desc string) {
	c.Header("Cache-Control", "no-store")
	c.AbortWithStatusJSON(status, Error{Error: code, Description: desc})
}

// authenticate checks the bearer token. Both sides are hashed before the
// constant-time comparison so that neither the content nor the length of
// the configured token leaks through timing.
func (a *API) authenticate(c *gin.Context) {
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
func (a *API) limitBody(c *gin.Context) {
	if c.Request.ContentLength > a.opts.MaxBody {
		adminError(c, http.StatusRequestEntityTooLarge, "request_too_large",
			fmt.Sprintf("request body exceeds %d bytes", a.opts.MaxBody))
		return
	}
	c.Request.Body = http.MaxBytesReader(c.Writer, c.Request.Body, a.opts.MaxBody)
	c.Next()
}

// LogoutRequest is the body of POST /admin/v1/logouts: exactly one of
// SessionID or UserID.
type LogoutRequest struct {
	SessionID string `json:"session_id,omitempty"`
	UserID    string `json:"user_id,omitempty"`
}

// Sessions is the answer of GET /admin/v1/users/{user}/sessions.
type Sessions struct {
	UserID   string    `json:"user_id"`
	Sessions []Session `json:"sessions"`
}

// Session is one session of a user with its state and participants
// (the session's own fields are inlined).
type Session struct {
	store.Session
	// Active is true when the session is neither ended nor expired.
	Active       bool                `json:"active"`
	Participants []store.Participant `json:"participants"`
}

// LogoutResponse is the answer of POST /admin/v1/logouts.
type LogoutResponse struct {
	Logout store.Logout `json:"logout"`
	// StatusURL is the path of the logout's status in this API.
	StatusURL string `json:"status_url"`
}

// RetryResponse is the answer of POST /admin/v1/logouts/{id}/retry.
type RetryResponse struct {
	LogoutID string `json:"logout_id"`
	Reset    int    `json:"reset"`
}

func (a *API) handleUserSessions(c *gin.Context) {
	ctx := c.Request.Context()
	user := c.Param("user_id")
	user, ss, err := FindUserSessions(ctx, a.opts.Engine.Store(), a.opts.Upstreams, user)
	if err != nil {
		a.internal(c, "find sessions", err)
		return
	}
	if len(ss) == 0 {
		adminError(c, http.StatusNotFound, "not_found", "the user has no sessions")
		return
	}
	out := Sessions{UserID: user, Sessions: make([]Session, 0, len(ss))}
	now := a.opts.Engine.Now()
	for _, s := range ss {
		ps, err := a.opts.Engine.Store().ListParticipants(ctx, s.ID)
		if err != nil {
			a.internal(c, "list participants", err)
			return
		}
		out.Sessions = append(out.Sessions, Session{Session: s, Active: s.Active(now), Participants: ps})
	}
	c.Header("Cache-Control", "no-store")
	c.JSON(http.StatusOK, out)
}

// FindUserSessions returns the sessions of the user q names: a user ID,
// else an email address the sessions carry, else the NameID one of the
// upstreams knows the user by (an operator often has only what the IdP or
// the person shows). It returns the user ID found; none when nothing
// matches.
func FindUserSessions(ctx context.Context, st store.Store, upstreams []string, q string) (string, []store.Session, error) {
	ss, err := st.ListSessionsByUser(ctx, q)
	if err != nil || len(ss) > 0 {
		return q, ss, err
	}
	found, err := st.FindSessionsByEmail(ctx, q)
	if err != nil {
		return "", nil, err
	}
	for _, up := range upstreams {
		if len(found) > 0 {
			break
		}
		if found, err = st.FindSessionsByNameID(ctx, up, store.NameID{Value: q}, ""); err != nil {
			return "", nil, err
		}
	}
	if len(found) == 0 {
		return "", nil, nil
	}
	user := found[len(found)-1].UserID
	ss, err = st.ListSessionsByUser(ctx, user)
	return user, ss, err
}

// decodeLogoutRequest reads and checks the logout body: one JSON object,
// known fields only, exactly one target.
func decodeLogoutRequest(r io.Reader) (LogoutRequest, int, Error) {
	var req LogoutRequest
	if status, aerr := decodeStrict(r, &req); status != 0 {
		return req, status, aerr
	}
	if (req.SessionID == "") == (req.UserID == "") {
		return req, http.StatusBadRequest, Error{"invalid_request", "give exactly one of session_id and user_id"}
	}
	return req, 0, Error{}
}

func (a *API) handleLogout(c *gin.Context) {
	ctx := c.Request.Context()
	req, status, aerr := decodeLogoutRequest(c.Request.Body)
	if status != 0 {
		adminError(c, status, aerr.Error, aerr.Description)
		return
	}
	lr := slobridge.LogoutRequest{Initiator: store.Initiator{Kind: store.InitiatorAdmin, ID: a.opts.TokenName}}
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
	c.Header("Location", Prefix+"/logouts/"+lo.ID)
	c.JSON(http.StatusCreated, LogoutResponse{Logout: lo, StatusURL: Prefix + "/logouts/" + lo.ID})
}

// Status is the answer of GET /admin/v1/logouts/{id}: the logout's
// status, each participant's state, and its outcome (Engine.Outcome, the
// one decision every answer about a logout uses).
type Status struct {
	slobridge.LogoutStatus
	Outcome Outcome `json:"outcome"`
}

// Outcome is how the logout went so far: Complete when every participant
// (and the upstream, when asked) confirmed; otherwise the legs that did not,
// with why. While deliveries are still retrying it is not complete.
type Outcome struct {
	Complete bool                  `json:"complete"`
	Failed   []slobridge.FailedLeg `json:"failed,omitempty"`
}

// outcome is the logout's outcome now (LogoutOutcome).
func (a *API) outcome(ctx context.Context, lo store.Logout) (slobridge.Outcome, error) {
	return LogoutOutcome(ctx, a.opts.Engine, lo)
}

// LogoutOutcome is a logout's outcome now, as every operator answer gives
// it (Engine.Outcome without waiting). Logouts an operator or the system
// started had no browser.
func LogoutOutcome(ctx context.Context, e *slobridge.Engine, lo store.Logout) (slobridge.Outcome, error) {
	browser := lo.Initiator.Kind != store.InitiatorAdmin && lo.Initiator.Kind != store.InitiatorSystem
	return e.Outcome(ctx, lo.ID, 0, browser)
}

// Default and largest page of GET /admin/v1/logouts.
const (
	defaultLogoutPage = 20
	maxLogoutPage     = 200
)

// handleListLogouts lists the logouts, newest first, a page at a time,
// each with its outcome.
func (a *API) handleListLogouts(c *gin.Context) {
	ctx := c.Request.Context()
	limit := defaultLogoutPage
	if v := c.Query("limit"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 1 || n > maxLogoutPage {
			adminError(c, http.StatusBadRequest, "invalid_request", fmt.Sprintf("limit must be a number from 1 to %d", maxLogoutPage))
			return
		}
		limit = n
	}
	var cur store.LogoutCursor
	if v := c.Query("before_time"); v != "" {
		t, err := time.Parse(time.RFC3339Nano, v)
		if err != nil || c.Query("before_id") == "" {
			adminError(c, http.StatusBadRequest, "invalid_request", "before_time must be an RFC 3339 time and come with before_id")
			return
		}
		cur = store.LogoutCursor{CreatedAt: t, ID: c.Query("before_id")}
	}
	los, err := a.opts.Engine.Store().ListLogouts(ctx, cur, limit)
	if err != nil {
		a.internal(c, "list logouts", err)
		return
	}
	out := Logouts{Logouts: make([]LogoutSummary, 0, len(los))}
	for _, lo := range los {
		oc, err := a.outcome(ctx, lo)
		if err != nil {
			a.internal(c, "logout outcome", err)
			return
		}
		out.Logouts = append(out.Logouts, LogoutSummary{ID: lo.ID, UserID: lo.UserID, Initiator: lo.Initiator,
			CreatedAt: lo.CreatedAt, Sessions: len(lo.SessionIDs), Participants: len(lo.Participants),
			Done: oc.Status.Done, Complete: oc.Complete, Failed: len(oc.Failed)})
	}
	if len(los) == limit {
		last := los[len(los)-1]
		out.Next = Prefix + "/logouts?" + url.Values{"limit": {strconv.Itoa(limit)},
			"before_time": {last.CreatedAt.UTC().Format(time.RFC3339Nano)}, "before_id": {last.ID}}.Encode()
	}
	c.Header("Cache-Control", "no-store")
	c.JSON(http.StatusOK, out)
}

func (a *API) handleStatus(c *gin.Context) {
	ctx := c.Request.Context()
	id := c.Param("logout_id")
	lo, err := a.opts.Engine.Store().GetLogout(ctx, id)
	var out slobridge.Outcome
	if err == nil {
		out, err = a.outcome(ctx, lo)
	}
	st := out.Status
	switch {
	case errors.Is(err, store.ErrNotFound):
		adminError(c, http.StatusNotFound, "not_found", "no such logout")
		return
	case err != nil:
		a.internal(c, "logout status", err)
		return
	}
	c.Header("Cache-Control", "no-store")
	c.JSON(http.StatusOK, Status{LogoutStatus: st, Outcome: Outcome{Complete: out.Complete, Failed: out.Failed}})
}

func (a *API) handleRetry(c *gin.Context) {
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
	c.JSON(http.StatusOK, RetryResponse{LogoutID: id, Reset: n})
}

// internal logs err and answers 500 (503 when the store is unavailable)
// without its detail.
func (a *API) internal(c *gin.Context, op string, err error) {
	a.opts.Logger.ErrorContext(c.Request.Context(), "admin API: "+op, "err", err)
	if msg, ok := slobridge.Unavailable(err); ok {
		c.Header("Retry-After", slobridge.RetryAfter)
		adminError(c, http.StatusServiceUnavailable, "unavailable", msg)
		return
	}
	adminError(c, http.StatusInternalServerError, "server_error", "internal error; see the server log")
}
