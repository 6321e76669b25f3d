package bolt

import (
	"bytes"
	"encoding/binary"
	"encoding/json"
	"fmt"
	"math"
	"strings"
	"time"

	bbolt "go.etcd.io/bbolt"

	"github.com/slobridge/slobridge/store"
)

// sep separates the parts of a composite key.
const sep = 0x00

// Bounds of the time range that fits in int64 nanoseconds; times outside
// are clamped so that key order stays time order.
const (
	maxUnixSec = math.MaxInt64/int64(time.Second) - 1
	minUnixSec = math.MinInt64/int64(time.Second) + 1
)

// timeLen is the length of timeBytes.
const timeLen = 8

// timeBytes encodes t as 8 big-endian bytes that sort in time order. The
// zero time encodes as all zeros, before every other time.
func timeBytes(t time.Time) []byte {
	var n uint64
	switch {
	case t.IsZero():
		n = 0
	case t.Unix() >= maxUnixSec:
		n = math.MaxUint64
	case t.Unix() <= minUnixSec:
		n = 1
	default:
		n = uint64(t.UnixNano()) ^ (1 << 63)
	}
	b := make([]byte, timeLen)
	binary.BigEndian.PutUint64(b, n)
	return b
}

// bytesTime decodes timeBytes.
func bytesTime(b []byte) time.Time {
	n := binary.BigEndian.Uint64(b)
	if n == 0 {
		return time.Time{}
	}
	return time.Unix(0, int64(n^(1<<63))).UTC()
}

// key joins parts with sep; the result is a fresh slice.
func key(parts ...[]byte) []byte {
	size := 0
	for _, p := range parts {
		size += len(p)
	}
	out := make([]byte, 0, size)
	for _, p := range parts {
		out = append(out, p...)
	}
	return out
}

// prefix returns s followed by sep: the prefix of every key under s.
func prefix(s ...string) []byte {
	var out []byte
	for _, p := range s {
		out = append(out, p...)
		out = append(out, sep)
	}
	return out
}

// u64 encodes n big-endian.
func u64(n uint64) []byte {
	b := make([]byte, 8)
	binary.BigEndian.PutUint64(b, n)
	return b
}

// validID reports whether s may be part of a key: non-empty, no sep byte.
func validID(s string) bool { return s != "" && !strings.ContainsRune(s, sep) }

// checkIDs returns store.ErrInvalid naming the first bad field.
func checkIDs(fields ...string) error {
	for i := 0; i+1 < len(fields); i += 2 {
		if !validID(fields[i+1]) {
			return fmt.Errorf("%w: %s is empty or contains a NUL byte", store.ErrInvalid, fields[i])
		}
	}
	return nil
}

// getJSON decodes the value at k into v; it reports false when absent.
func getJSON(b *bbolt.Bucket, k []byte, v any) (bool, error) {
	raw := b.Get(k)
	if raw == nil {
		return false, nil
	}
	if err := json.Unmarshal(raw, v); err != nil {
		return true, fmt.Errorf("decode stored value: %w", err)
	}
	return true, nil
}

// putJSON encodes v and stores it at k.
func putJSON(b *bbolt.Bucket, k []byte, v any) error {
	raw, err := json.Marshal(v)
	if err != nil {
		return fmt.Errorf("encode value: %w", err)
	}
	return b.Put(k, raw)
}

// scanPrefix calls fn for every key starting with p, in key order. fn
// must not modify the bucket; collect keys and change them afterwards.
func scanPrefix(b *bbolt.Bucket, p []byte, fn func(k, v []byte) error) error {
	c := b.Cursor()
	for k, v := c.Seek(p); k != nil && bytes.HasPrefix(k, p); k, v = c.Next() {
		if err := fn(k, v); err != nil {
			return err
		}
	}
	return nil
}

// scanUntil calls fn for every key of a time-keyed index whose time is at
// or before t, in order, stopping early when fn returns false.
func scanUntil(b *bbolt.Bucket, t time.Time, fn func(k []byte) (bool, error)) error {
	_, err := scanFrom(b, nil, t, fn)
	return err
}

// tailAfter8 returns a copy of the key without its 8-byte time prefix.
func tailAfter8(k []byte) string { return string(k[8:]) }

// idAfterPrefix returns the ID that ends an index key of the form
// prefix timeBytes id.
func idAfterPrefix(k []byte, prefixLen int) string { return string(k[prefixLen+8:]) }
