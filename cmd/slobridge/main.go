// Command slobridge is the single-logout bridge.
//
//	slobridge serve --config FILE      run the bridge
//	slobridge check --config FILE      validate the configuration
//	slobridge migrate --config FILE    migrate the PostgreSQL schema
//	slobridge demo                     run the bridge with demo apps on 127.0.0.1
//	slobridge admin …                  call the admin API (see `slobridge admin -h`)
//	slobridge version                  print the version
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"runtime/debug"
	"strings"
	"syscall"

	"github.com/gin-gonic/gin"
)

func main() {
	// gin's mode is process-wide; release mode silences its debug output
	// (our own access log is structured).
	gin.SetMode(gin.ReleaseMode)
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	code := run(ctx, os.Args[1:], os.Stdout, os.Stderr)
	stop()
	os.Exit(code)
}

const usage = `usage: slobridge <command> [flags]

commands:
  serve --config FILE     run the bridge
  check --config FILE     validate the configuration (and its secrets) without starting
  migrate --config FILE   migrate the PostgreSQL schema (store.driver: postgres)
  demo                    run the bridge and demo apps on 127.0.0.1
  admin <sub-command>     call the admin API (slobridge admin --help lists the sub-commands)
  keys generate           write SAML keys and certificates, a cookie secret and an admin token
  version                 print the version
`

// errUsage marks a command line that could not be understood; its message
// was already printed with the usage.
var errUsage = errors.New("usage")

// run dispatches a command line and returns the exit status: 0 on
// success, 1 on failure, 2 on a usage error.
func run(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	if len(args) == 0 {
		fmt.Fprint(stderr, usage)
		return 2
	}
	var err error
	switch args[0] {
	case "serve":
		err = runServe(ctx, args[1:], stderr)
	case "check":
		err = runCheck(args[1:], stdout, stderr)
	case "migrate":
		err = runMigrate(ctx, args[1:], stdout, stderr)
	case "demo":
		err = runDemo(ctx, args[1:])
	case "admin":
		err = runAdmin(ctx, args[1:], stdout, stderr)
	case "keys":
		err = runKeys(args[1:], stdout, stderr)
	case "version", "-version", "--version":
		fmt.Fprintln(stdout, "slobridge", version())
	case "help", "-h", "-help", "--help":
		fmt.Fprint(stdout, usage)
	default:
		fmt.Fprintf(stderr, "slobridge: unknown command %q\n\n%s", args[0], usage)
		return 2
	}
	switch {
	case err == nil:
		return 0
	case errors.Is(err, errUsage), errors.Is(err, flag.ErrHelp):
		return 2
	}
	fmt.Fprintf(stderr, "slobridge %s: %v\n", args[0], err)
	return 1
}

// Build stamps, set by release builds:
//
//	go build -ldflags "-X main.buildVersion=v0.3.0 -X main.buildCommit=$(git rev-parse HEAD) -X main.buildDate=$(date -u +%Y-%m-%dT%H:%M:%SZ)" ./cmd/slobridge
//
// Without them the version comes from the module's build information
// (`go install ...@v0.3.0` stamps it) or is devVersion, and the commit
// and its date from the VCS stamps `go build` records in a git checkout.
var buildVersion, buildCommit, buildDate string

// devVersion is the version of a build from a checkout without a release
// stamp: the next release (CHANGELOG.md "Unreleased") with -dev.
const devVersion = "v0.3.0-dev"

// version reports the version, commit and build date the binary was built
// from, and the Go version.
func version() string {
	v, commit, committed, dirty := buildVersion, buildCommit, "", ""
	goVersion := "unknown Go"
	if bi, ok := debug.ReadBuildInfo(); ok {
		goVersion = bi.GoVersion
		if v == "" && bi.Main.Version != "" && bi.Main.Version != "(devel)" {
			v = bi.Main.Version
		}
		for _, s := range bi.Settings {
			switch s.Key {
			case "vcs.revision":
				if commit == "" {
					commit = s.Value
				}
			case "vcs.time":
				committed = s.Value
			case "vcs.modified":
				if s.Value == "true" {
					dirty = "+dirty"
				}
			}
		}
	}
	if v == "" {
		v = devVersion
	}
	if len(commit) > 12 {
		commit = commit[:12]
	}
	parts := []string{}
	if commit != "" {
		parts = append(parts, "commit "+commit+dirty)
	}
	if buildDate != "" {
		parts = append(parts, "built "+buildDate)
	} else if committed != "" && buildCommit == "" {
		parts = append(parts, "committed "+committed)
	}
	parts = append(parts, goVersion)
	return v + " (" + strings.Join(parts, ", ") + ")"
}

// newFlagSet returns a flag set that reports errors to stderr.
func newFlagSet(name string, stderr io.Writer) *flag.FlagSet {
	fs := flag.NewFlagSet(name, flag.ContinueOnError)
	fs.SetOutput(stderr)
	return fs
}

// parseFlags parses flags that may come before or after positional
// arguments and returns the positionals.
func parseFlags(fs *flag.FlagSet, args []string) ([]string, error) {
	var pos []string
	for {
		if err := fs.Parse(args); err != nil {
			return nil, errUsage
		}
		args = fs.Args()
		if len(args) == 0 {
			return pos, nil
		}
		if args[0] == "--" {
			return append(pos, args[1:]...), nil
		}
		pos = append(pos, args[0])
		args = args[1:]
	}
}
