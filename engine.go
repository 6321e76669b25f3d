package slobridge

import (
	"context"
	"crypto/rand"
	"encoding/base32"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"strconv"
	"strings"
	"sync/atomic"
	"time"

	"github.com/slobridge/slobridge/store"
)

// Options configure an Engine. Zero values take the documented defaults.
type Options struct {
	// Store persists sessions and the outbox. Required.
	Store store.Store
	// Notifiers maps a Participant.Kind to the notifier for it.
	Notifiers map[string]Notifier
	// Logger receives structured logs; default slog.Default().
	Logger *slog.Logger
	// Now is the clock; default time.Now.
	Now func() time.Time
	// Rand is the source of IDs and jitter; default crypto/rand.Reader.
	Rand io.Reader
	// Metrics, when set, is updated by the engine.
	Metrics *Metrics

	// Workers bounds concurrent attempts over all receivers; default 1024
	// (an attempt mostly waits on the network, and a 1,000-participant
	// logout should go out in one wave).
	Workers int
	// PerHost bounds concurrent attempts to one receiver host; default 64.
	PerHost int
	// AttemptTimeout bounds one attempt; default 10s.
	AttemptTimeout time.Duration
	// BackoffBase is the first retry delay, doubled per attempt with full
	// jitter; default 1s.
	BackoffBase time.Duration
	// BackoffMax caps the retry delay; default 5m.
	BackoffMax time.Duration
	// GiveUpAfter is the age after which a delivery that still fails is
	// marked failed; default 24h.
	GiveUpAfter time.Duration
	// Lease is how long a claimed delivery is reserved for this worker;
	// default AttemptTimeout + 30s.
	Lease time.Duration
	// PollInterval is how often the outbox is polled when nothing wakes the
	// workers (other replicas may have written); default 1s.
	PollInterval time.Duration
	// Owner names this engine instance in delivery leases; default random.
	Owner string
	// OnSessionCreated, when set, runs after CreateSession stored a
	// session (the wiring uses it to join Shared Signals receivers to
	// every new session). Its error fails CreateSession; the stored
	// session then simply expires unused, since the caller sets no cookie.
	OnSessionCreated func(ctx context.Context, s store.Session) error
}

// Engine is the logout engine. Create it with NewEngine, start its delivery
// workers with Run.
type Engine struct {
	opts Options
	st   store.Store
	log  *slog.Logger
	now  func() time.Time
	rand io.Reader
	wake chan struct{}
	hub  *hub
	// running is set while Run runs (one Run per engine).
	running atomic.Bool
	// front holds the front-channel parts by participant kind.
	front frontChannels
	// legs holds the planners of upstream legs (AddUpstreamLegs).
	legs upstreamLegs
}

// NewEngine validates opts, applies defaults and returns an engine.
func NewEngine(opts Options) (*Engine, error) {
	if opts.Store == nil {
		return nil, errors.New("slobridge: engine needs a store")
	}
	if opts.Logger == nil {
		opts.Logger = slog.Default()
	}
	if opts.Now == nil {
		opts.Now = time.Now
	}
	if opts.Rand == nil {
		opts.Rand = rand.Reader
	}
	if opts.Workers <= 0 {
		opts.Workers = 1024
	}
	if opts.PerHost <= 0 {
		opts.PerHost = 64
	}
	if opts.AttemptTimeout <= 0 {
		opts.AttemptTimeout = 10 * time.Second
	}
	if opts.BackoffBase <= 0 {
		opts.BackoffBase = time.Second
	}
	if opts.BackoffMax <= 0 {
		opts.BackoffMax = 5 * time.Minute
	}
	if opts.GiveUpAfter <= 0 {
		opts.GiveUpAfter = 24 * time.Hour
	}
	if opts.Lease <= 0 {
		opts.Lease = opts.AttemptTimeout + 30*time.Second
	}
	if opts.PollInterval <= 0 {
		opts.PollInterval = time.Second
	}
	e := &Engine{
		opts: opts,
		st:   opts.Store,
		log:  opts.Logger,
		now:  opts.Now,
		rand: &lockedReader{r: opts.Rand},
		wake: make(chan struct{}, 1),
		hub:  newHub(),
	}
	if e.opts.Owner == "" {
		e.opts.Owner = "engine-" + e.NewID()
	}
	if e.opts.Notifiers == nil {
		e.opts.Notifiers = map[string]Notifier{}
	}
	return e, nil
}

// Store returns the engine's store.
func (e *Engine) Store() store.Store { return e.st }

// Now returns the engine clock's current time.
func (e *Engine) Now() time.Time { return e.now() }

// NewID returns a fresh unguessable identifier: 128 random bits in
// lower-case base32 without padding (26 characters of [a-z2-7]), safe in
// URLs, cookies, file names and command lines (it never starts with "-").
func (e *Engine) NewID() string {
	var b [16]byte
	if _, err := io.ReadFull(e.rand, b[:]); err != nil {
		panic(fmt.Sprintf("slobridge: random source failed: %v", err))
	}
	return strings.ToLower(base32.StdEncoding.WithPadding(base32.NoPadding).EncodeToString(b[:]))
}

// SetNotifier registers the notifier for a participant kind. Call it before
// Run.
func (e *Engine) SetNotifier(kind string, n Notifier) { e.opts.Notifiers[kind] = n }

// CreateSession stores a new bridge session. An empty ID gets a fresh one;
// CreatedAt defaults to now. It returns the stored session.
func (e *Engine) CreateSession(ctx context.Context, s store.Session) (store.Session, error) {
	now := e.now()
	if s.ID == "" {
		s.ID = e.NewID()
	}
	if s.UserID == "" {
		return store.Session{}, fmt.Errorf("slobridge: create session: %w: empty user ID", store.ErrInvalid)
	}
	if s.CreatedAt.IsZero() {
		s.CreatedAt = now
	}
	if s.AuthTime.IsZero() {
		s.AuthTime = now
	}
	if s.ExpiresAt.IsZero() || !s.ExpiresAt.After(now) {
		return store.Session{}, fmt.Errorf("slobridge: create session: %w: expiry %v is not in the future", store.ErrInvalid, s.ExpiresAt)
	}
	if err := e.st.CreateSession(ctx, s); err != nil {
		return store.Session{}, fmt.Errorf("slobridge: create session: %w", err)
	}
	if m := e.opts.Metrics; m != nil {
		m.sessionsCreated.Inc()
	}
	if hook := e.opts.OnSessionCreated; hook != nil {
		if err := hook(ctx, s); err != nil {
			return store.Session{}, fmt.Errorf("slobridge: create session: after-create hook: %w", err)
		}
	}
	return s, nil
}

// AddParticipant records p as a participant of its session; the same Key
// twice is one participant. It reports whether p was new.
func (e *Engine) AddParticipant(ctx context.Context, p store.Participant) (bool, error) {
	if p.SessionID == "" || p.Kind == "" || p.AppID == "" {
		return false, fmt.Errorf("slobridge: add participant: %w: session, kind and app ID are required", store.ErrInvalid)
	}
	if p.Key == "" {
		p.Key = p.Kind + ":" + p.AppID
	}
	if p.JoinedAt.IsZero() {
		p.JoinedAt = e.now()
	}
	added, err := e.st.AddParticipant(ctx, p)
	if err != nil {
		return false, fmt.Errorf("slobridge: add participant %s to session: %w", p.Key, err)
	}
	return added, nil
}

// LogoutRequest says what to log out and who asked.
type LogoutRequest struct {
	// SessionIDs lists sessions to end.
	SessionIDs []string
	// UserID, when set, ends every active session of the user ("log out
	// everywhere").
	UserID string
	// Initiator is who started the logout.
	Initiator store.Initiator
	// Browser reports that a browser takes part in the logout (the logout
	// page, an RP-initiated logout, a SAML LogoutRequest by a browser
	// binding): the upstream IdP is then told through it when it offers a
	// browser binding. Without a browser (admin, system, SOAP) every
	// upstream leg goes through the outbox (UpstreamLegsFunc).
	Browser bool
}

// Logout ends the requested sessions in one store transaction, snapshots
// their participants and queues one durable delivery per back-channel
// participant, then wakes the delivery workers. It returns the logout; a
// logout that matched no active session has no SessionIDs.
func (e *Engine) Logout(ctx context.Context, req LogoutRequest) (store.Logout, error) {
	if len(req.SessionIDs) == 0 && req.UserID == "" {
		return store.Logout{}, fmt.Errorf("slobridge: logout: %w: no session or user given", store.ErrInvalid)
	}
	if req.Initiator.Kind == "" {
		return store.Logout{}, fmt.Errorf("slobridge: logout: %w: initiator kind is required", store.ErrInvalid)
	}
	logoutID := e.NewID()
	var seq atomic.Int64
	spec := store.LogoutSpec{
		Legs:       e.legsOf(req),
		LogoutID:   logoutID,
		SessionIDs: req.SessionIDs,
		UserID:     req.UserID,
		Initiator:  req.Initiator,
		ExcludeKey: InitiatorKey(req.Initiator),
		// A logout's deliveries are numbered after it: their keys sit
		// side by side in the store's indexes, so the outbox rows of a
		// large logout fill a few pages instead of dirtying one page per
		// delivery.
		NewDeliveryID: func() string { return logoutID + "." + strconv.FormatInt(seq.Add(1), 10) },
		Now:           e.now(),
	}
	lo, ds, err := e.st.EndSessions(ctx, spec)
	if err != nil {
		return store.Logout{}, fmt.Errorf("slobridge: logout: %w", err)
	}
	if len(lo.SessionIDs) > 0 {
		e.log.InfoContext(ctx, "logout", "logout_id", lo.ID, "initiator", string(lo.Initiator.Kind),
			"initiator_id", lo.Initiator.ID, "sessions", len(lo.SessionIDs),
			"participants", len(lo.Participants), "deliveries", len(ds))
		if m := e.opts.Metrics; m != nil {
			m.logouts.WithLabelValues(string(lo.Initiator.Kind)).Inc()
		}
		e.hub.publish(Event{LogoutID: lo.ID, Logout: &lo})
		e.Kick()
	}
	return lo, nil
}

// Kick wakes the delivery workers to look at the outbox now.
func (e *Engine) Kick() {
	select {
	case e.wake <- struct{}{}:
	default:
	}
}

// InitiatorKey is the participant key of the app that started a logout,
// which the logout does not notify: it is answered directly (a SAML SP
// gets its LogoutResponse, SAML Profiles §4.4.3.1; an OIDC RP, which
// logged the user out itself before it sent the browser to the
// end-session endpoint, RP-Initiated Logout §2, gets the browser back at
// its post_logout_redirect_uri). One rule for every protocol: an RP
// initiator ID is its client_id ("oidc:" key), an SP's its entity ID
// ("saml:" key); other initiators are not participants. "" when none.
func InitiatorKey(ini store.Initiator) string {
	switch {
	case ini.ID == "":
		return ""
	case ini.Kind == store.InitiatorRP:
		return "oidc:" + ini.ID
	case ini.Kind == store.InitiatorSP:
		return "saml:" + ini.ID
	}
	return ""
}
