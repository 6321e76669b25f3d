package slobridge

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/gin-gonic/gin"
	bbolt "go.etcd.io/bbolt"

	"github.com/slobridge/slobridge/store"
	"github.com/slobridge/slobridge/store/bolt"
)

// smallFS mounts a tmpfs of size bytes for the test (root only: skipped
// with a message otherwise, failed under CI=true) and unmounts it at the
// end.
func smallFS(t *testing.T, size string) string {
	t.Helper()
	if os.Geteuid() != 0 {
		msg := "the full-disk tests mount a small tmpfs, which needs root; run them as root (CI does)"
		if os.Getenv("CI") == "true" {
			t.Fatal(msg + " (CI=true requires them)")
		}
		t.Skip(msg)
	}
	dir := filepath.Join(t.TempDir(), "fs")
	if err := os.Mkdir(dir, 0o700); err != nil {
		t.Fatal(err)
	}
	if out, err := exec.Command("mount", "-t", "tmpfs", "-o", "size="+size, "tmpfs", dir).CombinedOutput(); err != nil {
		t.Fatalf("mount tmpfs: %v: %s", err, out)
	}
	t.Cleanup(func() {
		if out, err := exec.Command("umount", "-l", dir).CombinedOutput(); err != nil {
			t.Errorf("umount: %v: %s", err, out)
		}
	})
	return dir
}

// fill writes name until the file system is full and returns its size.
func fill(t *testing.T, name string) int64 {
	t.Helper()
	f, err := os.Create(name)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	var n int64
	for _, chunk := range []int{1 << 20, 64 << 10, 4 << 10, 512} {
		buf := make([]byte, chunk)
		for {
			w, err := f.Write(buf)
			n += int64(w)
			if err != nil {
				if !errors.Is(err, syscall.ENOSPC) {
					t.Fatalf("fill %s: %v", name, err)
				}
				break
			}
		}
	}
	return n
}

// TestFullDiskRefusesLoginsNotLogouts runs the engine on bbolt in a small
// tmpfs with a 2 MiB write reserve. Logins fill it until they are refused
// with ErrNoSpace; then the disk is filled to the last byte, and still 100
// logouts of existing sessions succeed and every one of their deliveries
// arrives (they use the reserve); /readyz says 200 while it can write and
// 503 "out of space" once even the reserve is gone; freeing space restores
// logins and /readyz without a restart; and bbolt's consistency check
// passes on the file afterwards.
func TestFullDiskRefusesLoginsNotLogouts(t *testing.T) {
	dir := smallFS(t, "24m")
	path := filepath.Join(dir, "bridge.db")
	var refusals atomic.Int32
	db, err := bolt.Open(path, bolt.Options{Reserve: 2 << 20, OnReserve: func(refusing bool, _ int64) {
		if refusing {
			refusals.Add(1)
		}
	}})
	if err != nil {
		t.Fatal(err)
	}
	closed := false
	t.Cleanup(func() {
		if !closed {
			_ = db.Close()
		}
	})
	if _, err := os.Stat(path + ".reserve"); err != nil {
		t.Fatalf("no ballast file: %v", err)
	}
	var delivered atomic.Int32
	rcv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		delivered.Add(1)
		w.WriteHeader(http.StatusOK)
	}))
	t.Cleanup(rcv.Close)
	e, stop := runEngine(t, testOptions(db))
	ctx := context.Background()

	gin.SetMode(gin.ReleaseMode)
	r := gin.New()
	MountOps(r, OpsOptions{Store: db, WriteProbeInterval: time.Millisecond, Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
	ready := func() (int, string) {
		rec := httptest.NewRecorder()
		r.ServeHTTP(rec, httptest.NewRequest(http.MethodGet, PathReadyz, nil))
		var body map[string]string
		_ = json.Unmarshal(rec.Body.Bytes(), &body)
		return rec.Code, body["store"]
	}

	// Leave about 5 MiB to the logins, then log in until refused.
	filler := filepath.Join(dir, "filler")
	if err := os.WriteFile(filler, make([]byte, 15<<20), 0o600); err != nil {
		t.Fatal(err)
	}
	var sessions []store.Session
	login := func(i int) error {
		s, err := e.CreateSession(ctx, store.Session{UserID: fmt.Sprintf("user-%d", i), ExpiresAt: e.Now().Add(time.Hour),
			Attributes: map[string][]string{"email": {fmt.Sprintf("user-%d@example.com", i)}, "pad": {strings.Repeat("x", 2000)}}})
		if err != nil {
			return err
		}
		p := backParticipant("app", rcv.URL+"/bc")
		p.SessionID = s.ID
		if _, err := e.AddParticipant(ctx, p); err != nil {
			return err
		}
		sessions = append(sessions, s)
		return nil
	}
	var refused error
	for i := 0; i < 100000 && refused == nil; i++ {
		if err := login(i); err != nil {
			refused = err
		}
	}
	if !errors.Is(refused, store.ErrNoSpace) {
		t.Fatalf("logins stopped with %v, want store.ErrNoSpace", refused)
	}
	if len(sessions) < 150 || refusals.Load() == 0 {
		t.Fatalf("%d logins before the refusal, %d refusal reports", len(sessions), refusals.Load())
	}
	t.Logf("%d logins fitted before logins were refused", len(sessions))
	if code, state := ready(); code != http.StatusOK {
		t.Fatalf("/readyz while logouts can still be written: %d %q", code, state)
	}

	// Fill the disk to the last byte: only the ballast is left.
	filler2 := filepath.Join(dir, "filler2")
	fill(t, filler2)
	for i := range 100 {
		if _, err := e.Logout(ctx, LogoutRequest{SessionIDs: []string{sessions[i].ID},
			Initiator: store.Initiator{Kind: store.InitiatorAdmin, ID: "full-disk-test"}}); err != nil {
			t.Fatalf("logout %d on a full disk: %v", i, err)
		}
	}
	deadline := time.Now().Add(60 * time.Second)
	for delivered.Load() < 100 && time.Now().Before(deadline) {
		time.Sleep(20 * time.Millisecond)
	}
	if n := delivered.Load(); n < 100 {
		t.Fatalf("%d of 100 deliveries arrived", n)
	}
	if err := login(-1); !errors.Is(err, store.ErrNoSpace) {
		t.Fatalf("login on a full disk: %v, want ErrNoSpace", err)
	}
	if code, state := ready(); code != http.StatusOK {
		t.Fatalf("/readyz while logouts are written: %d %q", code, state)
	}

	// Past the reserve: fill what the ballast left, and log out the other
	// sessions until a write fails for want of space; /readyz says so.
	fill(t, filepath.Join(dir, "filler3"))
	var lastErr error
	for i := 100; i < len(sessions) && lastErr == nil; i += 25 {
		ids := []string{}
		for _, s := range sessions[i:min(i+25, len(sessions))] {
			ids = append(ids, s.ID)
		}
		_, lastErr = e.Logout(ctx, LogoutRequest{SessionIDs: ids, Initiator: store.Initiator{Kind: store.InitiatorAdmin}})
	}
	if !errors.Is(lastErr, store.ErrNoSpace) {
		t.Fatalf("with no space and no reserve left, a logout answered %v, want ErrNoSpace", lastErr)
	}
	if code, state := ready(); code != http.StatusServiceUnavailable || !strings.Contains(state, "out of space") {
		t.Fatalf("/readyz while writes fail: %d %q, want 503 out of space", code, state)
	}

	// Free the space: logins and /readyz come back without a restart.
	matches, _ := filepath.Glob(filepath.Join(dir, "filler*"))
	for _, m := range matches {
		if err := os.Remove(m); err != nil {
			t.Fatal(err)
		}
	}
	deadline = time.Now().Add(20 * time.Second)
	var err2 error
	for {
		if err2 = login(1_000_000); err2 == nil {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("login after space was freed: %v", err2)
		}
		time.Sleep(100 * time.Millisecond)
	}
	if _, err := os.Stat(path + ".reserve"); err != nil {
		t.Fatalf("the ballast was not written again: %v", err)
	}
	for {
		code, state := ready()
		if code == http.StatusOK {
			break
		}
		if time.Now().After(deadline.Add(20 * time.Second)) {
			t.Fatalf("/readyz after space was freed: %d %q", code, state)
		}
		time.Sleep(200 * time.Millisecond)
	}

	// bbolt's own consistency check on the file.
	stop()
	closed = true
	if err := db.Close(); err != nil {
		t.Fatal(err)
	}
	bdb, err := bbolt.Open(path, 0o600, &bbolt.Options{ReadOnly: true})
	if err != nil {
		t.Fatal(err)
	}
	defer bdb.Close()
	if err := bdb.View(func(tx *bbolt.Tx) error {
		var errs []string
		for err := range tx.Check() {
			errs = append(errs, err.Error())
		}
		if len(errs) > 0 {
			return errors.New(strings.Join(errs, "; "))
		}
		return nil
	}); err != nil {
		t.Fatalf("bbolt check: %v", err)
	}
}
