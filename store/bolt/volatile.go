package bolt

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"sync"
	"sync/atomic"
	"time"

	bbolt "go.etcd.io/bbolt"

	"github.com/slobridge/slobridge/store"
)

// The volatile records (store.IsVolatile namespaces: logins in progress)
// live in memory while the database is open: a login's steps cost neither
// an fsync nor a write system call. Close writes them to <path>.volatile
// (synced, then renamed into place); Open reads that file back and removes
// it — durably — before the store is used, so the records of a process
// that did not close cleanly (killed, or a machine that lost power) are
// simply gone, as the store's contract allows, and never half there.
const volatileSuffix = ".volatile"

// VolatilePath returns the file in which Close leaves the volatile records
// of the database at path for the next Open.
func VolatilePath(path string) string { return path + volatileSuffix }

// recordTx is what the record operations need of a transaction: the
// database file's (boltRecords) or the volatile map's (memRecords, under
// its lock). Operations return a refusal before they write anything.
type recordTx interface {
	get(k []byte) (storedRecord, bool, error)
	put(r storedRecord) error
	del(r store.Record) error
	// room refuses a new record of r's size when the records' memory
	// is used up (store.ErrNoSpace); the file has the write reserve.
	room(r store.Record) error
}

// boltRecords is recordTx over a bbolt write or read transaction.
type boltRecords struct{ tx *bbolt.Tx }

func (b boltRecords) get(k []byte) (storedRecord, bool, error) { return getRecord(b.tx, k) }
func (b boltRecords) put(r storedRecord) error                 { return putRecord(b.tx, r) }
func (b boltRecords) del(r store.Record) error                 { return deleteRecord(b.tx, r) }
func (b boltRecords) room(store.Record) error                  { return nil }

// DefaultVolatileLimit is the memory the volatile records may take unless
// Options.VolatileLimit says otherwise: room for about a million logins in
// progress. Beyond it new logins are refused (store.ErrNoSpace) — a flood
// of abandoned authorization requests cannot take the process's memory.
const DefaultVolatileLimit = 256 << 20

// memRecords holds the volatile records.
type memRecords struct {
	mu    sync.Mutex
	m     map[string]storedRecord
	bytes int64 // the records' size, by recordSize
	limit int64
}

// recordSize is what a record is counted for: its key, value and grant
// state, and the map entry's own cost.
func recordSize(r storedRecord) int64 {
	return int64(2*(len(r.Namespace)+len(r.Key))+len(r.Value)+len(r.Issued)) + 160
}

// memTx is recordTx over memRecords; its methods run under mu.
type memTx struct{ r *memRecords }

func (t memTx) get(k []byte) (storedRecord, bool, error) {
	r, ok := t.r.m[string(k)]
	return r, ok, nil
}

func (t memTx) put(r storedRecord) error {
	r.Value, r.Issued = bytes.Clone(r.Value), bytes.Clone(r.Issued)
	k := string(key(prefix(r.Namespace), []byte(r.Key)))
	if old, ok := t.r.m[k]; ok {
		t.r.bytes -= recordSize(old)
	}
	t.r.m[k] = r
	t.r.bytes += recordSize(r)
	return nil
}

func (t memTx) del(r store.Record) error {
	k := string(key(prefix(r.Namespace), []byte(r.Key)))
	if old, ok := t.r.m[k]; ok {
		t.r.bytes -= recordSize(old)
		delete(t.r.m, k)
	}
	return nil
}

func (t memTx) room(r store.Record) error {
	if t.r.limit > 0 && t.r.bytes+recordSize(storedRecord{Record: r}) > t.r.limit {
		return fmt.Errorf("%w: the records of logins in progress fill their %d bytes", store.ErrNoSpace, t.r.limit)
	}
	return nil
}

// loadVolatile reads into an empty map the volatile records a clean Close
// left beside path, and removes the file durably before returning.
func loadVolatile(path string, into *memRecords) error {
	into.m, into.bytes = map[string]storedRecord{}, 0
	vpath := VolatilePath(path)
	f, err := os.Open(vpath)
	if errors.Is(err, fs.ErrNotExist) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("read the volatile records: %w", err)
	}
	dec := json.NewDecoder(bufio.NewReader(f))
	for {
		var r storedRecord
		if err := dec.Decode(&r); err != nil {
			if !errors.Is(err, io.EOF) {
				// Written whole and synced before its rename, the file can
				// only be damaged since: what it held is lost, no more.
				clear(into.m)
				into.bytes = 0
			}
			break
		}
		_ = memTx{into}.put(r)
	}
	_ = f.Close()
	if err := os.Remove(vpath); err != nil {
		return fmt.Errorf("remove the volatile records once read: %w", err)
	}
	if err := syncDir(filepath.Dir(path)); err != nil {
		return err
	}
	return nil
}

// saveVolatile writes the volatile records live at now beside path for the
// next Open: to a temporary file, synced, then renamed into place.
func saveVolatile(path string, m map[string]storedRecord, now time.Time) error {
	vpath := VolatilePath(path)
	tmp := vpath + ".tmp"
	f, err := os.OpenFile(tmp, os.O_CREATE|os.O_WRONLY|os.O_TRUNC, 0o600)
	if err != nil {
		return fmt.Errorf("save the volatile records: %w", err)
	}
	w := bufio.NewWriter(f)
	enc := json.NewEncoder(w)
	for _, r := range m {
		if !live(r.ExpiresAt, now) {
			continue
		}
		if err := enc.Encode(r); err != nil {
			_ = f.Close()
			return fmt.Errorf("save the volatile records: %w", err)
		}
	}
	if err := errors.Join(w.Flush(), f.Sync(), f.Close()); err != nil {
		return fmt.Errorf("save the volatile records: %w", err)
	}
	if err := os.Rename(tmp, vpath); err != nil {
		return fmt.Errorf("save the volatile records: %w", err)
	}
	return syncDir(filepath.Dir(path))
}

// syncDir makes the directory's entries (a removed or renamed file)
// durable.
func syncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return fmt.Errorf("open directory %s: %w", dir, err)
	}
	err = d.Sync()
	if cerr := d.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return fmt.Errorf("sync directory %s: %w", dir, err)
	}
	return nil
}

// recordsWrite runs fn on the records of namespace for writing: under the
// volatile map's lock, or in a shared batch of the database file (see
// batch for what fn may do). A volatile write takes no disk space, so the
// write reserve does not apply to it (a logout confirmation is volatile
// too); the map has its own limit (memTx.room).
func (db *DB) recordsWrite(ctx context.Context, namespace, op string, fn func(rt recordTx) error) error {
	if !store.IsVolatile(namespace) {
		return db.batch(ctx, op, func(tx *bbolt.Tx) error { return fn(boltRecords{tx}) })
	}
	if err := db.inVolatile(ctx, op, fn); err != nil {
		return err
	}
	db.commits.unsynced.Add(1)
	return nil
}

// recordsView runs fn on the records of namespace for reading.
func (db *DB) recordsView(ctx context.Context, namespace, op string, fn func(rt recordTx) error) error {
	if !store.IsVolatile(namespace) {
		return db.view(ctx, op, func(tx *bbolt.Tx) error { return fn(boltRecords{tx}) })
	}
	return db.inVolatile(ctx, op, fn)
}

// inVolatile runs fn on the volatile records under their lock.
func (db *DB) inVolatile(ctx context.Context, op string, fn func(rt recordTx) error) error {
	if err := ctx.Err(); err != nil {
		return fmt.Errorf("bolt: %s: %w", op, err)
	}
	db.vol.mu.Lock()
	defer db.vol.mu.Unlock()
	if db.vol.m == nil {
		return fmt.Errorf("bolt: %s: %w: database closed", op, store.ErrUnavailable)
	}
	if err := fn(memTx{&db.vol}); err != nil {
		return fmt.Errorf("bolt: %s: %w", op, err)
	}
	return nil
}

// sweepVolatile removes the volatile records expired at now.
func (db *DB) sweepVolatile(now time.Time) int {
	db.vol.mu.Lock()
	defer db.vol.mu.Unlock()
	n := 0
	for k, r := range db.vol.m {
		if !live(r.ExpiresAt, now) {
			db.vol.bytes -= recordSize(r)
			delete(db.vol.m, k)
			n++
		}
	}
	return n
}

// commitCounter counts the commits of the database file and the writes
// of volatile records.
type commitCounter struct {
	synced, unsynced atomic.Uint64
}

// countCommit counts one commit of the database file.
func (db *DB) countCommit() {
	if db.noSync {
		db.commits.unsynced.Add(1)
		return
	}
	db.commits.synced.Add(1)
}

// CommitCounts returns how many writes the store committed since Open:
// Synced ones waited for fsync (commits of the database file), Unsynced
// ones did not (writes of volatile records, or every commit under
// Options.NoSync).
func (db *DB) CommitCounts() store.CommitCounts {
	return store.CommitCounts{Synced: db.commits.synced.Load(), Unsynced: db.commits.unsynced.Load()}
}
