package demo

import (
	"context"
	"flag"
	"os"
	"path/filepath"
	"testing"

	"github.com/chromedp/chromedp"

	"github.com/slobridge/slobridge/cmd/internal/browsertest"
)

// waitTimeout bounds every wait in these tests; it only matters when
// something hangs.
const waitTimeout = browsertest.WaitTimeout

var updateScreenshots = flag.Bool("screenshots", false, "write screenshots of the logout status page to testdata/screenshots at the repository root")

// screenshot writes the current page to testdata/screenshots at the
// repository root when -screenshots is given.
func screenshot(t *testing.T, ctx context.Context, name string) {
	t.Helper()
	if !*updateScreenshots {
		return
	}
	png, err := chromedp.Run(ctx, chromedp.FullScreenshot(100))
	if err != nil {
		t.Fatalf("screenshot: %v", err)
	}
	dir := filepath.Join("..", "..", "..", "testdata", "screenshots")
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, name), png, 0o644); err != nil {
		t.Fatal(err)
	}
}
