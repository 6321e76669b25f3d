package slobridge

import (
	"encoding/binary"
	"io"
	"sync"
	"time"
)

// backoff returns the delay before the retry that follows the attempts-th
// failed attempt: exponential backoff with full jitter ("Exponential Backoff
// And Jitter", AWS Architecture Blog, 2015), uniformly random in
// [0, min(max, base × 2^(attempts-1))). Full jitter spreads the retries of a
// receiver that came back from an outage instead of hitting it in waves.
// A failing random source yields the cap (the delay stays bounded).
func backoff(attempts int, base, max time.Duration, rnd io.Reader) time.Duration {
	if attempts < 1 {
		attempts = 1
	}
	ceil := base
	for i := 1; i < attempts && ceil < max; i++ {
		ceil *= 2
	}
	if ceil > max || ceil <= 0 {
		ceil = max
	}
	if ceil <= 0 {
		return 0
	}
	var b [8]byte
	if _, err := io.ReadFull(rnd, b[:]); err != nil {
		return ceil
	}
	return time.Duration(binary.BigEndian.Uint64(b[:]) % uint64(ceil))
}

// lockedReader serialises reads of a random source shared by concurrent
// workers: crypto/rand.Reader is safe for concurrent use, but the
// deterministic readers tests inject usually are not.
type lockedReader struct {
	mu sync.Mutex
	r  io.Reader
}

// Read implements io.Reader.
func (l *lockedReader) Read(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.r.Read(p)
}
