package postgres

import (
	"context"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/slobridge/slobridge/store"
)

// addParticipantSQL adds a participant in one statement. The CTE takes a
// key-share lock on the session row (the lock the foreign key check takes
// anyway), which conflicts with the FOR UPDATE of a concurrent
// EndSessions: either this insert commits first (and the logout, which
// then reads the participants, snapshots it), or it waits for the logout
// to commit and sees the session ended. Concurrent joins do not block each
// other. ON CONFLICT makes a repeated join a no-op without an error.
const addParticipantSQL = `
WITH s AS (
	SELECT ended_at IS NOT NULL AS ended FROM sessions WHERE id = $1 FOR KEY SHARE
), ins AS (
	INSERT INTO participants (session_id, key, kind, app_id, name, channels,
		back_channel_url, front_channel_url, data, joined_at)
	SELECT $1, $2, $3, $4, $5, $6, $7, $8, $9, $10 FROM s WHERE NOT s.ended
	ON CONFLICT (session_id, key) DO NOTHING
	RETURNING 1
)
SELECT (SELECT count(*) FROM s), coalesce((SELECT ended FROM s), false), (SELECT count(*) FROM ins)`

// AddParticipant adds p to its session unless a participant with the same
// Key is there already, and reports whether it did. ErrNotFound for an
// unknown session, ErrSessionEnded for an ended one (even when p was there
// before the logout).
func (db *DB) AddParticipant(ctx context.Context, p store.Participant) (bool, error) {
	err := checkIDs("session ID", p.SessionID, "participant key", p.Key)
	if err == nil {
		err = checkText("participant", p.Kind+p.AppID+p.Name+p.BackChannelURL+p.FrontChannelURL)
	}
	if err != nil {
		return false, fmt.Errorf("postgres: add participant: %w", err)
	}
	data, err := nullJSON(p.Data, len(p.Data) == 0)
	if err != nil {
		return false, fmt.Errorf("postgres: add participant: %w", err)
	}
	var found, inserted int
	var ended bool
	err = db.pool.QueryRow(ctx, addParticipantSQL, p.SessionID, p.Key, p.Kind, p.AppID, p.Name,
		int16(p.Channels), p.BackChannelURL, p.FrontChannelURL, data, tz(p.JoinedAt)).
		Scan(&found, &ended, &inserted)
	switch {
	case err != nil:
		return false, fmt.Errorf("postgres: add participant: %w", dbError(err))
	case found == 0:
		return false, fmt.Errorf("postgres: add participant: session: %w", store.ErrNotFound)
	case ended:
		return false, fmt.Errorf("postgres: add participant: session: %w", store.ErrSessionEnded)
	}
	return inserted == 1, nil
}

// participantColumns are the columns scanParticipant reads, in order.
const participantColumns = `session_id, key, kind, app_id, name, channels, back_channel_url,
	front_channel_url, data, joined_at`

// scanParticipant reads one row of participantColumns.
func scanParticipant(row rowScanner) (store.Participant, error) {
	var p store.Participant
	var ch int16
	var data []byte
	var joined *time.Time
	err := row.Scan(&p.SessionID, &p.Key, &p.Kind, &p.AppID, &p.Name, &ch, &p.BackChannelURL,
		&p.FrontChannelURL, &data, &joined)
	if err != nil {
		return store.Participant{}, err
	}
	p.Channels, p.JoinedAt = store.Channel(ch), fromTZ(joined)
	if err := decodeJSON(data, &p.Data, "participant data"); err != nil {
		return store.Participant{}, err
	}
	return p, nil
}

// listParticipants returns the participants of the sessions ids, session
// by session in the order of ids, each in join order.
func listParticipants(ctx context.Context, q querier, ids []string) ([]store.Participant, error) {
	rows, err := q.Query(ctx, "SELECT "+participantColumns+
		" FROM participants WHERE session_id = ANY($1) ORDER BY array_position($1, session_id), seq", ids)
	if err != nil {
		return nil, err
	}
	return pgx.CollectRows(rows, func(r pgx.CollectableRow) (store.Participant, error) { return scanParticipant(r) })
}

// ListParticipants returns a session's participants in join order;
// ErrNotFound when the session does not exist.
func (db *DB) ListParticipants(ctx context.Context, sessionID string) ([]store.Participant, error) {
	if checkIDs("session ID", sessionID) != nil {
		return nil, fmt.Errorf("postgres: list participants: session: %w", store.ErrNotFound)
	}
	// One statement sees one snapshot, and a participant row implies its
	// session (foreign key): the existence check is needed only when the
	// list is empty, so the common case is one round trip.
	out, err := listParticipants(ctx, db.pool, []string{sessionID})
	if err == nil && len(out) == 0 {
		var exists bool
		err = db.pool.QueryRow(ctx, "SELECT EXISTS (SELECT 1 FROM sessions WHERE id = $1)", sessionID).Scan(&exists)
		if err == nil && !exists {
			err = fmt.Errorf("session: %w", store.ErrNotFound)
		}
	}
	if err != nil {
		return nil, fmt.Errorf("postgres: list participants: %w", dbError(err))
	}
	return out, nil
}
