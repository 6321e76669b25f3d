package slobridge

import (
	"bytes"
	"crypto/rand"
	"errors"
	"testing"
	"time"
)

// constReader yields the same byte forever.
type constReader byte

func (c constReader) Read(p []byte) (int, error) {
	for i := range p {
		p[i] = byte(c)
	}
	return len(p), nil
}

type failReader struct{}

func (failReader) Read([]byte) (int, error) { return 0, errors.New("no entropy") }

func TestBackoff(t *testing.T) {
	const base, max = 10 * time.Millisecond, 50 * time.Millisecond
	// Zero randomness gives a zero delay whatever the attempt.
	tests := []struct {
		attempts int
		want     time.Duration
	}{
		{0, 0}, {1, 0}, {2, 0}, {3, 0}, {4, 0}, {30, 0}, {1000, 0},
	}
	for _, tt := range tests {
		if got := backoff(tt.attempts, base, max, constReader(0)); got != tt.want {
			t.Errorf("backoff(%d) with zero randomness = %v, want %v", tt.attempts, got, tt.want)
		}
	}
	ceilings := map[int]time.Duration{1: base, 2: 2 * base, 3: 4 * base, 4: max, 5: max, 64: max, 1000: max}
	for attempts, ceil := range ceilings {
		if got := backoff(attempts, base, max, failReader{}); got != ceil {
			t.Errorf("backoff(%d) without randomness = %v, want the cap %v", attempts, got, ceil)
		}
		for range 200 {
			if got := backoff(attempts, base, max, rand.Reader); got < 0 || got >= ceil {
				t.Fatalf("backoff(%d) = %v, want in [0, %v)", attempts, got, ceil)
			}
		}
	}
	// A fixed source gives an exact, reproducible delay: 8 bytes big-endian mod ceiling.
	src := bytes.NewReader([]byte{0, 0, 0, 0, 0, 0x4c, 0x4b, 0x40}) // 5,000,000 ns
	if got := backoff(2, base, max, src); got != 5*time.Millisecond {
		t.Errorf("backoff with fixed source = %v, want 5ms", got)
	}
}
