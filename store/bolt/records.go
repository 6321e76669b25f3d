package bolt

import (
	"bytes"
	"context"
	"fmt"
	"strings"
	"time"

	bbolt "go.etcd.io/bbolt"

	"github.com/slobridge/slobridge/store"
)

// storedRecord is a record as kept in the bucket: with the grant state
// TakeGrant adds (absent in records written before it, and for plain
// records).
type storedRecord struct {
	store.Record
	Used   bool   `json:"used,omitempty"`
	Issued []byte `json:"issued,omitempty"`
}

// getRecord loads the record at k, live or not.
func getRecord(tx *bbolt.Tx, k []byte) (storedRecord, bool, error) {
	var r storedRecord
	ok, err := getJSON(tx.Bucket([]byte(bkRecords)), k, &r)
	return r, ok, err
}

// putRecord writes r and its expiry entry (the caller removed any old one).
func putRecord(tx *bbolt.Tx, r storedRecord) error {
	k := key(prefix(r.Namespace), []byte(r.Key))
	if err := tx.Bucket([]byte(bkRecordsExp)).Put(key(timeBytes(r.ExpiresAt), k), nil); err != nil {
		return err
	}
	return putJSON(tx.Bucket([]byte(bkRecords)), k, r)
}

// live reports whether something expiring at exp is still live at now.
func live(exp, now time.Time) bool { return now.Before(exp) }

// deleteRecord removes r and its expiry entry.
func deleteRecord(tx *bbolt.Tx, r store.Record) error {
	k := key(prefix(r.Namespace), []byte(r.Key))
	if err := tx.Bucket([]byte(bkRecordsExp)).Delete(key(timeBytes(r.ExpiresAt), k)); err != nil {
		return err
	}
	return tx.Bucket([]byte(bkRecords)).Delete(k)
}

// PutRecord stores an expiring record; ErrAlreadyExists when a record with
// the same namespace and key is live at the wall clock (Options.Now). An
// expired one is replaced.
func (db *DB) PutRecord(ctx context.Context, r store.Record) error {
	if err := checkIDs("record namespace", r.Namespace); err != nil {
		return fmt.Errorf("bolt: put record: %w", err)
	}
	if r.Key == "" {
		return fmt.Errorf("bolt: put record: %w: empty key", store.ErrInvalid)
	}
	if strings.IndexByte(r.Key, 0) >= 0 {
		return fmt.Errorf("bolt: put record: %w: key holds a NUL byte", store.ErrInvalid)
	}
	return db.recordsWrite(ctx, r.Namespace, "put record", func(rt recordTx) error {
		k := key(prefix(r.Namespace), []byte(r.Key))
		old, ok, err := rt.get(k)
		if err != nil {
			return err
		}
		if ok && live(old.ExpiresAt, db.now()) {
			return fmt.Errorf("record in %s: %w", r.Namespace, store.ErrAlreadyExists)
		}
		if err := rt.room(r); err != nil {
			return err
		}
		if ok {
			if err := rt.del(old.Record); err != nil {
				return err
			}
		}
		return rt.put(storedRecord{Record: r})
	})
}

// GetRecord returns a record live at now.
func (db *DB) GetRecord(ctx context.Context, namespace, k string, now time.Time) (store.Record, error) {
	var r storedRecord
	err := db.recordsView(ctx, namespace, "get record", func(rt recordTx) error {
		var ok bool
		var err error
		r, ok, err = rt.get(key(prefix(namespace), []byte(k)))
		if err != nil {
			return err
		}
		if !ok || !live(r.ExpiresAt, now) || r.Used {
			return fmt.Errorf("record in %s: %w", namespace, store.ErrNotFound)
		}
		return nil
	})
	if err != nil {
		return store.Record{}, err
	}
	return r.Record, nil
}

// TakeRecord returns and deletes a record live at now, in one write
// transaction: of concurrent takes exactly one succeeds.
func (db *DB) TakeRecord(ctx context.Context, namespace, k string, now time.Time) (store.Record, error) {
	var r storedRecord
	err := db.recordsWrite(ctx, namespace, "take record", func(rt recordTx) error {
		var ok bool
		var err error
		r, ok, err = rt.get(key(prefix(namespace), []byte(k)))
		if err != nil {
			return err
		}
		if !ok || !live(r.ExpiresAt, now) || r.Used {
			return fmt.Errorf("record in %s: %w", namespace, store.ErrNotFound)
		}
		return rt.del(r.Record)
	})
	if err != nil {
		return store.Record{}, err
	}
	return r.Record, nil
}

// TakeGrant uses a one-time grant in one write transaction (see
// store.Store): bbolt has one writer at a time, so of concurrent uses
// exactly one finds it unused.
func (db *DB) TakeGrant(ctx context.Context, namespace, k string, issued []byte, keepUntil, now time.Time) (store.GrantUse, error) {
	var u store.GrantUse
	err := db.recordsWrite(ctx, namespace, "take grant", func(rt recordTx) error {
		u = store.GrantUse{}
		r, ok, err := rt.get(key(prefix(namespace), []byte(k)))
		if err != nil {
			return err
		}
		if !ok || !live(r.ExpiresAt, now) {
			return fmt.Errorf("grant in %s: %w", namespace, store.ErrNotFound)
		}
		if r.Used {
			u = store.GrantUse{Record: r.Record, Issued: r.Issued}
			return nil
		}
		u = store.GrantUse{Record: r.Record, First: true}
		if err := rt.del(r.Record); err != nil {
			return err
		}
		r.Used, r.Issued = true, issued
		if keepUntil.After(r.ExpiresAt) {
			r.ExpiresAt = keepUntil
		}
		return rt.put(r)
	})
	if err != nil {
		return store.GrantUse{}, err
	}
	return u, nil
}

// DeleteRecord removes a record; no error when absent.
func (db *DB) DeleteRecord(ctx context.Context, namespace, k string) error {
	return db.recordsWrite(ctx, namespace, "delete record", func(rt recordTx) error {
		r, ok, err := rt.get(key(prefix(namespace), []byte(k)))
		if err != nil || !ok {
			return err
		}
		return rt.del(r.Record)
	})
}

// CheckReplay records a one-time identifier until expiresAt; ErrReplay
// when it is already recorded and not expired at now.
func (db *DB) CheckReplay(ctx context.Context, namespace, id string, expiresAt, now time.Time) error {
	if err := checkIDs("replay namespace", namespace); err != nil {
		return fmt.Errorf("bolt: check replay: %w", err)
	}
	if id == "" {
		return fmt.Errorf("bolt: check replay: %w: empty identifier", store.ErrInvalid)
	}
	return db.batch(ctx, "check replay", func(tx *bbolt.Tx) error {
		b, exp := tx.Bucket([]byte(bkReplay)), tx.Bucket([]byte(bkReplayExp))
		k := key(prefix(namespace), []byte(id))
		if old := b.Get(k); old != nil {
			if bytes.Compare(timeBytes(now), old) < 0 {
				return fmt.Errorf("identifier in %s: %w", namespace, store.ErrReplay)
			}
			if err := exp.Delete(key(old, k)); err != nil {
				return err
			}
		}
		at := timeBytes(expiresAt)
		if err := exp.Put(key(at, k), nil); err != nil {
			return err
		}
		return b.Put(k, at)
	})
}
