package store

import "errors"

// Sentinel errors callers branch on. Backends wrap them with context; test
// with errors.Is.
var (
	// ErrNotFound reports that the requested record does not exist (or has
	// expired, for records with an expiry).
	ErrNotFound = errors.New("store: not found")
	// ErrAlreadyExists reports a create of a key that is already present.
	ErrAlreadyExists = errors.New("store: already exists")
	// ErrSessionEnded reports an attempt to add a participant to, or
	// otherwise extend, a session that has already ended.
	ErrSessionEnded = errors.New("store: session ended")
	// ErrReplay reports that a one-time identifier (SAML message ID, JWT jti,
	// assertion ID) was already seen and has not yet expired.
	ErrReplay = errors.New("store: replayed identifier")
	// ErrLocked reports that the backing database is held by another process
	// and could not be opened within the configured timeout.
	ErrLocked = errors.New("store: database locked by another process")
	// ErrUnavailable reports that the backend cannot be reached right now
	// (for example the PostgreSQL server is down). Callers answer 503.
	ErrUnavailable = errors.New("store: backend unavailable")
	// ErrNoSpace reports that the backend is out of space, or keeping its
	// last space for logouts: new sessions and logins are refused with it
	// first (bbolt's write reserve), and a full PostgreSQL disk reports it
	// too. Callers answer 503 and say the bridge is out of space.
	ErrNoSpace = errors.New("store: out of space")
	// ErrInvalid reports a record that fails the store's own validation
	// (an empty ID, for example).
	ErrInvalid = errors.New("store: invalid record")
)
