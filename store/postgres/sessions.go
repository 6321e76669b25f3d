package postgres

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"

	"github.com/slobridge/slobridge/store"
)

// rowScanner is a pgx.Row or pgx.Rows.
type rowScanner interface{ Scan(dest ...any) error }

// sessionColumns are the columns scanSession reads, in order.
const sessionColumns = `id, user_id, upstream, name_id_value, name_id_format, name_qualifier,
	sp_name_qualifier, session_index, attributes, auth_time, created_at, expires_at, ended_at,
	coalesce(logout_id, ''), prior_logins`

// scanSession reads one row of sessionColumns.
func scanSession(row rowScanner) (store.Session, error) {
	var s store.Session
	var attrs, prior []byte
	var auth, created, expires, ended *time.Time
	err := row.Scan(&s.ID, &s.UserID, &s.Upstream, &s.NameID.Value, &s.NameID.Format,
		&s.NameID.NameQualifier, &s.NameID.SPNameQualifier, &s.SessionIndex, &attrs,
		&auth, &created, &expires, &ended, &s.LogoutID, &prior)
	if err != nil {
		return store.Session{}, err
	}
	s.AuthTime, s.CreatedAt, s.ExpiresAt, s.EndedAt = fromTZ(auth), fromTZ(created), fromTZ(expires), fromTZ(ended)
	if err := decodeJSON(attrs, &s.Attributes, "session attributes"); err != nil {
		return store.Session{}, err
	}
	if err := decodeJSON(prior, &s.PriorLogins, "session prior logins"); err != nil {
		return store.Session{}, err
	}
	return s, nil
}

// querySessions runs a query returning sessionColumns.
func querySessions(ctx context.Context, q querier, sql string, args ...any) ([]store.Session, error) {
	rows, err := q.Query(ctx, sql, args...)
	if err != nil {
		return nil, err
	}
	return pgx.CollectRows(rows, func(r pgx.CollectableRow) (store.Session, error) { return scanSession(r) })
}

// querier is what both the pool and a transaction offer.
type querier interface {
	Exec(ctx context.Context, sql string, args ...any) (pgconn.CommandTag, error)
	Query(ctx context.Context, sql string, args ...any) (pgx.Rows, error)
	QueryRow(ctx context.Context, sql string, args ...any) pgx.Row
}

// CreateSession stores a new session; ErrAlreadyExists if the ID is taken.
func (db *DB) CreateSession(ctx context.Context, s store.Session) error {
	err := checkIDs("session ID", s.ID, "user ID", s.UserID)
	if err == nil {
		err = checkLogins(s)
	}
	if err != nil {
		return fmt.Errorf("postgres: create session: %w", err)
	}
	attrs, err := nullJSON(s.Attributes, len(s.Attributes) == 0)
	if err != nil {
		return fmt.Errorf("postgres: create session: %w", err)
	}
	prior, err := nullJSON(s.PriorLogins, len(s.PriorLogins) == 0)
	if err != nil {
		return fmt.Errorf("postgres: create session: %w", err)
	}
	_, err = db.pool.Exec(ctx, `INSERT INTO sessions (id, user_id, upstream, name_id_value,
		name_id_format, name_qualifier, sp_name_qualifier, session_index, attributes, auth_time,
		created_at, expires_at, ended_at, logout_id, prior_logins)
		VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, nullif($14, ''), $15)`,
		s.ID, s.UserID, s.Upstream, s.NameID.Value, s.NameID.Format, s.NameID.NameQualifier,
		s.NameID.SPNameQualifier, s.SessionIndex, attrs, tz(s.AuthTime), tz(s.CreatedAt),
		tz(s.ExpiresAt), tz(s.EndedAt), s.LogoutID, prior)
	if err != nil {
		return fmt.Errorf("postgres: create session %q: %w", s.ID, dbError(err))
	}
	return nil
}

// checkLogins refuses upstream identifiers (current or prior) that
// PostgreSQL text cannot hold.
func checkLogins(s store.Session) error {
	for _, l := range append([]store.UpstreamLogin{s.UpstreamLogin()}, s.PriorLogins...) {
		if err := checkText("upstream", l.Upstream, "NameID", l.NameID.Value+l.NameID.Format+
			l.NameID.NameQualifier+l.NameID.SPNameQualifier, "session index", l.SessionIndex); err != nil {
			return err
		}
	}
	return nil
}

// ReauthenticateSession records a new upstream login of the session's own
// user. In one transaction it locks the session row (FOR NO KEY UPDATE:
// it waits for a logout that holds the row, while participants keep
// joining), checks that the session is active and the user's, and writes
// Session.Reauthenticated. The NameID index and the prior-logins index
// follow the row.
func (db *DB) ReauthenticateSession(ctx context.Context, id string, upd store.SessionAuth, now time.Time) (store.Session, error) {
	err := checkIDs("session ID", id, "user ID", upd.UserID)
	if err == nil {
		err = checkLogins(store.Session{Upstream: upd.Upstream, NameID: upd.NameID, SessionIndex: upd.SessionIndex})
	}
	if err == nil && !upd.ExpiresAt.After(now) {
		err = fmt.Errorf("%w: expiry %v is not after %v", store.ErrInvalid, upd.ExpiresAt, now)
	}
	if err != nil {
		return store.Session{}, fmt.Errorf("postgres: reauthenticate session: %w", err)
	}
	var out store.Session
	err = db.inTx(ctx, "reauthenticate session", func(tx pgx.Tx) error {
		old, err := scanSession(tx.QueryRow(ctx, "SELECT "+sessionColumns+" FROM sessions WHERE id = $1 FOR NO KEY UPDATE", id))
		if errors.Is(err, pgx.ErrNoRows) {
			return fmt.Errorf("session %q: %w", id, store.ErrNotFound)
		}
		if err != nil {
			return err
		}
		if !old.Active(now) {
			return fmt.Errorf("session %q: %w", id, store.ErrSessionEnded)
		}
		if old.UserID != upd.UserID {
			return fmt.Errorf("session %q: %w: it belongs to another user", id, store.ErrInvalid)
		}
		out = old.Reauthenticated(upd)
		attrs, err := nullJSON(out.Attributes, len(out.Attributes) == 0)
		if err != nil {
			return err
		}
		prior, err := nullJSON(out.PriorLogins, len(out.PriorLogins) == 0)
		if err != nil {
			return err
		}
		_, err = tx.Exec(ctx, `UPDATE sessions SET upstream = $2, name_id_value = $3,
			name_id_format = $4, name_qualifier = $5, sp_name_qualifier = $6, session_index = $7,
			attributes = $8, auth_time = $9, expires_at = $10, prior_logins = $11
			WHERE id = $1`,
			id, out.Upstream, out.NameID.Value, out.NameID.Format, out.NameID.NameQualifier,
			out.NameID.SPNameQualifier, out.SessionIndex, attrs, tz(out.AuthTime), tz(out.ExpiresAt), prior)
		return err
	})
	if err != nil {
		return store.Session{}, err
	}
	return out, nil
}

// GetSession returns one session, active or ended, until it is swept.
func (db *DB) GetSession(ctx context.Context, id string) (store.Session, error) {
	if strings.ContainsRune(id, 0) {
		return store.Session{}, fmt.Errorf("postgres: get session: %w", store.ErrNotFound)
	}
	s, err := scanSession(db.pool.QueryRow(ctx, "SELECT "+sessionColumns+" FROM sessions WHERE id = $1", id))
	if errors.Is(err, pgx.ErrNoRows) {
		return store.Session{}, fmt.Errorf("postgres: get session: %w", store.ErrNotFound)
	}
	if err != nil {
		return store.Session{}, fmt.Errorf("postgres: get session: %w", dbError(err))
	}
	return s, nil
}

// ListSessionsByUser returns every stored session of a user, oldest first.
func (db *DB) ListSessionsByUser(ctx context.Context, userID string) ([]store.Session, error) {
	if checkIDs("user ID", userID) != nil {
		return nil, nil
	}
	out, err := querySessions(ctx, db.pool, "SELECT "+sessionColumns+
		" FROM sessions WHERE user_id = $1 ORDER BY created_at NULLS FIRST, id", userID)
	if err != nil {
		return nil, fmt.Errorf("postgres: list sessions by user: %w", dbError(err))
	}
	return out, nil
}

// FindSessionsByEmail returns the sessions whose "email" attribute holds
// email, oldest first, through the GIN index of migration 0005.
func (db *DB) FindSessionsByEmail(ctx context.Context, email string) ([]store.Session, error) {
	if email == "" || checkText("query", email) != nil {
		return nil, nil
	}
	out, err := querySessions(ctx, db.pool, "SELECT "+sessionColumns+` FROM sessions
		WHERE attributes->'email' ? $1
		ORDER BY created_at NULLS FIRST, id`, email)
	if err != nil {
		return nil, fmt.Errorf("postgres: find sessions by email: %w", dbError(err))
	}
	return out, nil
}

// FindSessionsByNameID returns the sessions of upstream whose NameID has
// the value of nameID and, where set in nameID, the same Format,
// NameQualifier and SPNameQualifier; when sessionIndex is not empty, only
// the session with that SessionIndex. A session matches by its current
// upstream login or by one of its PriorLogins. Oldest first.
func (db *DB) FindSessionsByNameID(ctx context.Context, upstream string, nameID store.NameID, sessionIndex string) ([]store.Session, error) {
	if nameID.Value == "" || checkText("query", upstream+nameID.Value+nameID.Format+
		nameID.NameQualifier+nameID.SPNameQualifier+sessionIndex) != nil {
		return nil, nil
	}
	// The containment document finds candidate rows through the GIN
	// index on prior_logins; the EXISTS applies the exact rule.
	probe, err := json.Marshal([]store.UpstreamLogin{{Upstream: upstream, NameID: store.NameID{Value: nameID.Value}}})
	if err != nil {
		return nil, fmt.Errorf("postgres: find sessions by NameID: %w", err)
	}
	out, err := querySessions(ctx, db.pool, "SELECT "+sessionColumns+` FROM sessions
		WHERE (upstream = $1 AND name_id_value = $2 AND name_id_value <> ''
		  AND ($3 = '' OR name_id_format = $3)
		  AND ($4 = '' OR name_qualifier = $4)
		  AND ($5 = '' OR sp_name_qualifier = $5)
		  AND ($6 = '' OR session_index = $6))
		OR (prior_logins @> $7::jsonb AND EXISTS (SELECT 1 FROM jsonb_array_elements(prior_logins) p
		  WHERE coalesce(p->>'upstream', '') = $1 AND p->'name_id'->>'value' = $2
		  AND ($3 = '' OR coalesce(p->'name_id'->>'format', '') = $3)
		  AND ($4 = '' OR coalesce(p->'name_id'->>'name_qualifier', '') = $4)
		  AND ($5 = '' OR coalesce(p->'name_id'->>'sp_name_qualifier', '') = $5)
		  AND ($6 = '' OR coalesce(p->>'session_index', '') = $6)))
		ORDER BY created_at NULLS FIRST, id`,
		upstream, nameID.Value, nameID.Format, nameID.NameQualifier, nameID.SPNameQualifier, sessionIndex, string(probe))
	if err != nil {
		return nil, fmt.Errorf("postgres: find sessions by NameID: %w", dbError(err))
	}
	return out, nil
}

// CountActiveSessions counts sessions neither ended nor expired at now.
func (db *DB) CountActiveSessions(ctx context.Context, now time.Time) (int, error) {
	var n int
	err := db.pool.QueryRow(ctx,
		"SELECT count(*) FROM sessions WHERE ended_at IS NULL AND expires_at > $1", now).Scan(&n)
	if err != nil {
		return 0, fmt.Errorf("postgres: count active sessions: %w", dbError(err))
	}
	return n, nil
}

// ListSessions returns a page of the sessions of an upstream (index
// sessions_upstream_idx) or of an app that joined them (participants_app_idx),
// newest first.
func (db *DB) ListSessions(ctx context.Context, f store.SessionFilter, before store.Cursor, limit int) ([]store.Session, error) {
	if limit <= 0 || limit > store.MaxPage {
		return nil, fmt.Errorf("postgres: list sessions: %w: limit %d is not in 1..%d", store.ErrInvalid, limit, store.MaxPage)
	}
	if (f.Upstream == "") == (f.AppID == "") {
		return nil, fmt.Errorf("postgres: list sessions: %w: give an upstream or an app", store.ErrInvalid)
	}
	where, value := "upstream = $1", f.Upstream
	if f.AppID != "" {
		where, value = "id IN (SELECT session_id FROM participants WHERE app_id = $1)", f.AppID
	}
	if checkIDs("filter", value) != nil {
		return nil, nil
	}
	q := "SELECT " + sessionColumns + " FROM sessions WHERE " + where
	var out []store.Session
	var err error
	if before.CreatedAt.IsZero() {
		out, err = querySessions(ctx, db.pool, q+" ORDER BY created_at DESC, id DESC LIMIT $2", value, limit)
	} else {
		out, err = querySessions(ctx, db.pool, q+" AND (created_at, id) < ($2, $3) ORDER BY created_at DESC, id DESC LIMIT $4",
			value, before.CreatedAt.UTC(), before.ID, limit)
	}
	if err != nil {
		return nil, fmt.Errorf("postgres: list sessions: %w", dbError(err))
	}
	return out, nil
}
