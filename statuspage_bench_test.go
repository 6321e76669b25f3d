package slobridge

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"testing"
	"time"

	"github.com/gin-gonic/gin"

	"github.com/slobridge/slobridge/store"
)

// BenchmarkLogoutStatusPage measures what one poll of the status page
// costs the bridge with 20 participants (half back-channel, half
// front-channel) on a bbolt file: reading the status and building the
// rows (view), and rendering the whole page (render).
func BenchmarkLogoutStatusPage(b *testing.B) {
	gin.SetMode(gin.ReleaseMode)
	opts := testOptions(openStore(b, filepath.Join(b.TempDir(), "bench.db")))
	opts.Notifiers = map[string]Notifier{}
	eng, err := NewEngine(opts)
	if err != nil {
		b.Fatal(err)
	}
	ctx := context.Background()
	var ps []store.Participant
	for i := range 20 {
		p := store.Participant{Kind: "http", AppID: fmt.Sprintf("app-%d", i), Name: fmt.Sprintf("App %d", i)}
		if i%2 == 0 {
			p.Channels, p.BackChannelURL = store.ChannelBack, "https://app.example/logout"
		} else {
			p.Channels, p.FrontChannelURL = store.ChannelFront, fmt.Sprintf("https://app%d.example/fc", i)
		}
		ps = append(ps, p)
	}
	s, err := eng.CreateSession(ctx, store.Session{UserID: "alice", ExpiresAt: time.Now().Add(time.Hour)})
	if err != nil {
		b.Fatal(err)
	}
	for _, p := range ps {
		p.SessionID = s.ID
		if _, err := eng.AddParticipant(ctx, p); err != nil {
			b.Fatal(err)
		}
	}
	lo, err := eng.Logout(ctx, LogoutRequest{SessionIDs: []string{s.ID}, Initiator: store.Initiator{Kind: store.InitiatorUser}})
	if err != nil {
		b.Fatal(err)
	}
	lp, err := NewLogoutPage(LogoutPageOptions{Engine: eng, Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
	if err != nil {
		b.Fatal(err)
	}
	b.Run("view", func(b *testing.B) {
		for b.Loop() {
			if _, _, err := lp.view(ctx, lo.ID, false); err != nil {
				b.Fatal(err)
			}
		}
	})
	r := gin.New()
	lp.Mount(r)
	b.Run("render", func(b *testing.B) {
		for b.Loop() {
			rec := httptest.NewRecorder()
			r.ServeHTTP(rec, httptest.NewRequest(http.MethodGet, LogoutPagePath(lo.ID), nil))
			if rec.Code != http.StatusOK {
				b.Fatalf("page answered %d", rec.Code)
			}
		}
	})
}
