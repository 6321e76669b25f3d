package console

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"html/template"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/gin-gonic/gin"

	"github.com/slobridge/slobridge"
	"github.com/slobridge/slobridge/cmd/internal/admin"
	"github.com/slobridge/slobridge/store"
)

// logoutPage is how many logouts the Logouts page lists at a time.
const logoutPage = 50

// stamp formats a time for people, UTC to the second.
func stamp(t time.Time) string {
	if t.IsZero() {
		return "—"
	}
	return t.UTC().Format("2006-01-02 15:04:05 UTC")
}

// sessionView is one session on the Sessions page.
type sessionView struct {
	store.Session
	State        string
	Participants []store.Participant
}

// sessionViews describes sessions with their state and participants;
// activeOnly leaves out those that ended or expired.
func (c *Console) sessionViews(ctx context.Context, ss []store.Session, activeOnly bool) ([]sessionView, error) {
	now := c.opts.Engine.Now()
	var out []sessionView
	for _, s := range ss {
		sv := sessionView{Session: s, State: "active"}
		switch {
		case !s.EndedAt.IsZero():
			sv.State = "ended"
		case !s.Active(now):
			sv.State = "expired"
		}
		if activeOnly && sv.State != "active" {
			continue
		}
		ps, err := c.opts.Engine.Store().ListParticipants(ctx, s.ID)
		if err != nil {
			return nil, err
		}
		sv.Participants = ps
		out = append(out, sv)
	}
	return out, nil
}

// sessionPage is how many sessions a search by upstream or app lists at
// a time.
const sessionPage = 50

// sessionsView is the Sessions page.
type sessionsView struct {
	// By is what Query names: "user" (a user ID, email address or
	// upstream NameID), "upstream" or "app".
	By, Query, UserID string
	Searched          bool
	Sessions          []sessionView
	Active            int
	// Next links to the page of older sessions (by upstream or app),
	// empty on the last.
	Next template.URL
}

// handleSessions finds sessions: a user's by user ID, email address or
// upstream NameID, or a page of those at an upstream or that an app
// joined; each with its participants.
func (c *Console) handleSessions(g *gin.Context) {
	ctx := g.Request.Context()
	v := sessionsView{By: g.DefaultQuery("by", "user"), Query: strings.TrimSpace(g.Query("q"))}
	if v.Query == "" {
		c.page(g, http.StatusOK, "sessions", v)
		return
	}
	v.Searched = true
	var ss []store.Session
	var err error
	switch v.By {
	case "user":
		v.UserID, ss, err = admin.FindUserSessions(ctx, c.opts.Engine.Store(), c.opts.Upstreams, v.Query)
	case "upstream", "app":
		f := store.SessionFilter{Upstream: v.Query}
		if v.By == "app" {
			f = store.SessionFilter{AppID: v.Query}
		}
		cur, ok := c.cursor(g, "Sessions")
		if !ok {
			return
		}
		ss, err = c.opts.Engine.Store().ListSessions(ctx, f, cur, sessionPage)
		if err == nil && len(ss) == sessionPage {
			last := ss[len(ss)-1]
			v.Next = c.nextPage("/", url.Values{"by": {v.By}, "q": {v.Query}}, last.CreatedAt, last.ID)
		}
	default:
		c.page(g, http.StatusBadRequest, "message", msgView{Title: "Sessions", Message: "Search by user, upstream or app."})
		return
	}
	if err != nil {
		c.fail(g, "find sessions", err)
		return
	}
	if v.Sessions, err = c.sessionViews(ctx, ss, false); err != nil {
		c.fail(g, "list participants", err)
		return
	}
	for _, sv := range v.Sessions {
		if sv.State == "active" {
			v.Active++
		}
	}
	c.page(g, http.StatusOK, "sessions", v)
}

// confirmView is the confirmation step of a logout.
type confirmView struct {
	// SessionID or UserID is what is logged out.
	SessionID, UserID string
	Sessions          []sessionView
}

// handleLogoutConfirm shows what a logout will end and asks for a reason.
func (c *Console) handleLogoutConfirm(g *gin.Context) {
	ctx := g.Request.Context()
	v := confirmView{SessionID: g.Query("session"), UserID: g.Query("user")}
	if (v.SessionID == "") == (v.UserID == "") {
		c.page(g, http.StatusBadRequest, "message", msgView{Title: "Log out", Message: "Say which session or which user to log out."})
		return
	}
	st := c.opts.Engine.Store()
	var ss []store.Session
	if v.SessionID != "" {
		s, err := st.GetSession(ctx, v.SessionID)
		if errors.Is(err, store.ErrNotFound) {
			c.page(g, http.StatusNotFound, "message", msgView{Title: "Log out", Message: "There is no such session."})
			return
		} else if err != nil {
			c.fail(g, "read the session", err)
			return
		}
		ss = []store.Session{s}
	} else {
		var err error
		if ss, err = st.ListSessionsByUser(ctx, v.UserID); err != nil {
			c.fail(g, "list the user's sessions", err)
			return
		}
	}
	var err error
	if v.Sessions, err = c.sessionViews(ctx, ss, true); err != nil {
		c.fail(g, "list participants", err)
		return
	}
	if len(v.Sessions) == 0 {
		c.page(g, http.StatusConflict, "message", msgView{Title: "Log out", Message: "Nothing to log out: no active session."})
		return
	}
	c.page(g, http.StatusOK, "confirm", v)
}

// handleLogout ends a session or every session of a user, with the
// operator's reason, and goes to that logout's live status.
func (c *Console) handleLogout(g *gin.Context) {
	ctx := g.Request.Context()
	op := g.MustGet(ctxOperator).(store.Session)
	f := g.Request.PostForm
	sid, user, reason := f.Get("session"), f.Get("user"), trimReason(f.Get("reason"))
	target := "session " + sid
	if user != "" {
		target = "user " + user
	}
	if (sid == "") == (user == "") || reason == "" {
		c.audit(g, op, "logout", target, reason, "refused: a target and a reason are required")
		c.page(g, http.StatusBadRequest, "message", msgView{Title: "Log out", Message: "Say which session or user to log out, and why."})
		return
	}
	req := slobridge.LogoutRequest{UserID: user, Initiator: store.Initiator{Kind: store.InitiatorAdmin, ID: "console:" + op.UserID}}
	if sid != "" {
		req.SessionIDs = []string{sid}
	}
	lo, err := c.opts.Engine.Logout(ctx, req)
	switch {
	case errors.Is(err, store.ErrNotFound):
		c.audit(g, op, "logout", target, reason, "refused: no such session")
		c.page(g, http.StatusNotFound, "message", msgView{Title: "Log out", Message: "There is no such session."})
		return
	case err != nil:
		c.audit(g, op, "logout", target, reason, "error: "+err.Error())
		c.fail(g, "logout", err)
		return
	case len(lo.SessionIDs) == 0:
		c.audit(g, op, "logout", target, reason, "nothing to log out")
		c.page(g, http.StatusConflict, "message", msgView{Title: "Log out", Message: "Nothing to log out: the session(s) already ended or expired."})
		return
	}
	c.audit(g, op, "logout", target, reason, "started logout "+lo.ID)
	g.Redirect(http.StatusSeeOther, c.path("/logouts/"+url.PathEscape(lo.ID)))
}

// logoutRow is one logout on the Logouts page.
type logoutRow struct {
	store.Logout
	Outcome slobridge.Outcome
}

// logoutsView is the Logouts page.
type logoutsView struct {
	Logouts []logoutRow
	// Next links to the following page, empty on the last.
	Next template.URL
}

// handleLogouts lists the logouts, newest first, a page at a time.
func (c *Console) handleLogouts(g *gin.Context) {
	ctx := g.Request.Context()
	cur, ok := c.cursor(g, "Logouts")
	if !ok {
		return
	}
	los, err := c.opts.Engine.Store().ListLogouts(ctx, cur, logoutPage)
	if err != nil {
		c.fail(g, "list logouts", err)
		return
	}
	var v logoutsView
	for _, lo := range los {
		oc, err := admin.LogoutOutcome(ctx, c.opts.Engine, lo)
		if err != nil {
			c.fail(g, "logout outcome", err)
			return
		}
		v.Logouts = append(v.Logouts, logoutRow{Logout: lo, Outcome: oc})
	}
	if len(los) == logoutPage {
		last := los[len(los)-1]
		v.Next = c.nextPage("/logouts", nil, last.CreatedAt, last.ID)
	}
	c.page(g, http.StatusOK, "logouts", v)
}

// statusView is one logout's page.
type statusView struct {
	Outcome slobridge.Outcome
	// Retryable is true when a delivery failed and may be sent again.
	Retryable bool
}

// refresh reloads the page while deliveries are still running.
func (v statusView) refresh() bool { return !v.Outcome.Status.Done }

func (v statusView) live() (string, string) {
	return v.Outcome.Status.Logout.ID, statusSig(v.Outcome.Status)
}

// statusSig is a short signature of a logout's status: a live page
// reloads when the stream's differs from the one it was rendered from.
func statusSig(st slobridge.LogoutStatus) string {
	b, _ := json.Marshal(st)
	sum := sha256.Sum256(b)
	return hex.EncodeToString(sum[:8])
}

// maxStream bounds one event stream of a live page; the page opens
// another when it ends.
const maxStream = 10 * time.Minute

// handleLogoutEvents streams a logout's changes as server-sent events, the
// signature of its status (statusSig) now and after each change, until it
// is done: the live status and delivery pages reload on each.
func (c *Console) handleLogoutEvents(g *gin.Context) {
	ctx, cancel := context.WithTimeout(g.Request.Context(), maxStream)
	defer cancel()
	id := g.Param("logout_id")
	started := false
	err := c.opts.Engine.Watch(ctx, id, func(st slobridge.LogoutStatus) error {
		if !started {
			h := g.Writer.Header()
			h.Set("Content-Type", "text/event-stream")
			h.Set("X-Accel-Buffering", "no")
			g.Status(http.StatusOK)
			started = true
		}
		if _, err := fmt.Fprintf(g.Writer, "data: %s\n\n", statusSig(st)); err != nil {
			return err
		}
		g.Writer.Flush()
		return nil
	})
	switch {
	case started:
	case errors.Is(err, store.ErrNotFound):
		g.AbortWithStatus(http.StatusNotFound)
	case err != nil:
		c.log.ErrorContext(ctx, "console: logout events", "logout_id", id, "err", err)
		g.AbortWithStatus(slobridge.FailureStatus(g.Writer.Header(), err))
	}
}

// handleLogoutStatus shows one logout leg by leg, reloading itself while
// it runs.
func (c *Console) handleLogoutStatus(g *gin.Context) {
	ctx := g.Request.Context()
	lo, err := c.opts.Engine.Store().GetLogout(ctx, g.Param("logout_id"))
	if errors.Is(err, store.ErrNotFound) {
		c.page(g, http.StatusNotFound, "message", msgView{Title: "Logout", Message: "There is no such logout."})
		return
	} else if err != nil {
		c.fail(g, "read the logout", err)
		return
	}
	oc, err := admin.LogoutOutcome(ctx, c.opts.Engine, lo)
	if err != nil {
		c.fail(g, "logout outcome", err)
		return
	}
	v := statusView{Outcome: oc}
	for _, p := range oc.Status.Participants {
		if p.State == string(store.DeliveryFailed) {
			v.Retryable = true
		}
	}
	c.page(g, http.StatusOK, "status", v)
}

// handleRetry sends a logout's failed deliveries again.
func (c *Console) handleRetry(g *gin.Context) {
	ctx := g.Request.Context()
	op := g.MustGet(ctxOperator).(store.Session)
	id := g.Param("logout_id")
	n, err := c.opts.Engine.RetryFailed(ctx, id)
	switch {
	case errors.Is(err, store.ErrNotFound):
		c.audit(g, op, "retry", "logout "+id, "", "refused: no such logout")
		c.page(g, http.StatusNotFound, "message", msgView{Title: "Retry", Message: "There is no such logout."})
		return
	case err != nil:
		c.audit(g, op, "retry", "logout "+id, "", "error: "+err.Error())
		c.fail(g, "retry", err)
		return
	}
	c.audit(g, op, "retry", "logout "+id, "", "sent again: "+strconv.Itoa(n))
	g.Redirect(http.StatusSeeOther, c.path("/logouts/"+url.PathEscape(id)))
}

// handleUpstreams lists the upstreams and their state.
func (c *Console) handleUpstreams(g *gin.Context) {
	var ups []admin.Upstream
	if c.opts.UpstreamState != nil {
		ups = c.opts.UpstreamState()
	}
	c.page(g, http.StatusOK, "upstreams", ups)
}
