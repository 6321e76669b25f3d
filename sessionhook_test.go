package slobridge

import (
	"context"
	"errors"
	"path/filepath"
	"testing"
	"time"

	"github.com/slobridge/slobridge/store"
)

func TestOnSessionCreatedHook(t *testing.T) {
	st := openStore(t, filepath.Join(t.TempDir(), "hook.db"))
	var seen []string
	fail := errors.New("receiver registry unavailable")
	var hookErr error
	opts := testOptions(st)
	opts.OnSessionCreated = func(ctx context.Context, s store.Session) error {
		seen = append(seen, s.ID)
		if hookErr != nil {
			return hookErr
		}
		// The session is stored when the hook runs: it may add participants.
		_, err := eng(t, st).AddParticipant(ctx, store.Participant{SessionID: s.ID, Kind: "ssf", AppID: "api", Channels: store.ChannelBack, BackChannelURL: "https://api.example.com/events"})
		return err
	}
	e, err := NewEngine(opts)
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	s, err := e.CreateSession(ctx, store.Session{UserID: "erin", ExpiresAt: time.Now().Add(time.Hour)})
	if err != nil {
		t.Fatalf("CreateSession: %v", err)
	}
	if len(seen) != 1 || seen[0] != s.ID {
		t.Fatalf("hook saw %v, want [%s]", seen, s.ID)
	}
	ps, err := st.ListParticipants(ctx, s.ID)
	if err != nil || len(ps) != 1 || ps[0].Key != "ssf:api" {
		t.Fatalf("participants added by the hook: %+v %v", ps, err)
	}

	hookErr = fail
	if _, err := e.CreateSession(ctx, store.Session{UserID: "erin", ExpiresAt: time.Now().Add(time.Hour)}); !errors.Is(err, fail) {
		t.Fatalf("CreateSession with a failing hook: %v, want %v", err, fail)
	}
}

// eng returns a bare engine on st (no hook) for the hook to add
// participants through.
func eng(t *testing.T, st store.Store) *Engine {
	t.Helper()
	e, err := NewEngine(testOptions(st))
	if err != nil {
		t.Fatal(err)
	}
	return e
}
