package bolt

import (
	"time"

	"context"
	"fmt"
	"slices"

	bbolt "go.etcd.io/bbolt"

	"github.com/slobridge/slobridge/store"
)

// EndSessions is the logout transaction. In one bbolt transaction it ends
// the active sessions named by spec (skipping ended or expired ones),
// snapshots their participants into a Logout and queues one pending
// delivery per back-channel participant other than spec.ExcludeKey, due at
// spec.Now. An unknown session ID fails the whole call with ErrNotFound and
// changes nothing; when no active session matches it returns a Logout with
// no sessions and writes nothing.
func (db *DB) EndSessions(ctx context.Context, spec store.LogoutSpec) (store.Logout, []store.Delivery, error) {
	if err := checkIDs("logout ID", spec.LogoutID); err != nil {
		return store.Logout{}, nil, fmt.Errorf("bolt: end sessions: %w", err)
	}
	if spec.NewDeliveryID == nil {
		return store.Logout{}, nil, fmt.Errorf("bolt: end sessions: %w: no delivery ID generator", store.ErrInvalid)
	}
	lo := store.Logout{
		ID:         spec.LogoutID,
		UserID:     spec.UserID,
		Initiator:  spec.Initiator,
		ExcludeKey: spec.ExcludeKey,
		CreatedAt:  spec.Now,
	}
	var ds []store.Delivery
	err := db.update(ctx, "end sessions", func(tx *bbolt.Tx) error {
		lo.SessionIDs, lo.Participants, ds = nil, nil, nil
		sessions, err := sessionsToEnd(tx, spec)
		if err != nil || len(sessions) == 0 {
			return err
		}
		if tx.Bucket([]byte(bkLogouts)).Get([]byte(lo.ID)) != nil {
			return fmt.Errorf("logout: %w", store.ErrAlreadyExists)
		}
		if lo.UserID == "" {
			lo.UserID = sessions[0].UserID
		}
		for _, s := range sessions {
			ended := s
			ended.EndedAt, ended.LogoutID = spec.Now, lo.ID
			if err := putSession(tx, &s, ended); err != nil {
				return err
			}
			ps, err := listParticipants(tx, s.ID)
			if err != nil {
				return err
			}
			lo.SessionIDs = append(lo.SessionIDs, s.ID)
			lo.Participants = append(lo.Participants, ps...)
		}
		if spec.Legs != nil {
			lo.Participants = store.WithLegs(lo.Participants, lo.SessionIDs, spec.Legs(sessions))
		}
		if ds, err = queueDeliveries(tx, lo, spec); err != nil {
			return err
		}
		return putLogout(tx, lo)
	})
	if err != nil {
		return store.Logout{}, nil, err
	}
	return lo, ds, nil
}

// sessionsToEnd resolves spec to the distinct active sessions it names, in
// the order given, then the user's other active sessions oldest first.
func sessionsToEnd(tx *bbolt.Tx, spec store.LogoutSpec) ([]store.Session, error) {
	seen := map[string]bool{}
	var out []store.Session
	for _, id := range spec.SessionIDs {
		s, err := getSession(tx, id)
		if err != nil {
			return nil, err
		}
		if !seen[id] && s.Active(spec.Now) {
			out = append(out, s)
		}
		seen[id] = true
	}
	if spec.UserID == "" || !validID(spec.UserID) {
		return out, nil
	}
	mine, err := sessionsByIndex(tx, bkSessByUser, prefix(spec.UserID), func(s store.Session) bool {
		return !seen[s.ID] && s.Active(spec.Now)
	})
	if err != nil {
		return nil, err
	}
	return append(out, mine...), nil
}

// queueDeliveries writes one pending delivery per back-channel participant
// of lo except spec.ExcludeKey, in snapshot order.
func queueDeliveries(tx *bbolt.Tx, lo store.Logout, spec store.LogoutSpec) ([]store.Delivery, error) {
	var ds []store.Delivery
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
			return nil, err
		}
		if tx.Bucket([]byte(bkDeliveries)).Get([]byte(d.ID)) != nil {
			return nil, fmt.Errorf("delivery: %w", store.ErrAlreadyExists)
		}
		if err := putDelivery(tx, nil, d); err != nil {
			return nil, err
		}
		ord := key(prefix(lo.ID), u64(uint64(len(ds))))
		if err := tx.Bucket([]byte(bkDelByLogout)).Put(ord, []byte(d.ID)); err != nil {
			return nil, err
		}
		ds = append(ds, d)
	}
	return ds, nil
}

// logoutIndexKeys returns the index entries of lo, by bucket.
func logoutIndexKeys(lo store.Logout) map[string][]byte {
	idx := map[string][]byte{
		bkLogoutsByTime: key(timeBytes(lo.CreatedAt), []byte(lo.ID)),
	}
	if validID(lo.UserID) {
		idx[bkLogoutsByUser] = key(prefix(lo.UserID), timeBytes(lo.CreatedAt), []byte(lo.ID))
	}
	return idx
}

// putLogout writes a new logout and its index entries.
func putLogout(tx *bbolt.Tx, lo store.Logout) error {
	for name, k := range logoutIndexKeys(lo) {
		if err := tx.Bucket([]byte(name)).Put(k, nil); err != nil {
			return err
		}
	}
	return tx.Bucket([]byte(bkLogouts)).Put([]byte(lo.ID), encodeLogout(lo))
}

// getLogout loads one logout; ErrNotFound when absent.
func getLogout(tx *bbolt.Tx, id string) (store.Logout, error) {
	v := tx.Bucket([]byte(bkLogouts)).Get([]byte(id))
	if v == nil {
		return store.Logout{}, fmt.Errorf("logout: %w", store.ErrNotFound)
	}
	return decodeLogout(id, v)
}

// GetLogout returns one logout.
func (db *DB) GetLogout(ctx context.Context, id string) (store.Logout, error) {
	var lo store.Logout
	err := db.view(ctx, "get logout", func(tx *bbolt.Tx) error {
		var err error
		lo, err = getLogout(tx, id)
		return err
	})
	return lo, err
}

// lastBefore positions c, over an index of p+timeBytes+ID keys, on the
// last key before (at, id) — the last key of p for the zero time — and
// returns it (nil when there is none; a key outside p when p has none
// before): where a page newest first starts. Times never begin with 0xff.
func lastBefore(c *bbolt.Cursor, p []byte, at time.Time, id string) []byte {
	seek := key(p, []byte{0xff})
	if !at.IsZero() {
		seek = key(p, timeBytes(at), []byte(id))
	}
	if k, _ := c.Seek(seek); k == nil {
		k, _ = c.Last() // past every key
		return k
	}
	k, _ := c.Prev()
	return k
}

// ListLogouts returns a page of logouts, newest first, walking the time
// index backwards from the cursor.
func (db *DB) ListLogouts(ctx context.Context, before store.LogoutCursor, limit int) ([]store.Logout, error) {
	if limit <= 0 || limit > store.MaxPage {
		return nil, fmt.Errorf("bolt: list logouts: %w: limit %d is not in 1..%d", store.ErrInvalid, limit, store.MaxPage)
	}
	var out []store.Logout
	err := db.view(ctx, "list logouts", func(tx *bbolt.Tx) error {
		c := tx.Bucket([]byte(bkLogoutsByTime)).Cursor()
		for k := lastBefore(c, nil, before.CreatedAt, before.ID); k != nil && len(out) < limit; k, _ = c.Prev() {
			lo, err := getLogout(tx, string(k[timeLen:]))
			if err != nil {
				return fmt.Errorf("index %s points at a missing logout: %w", bkLogoutsByTime, err)
			}
			out = append(out, lo)
		}
		return nil
	})
	return out, err
}

// ListLogoutsByUser returns the logouts of a user, newest first.
func (db *DB) ListLogoutsByUser(ctx context.Context, userID string) ([]store.Logout, error) {
	if !validID(userID) {
		return nil, nil
	}
	var out []store.Logout
	err := db.view(ctx, "list logouts by user", func(tx *bbolt.Tx) error {
		p := prefix(userID)
		var ids []string
		err := scanPrefix(tx.Bucket([]byte(bkLogoutsByUser)), p, func(k, _ []byte) error {
			ids = append(ids, idAfterPrefix(k, len(p)))
			return nil
		})
		if err != nil {
			return err
		}
		slices.Reverse(ids)
		for _, id := range ids {
			lo, err := getLogout(tx, id)
			if err != nil {
				return fmt.Errorf("index %s points at a missing logout: %w", bkLogoutsByUser, err)
			}
			out = append(out, lo)
		}
		return nil
	})
	return out, err
}

// deleteLogout removes a logout, its index entries, and its deliveries.
func deleteLogout(tx *bbolt.Tx, lo store.Logout) error {
	for name, k := range logoutIndexKeys(lo) {
		if err := tx.Bucket([]byte(name)).Delete(k); err != nil {
			return err
		}
	}
	if err := deleteLogoutDeliveries(tx, lo.ID); err != nil {
		return err
	}
	return tx.Bucket([]byte(bkLogouts)).Delete([]byte(lo.ID))
}
