package store

import (
	"context"
	"strings"
	"time"
)

// Cursor positions a page of a list newest first (ListLogouts,
// ListFailingDeliveries, ListSessions): the page holds the items created
// strictly before (CreatedAt, ID) in that order; the zero cursor starts at
// the newest. The last item of a page is the cursor of the next.
type Cursor struct {
	CreatedAt time.Time
	ID        string
}

// LogoutCursor positions a page of ListLogouts.
type LogoutCursor = Cursor

// SessionFilter selects the sessions ListSessions pages through: those
// whose current upstream login is at Upstream, or those an app joined
// (a participant's AppID). Exactly one is set.
type SessionFilter struct {
	Upstream, AppID string
}

// MaxPage caps a page of ListLogouts, ListFailingDeliveries and
// ListSessions.
const MaxPage = 1000

// LogoutSpec says which sessions one logout ends.
type LogoutSpec struct {
	// LogoutID is the ID of the logout to create (unguessable; set by the
	// caller).
	LogoutID string
	// SessionIDs lists sessions to end. Unknown IDs yield ErrNotFound
	// and nothing changes; already ended sessions are skipped.
	SessionIDs []string
	// UserID, when set, ends every active session of that user too.
	UserID    string
	Initiator Initiator
	// ExcludeKey is the participant that started the logout: it is kept in
	// the snapshot but gets no delivery.
	ExcludeKey string
	// Legs, when set, is called inside the transaction with the sessions
	// the logout ends, and returns parts of the logout that are not
	// participants of the sessions (the upstream IdP leg): each is appended
	// to the snapshot after the participants of its SessionID, and one with
	// ChannelBack gets a delivery like any participant. A leg whose
	// SessionID is not among those sessions is dropped. Like NewDeliveryID
	// it must not do I/O (the transaction may run it more than once).
	Legs func(ended []Session) []Participant
	// NewDeliveryID makes the ID of each delivery; it is called inside the
	// transaction and must not do I/O.
	NewDeliveryID func() string
	Now           time.Time
}

// VolatilePrefix begins the name of every namespace of volatile records
// (see the package doc, "Durability"): state that a crash may lose without
// harm because the person only has to start again — an authorization
// request on its way through the upstream login, a SAML AuthnRequest's
// state, an authorization code not yet redeemed, a logout confirmation
// page. A namespace holds records of one class, fixed by its name, so a
// lookup never has to try both.
const VolatilePrefix = "volatile."

// IsVolatile reports whether namespace holds volatile records.
func IsVolatile(namespace string) bool { return strings.HasPrefix(namespace, VolatilePrefix) }

// CommitCounts counts a backend's committed write transactions.
type CommitCounts struct {
	// Synced commits waited for the disk (fsync, or PostgreSQL's WAL
	// flush) before they returned.
	Synced uint64
	// Unsynced commits did not: volatile records, or a store opened
	// without sync for tests.
	Unsynced uint64
}

// CommitCounter is implemented by backends that count their commits
// (slobridge_store_commits_total).
type CommitCounter interface {
	CommitCounts() CommitCounts
}

// Store is the persistence interface of slobridge. All methods are safe for
// concurrent use. Methods that take a context honour its cancellation.
type Store interface {
	// CreateSession stores a new session. ErrAlreadyExists if the ID is
	// taken.
	CreateSession(ctx context.Context, s Session) error
	// GetSession returns one session (active or ended, until swept).
	GetSession(ctx context.Context, id string) (Session, error)
	// ListSessionsByUser returns every stored session of a user, active or
	// not, oldest first.
	ListSessionsByUser(ctx context.Context, userID string) ([]Session, error)
	// FindSessionsByNameID returns the sessions of an upstream matching
	// the NameID value (and its qualifiers when set in the query) and, when
	// sessionIndex is non-empty, that SessionIndex; oldest first. A session
	// matches by its current upstream login or by one of its PriorLogins
	// (UpstreamLogin.Matches).
	FindSessionsByNameID(ctx context.Context, upstream string, nameID NameID, sessionIndex string) ([]Session, error)
	// FindSessionsByEmail returns the sessions whose "email" attribute
	// holds exactly email, oldest first (an index, not a scan: the admin
	// API looks users up by it).
	FindSessionsByEmail(ctx context.Context, email string) ([]Session, error)
	// ListSessions returns a page of at most limit sessions the filter
	// selects, active or ended, newest first, of those created before the
	// cursor (from an index). ErrInvalid for a filter with neither or both
	// set, or a limit outside 1..MaxPage.
	ListSessions(ctx context.Context, f SessionFilter, before Cursor, limit int) ([]Session, error)
	// CountActiveSessions counts sessions neither ended nor expired at now.
	CountActiveSessions(ctx context.Context, now time.Time) (int, error)
	// ReauthenticateSession records a new upstream login of the session's
	// own user in the browser that holds the session, in one transaction:
	// the session keeps its ID, CreatedAt and participants and takes the
	// upstream, NameID, SessionIndex, attributes, AuthTime and ExpiresAt
	// of upd (Session.Reauthenticated), the previous upstream login moving
	// to PriorLogins; every index (by NameID, of active sessions by
	// expiry) follows. It returns the updated session. ErrNotFound for an
	// unknown session; ErrSessionEnded when it has ended or expired at
	// now; ErrInvalid when upd.UserID is not the session's user or
	// upd.ExpiresAt is not after now.
	ReauthenticateSession(ctx context.Context, id string, upd SessionAuth, now time.Time) (Session, error)

	// AddParticipant adds p to its session (p.SessionID) unless a
	// participant with the same Key is already there. It reports whether p
	// was added. ErrNotFound for an unknown session, ErrSessionEnded for an
	// ended one.
	AddParticipant(ctx context.Context, p Participant) (added bool, err error)
	// ListParticipants returns a session's participants in join order.
	ListParticipants(ctx context.Context, sessionID string) ([]Participant, error)

	// EndSessions is the logout transaction: in ONE transaction it marks
	// the sessions ended, snapshots their participants into a Logout and
	// writes one pending Delivery per back-channel participant (except
	// spec.ExcludeKey), due at spec.Now. It returns the logout and its
	// deliveries. When no active session matches, it returns a Logout with
	// no sessions and writes nothing.
	EndSessions(ctx context.Context, spec LogoutSpec) (Logout, []Delivery, error)
	// GetLogout returns one logout.
	GetLogout(ctx context.Context, id string) (Logout, error)
	// ListLogoutsByUser returns the logouts of a user, newest first.
	ListLogoutsByUser(ctx context.Context, userID string) ([]Logout, error)
	// ListLogouts returns a page of at most limit logouts, newest first,
	// of those before the cursor (from an index: the cost is the page's).
	ListLogouts(ctx context.Context, before LogoutCursor, limit int) ([]Logout, error)
	// ListDeliveries returns the deliveries of one logout, in creation
	// order.
	ListDeliveries(ctx context.Context, logoutID string) ([]Delivery, error)
	// GetDelivery returns one delivery.
	GetDelivery(ctx context.Context, id string) (Delivery, error)
	// ClaimDueDeliveries leases up to limit deliveries that are pending or
	// retrying, due at or before now, and not under someone else's running
	// lease, to owner until now+lease; earliest due first.
	ClaimDueDeliveries(ctx context.Context, owner string, now time.Time, lease time.Duration, limit int) ([]Delivery, error)
	// CompleteAttempt appends an attempt to a delivery held by owner, sets
	// its new state (and NextAttemptAt for retrying), clears the lease and
	// returns the updated delivery. ErrNotFound when the delivery is gone
	// or no longer leased by owner (another replica took it over).
	CompleteAttempt(ctx context.Context, id, owner string, a Attempt, state DeliveryState, next time.Time) (Delivery, error)
	// RetryDeliveries resets the failed deliveries of a logout to pending,
	// due at now, and returns how many it reset.
	RetryDeliveries(ctx context.Context, logoutID string, now time.Time) (int, error)
	// RetryDelivery makes one delivery due at now, as RetryNow says
	// (a failed one pending again, a retrying one not under a running
	// lease due at once), in one transaction, and returns it with whether
	// it changed. ErrNotFound for an unknown delivery.
	RetryDelivery(ctx context.Context, id string, now time.Time) (Delivery, bool, error)
	// ListFailingDeliveries returns a page of at most limit deliveries
	// failing now (DeliveryState.Failing), newest first, of those created
	// before the cursor (from an index: the cost is the page's).
	ListFailingDeliveries(ctx context.Context, before Cursor, limit int) ([]Delivery, error)
	// NextDueAt returns the earliest NextAttemptAt over pending and
	// retrying deliveries, and false when there is none.
	NextDueAt(ctx context.Context) (time.Time, bool, error)
	// CountDeliveries counts deliveries by state.
	CountDeliveries(ctx context.Context) (map[DeliveryState]int, error)

	// PutClient creates or replaces a client registration.
	PutClient(ctx context.Context, c Client) error
	// GetClient returns one client.
	GetClient(ctx context.Context, id string) (Client, error)
	// UpdateClient reads, modifies and writes a client in one transaction.
	UpdateClient(ctx context.Context, id string, update func(Client) (Client, error)) error
	// DeleteClient removes a client. ErrNotFound when absent.
	DeleteClient(ctx context.Context, id string) error
	// ListClients returns every client of a kind ("" for all), by ID.
	ListClients(ctx context.Context, kind string) ([]Client, error)

	// PutRecord stores an expiring record (volatile when its namespace
	// IsVolatile); ErrAlreadyExists if a live
	// record with the same namespace and key exists. ErrInvalid for an
	// empty key or one that holds a NUL byte (not every backend can store
	// one: callers build composite keys with another separator or a hash).
	PutRecord(ctx context.Context, r Record) error
	// GetRecord returns a live record (not expired at now).
	GetRecord(ctx context.Context, namespace, key string, now time.Time) (Record, error)
	// TakeRecord returns and deletes a live record in one transaction:
	// of two concurrent takes, exactly one succeeds (one-time codes).
	TakeRecord(ctx context.Context, namespace, key string, now time.Time) (Record, error)
	// DeleteRecord removes a record; no error if absent.
	DeleteRecord(ctx context.Context, namespace, key string) error
	// TakeGrant uses the one-time grant namespace/key (a record put with
	// PutRecord: an authorization code, a refresh token) in one
	// transaction, and is what decides between concurrent uses on every
	// backend. The first use marks it used, keeps issued (what the use
	// produced, e.g. the token family) with it until keepUntil (or its
	// expiry, when later) and answers First. Every later use answers the
	// record with First false and the first use's Issued, so that the
	// caller can revoke that family (RFC 6749 §4.1.2, RFC 9700 §4.14.2). A
	// used grant is no longer live: GetRecord and TakeRecord answer
	// ErrNotFound. ErrNotFound when absent or expired at now.
	TakeGrant(ctx context.Context, namespace, key string, issued []byte, keepUntil, now time.Time) (GrantUse, error)

	// CheckReplay records a one-time identifier until expiresAt. It
	// returns ErrReplay when the identifier was already recorded and has
	// not expired at now.
	CheckReplay(ctx context.Context, namespace, id string, expiresAt, now time.Time) error

	// PutKey stores a signing key (create or replace).
	PutKey(ctx context.Context, k Key) error
	// ListKeys returns the keys of a use, oldest first.
	ListKeys(ctx context.Context, use string) ([]Key, error)
	// DeleteKey removes a key.
	DeleteKey(ctx context.Context, id string) error

	// Sweep deletes what has expired at now: sessions past ExpiresAt (or
	// ended) for longer than retain, logouts whose deliveries are all final
	// and older than retain (with those deliveries), expired records
	// (volatile ones too) and replay entries, keys past RetireAt. It works
	// in short transactions, so that a large backlog neither holds up
	// logins and logouts nor takes memory in proportion to its size; a
	// cancelled ctx stops it between two, with what it removed so far
	// counted in the result.
	Sweep(ctx context.Context, now time.Time, retain time.Duration) (SweepResult, error)

	// Ping reports whether the backend is reachable (readiness).
	Ping(ctx context.Context) error
	// Close releases the backend.
	Close() error
}
