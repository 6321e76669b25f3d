package slobridge

import (
	"context"
	"testing"
	"time"
)

func TestWaitChangeDrainsQueuedEvents(t *testing.T) {
	tests := []struct {
		name   string
		queued []string // logout IDs of the queued events
		tick   bool
		want   bool
	}{
		{name: "events of the logout", queued: []string{"lo", "lo", "other", "lo"}, want: true},
		{name: "tick with queued events", queued: []string{"other", "lo"}, tick: true, want: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			events := make(chan Event, len(tt.queued))
			for _, id := range tt.queued {
				events <- Event{LogoutID: id}
			}
			tick := make(chan time.Time, 1)
			if tt.tick {
				tick <- time.Time{}
			}
			if got := waitChange(context.Background(), events, tick, "lo"); got != tt.want {
				t.Fatalf("waitChange = %v, want %v", got, tt.want)
			}
			if n := len(events); n != 0 {
				t.Fatalf("%d events left queued, want none (one status read covers them)", n)
			}
		})
	}
	t.Run("ended context", func(t *testing.T) {
		ctx, cancel := context.WithCancel(context.Background())
		cancel()
		if waitChange(ctx, make(chan Event), make(chan time.Time), "lo") {
			t.Fatal("waitChange = true after the context ended, want false")
		}
	})
}
