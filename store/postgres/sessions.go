package postgres

import (
	"context"
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
	coalesce(logout_id, '')`

// scanSession reads one row of sessionColumns.
func scanSession(row rowScanner) (store.Session, error) {
	var s store.Session
	var attrs []byte
	var auth, created, expires, ended *time.Time
	err := row.Scan(&s.ID, &s.UserID, &s.Upstream, &s.NameID.Value, &s.NameID.Format,
		&s.NameID.NameQualifier, &s.NameID.SPNameQualifier, &s.SessionIndex, &attrs,
		&auth, &created, &expires, &ended, &s.LogoutID)
	if err != nil {
		return store.Session{}, err
	}
	s.AuthTime, s.CreatedAt, s.ExpiresAt, s.EndedAt = fromTZ(auth), fromTZ(created), fromTZ(expires), fromTZ(ended)
	if err := decodeJSON(attrs, &s.Attributes, "session attributes"); err != nil {
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
		err = checkText("upstream", s.Upstream, "NameID", s.NameID.Value+s.NameID.Format+
			s.NameID.NameQualifier+s.NameID.SPNameQualifier, "session index", s.SessionIndex)
	}
	if err != nil {
		return fmt.Errorf("postgres: create session: %w", err)
	}
	attrs, err := nullJSON(s.Attributes, len(s.Attributes) == 0)
	if err != nil {
		return fmt.Errorf("postgres: create session: %w", err)
	}
	_, err = db.pool.Exec(ctx, `INSERT INTO sessions (id, user_id, upstream, name_id_value,
		name_id_format, name_qualifier, sp_name_qualifier, session_index, attributes, auth_time,
		created_at, expires_at, ended_at, logout_id)
		VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, nullif($14, ''))`,
		s.ID, s.UserID, s.Upstream, s.NameID.Value, s.NameID.Format, s.NameID.NameQualifier,
		s.NameID.SPNameQualifier, s.SessionIndex, attrs, tz(s.AuthTime), tz(s.CreatedAt),
		tz(s.ExpiresAt), tz(s.EndedAt), s.LogoutID)
	if err != nil {
		return fmt.Errorf("postgres: create session %q: %w", s.ID, dbError(err))
	}
	return nil
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

// FindSessionsByNameID returns the sessions of upstream whose NameID has
// the value of nameID and, where set in nameID, the same Format,
// NameQualifier and SPNameQualifier; when sessionIndex is not empty, only
// the session with that SessionIndex. Oldest first.
func (db *DB) FindSessionsByNameID(ctx context.Context, upstream string, nameID store.NameID, sessionIndex string) ([]store.Session, error) {
	if nameID.Value == "" || checkText("query", upstream+nameID.Value+nameID.Format+
		nameID.NameQualifier+nameID.SPNameQualifier+sessionIndex) != nil {
		return nil, nil
	}
	out, err := querySessions(ctx, db.pool, "SELECT "+sessionColumns+` FROM sessions
		WHERE upstream = $1 AND name_id_value = $2 AND name_id_value <> ''
		  AND ($3 = '' OR name_id_format = $3)
		  AND ($4 = '' OR name_qualifier = $4)
		  AND ($5 = '' OR sp_name_qualifier = $5)
		  AND ($6 = '' OR session_index = $6)
		ORDER BY created_at NULLS FIRST, id`,
		upstream, nameID.Value, nameID.Format, nameID.NameQualifier, nameID.SPNameQualifier, sessionIndex)
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
