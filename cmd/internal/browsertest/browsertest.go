// Package browsertest drives a headless Chromium (Debian chromium, through
// chromedp) for the browser tests of the commands: finding the browser
// (skipping without one, failing under CI=true), a fresh profile per
// test, polls on the page and the artifacts of a failed test.
package browsertest

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
)

// WaitTimeout bounds every poll; it only matters when something hangs.
const WaitTimeout = 30 * time.Second

// chromiumPath finds the browser: $SLOBRIDGE_CHROMIUM, else chromium or
// google-chrome on $PATH. Without one the test skips, except under
// CI=true where a missing browser is a failure.
func chromiumPath(t *testing.T) string {
	t.Helper()
	if p := os.Getenv("SLOBRIDGE_CHROMIUM"); p != "" {
		return p
	}
	for _, name := range []string{"chromium", "chromium-browser", "google-chrome"} {
		if p, err := exec.LookPath(name); err == nil {
			return p
		}
	}
	msg := "no Chromium found: install it (apt-get install chromium) or set SLOBRIDGE_CHROMIUM to run the browser end-to-end tests"
	if os.Getenv("CI") == "true" {
		t.Fatal(msg)
	}
	t.Skip(msg)
	return ""
}

// New starts a fresh headless Chromium with its own profile and
// returns a tab. A failing test saves a screenshot and the page's HTML to
// $TEST_ARTIFACTS (or a kept temporary directory) and logs where.
func New(t *testing.T) context.Context {
	t.Helper()
	opts := []chromedp.ExecAllocatorOption{
		chromedp.ExecPath(chromiumPath(t)),
		chromedp.Headless, chromedp.NoSandbox, chromedp.DisableGPU, chromedp.NoFirstRun,
		chromedp.Flag("disable-quic", true),
		chromedp.Flag("disable-background-networking", true),
		chromedp.Flag("disable-component-update", true),
		chromedp.Flag("disable-sync", true),
		chromedp.UserDataDir(t.TempDir()),
		chromedp.WindowSize(1100, 760),
	}
	actx, cancelAlloc := chromedp.NewExecAllocator(context.Background(), opts...)
	ctx, cancelTab := chromedp.NewContext(actx)
	if err := chromedp.Do(ctx); err != nil {
		cancelTab()
		cancelAlloc()
		t.Fatalf("start chromium: %v", err)
	}
	t.Cleanup(func() {
		if t.Failed() {
			saveArtifacts(t, ctx)
		}
		cancelTab()
		cancelAlloc()
	})
	return ctx
}

func saveArtifacts(t *testing.T, ctx context.Context) {
	dir := os.Getenv("TEST_ARTIFACTS")
	if dir == "" {
		var err error
		if dir, err = os.MkdirTemp("", "slobridge-e2e-artifacts-"); err != nil {
			t.Logf("artifacts: %v", err)
			return
		}
	}
	name := strings.NewReplacer("/", "_", " ", "_").Replace(t.Name())
	sctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	loc, err1 := chromedp.Run(sctx, chromedp.Location())
	png, err2 := chromedp.Run(sctx, chromedp.FullScreenshot(100))
	html, err3 := chromedp.Run(sctx, chromedp.OuterHTML(chromedp.CSS("html")))
	if err := errors.Join(err1, err2, err3); err != nil {
		t.Logf("artifacts: capture page: %v", err)
	}
	err := errors.Join(
		os.WriteFile(filepath.Join(dir, name+".png"), png, 0o644),
		os.WriteFile(filepath.Join(dir, name+".html"), []byte("<!-- "+loc+" -->\n"+html), 0o644))
	if err != nil {
		t.Logf("artifacts: %v", err)
		return
	}
	t.Logf("artifacts of the failed test (page %s): %s", loc, filepath.Join(dir, name+".{png,html}"))
}

// WaitJS polls a JavaScript condition until it holds, failing the test
// after WaitTimeout with what the page shows.
func WaitJS(t *testing.T, ctx context.Context, what, expr string) {
	t.Helper()
	deadline := time.Now().Add(WaitTimeout)
	for {
		ok, err := chromedp.Run(ctx, chromedp.Evaluate[bool](expr))
		if err == nil && ok {
			return
		}
		if time.Now().After(deadline) {
			loc, _ := chromedp.Run(ctx, chromedp.Location())
			text, _ := chromedp.Run(ctx, chromedp.Evaluate[string](`document.body ? document.body.innerText : ""`))
			t.Fatalf("timed out waiting for %s (err %v) at %s; page shows:\n%s", what, err, loc, text)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// Navigate opens u in the tab.
func Navigate(t *testing.T, ctx context.Context, u string) {
	t.Helper()
	if err := chromedp.Do(ctx, chromedp.Navigate(u)); err != nil {
		t.Fatalf("open %s: %v", u, err)
	}
}

// Click clicks the element sel selects.
func Click(t *testing.T, ctx context.Context, sel string) {
	t.Helper()
	if err := chromedp.Do(ctx, chromedp.Click(chromedp.CSS(sel))); err != nil {
		t.Fatalf("click %s: %v", sel, err)
	}
}

// Text is the trimmed text content of the element sel selects ("" when
// there is none).
func Text(t *testing.T, ctx context.Context, sel string) string {
	t.Helper()
	s, err := chromedp.Run(ctx, chromedp.Evaluate[string](fmt.Sprintf(`(function(){var e=document.querySelector(%q);return e?e.textContent:""})()`, sel)))
	if err != nil {
		t.Fatalf("read %s: %v", sel, err)
	}
	return strings.TrimSpace(s)
}
