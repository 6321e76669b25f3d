package bolt

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sync"
	"syscall"
	"time"

	"github.com/slobridge/slobridge/store"
)

// DefaultReserve is the space serve keeps for logouts unless
// store.bolt.reserve_bytes says otherwise: room for tens of thousands of
// logouts and their deliveries.
const DefaultReserve = 32 << 20

// reserveCheckEvery is how long one measure of the free space stands.
const reserveCheckEvery = time.Second

// writeReserve keeps disk space that only logouts, their deliveries'
// bookkeeping and sweeps may use, so that a full disk stops logins before
// it stops logouts:
//   - a ballast file of size bytes beside the database (<path>.reserve)
//     holds the space while there is plenty;
//   - logins (new sessions, re-authentications, new participants) are
//     refused with store.ErrNoSpace while the free space of the file
//     system, ballast aside, is below size;
//   - a write that is not a login and fails for want of space releases
//     the ballast and runs again;
//   - once the free space is back to twice size, the ballast is written
//     again and logins resume, without a restart.
type writeReserve struct {
	path string
	dir  string
	size int64
	now  func() time.Time

	mu        sync.Mutex
	present   bool
	checkedAt time.Time
	free      int64
	refusing  bool
	// onChange, when set, is told when logins start or stop being refused.
	onChange func(refusing bool, free int64)
}

func newWriteReserve(dbPath string, size int64, now func() time.Time) *writeReserve {
	r := &writeReserve{path: dbPath + ".reserve", dir: filepath.Dir(dbPath), size: size, now: now}
	if fi, err := os.Stat(r.path); err == nil && fi.Size() >= size {
		r.present = true
	}
	return r
}

// freeBytes measures the space unprivileged writes may use on the file
// system of the database, at most once per reserveCheckEvery.
func (r *writeReserve) freeBytes() (int64, error) {
	now := r.now()
	if !r.checkedAt.IsZero() && now.Sub(r.checkedAt) < reserveCheckEvery {
		return r.free, nil
	}
	var st syscall.Statfs_t
	if err := syscall.Statfs(r.dir, &st); err != nil {
		return 0, err
	}
	r.free = int64(st.Bavail) * int64(st.Bsize)
	r.checkedAt = now
	return r.free, nil
}

// allowLogin answers store.ErrNoSpace when logins must wait for space.
func (r *writeReserve) allowLogin() error {
	r.mu.Lock()
	defer r.mu.Unlock()
	free, err := r.freeBytes()
	if err != nil {
		return nil // cannot measure: let the write itself tell
	}
	if !r.present && free >= 2*r.size {
		if err := r.writeBallast(); err == nil {
			r.present = true
			r.checkedAt = time.Time{}
			if free, err = r.freeBytes(); err != nil {
				return nil
			}
		}
	}
	refuse := !r.present || free < r.size
	if refuse != r.refusing {
		r.refusing = refuse
		if r.onChange != nil {
			r.onChange(refuse, free)
		}
	}
	if refuse {
		return fmt.Errorf("%w: %d bytes free on the database's file system, %d kept for logouts", store.ErrNoSpace, free, r.size)
	}
	return nil
}

// loginOutOfSpace is told that a login's write failed for want of space
// between two measures: it measures again at once, so that logins are
// refused (and the change reported) from now on, not from the next
// scheduled measure.
func (r *writeReserve) loginOutOfSpace() {
	r.mu.Lock()
	r.checkedAt = time.Time{}
	r.mu.Unlock()
	_ = r.allowLogin()
}

// release frees the ballast for a write that must not fail; false when
// there was none.
func (r *writeReserve) release() bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	if !r.present {
		return false
	}
	if err := os.Remove(r.path); err != nil && !errors.Is(err, os.ErrNotExist) {
		return false
	}
	r.present = false
	r.checkedAt = time.Time{}
	if !r.refusing {
		r.refusing = true
		if r.onChange != nil {
			r.onChange(true, r.free)
		}
	}
	return true
}

// writeBallast writes the ballast file in full (not sparse) and syncs it;
// on failure nothing is left behind.
func (r *writeReserve) writeBallast() error {
	f, err := os.OpenFile(r.path, os.O_CREATE|os.O_TRUNC|os.O_WRONLY, 0o600)
	if err != nil {
		return err
	}
	buf := make([]byte, 1<<20)
	for left := r.size; left > 0; {
		n := min(left, int64(len(buf)))
		if _, err = f.Write(buf[:n]); err != nil {
			break
		}
		left -= n
	}
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		_ = os.Remove(r.path)
	}
	return err
}
