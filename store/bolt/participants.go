package bolt

import (
	"cmp"
	"context"
	"fmt"
	"slices"

	bbolt "go.etcd.io/bbolt"

	"github.com/slobridge/slobridge/store"
)

// AddParticipant adds p to its session unless a participant with the same
// Key is there already, and reports whether it did. It is idempotent, so it
// runs in a bbolt Batch: concurrent logins share one commit.
func (db *DB) AddParticipant(ctx context.Context, p store.Participant) (bool, error) {
	if err := checkIDs("session ID", p.SessionID, "participant key", p.Key); err != nil {
		return false, fmt.Errorf("bolt: add participant: %w", err)
	}
	var added bool
	err := db.loginBatch(ctx, "add participant", func(tx *bbolt.Tx) error {
		added = false
		s, err := getSession(tx, p.SessionID)
		if err != nil {
			return err
		}
		if !s.EndedAt.IsZero() {
			return fmt.Errorf("session: %w", store.ErrSessionEnded)
		}
		pb := tx.Bucket([]byte(bkParticipants))
		k := key(prefix(p.SessionID), []byte(p.Key))
		if pb.Get(k) != nil {
			return nil
		}
		v, err := encodeParticipant(pb, p)
		if err != nil {
			return err
		}
		if err := pb.Put(k, v); err != nil {
			return err
		}
		if validID(p.AppID) {
			if err := tx.Bucket([]byte(bkSessByApp)).Put(appKey(p.AppID, s), nil); err != nil {
				return err
			}
		}
		added = true
		return nil
	})
	if err != nil {
		return false, err
	}
	return added, nil
}

// encodeParticipant encodes p with the next join sequence number of
// bucket pb, which orders a session's participants by join.
func encodeParticipant(pb *bbolt.Bucket, p store.Participant) ([]byte, error) {
	seq, err := pb.NextSequence()
	if err != nil {
		return nil, err
	}
	return encodeParticipantValue(seq, p), nil
}

// listParticipants returns the participants of a session in join order.
func listParticipants(tx *bbolt.Tx, sessionID string) ([]store.Participant, error) {
	type joined struct {
		seq uint64
		p   store.Participant
	}
	var all []joined
	p := prefix(sessionID)
	err := scanPrefix(tx.Bucket([]byte(bkParticipants)), p, func(k, v []byte) error {
		seq, part, err := decodeParticipantValue(sessionID, string(k[len(p):]), v)
		if err != nil {
			return err
		}
		all = append(all, joined{seq: seq, p: part})
		return nil
	})
	if err != nil {
		return nil, err
	}
	slices.SortFunc(all, func(a, b joined) int { return cmp.Compare(a.seq, b.seq) })
	out := make([]store.Participant, len(all))
	for i, j := range all {
		out[i] = j.p
	}
	return out, nil
}

// ListParticipants returns a session's participants in join order;
// ErrNotFound when the session does not exist.
func (db *DB) ListParticipants(ctx context.Context, sessionID string) ([]store.Participant, error) {
	var out []store.Participant
	err := db.view(ctx, "list participants", func(tx *bbolt.Tx) error {
		if tx.Bucket([]byte(bkSessions)).Get([]byte(sessionID)) == nil {
			return fmt.Errorf("session: %w", store.ErrNotFound)
		}
		var err error
		out, err = listParticipants(tx, sessionID)
		return err
	})
	return out, err
}
