package app

import (
	"errors"
	"io"
	"net/http"
	"net/http/cookiejar"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"syscall"
	"testing"
	"time"
)

// TestOutOfSpaceRefusesLoginsWithA503Page serves the bridge on bbolt in a
// small tmpfs (root only: skipped with a message otherwise, required
// under CI=true) with a 1 MiB write reserve, and takes the file system's
// space away: a login is answered a 503 page that says the bridge is out
// of space (Retry-After set), the metric says logins are refused, and
// once space is freed the same login succeeds without a restart.
func TestOutOfSpaceRefusesLoginsWithA503Page(t *testing.T) {
	if os.Geteuid() != 0 {
		msg := "this test mounts a small tmpfs, which needs root; run it as root (CI does)"
		if os.Getenv("CI") == "true" {
			t.Fatal(msg + " (CI=true requires it)")
		}
		t.Skip(msg)
	}
	dir := filepath.Join(t.TempDir(), "fs")
	if err := os.Mkdir(dir, 0o700); err != nil {
		t.Fatal(err)
	}
	if out, err := exec.Command("mount", "-t", "tmpfs", "-o", "size=8m", "tmpfs", dir).CombinedOutput(); err != nil {
		t.Fatalf("mount tmpfs: %v: %s", err, out)
	}
	t.Cleanup(func() { _ = exec.Command("umount", "-l", dir).Run() })
	_, rpURL := newInbox(t, http.StatusOK)
	doc := strings.NewReplacer("{{DB}}", filepath.Join(dir, "bridge.db"), "{{RP}}", rpURL, "{{SSF}}", rpURL).Replace(wiringConfig)
	doc = strings.Replace(doc, "    path: "+filepath.Join(dir, "bridge.db")+"\n", "    path: "+filepath.Join(dir, "bridge.db")+"\n    reserve_bytes: 1048576\n", 1)
	_, base := startApp(t, doc, map[string]string{
		"COOKIE": strings.Repeat("c", 40), "ADMIN": "admin-token-0123456789", "PASSWORD": "alice-password",
		"APP1_SECRET": "app1-secret-0123456789", "SSF_AUTH": "Bearer x",
	})
	// Leave less than the reserve.
	f, err := os.Create(filepath.Join(dir, "filler"))
	if err != nil {
		t.Fatal(err)
	}
	buf := make([]byte, 64<<10)
	for {
		var st syscall.Statfs_t
		if err := syscall.Statfs(dir, &st); err != nil {
			t.Fatal(err)
		}
		if int64(st.Bavail)*int64(st.Bsize) < 512<<10 {
			break
		}
		if _, err := f.Write(buf); err != nil {
			if errors.Is(err, syscall.ENOSPC) {
				break
			}
			t.Fatal(err)
		}
	}
	f.Close()

	// login runs a login and says how it ended: "ok" (the code went to
	// the app), or "refused" with the 503 page of the login form (the
	// login's first steps keep their state in memory and go through; the
	// session is what needs the disk).
	login := func() (outcome, detail string) {
		jar, _ := cookiejar.New(nil)
		br := &http.Client{Jar: jar, CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
		q := url.Values{"client_id": {"app1"}, "redirect_uri": {rpURL + "/cb"}, "response_type": {"code"}, "scope": {"openid"}, "state": {"s"}}
		resp, err := br.Get(base + "/oidc/authorize?" + q.Encode())
		if err != nil {
			t.Fatal(err)
		}
		for resp.StatusCode == http.StatusFound || resp.StatusCode == http.StatusSeeOther {
			resp.Body.Close()
			loc := resp.Header.Get("Location")
			if strings.HasPrefix(loc, rpURL) {
				return answerAtRP(t, loc)
			}
			if resp, err = br.Get(base + loc); err != nil {
				t.Fatal(err)
			}
		}
		page, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		m := regexp.MustCompile(`name="id" value="([^"]+)"`).FindSubmatch(page)
		if m == nil {
			t.Fatalf("no login form (%d): %s", resp.StatusCode, page)
		}
		resp, err = br.PostForm(base+PathStaticLogin, url.Values{"id": {string(m[1])}, "username": {"alice"}, "password": {"alice-password"}})
		if err != nil {
			t.Fatal(err)
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		for resp.StatusCode == http.StatusFound || resp.StatusCode == http.StatusSeeOther {
			resp.Body.Close()
			loc := resp.Header.Get("Location")
			if strings.HasPrefix(loc, rpURL) {
				return answerAtRP(t, loc)
			}
			if resp, err = br.Get(base + loc); err != nil {
				t.Fatal(err)
			}
			body, _ = io.ReadAll(resp.Body)
		}
		if resp.StatusCode != http.StatusServiceUnavailable || resp.Header.Get("Retry-After") == "" {
			t.Fatalf("login form: HTTP %d, Retry-After %q: %s", resp.StatusCode, resp.Header.Get("Retry-After"), body)
		}
		return "refused", string(body)
	}
	// The reserve measures the free space at most once a second.
	var outcome, detail string
	for range 100 {
		if outcome, detail = login(); outcome != "ok" {
			break
		}
		time.Sleep(100 * time.Millisecond)
	}
	if outcome != "refused" || !strings.Contains(detail, "out of storage space") {
		t.Fatalf("login on a full disk: %s: %s", outcome, detail)
	}
	if _, metrics := get(t, http.DefaultClient, base+"/metrics"); !strings.Contains(metrics, "slobridge_store_logins_refused_no_space 1") {
		t.Fatalf("the gauge does not say logins are refused:\n%s", grep(metrics, "no_space"))
	}
	if err := os.Remove(filepath.Join(dir, "filler")); err != nil {
		t.Fatal(err)
	}
	for range 50 {
		if outcome, detail = login(); outcome == "ok" {
			break
		}
		time.Sleep(100 * time.Millisecond)
	}
	if outcome != "ok" {
		t.Fatalf("login after space was freed: %s: %s", outcome, detail)
	}
}

// answerAtRP reads the authorization response at the app's callback: "ok"
// with a code; anything else fails the test.
func answerAtRP(t *testing.T, loc string) (string, string) {
	t.Helper()
	u, err := url.Parse(loc)
	if err != nil {
		t.Fatal(err)
	}
	q := u.Query()
	if q.Get("code") == "" {
		t.Fatalf("authorization response %s", loc)
	}
	return "ok", ""
}
