package bolt

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"io/fs"
	"sync"
	"syscall"
	"time"

	bbolt "go.etcd.io/bbolt"
	bberrors "go.etcd.io/bbolt/errors"

	"github.com/slobridge/slobridge/store"
)

// Bucket names. Index buckets hold keys only.
const (
	bkSessions      = "sessions"
	bkSessByUser    = "sessions_by_user"
	bkSessByNameID  = "sessions_by_nameid"
	bkSessByEmail   = "sessions_by_email"
	bkSessActive    = "sessions_active"
	bkSessByUp      = "sessions_by_upstream"
	bkSessByApp     = "sessions_by_app"
	bkSessEnded     = "sessions_ended"
	bkParticipants  = "participants"
	bkLogouts       = "logouts"
	bkLogoutsByUser = "logouts_by_user"
	bkLogoutsByTime = "logouts_by_time"
	bkDeliveries    = "deliveries"
	bkDelByLogout   = "deliveries_by_logout"
	bkDelDue        = "deliveries_due"
	bkDelCounts     = "delivery_counts"
	bkDelFailing    = "deliveries_failing"
	bkRecords       = "records"
	bkRecordsExp    = "records_exp"
	bkReplay        = "replay"
	bkReplayExp     = "replay_exp"
	bkClients       = "clients"
	bkClientsByKind = "clients_by_kind"
	bkKeys          = "keys"
	// bkMeta holds counters kept in step with the data, so that counts
	// are reads, not index walks (metaActiveSessions: the entries of
	// sessions_active).
	bkMeta             = "meta"
	metaActiveSessions = "sessions_active_n"
	defaultTimeout     = time.Second
	defaultFileMode    = fs.FileMode(0o600)
	defaultBatchSize   = 1000
)

// allBuckets lists every bucket Open creates.
func allBuckets() []string {
	return []string{
		bkSessions, bkSessByUser, bkSessByNameID, bkSessByEmail, bkSessActive, bkSessEnded, bkSessByUp, bkSessByApp,
		bkParticipants, bkLogouts, bkLogoutsByUser, bkLogoutsByTime,
		bkDeliveries, bkDelByLogout, bkDelDue, bkDelCounts, bkDelFailing,
		bkRecords, bkRecordsExp, bkReplay, bkReplayExp, bkClients, bkClientsByKind, bkKeys, bkMeta,
	}
}

// Options configure Open. The zero value is ready to use.
type Options struct {
	// Timeout is how long Open waits for the file lock held by another
	// process before it gives up with store.ErrLocked. Zero means 1s; a
	// negative value waits forever.
	Timeout time.Duration
	// NoSync skips fsync after each commit. Faster, but a crash can lose
	// the last commits (or corrupt the file): for tests and benchmarks only.
	NoSync bool
	// FileMode is the mode of a newly created file; zero means 0600.
	FileMode fs.FileMode
	// MaxBatchSize is the most of the small, frequent writes (sessions,
	// participants, records, replay IDs, completed attempts) that share
	// one commit (groupcommit.go); zero means 1000.
	MaxBatchSize int
	// Now is the wall clock, used only where the Store contract passes no
	// time (PutRecord judges whether an existing record is still live, and
	// ReleaseLeases). Nil means time.Now.
	Now func() time.Time
	// ReleaseLeases makes Open end every delivery lease left in the file
	// and make those deliveries due at once. The file lock proves that no
	// other process holds them, so the process that took them is gone
	// (killed mid-attempt): its deliveries are resent at start-up instead
	// of when their leases run out. Off by default so that the store's
	// contract (a lease lasts until it ends) holds as written; `serve`
	// turns it on.
	ReleaseLeases bool
	// Reserve is the disk space, in bytes, kept for logouts: a ballast
	// file of this size beside the database holds it, and new sessions,
	// re-authentications and participants are refused with
	// store.ErrNoSpace while the file system has less than this free
	// (ballast aside); a logout that runs out of space releases the
	// ballast. Zero turns it off (tests, tools); serve uses
	// store.bolt.reserve_bytes, DefaultReserve unless configured.
	Reserve int64
	// VolatileLimit is the memory, in bytes, the records of logins in
	// progress (volatile records) may take; beyond it new ones are refused
	// with store.ErrNoSpace. Zero means DefaultVolatileLimit; negative
	// means no limit.
	VolatileLimit int64
	// OnReserve, when set, is called when logins start (refusing true) or
	// stop being refused for want of space, with the free bytes: for a
	// log line and a metric.
	OnReserve func(refusing bool, free int64)
}

// DB is a store.Store backed by one bbolt file.
type DB struct {
	bolt *bbolt.DB
	// vol holds the volatile records (volatile.go).
	vol    memRecords
	path   string
	now    func() time.Time
	noSync bool
	// group shares the commits of small writes (batch).
	group *groupCommit
	// commits counts commits and volatile writes.
	commits commitCounter
	// reserve keeps space for logouts; nil when Options.Reserve is 0.
	reserve *writeReserve
	// lastFail is the last write transaction that failed for want of
	// space or an I/O error, and when: WriteHealth.
	writeMu    sync.Mutex
	lastFail   error
	lastFailAt time.Time
}

// writeHealthWindow is how long one failed write keeps WriteHealth failing.
const writeHealthWindow = 10 * time.Second

// WriteHealth returns why a write transaction failed in the last ten
// seconds for want of space or an I/O error (wrapping store.ErrNoSpace or
// store.ErrUnavailable), nil when none did. /readyz reads it beside its
// own write probe: bbolt reuses freed pages, so a small probe may still
// commit while larger writes (logouts) fail; a success does not clear it.
func (db *DB) WriteHealth() error {
	db.writeMu.Lock()
	defer db.writeMu.Unlock()
	if db.lastFail != nil && time.Since(db.lastFailAt) < writeHealthWindow {
		return db.lastFail
	}
	return nil
}

// noteWrite records a failed write transaction for WriteHealth.
func (db *DB) noteWrite(err error) {
	err = dbError(err)
	if err == nil || (!errors.Is(err, store.ErrNoSpace) && !errors.Is(err, store.ErrUnavailable)) {
		return // committed, or a refusal: not the store's health
	}
	db.writeMu.Lock()
	db.lastFail, db.lastFailAt = err, time.Now()
	db.writeMu.Unlock()
}

var _ store.Store = (*DB)(nil)

// lockedError reports that another process holds the database file.
type lockedError struct {
	path    string
	timeout time.Duration
}

func (e *lockedError) Error() string {
	return fmt.Sprintf("bolt: database locked by another process: %s (gave up after %s)", e.path, e.timeout)
}

func (e *lockedError) Unwrap() []error { return []error{store.ErrLocked, bberrors.ErrTimeout} }

// Open opens (creating if needed) the bbolt database at path and makes sure
// every bucket exists. When another process holds the file, Open waits up
// to opts.Timeout and then fails with an error wrapping store.ErrLocked.
// A file that is not a bbolt database fails with an error saying so.
func Open(path string, opts Options) (*DB, error) {
	timeout := opts.Timeout
	switch {
	case timeout == 0:
		timeout = defaultTimeout
	case timeout < 0:
		timeout = 0 // bbolt: wait forever
	}
	mode := opts.FileMode
	if mode == 0 {
		mode = defaultFileMode
	}
	bdb, err := bbolt.Open(path, mode, &bbolt.Options{Timeout: timeout, NoSync: opts.NoSync})
	if err != nil {
		return nil, openError(path, timeout, err)
	}
	err = bdb.Update(func(tx *bbolt.Tx) error {
		kindIndexNew := tx.Bucket([]byte(bkClientsByKind)) == nil
		emailIndexNew := tx.Bucket([]byte(bkSessByEmail)) == nil
		countNew := tx.Bucket([]byte(bkMeta)) == nil
		failingIndexNew := tx.Bucket([]byte(bkDelFailing)) == nil
		filterIndexNew := tx.Bucket([]byte(bkSessByApp)) == nil
		for _, name := range allBuckets() {
			if _, err := tx.CreateBucketIfNotExists([]byte(name)); err != nil {
				return fmt.Errorf("create bucket %s: %w", name, err)
			}
		}
		if countNew {
			// A file written before the counter existed: count once.
			if err := countActiveIndex(tx); err != nil {
				return err
			}
		}
		if emailIndexNew {
			// A file written before the index existed: build it.
			if err := indexSessionsByEmail(tx); err != nil {
				return err
			}
		}
		if filterIndexNew {
			// A file written before the indexes existed: build them.
			if err := indexSessionFilters(tx); err != nil {
				return err
			}
		}
		if failingIndexNew {
			// A file written before the index existed: build it.
			if err := indexFailingDeliveries(tx); err != nil {
				return err
			}
		}
		if kindIndexNew {
			// A file written before the index existed: build it.
			return indexClientsByKind(tx)
		}
		return nil
	})
	if err != nil {
		_ = bdb.Close()
		return nil, fmt.Errorf("bolt: open %s: %w", path, err)
	}
	now := opts.Now
	if now == nil {
		now = time.Now
	}
	if opts.ReleaseLeases {
		if err := bdb.Update(func(tx *bbolt.Tx) error { return releaseLeases(tx, now()) }); err != nil {
			_ = bdb.Close()
			return nil, fmt.Errorf("bolt: open %s: release leases: %w", path, err)
		}
	}
	db := &DB{bolt: bdb, path: path, now: now, noSync: opts.NoSync}
	db.vol.limit = cmp.Or(opts.VolatileLimit, DefaultVolatileLimit)
	if err := loadVolatile(path, &db.vol); err != nil {
		_ = bdb.Close()
		return nil, fmt.Errorf("bolt: open %s: %w", path, err)
	}
	db.group = &groupCommit{db: bdb, max: cmp.Or(max(opts.MaxBatchSize, 0), defaultBatchSize), before: setFillPercents, committed: db.countCommit}
	if opts.Reserve > 0 {
		db.reserve = newWriteReserve(path, opts.Reserve, time.Now)
		db.reserve.onChange = opts.OnReserve
		_ = db.reserve.allowLogin() // writes the ballast when there is room
	}
	return db, nil
}

// releaseLeases ends the lease of every due (pending or retrying)
// delivery that has one and makes it due at now.
func releaseLeases(tx *bbolt.Tx, now time.Time) error {
	var ids []string
	err := tx.Bucket([]byte(bkDelDue)).ForEach(func(k, _ []byte) error {
		ids = append(ids, tailAfter8(k))
		return nil
	})
	if err != nil {
		return err
	}
	for _, id := range ids {
		d, err := getDelivery(tx, id)
		if err != nil {
			return fmt.Errorf("index %s points at a missing delivery: %w", bkDelDue, err)
		}
		if d.LeaseOwner == "" {
			continue
		}
		freed := d
		freed.LeaseOwner, freed.LeaseUntil = "", time.Time{}
		if freed.NextAttemptAt.After(now) {
			freed.NextAttemptAt = now
		}
		if err := putDelivery(tx, &d, freed); err != nil {
			return err
		}
	}
	return nil
}

// openError turns bbolt's open errors into ones that say what to do.
func openError(path string, timeout time.Duration, err error) error {
	switch {
	case errors.Is(err, bberrors.ErrTimeout):
		return &lockedError{path: path, timeout: timeout}
	case errors.Is(err, bberrors.ErrInvalid), errors.Is(err, bberrors.ErrChecksum),
		errors.Is(err, bberrors.ErrVersionMismatch):
		return fmt.Errorf("bolt: open %s: not a bbolt database, or corrupt: %w", path, err)
	}
	return fmt.Errorf("bolt: open %s: %w", path, err)
}

// Path returns the file the database lives in.
func (db *DB) Path() string { return db.path }

// Close releases the files and the lock; the volatile records are kept
// for the next Open.
func (db *DB) Close() error {
	db.vol.mu.Lock()
	var volErr error
	if db.vol.m != nil {
		volErr = saveVolatile(db.path, db.vol.m, db.now())
		db.vol.m = nil
	}
	db.vol.mu.Unlock()
	if err := db.bolt.Close(); err != nil {
		return fmt.Errorf("bolt: close %s: %w", db.path, errors.Join(err, volErr))
	}
	if volErr != nil {
		return fmt.Errorf("bolt: close %s: %w", db.path, volErr)
	}
	return nil
}

// Ping reports whether the database is open.
func (db *DB) Ping(ctx context.Context) error {
	return db.view(ctx, "ping", func(*bbolt.Tx) error { return nil })
}

// view runs fn in a read-only transaction after checking ctx.
func (db *DB) view(ctx context.Context, op string, fn func(tx *bbolt.Tx) error) error {
	if err := ctx.Err(); err != nil {
		return fmt.Errorf("bolt: %s: %w", op, err)
	}
	if err := db.bolt.View(fn); err != nil {
		return fmt.Errorf("bolt: %s: %w", op, dbError(err))
	}
	return nil
}

// update runs fn in a read-write transaction after checking ctx; an error
// from fn rolls everything back.
func (db *DB) update(ctx context.Context, op string, fn func(tx *bbolt.Tx) error) error {
	if err := ctx.Err(); err != nil {
		return fmt.Errorf("bolt: %s: %w", op, err)
	}
	run := func() error {
		return db.bolt.Update(func(tx *bbolt.Tx) error {
			setFillPercents(tx)
			if err := fn(tx); err != nil {
				return err
			}
			tx.OnCommit(db.countCommit)
			return nil
		})
	}
	err := run()
	if db.outOfSpace(err) {
		err = run()
	}
	db.noteWrite(err)
	if err != nil {
		return fmt.Errorf("bolt: %s: %w", op, dbError(err))
	}
	return nil
}

// outOfSpace reports whether err is a want of space that the write
// reserve could remedy, and releases the reserve: the caller runs its
// write again. Logins check the reserve first (allowLogin), so a write
// that gets here is one that must not fail.
func (db *DB) outOfSpace(err error) bool {
	return err != nil && db.reserve != nil && errors.Is(dbError(err), store.ErrNoSpace) && db.reserve.release()
}

// loginBatch is batch for a write that starts or extends a login: it is
// refused with store.ErrNoSpace while the write reserve is short, so that
// the last space goes to logouts.
func (db *DB) loginBatch(ctx context.Context, op string, fn func(tx *bbolt.Tx) error) error {
	if db.reserve != nil {
		if err := db.reserve.allowLogin(); err != nil {
			return fmt.Errorf("bolt: %s: %w", op, err)
		}
	}
	return db.batchRun(ctx, op, fn, false)
}

// batch runs fn in a write transaction that concurrent callers share
// (groupCommit), so that they share one commit and its fsync. It may run
// fn more than once, so fn must only write inside tx and assign
// its results afresh on every run. An error of fn that is a refusal
// (store.ErrAlreadyExists, ErrNotFound, ErrReplay, ErrSessionEnded,
// ErrInvalid) must be returned before fn writes anything: it is reported to
// the caller without failing the other writes of the batch.
func (db *DB) batch(ctx context.Context, op string, fn func(tx *bbolt.Tx) error) error {
	return db.batchRun(ctx, op, fn, true)
}

// batchRun is batch; useReserve lets a write that runs out of space
// release the write reserve and run again (never for logins).
func (db *DB) batchRun(ctx context.Context, op string, fn func(tx *bbolt.Tx) error, useReserve bool) error {
	if err := ctx.Err(); err != nil {
		return fmt.Errorf("bolt: %s: %w", op, err)
	}
	var refused error
	run := func() error {
		return db.group.do(func(tx *bbolt.Tx) error {
			refused = nil
			err := fn(tx)
			if isRefusal(err) {
				refused = err
				return nil
			}
			return err
		})
	}
	err := run()
	if useReserve && db.outOfSpace(err) {
		err = run()
	}
	if !useReserve && db.reserve != nil && errors.Is(dbError(err), store.ErrNoSpace) {
		// A login that found the disk full before the reserve's next
		// measure: logins are refused from now on; the reserve is still
		// there for logouts, so the store stays writable for them.
		db.reserve.loginOutOfSpace()
	} else {
		db.noteWrite(err)
	}
	if err == nil {
		err = refused
	}
	if err != nil {
		return fmt.Errorf("bolt: %s: %w", op, dbError(err))
	}
	return nil
}

// isRefusal reports whether err is an answer about the data rather than a
// failure of the database.
func isRefusal(err error) bool {
	for _, r := range []error{store.ErrAlreadyExists, store.ErrNotFound, store.ErrReplay, store.ErrSessionEnded, store.ErrInvalid} {
		if errors.Is(err, r) {
			return true
		}
	}
	return false
}

// dbError marks a closed database as unavailable.
func dbError(err error) error {
	if errors.Is(err, bberrors.ErrDatabaseNotOpen) {
		return fmt.Errorf("%w: %w", store.ErrUnavailable, err)
	}
	if errors.Is(err, syscall.ENOSPC) || errors.Is(err, syscall.EDQUOT) {
		return fmt.Errorf("%w: %w", store.ErrNoSpace, err)
	}
	if errors.Is(err, syscall.EROFS) || errors.Is(err, syscall.EIO) {
		return fmt.Errorf("%w: %w", store.ErrUnavailable, err)
	}
	return err
}

// fillPercents are the bbolt FillPercent of buckets whose keys are mostly
// appended in order (time-keyed indexes): their pages split 90% full,
// since few inserts land in a page once it is left behind (the 10% take
// the keys of concurrent commits that arrive slightly out of order).
// Other buckets keep bbolt's default (0.5): with keys at random places a
// high fill percent splits the same page again and again into a full one
// and a nearly empty one (measured: 21% of the page bytes in use).
var fillPercents = map[string]float64{
	bkSessActive: 0.9,
	bkSessEnded:  0.9,
	// Keyed by upstream or app, then time: appended at the end of each
	// upstream's or app's range.
	bkSessByUp:      0.9,
	bkSessByApp:     0.9,
	bkDelFailing:    0.9,
	bkLogoutsByTime: 0.9,
	bkDelDue:        0.9,
	bkRecordsExp:    0.9,
	bkReplayExp:     0.9,
}

// setFillPercents applies fillPercents to the buckets of a write
// transaction (a bucket's FillPercent lasts as long as the transaction).
func setFillPercents(tx *bbolt.Tx) {
	for name, fp := range fillPercents {
		if b := tx.Bucket([]byte(name)); b != nil {
			b.FillPercent = fp
		}
	}
}
