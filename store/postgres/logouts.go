package postgres

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/slobridge/slobridge/store"
)

// lockSessionsSQL locks, in ID order (so that concurrent logouts cannot
// deadlock on each other), the sessions named by ID and the active
// sessions of the user. Under READ COMMITTED a row that another logout
// ended while this one waited for its lock is re-checked against the WHERE
// clause, so a user's session ended meanwhile is not ended twice.
const lockSessionsSQL = "SELECT " + sessionColumns + ` FROM sessions
	WHERE id = ANY($1)
	   OR ($2 <> '' AND user_id = $2 AND ended_at IS NULL AND expires_at > $3)
	ORDER BY id
	FOR UPDATE`

// insertDeliveriesSQL writes a logout's deliveries from parallel arrays in
// one statement.
const insertDeliveriesSQL = `INSERT INTO deliveries (id, logout_id, ord, participant, state,
	created_at, next_attempt_at)
	SELECT d.id, $1, d.ord, d.participant, 'pending', $5, $6
	FROM unnest($2::text[], $3::int[], $4::jsonb[]) AS d(id, ord, participant)`

// EndSessions is the logout transaction. In one transaction it locks and
// ends the active sessions named by spec (skipping ended or expired ones),
// snapshots their participants into a Logout and queues one pending
// delivery per back-channel participant other than spec.ExcludeKey, due at
// spec.Now. An unknown session ID fails the whole call with ErrNotFound
// and changes nothing; when no active session matches it returns a Logout
// with no sessions and writes nothing. The new logout is announced on the
// change feed (Listen) when the transaction commits.
func (db *DB) EndSessions(ctx context.Context, spec store.LogoutSpec) (store.Logout, []store.Delivery, error) {
	if err := checkIDs("logout ID", spec.LogoutID); err != nil {
		return store.Logout{}, nil, fmt.Errorf("postgres: end sessions: %w", err)
	}
	if spec.NewDeliveryID == nil {
		return store.Logout{}, nil, fmt.Errorf("postgres: end sessions: %w: no delivery ID generator", store.ErrInvalid)
	}
	for _, id := range spec.SessionIDs {
		if checkIDs("session ID", id) != nil {
			return store.Logout{}, nil, fmt.Errorf("postgres: end sessions: session %q: %w", id, store.ErrNotFound)
		}
	}
	if err := checkText("user ID", spec.UserID, "initiator", string(spec.Initiator.Kind)+spec.Initiator.ID,
		"exclude key", spec.ExcludeKey); err != nil {
		return store.Logout{}, nil, fmt.Errorf("postgres: end sessions: %w", err)
	}
	var lo store.Logout
	var ds []store.Delivery
	err := db.inTx(ctx, "end sessions", func(tx pgx.Tx) error {
		var err error
		lo, ds, err = endSessions(ctx, tx, spec)
		return err
	})
	if err != nil {
		return store.Logout{}, nil, err
	}
	if len(lo.SessionIDs) > 0 {
		db.notifier.poke()
	}
	return lo, ds, nil
}

// endSessions is the body of the EndSessions transaction.
func endSessions(ctx context.Context, tx pgx.Tx, spec store.LogoutSpec) (store.Logout, []store.Delivery, error) {
	lo := store.Logout{
		ID:         spec.LogoutID,
		UserID:     spec.UserID,
		Initiator:  spec.Initiator,
		ExcludeKey: spec.ExcludeKey,
		CreatedAt:  spec.Now,
	}
	sessions, err := sessionsToEnd(ctx, tx, spec)
	if err != nil || len(sessions) == 0 {
		return lo, nil, err
	}
	if lo.UserID == "" {
		lo.UserID = sessions[0].UserID
	}
	for _, s := range sessions {
		lo.SessionIDs = append(lo.SessionIDs, s.ID)
	}
	if lo.Participants, err = listParticipants(ctx, tx, lo.SessionIDs); err != nil {
		return lo, nil, err
	}
	if spec.Legs != nil {
		lo.Participants = store.WithLegs(lo.Participants, lo.SessionIDs, spec.Legs(sessions))
	}
	snapshot, err := json.Marshal(lo.Participants)
	if err != nil {
		return lo, nil, fmt.Errorf("encode participants: %w", err)
	}
	ds, ids, ords, parts, err := newDeliveries(lo, spec)
	if err != nil {
		return lo, nil, err
	}
	// The writes depend on nothing read back: one round trip for all.
	var b pgx.Batch
	b.Queue("UPDATE sessions SET ended_at = $1, logout_id = $2 WHERE id = ANY($3)",
		tz(spec.Now), lo.ID, lo.SessionIDs)
	b.Queue(`INSERT INTO logouts (id, user_id, session_ids, initiator_kind, initiator_id,
		exclude_key, created_at, participants) VALUES ($1, $2, $3, $4, $5, $6, $7, $8)`,
		lo.ID, lo.UserID, lo.SessionIDs, string(lo.Initiator.Kind), lo.Initiator.ID, lo.ExcludeKey,
		tz(lo.CreatedAt), string(snapshot))
	what := []string{"end sessions", fmt.Sprintf("logout %q", lo.ID)}
	if len(ds) > 0 {
		// next_attempt_at is never NULL for a due delivery (see claimSQL).
		b.Queue(insertDeliveriesSQL, lo.ID, ids, ords, parts, tz(spec.Now), spec.Now)
		what = append(what, "delivery")
	}
	b.Queue("INSERT INTO changes (logout_id) VALUES ($1)", lo.ID)
	what = append(what, "change feed")
	br := tx.SendBatch(ctx, &b)
	for _, w := range what {
		if _, err := br.Exec(); err != nil {
			_ = br.Close()
			return lo, nil, fmt.Errorf("%s: %w", w, err)
		}
	}
	if err := br.Close(); err != nil {
		return lo, nil, err
	}
	return lo, ds, nil
}

// sessionsToEnd locks the sessions spec names and returns the distinct
// active ones: those named by ID in the order given, then the user's other
// active sessions oldest first. An unknown ID is ErrNotFound.
func sessionsToEnd(ctx context.Context, tx pgx.Tx, spec store.LogoutSpec) ([]store.Session, error) {
	userID := spec.UserID
	if checkIDs("user ID", userID) != nil {
		userID = ""
	}
	locked, err := querySessions(ctx, tx, lockSessionsSQL, spec.SessionIDs, userID, spec.Now)
	if err != nil {
		return nil, err
	}
	byID := make(map[string]store.Session, len(locked))
	for _, s := range locked {
		byID[s.ID] = s
	}
	seen := map[string]bool{}
	var out []store.Session
	for _, id := range spec.SessionIDs {
		s, ok := byID[id]
		if !ok {
			return nil, fmt.Errorf("session %q: %w", id, store.ErrNotFound)
		}
		if !seen[id] && s.Active(spec.Now) {
			out = append(out, s)
		}
		seen[id] = true
	}
	var mine []store.Session
	for _, s := range locked {
		if !seen[s.ID] && userID != "" && s.UserID == userID && s.Active(spec.Now) {
			mine = append(mine, s)
		}
	}
	slices.SortStableFunc(mine, func(a, b store.Session) int {
		if c := a.CreatedAt.Compare(b.CreatedAt); c != 0 {
			return c
		}
		return strings.Compare(a.ID, b.ID) // byte-wise, as the "C" collation
	})
	return append(out, mine...), nil
}

// newDeliveries builds one pending delivery per back-channel participant
// of lo except spec.ExcludeKey, in snapshot order, and the column arrays
// of insertDeliveriesSQL for them.
func newDeliveries(lo store.Logout, spec store.LogoutSpec) (ds []store.Delivery, ids []string, ords []int32, parts []string, err error) {
	for _, p := range lo.Participants {
		if !p.Channels.Has(store.ChannelBack) || (spec.ExcludeKey != "" && p.Key == spec.ExcludeKey) {
			continue
		}
		d := store.Delivery{
			ID:            spec.NewDeliveryID(),
			LogoutID:      lo.ID,
			Participant:   p,
			State:         store.DeliveryPending,
			CreatedAt:     spec.Now,
			NextAttemptAt: spec.Now,
		}
		if err := checkIDs("delivery ID", d.ID); err != nil {
			return nil, nil, nil, nil, err
		}
		raw, err := json.Marshal(p)
		if err != nil {
			return nil, nil, nil, nil, fmt.Errorf("encode participant: %w", err)
		}
		ids, ords, parts = append(ids, d.ID), append(ords, int32(len(ds))), append(parts, string(raw))
		ds = append(ds, d)
	}
	return ds, ids, ords, parts, nil
}

// logoutColumns are the columns scanLogout reads, in order.
const logoutColumns = `id, user_id, session_ids, initiator_kind, initiator_id, exclude_key,
	created_at, participants`

// scanLogout reads one row of logoutColumns.
func scanLogout(row rowScanner) (store.Logout, error) {
	var lo store.Logout
	var kind string
	var created *time.Time
	var parts []byte
	err := row.Scan(&lo.ID, &lo.UserID, &lo.SessionIDs, &kind, &lo.Initiator.ID, &lo.ExcludeKey,
		&created, &parts)
	if err != nil {
		return store.Logout{}, err
	}
	lo.Initiator.Kind, lo.CreatedAt = store.InitiatorKind(kind), fromTZ(created)
	if err := decodeJSON(parts, &lo.Participants, "logout participants"); err != nil {
		return store.Logout{}, err
	}
	return lo, nil
}

// GetLogout returns one logout.
func (db *DB) GetLogout(ctx context.Context, id string) (store.Logout, error) {
	if checkIDs("logout ID", id) != nil {
		return store.Logout{}, fmt.Errorf("postgres: get logout: %w", store.ErrNotFound)
	}
	lo, err := scanLogout(db.pool.QueryRow(ctx, "SELECT "+logoutColumns+" FROM logouts WHERE id = $1", id))
	if errors.Is(err, pgx.ErrNoRows) {
		return store.Logout{}, fmt.Errorf("postgres: get logout %q: %w", id, store.ErrNotFound)
	}
	if err != nil {
		return store.Logout{}, fmt.Errorf("postgres: get logout: %w", dbError(err))
	}
	return lo, nil
}

// ListLogouts returns a page of logouts, newest first, from the
// created_at index.
func (db *DB) ListLogouts(ctx context.Context, before store.LogoutCursor, limit int) ([]store.Logout, error) {
	if limit <= 0 || limit > store.MaxPage {
		return nil, fmt.Errorf("postgres: list logouts: %w: limit %d is not in 1..%d", store.ErrInvalid, limit, store.MaxPage)
	}
	var rows pgx.Rows
	var err error
	if before.CreatedAt.IsZero() {
		rows, err = db.pool.Query(ctx, "SELECT "+logoutColumns+" FROM logouts ORDER BY created_at DESC, id DESC LIMIT $1", limit)
	} else {
		rows, err = db.pool.Query(ctx, "SELECT "+logoutColumns+" FROM logouts WHERE (created_at, id) < ($1, $2)"+
			" ORDER BY created_at DESC, id DESC LIMIT $3", before.CreatedAt.UTC(), before.ID, limit)
	}
	if err == nil {
		var out []store.Logout
		out, err = pgx.CollectRows(rows, func(r pgx.CollectableRow) (store.Logout, error) { return scanLogout(r) })
		if err == nil {
			return out, nil
		}
	}
	return nil, fmt.Errorf("postgres: list logouts: %w", dbError(err))
}

// ListLogoutsByUser returns the logouts of a user, newest first.
func (db *DB) ListLogoutsByUser(ctx context.Context, userID string) ([]store.Logout, error) {
	if checkIDs("user ID", userID) != nil {
		return nil, nil
	}
	rows, err := db.pool.Query(ctx, "SELECT "+logoutColumns+
		" FROM logouts WHERE user_id = $1 ORDER BY created_at DESC NULLS LAST, id DESC", userID)
	if err == nil {
		var out []store.Logout
		out, err = pgx.CollectRows(rows, func(r pgx.CollectableRow) (store.Logout, error) { return scanLogout(r) })
		if err == nil {
			return out, nil
		}
	}
	return nil, fmt.Errorf("postgres: list logouts by user: %w", dbError(err))
}
