package bolt

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"sync/atomic"

	bbolt "go.etcd.io/bbolt"

	"github.com/slobridge/slobridge/store"
)

// The volatile records (store.IsVolatile namespaces) live in a second
// bbolt file beside the database, written without fsync: a login in
// progress costs no synchronous disk write. Close syncs it and leaves a
// marker file; Open keeps the file only when the marker is there and
// removes the marker (durably) before using it, so the file of a process
// that did not close cleanly — killed, or a machine that lost power with
// unwritten pages — is discarded, never read.
const (
	volatileSuffix      = ".volatile"
	volatileCleanSuffix = ".volatile-clean"
)

// volatileBuckets are the buckets of the volatile file.
var volatileBuckets = []string{bkRecords, bkRecordsExp}

// VolatilePath returns the file that holds the volatile records of the
// database at path.
func VolatilePath(path string) string { return path + volatileSuffix }

// openVolatile opens the volatile file of the database at path: the one
// left by a clean Close, or a new empty one.
func openVolatile(path string, mode fs.FileMode) (*bbolt.DB, error) {
	vpath, marker := VolatilePath(path), path+volatileCleanSuffix
	_, statErr := os.Stat(marker)
	clean := statErr == nil
	if clean {
		if err := os.Remove(marker); err != nil {
			return nil, fmt.Errorf("remove the clean-close marker: %w", err)
		}
		if err := syncDir(filepath.Dir(path)); err != nil {
			return nil, err
		}
	} else if err := os.Remove(vpath); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return nil, fmt.Errorf("discard the volatile records of an unclean stop: %w", err)
	}
	open := func() (*bbolt.DB, error) {
		vdb, err := bbolt.Open(vpath, mode, &bbolt.Options{Timeout: defaultTimeout, NoSync: true, NoFreelistSync: true, NoGrowSync: true})
		if err != nil {
			return nil, err
		}
		err = vdb.Update(func(tx *bbolt.Tx) error {
			for _, name := range volatileBuckets {
				if _, err := tx.CreateBucketIfNotExists([]byte(name)); err != nil {
					return fmt.Errorf("create bucket %s: %w", name, err)
				}
			}
			return nil
		})
		if err != nil {
			_ = vdb.Close()
			return nil, err
		}
		return vdb, nil
	}
	vdb, err := open()
	if err != nil && clean {
		// A cleanly closed file that does not open (damaged since):
		// what it held may be lost, so start afresh.
		if rmErr := os.Remove(vpath); rmErr != nil && !errors.Is(rmErr, fs.ErrNotExist) {
			return nil, fmt.Errorf("open %s: %w (and remove it: %v)", vpath, err, rmErr)
		}
		vdb, err = open()
	}
	if err != nil {
		return nil, fmt.Errorf("open %s: %w", vpath, err)
	}
	return vdb, nil
}

// closeVolatile syncs and closes the volatile file and marks it cleanly
// closed.
func closeVolatile(vdb *bbolt.DB, path string) error {
	if err := vdb.Sync(); err != nil {
		_ = vdb.Close()
		return fmt.Errorf("sync %s: %w", vdb.Path(), err)
	}
	if err := vdb.Close(); err != nil {
		return fmt.Errorf("close %s: %w", vdb.Path(), err)
	}
	marker := path + volatileCleanSuffix
	f, err := os.OpenFile(marker, os.O_CREATE|os.O_WRONLY|os.O_TRUNC, 0o600)
	if err != nil {
		return fmt.Errorf("write the clean-close marker: %w", err)
	}
	if err := errors.Join(f.Sync(), f.Close()); err != nil {
		return fmt.Errorf("write the clean-close marker: %w", err)
	}
	return syncDir(filepath.Dir(path))
}

// syncDir makes the directory's entries (a removed or created file)
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

// volatileUpdate runs fn in a write transaction of the volatile file. It
// does not wait for a batch: the commit writes no more than a page or two
// to the page cache, without fsync. A login-path write, it is refused
// while the write reserve is short, like every login.
func (db *DB) volatileUpdate(ctx context.Context, op string, fn func(tx *bbolt.Tx) error) error {
	if err := ctx.Err(); err != nil {
		return fmt.Errorf("bolt: %s: %w", op, err)
	}
	if db.reserve != nil {
		if err := db.reserve.allowLogin(); err != nil {
			return fmt.Errorf("bolt: %s: %w", op, err)
		}
	}
	err := db.vol.Update(func(tx *bbolt.Tx) error {
		if err := fn(tx); err != nil {
			return err
		}
		tx.OnCommit(func() { db.commits.unsynced.Add(1) })
		return nil
	})
	if err != nil {
		return fmt.Errorf("bolt: %s: %w", op, dbError(err))
	}
	return nil
}

// recordsDB returns the file that holds the records of namespace.
func (db *DB) recordsDB(namespace string) *bbolt.DB {
	if store.IsVolatile(namespace) {
		return db.vol
	}
	return db.bolt
}

// recordsWrite runs fn in a write transaction of the file that holds the
// records of namespace: the volatile file, or a shared batch of the
// database (see batch for what fn may do).
func (db *DB) recordsWrite(ctx context.Context, namespace, op string, fn func(tx *bbolt.Tx) error) error {
	if store.IsVolatile(namespace) {
		return db.volatileUpdate(ctx, op, fn)
	}
	return db.batch(ctx, op, fn)
}

// recordsView runs fn in a read transaction of the file that holds the
// records of namespace.
func (db *DB) recordsView(ctx context.Context, namespace, op string, fn func(tx *bbolt.Tx) error) error {
	if err := ctx.Err(); err != nil {
		return fmt.Errorf("bolt: %s: %w", op, err)
	}
	if err := db.recordsDB(namespace).View(fn); err != nil {
		return fmt.Errorf("bolt: %s: %w", op, dbError(err))
	}
	return nil
}

// commitCounter counts the commits of the two files.
type commitCounter struct {
	synced, unsynced atomic.Uint64
	// lastBatchTx is the last batch transaction counted: the functions
	// of one bbolt Batch share it, and only the first counts its commit.
	lastBatchTx atomic.Pointer[bbolt.Tx]
}

// countBatchCommit counts tx's commit once, however many batched
// functions run in it.
func (db *DB) countBatchCommit(tx *bbolt.Tx) {
	if db.commits.lastBatchTx.Swap(tx) != tx {
		tx.OnCommit(db.countCommit)
	}
}

// countCommit counts one commit of the database file.
func (db *DB) countCommit() {
	if db.noSync {
		db.commits.unsynced.Add(1)
		return
	}
	db.commits.synced.Add(1)
}

// CommitCounts returns how many write transactions the store committed
// since Open: Synced ones waited for fsync (the database file), Unsynced
// ones did not (the volatile file, or everything under Options.NoSync).
func (db *DB) CommitCounts() store.CommitCounts {
	return store.CommitCounts{Synced: db.commits.synced.Load(), Unsynced: db.commits.unsynced.Load()}
}
