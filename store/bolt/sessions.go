package bolt

import (
	"bytes"
	"context"
	"encoding/binary"
	"fmt"
	"slices"
	"time"

	bbolt "go.etcd.io/bbolt"

	"github.com/slobridge/slobridge/store"
)

// indexEntry is one key of an index bucket.
type indexEntry struct {
	bucket string
	key    []byte
}

// put writes the entry, counting it when it is a new active session.
func (e indexEntry) put(tx *bbolt.Tx) error {
	b := tx.Bucket([]byte(e.bucket))
	if e.bucket == bkSessActive && b.Get(e.key) == nil {
		if err := addActiveCount(tx, 1); err != nil {
			return err
		}
	}
	return b.Put(e.key, nil)
}

// delete removes the entry, counting it out when it was an active session.
func (e indexEntry) delete(tx *bbolt.Tx) error {
	b := tx.Bucket([]byte(e.bucket))
	if e.bucket == bkSessActive && b.Get(e.key) != nil {
		if err := addActiveCount(tx, -1); err != nil {
			return err
		}
	}
	return b.Delete(e.key)
}

// sessionIndexKeys returns the index entries of s: by user, by upstream
// NameID (for the current upstream login and every prior one), by its
// current upstream, by email, and active by expiry or ended by end time.
func sessionIndexKeys(s store.Session) []indexEntry {
	id := []byte(s.ID)
	idx := []indexEntry{{bkSessByUser, key(prefix(s.UserID), timeBytes(s.CreatedAt), id)}}
	for _, l := range append([]store.UpstreamLogin{s.UpstreamLogin()}, s.PriorLogins...) {
		if l.NameID.Value != "" {
			idx = append(idx, indexEntry{bkSessByNameID, key(prefix(l.Upstream, l.NameID.Value), timeBytes(s.CreatedAt), id)})
		}
	}
	if validID(s.Upstream) {
		idx = append(idx, indexEntry{bkSessByUp, key(prefix(s.Upstream), timeBytes(s.CreatedAt), id)})
	}
	for _, e := range s.Attributes["email"] {
		if validID(e) {
			idx = append(idx, indexEntry{bkSessByEmail, key(prefix(e), timeBytes(s.CreatedAt), id)})
		}
	}
	if s.EndedAt.IsZero() {
		idx = append(idx, indexEntry{bkSessActive, key(timeBytes(s.ExpiresAt), id)})
	} else {
		idx = append(idx, indexEntry{bkSessEnded, key(timeBytes(s.EndedAt), id)})
	}
	return idx
}

// putSession writes s and its index entries, replacing those of old. Only
// the entries that change are touched: ending a session moves it from the
// active to the ended index and leaves the pages of the user and NameID
// indexes clean.
func putSession(tx *bbolt.Tx, old *store.Session, s store.Session) error {
	var stale []indexEntry
	if old != nil {
		stale = sessionIndexKeys(*old)
	}
	fresh := sessionIndexKeys(s)
	for _, e := range stale {
		if hasIndexEntry(fresh, e) {
			continue
		}
		if err := e.delete(tx); err != nil {
			return err
		}
	}
	for _, e := range fresh {
		if hasIndexEntry(stale, e) {
			continue
		}
		if err := e.put(tx); err != nil {
			return err
		}
	}
	return tx.Bucket([]byte(bkSessions)).Put([]byte(s.ID), encodeSession(s))
}

// hasIndexEntry reports whether es holds e.
func hasIndexEntry(es []indexEntry, e indexEntry) bool {
	return slices.ContainsFunc(es, func(x indexEntry) bool { return x.bucket == e.bucket && bytes.Equal(x.key, e.key) })
}

// getSession loads one session; ErrNotFound when absent.
func getSession(tx *bbolt.Tx, id string) (store.Session, error) {
	v := tx.Bucket([]byte(bkSessions)).Get([]byte(id))
	if v == nil {
		return store.Session{}, fmt.Errorf("session: %w", store.ErrNotFound)
	}
	return decodeSession(id, v)
}

// CreateSession stores a new session; ErrAlreadyExists if the ID is taken.
func (db *DB) CreateSession(ctx context.Context, s store.Session) error {
	if err := checkIDs("session ID", s.ID, "user ID", s.UserID); err != nil {
		return fmt.Errorf("bolt: create session: %w", err)
	}
	if bytes.IndexByte([]byte(s.Upstream+s.NameID.Value), sep) >= 0 {
		return fmt.Errorf("bolt: create session: %w: upstream or NameID contains a NUL byte", store.ErrInvalid)
	}
	return db.loginBatch(ctx, "create session", func(tx *bbolt.Tx) error {
		if tx.Bucket([]byte(bkSessions)).Get([]byte(s.ID)) != nil {
			return fmt.Errorf("session: %w", store.ErrAlreadyExists)
		}
		return putSession(tx, nil, s)
	})
}

// ReauthenticateSession records a new upstream login of the session's own
// user: in one transaction it rewrites the session (Session.Reauthenticated)
// and moves its index entries (by NameID, for the new and every prior
// login; active by the new expiry).
func (db *DB) ReauthenticateSession(ctx context.Context, id string, upd store.SessionAuth, now time.Time) (store.Session, error) {
	if err := checkIDs("session ID", id, "user ID", upd.UserID); err != nil {
		return store.Session{}, fmt.Errorf("bolt: reauthenticate session: %w", err)
	}
	if bytes.IndexByte([]byte(upd.Upstream+upd.NameID.Value), sep) >= 0 {
		return store.Session{}, fmt.Errorf("bolt: reauthenticate session: %w: upstream or NameID contains a NUL byte", store.ErrInvalid)
	}
	if !upd.ExpiresAt.After(now) {
		return store.Session{}, fmt.Errorf("bolt: reauthenticate session: %w: expiry %v is not after %v", store.ErrInvalid, upd.ExpiresAt, now)
	}
	var out store.Session
	err := db.loginBatch(ctx, "reauthenticate session", func(tx *bbolt.Tx) error {
		old, err := getSession(tx, id)
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
		return putSession(tx, &old, out)
	})
	if err != nil {
		return store.Session{}, err
	}
	return out, nil
}

// GetSession returns one session, active or ended, until it is swept.
func (db *DB) GetSession(ctx context.Context, id string) (store.Session, error) {
	var s store.Session
	err := db.view(ctx, "get session", func(tx *bbolt.Tx) error {
		var err error
		s, err = getSession(tx, id)
		return err
	})
	return s, err
}

// sessionsByIndex loads the sessions whose IDs end the keys under p in
// index bucket name, in key order, keeping those keep accepts.
func sessionsByIndex(tx *bbolt.Tx, name string, p []byte, keep func(store.Session) bool) ([]store.Session, error) {
	var ids []string
	err := scanPrefix(tx.Bucket([]byte(name)), p, func(k, _ []byte) error {
		ids = append(ids, idAfterPrefix(k, len(p)))
		return nil
	})
	if err != nil {
		return nil, err
	}
	var out []store.Session
	for _, id := range ids {
		s, err := getSession(tx, id)
		if err != nil {
			return nil, fmt.Errorf("index %s points at a missing session: %w", name, err)
		}
		if keep == nil || keep(s) {
			out = append(out, s)
		}
	}
	return out, nil
}

// FindSessionsByEmail returns the sessions whose "email" attribute holds
// email, oldest first.
func (db *DB) FindSessionsByEmail(ctx context.Context, email string) ([]store.Session, error) {
	if !validID(email) {
		return nil, nil
	}
	var out []store.Session
	err := db.view(ctx, "find sessions by email", func(tx *bbolt.Tx) error {
		var err error
		out, err = sessionsByIndex(tx, bkSessByEmail, prefix(email), nil)
		return err
	})
	return out, err
}

// indexSessionsByEmail builds the email index of a file written before it
// existed.
func indexSessionsByEmail(tx *bbolt.Tx) error {
	b := tx.Bucket([]byte(bkSessByEmail))
	return tx.Bucket([]byte(bkSessions)).ForEach(func(k, _ []byte) error {
		s, err := getSession(tx, string(k))
		if err != nil {
			return err
		}
		for _, e := range sessionIndexKeys(s) {
			if e.bucket == bkSessByEmail {
				if err := b.Put(e.key, nil); err != nil {
					return err
				}
			}
		}
		return nil
	})
}

// ListSessionsByUser returns every stored session of a user, oldest first.
func (db *DB) ListSessionsByUser(ctx context.Context, userID string) ([]store.Session, error) {
	if !validID(userID) {
		return nil, nil
	}
	var out []store.Session
	err := db.view(ctx, "list sessions by user", func(tx *bbolt.Tx) error {
		var err error
		out, err = sessionsByIndex(tx, bkSessByUser, prefix(userID), nil)
		return err
	})
	return out, err
}

// FindSessionsByNameID returns the sessions of upstream whose NameID has
// the value of nameID and, where set in nameID, the same Format,
// NameQualifier and SPNameQualifier; when sessionIndex is not empty, only
// the session with that SessionIndex. A session matches by its current
// upstream login or by one of its PriorLogins. Oldest first.
func (db *DB) FindSessionsByNameID(ctx context.Context, upstream string, nameID store.NameID, sessionIndex string) ([]store.Session, error) {
	if nameID.Value == "" || bytes.IndexByte([]byte(upstream+nameID.Value), sep) >= 0 {
		return nil, nil
	}
	keep := func(s store.Session) bool {
		if s.UpstreamLogin().Matches(upstream, nameID, sessionIndex) {
			return true
		}
		for _, l := range s.PriorLogins {
			if l.Matches(upstream, nameID, sessionIndex) {
				return true
			}
		}
		return false
	}
	var out []store.Session
	err := db.view(ctx, "find sessions by NameID", func(tx *bbolt.Tx) error {
		var err error
		out, err = sessionsByIndex(tx, bkSessByNameID, prefix(upstream, nameID.Value), keep)
		return err
	})
	return out, err
}

// CountActiveSessions counts sessions neither ended nor expired at now.
func (db *DB) CountActiveSessions(ctx context.Context, now time.Time) (int, error) {
	n := 0
	err := db.view(ctx, "count active sessions", func(tx *bbolt.Tx) error {
		n = int(activeCount(tx))
		// The counter holds every session not ended; take away those
		// expired at now and not yet swept (the start of the index, a
		// small part once the sweeper runs).
		return scanUntil(tx.Bucket([]byte(bkSessActive)), now, func([]byte) (bool, error) {
			n--
			return true, nil
		})
	})
	return n, err
}

// activeCount reads the number of entries of the active-session index.
func activeCount(tx *bbolt.Tx) uint64 {
	v := tx.Bucket([]byte(bkMeta)).Get([]byte(metaActiveSessions))
	if len(v) != 8 {
		return 0
	}
	return binary.BigEndian.Uint64(v)
}

// addActiveCount adds d to the number of entries of the active-session
// index.
func addActiveCount(tx *bbolt.Tx, d int64) error {
	return setActiveCount(tx, uint64(int64(activeCount(tx))+d))
}

// setActiveCount stores the number of entries of the active-session index.
func setActiveCount(tx *bbolt.Tx, n uint64) error {
	return tx.Bucket([]byte(bkMeta)).Put([]byte(metaActiveSessions), binary.BigEndian.AppendUint64(nil, n))
}

// countActiveIndex counts the active-session index of a file written
// before the counter existed, and stores the count.
func countActiveIndex(tx *bbolt.Tx) error {
	n := tx.Bucket([]byte(bkSessActive)).Stats().KeyN
	return setActiveCount(tx, uint64(n))
}

// appKey is the sessions_by_app entry of a session an app joined.
func appKey(appID string, s store.Session) []byte {
	return key(prefix(appID), timeBytes(s.CreatedAt), []byte(s.ID))
}

// deleteSession removes a session, its index entries and its participants
// (with their sessions_by_app entries).
func deleteSession(tx *bbolt.Tx, s store.Session) error {
	for _, e := range sessionIndexKeys(s) {
		if err := e.delete(tx); err != nil {
			return err
		}
	}
	pb, byApp := tx.Bucket([]byte(bkParticipants)), tx.Bucket([]byte(bkSessByApp))
	var keys [][]byte
	p := prefix(s.ID)
	err := scanPrefix(pb, p, func(k, v []byte) error {
		keys = append(keys, bytes.Clone(k))
		_, part, err := decodeParticipantValue(s.ID, string(k[len(p):]), v)
		if err != nil {
			return err
		}
		if validID(part.AppID) {
			return byApp.Delete(appKey(part.AppID, s))
		}
		return nil
	})
	if err != nil {
		return err
	}
	for _, k := range keys {
		if err := pb.Delete(k); err != nil {
			return err
		}
	}
	return tx.Bucket([]byte(bkSessions)).Delete([]byte(s.ID))
}

// indexSessionFilters builds sessions_by_upstream and sessions_by_app from
// the sessions and participants (a file written before they existed).
func indexSessionFilters(tx *bbolt.Tx) error {
	byUp, byApp, pb := tx.Bucket([]byte(bkSessByUp)), tx.Bucket([]byte(bkSessByApp)), tx.Bucket([]byte(bkParticipants))
	return tx.Bucket([]byte(bkSessions)).ForEach(func(k, v []byte) error {
		s, err := decodeSession(string(k), v)
		if err != nil {
			return err
		}
		if validID(s.Upstream) {
			if err := byUp.Put(key(prefix(s.Upstream), timeBytes(s.CreatedAt), k), nil); err != nil {
				return err
			}
		}
		p := prefix(s.ID)
		return scanPrefix(pb, p, func(pk, pv []byte) error {
			_, part, err := decodeParticipantValue(s.ID, string(pk[len(p):]), pv)
			if err != nil || !validID(part.AppID) {
				return err
			}
			return byApp.Put(appKey(part.AppID, s), nil)
		})
	})
}

// ListSessions returns a page of the sessions of an upstream or of an
// app, newest first, walking its index backwards from the cursor.
func (db *DB) ListSessions(ctx context.Context, f store.SessionFilter, before store.Cursor, limit int) ([]store.Session, error) {
	if limit <= 0 || limit > store.MaxPage {
		return nil, fmt.Errorf("bolt: list sessions: %w: limit %d is not in 1..%d", store.ErrInvalid, limit, store.MaxPage)
	}
	bucket, value := bkSessByUp, f.Upstream
	if f.AppID != "" {
		bucket, value = bkSessByApp, f.AppID
	}
	if (f.Upstream == "") == (f.AppID == "") {
		return nil, fmt.Errorf("bolt: list sessions: %w: give an upstream or an app", store.ErrInvalid)
	}
	if !validID(value) {
		return nil, nil
	}
	p := prefix(value)
	var out []store.Session
	err := db.view(ctx, "list sessions", func(tx *bbolt.Tx) error {
		c := tx.Bucket([]byte(bucket)).Cursor()
		for k := lastBefore(c, p, before.CreatedAt, before.ID); k != nil && bytes.HasPrefix(k, p) && len(out) < limit; k, _ = c.Prev() {
			s, err := getSession(tx, idAfterPrefix(k, len(p)))
			if err != nil {
				return fmt.Errorf("index %s points at a missing session: %w", bucket, err)
			}
			out = append(out, s)
		}
		return nil
	})
	return out, err
}
