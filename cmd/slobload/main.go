// Command slobload drives a slobridge bridge over real HTTP on 127.0.0.1
// and reports what it sustains: OIDC code-flow logins per second, logout
// fan-out latency for sessions of 10, 100 and 1,000 participants whose
// receivers answer after 0 and 50 ms, the time from a logout to the first
// rejection at a resource server, introspections per second, and delivery
// when 30% of the receivers fail for a while and then recover.
//
// By default it starts a bridge in-process exactly as `slobridge serve`
// builds it (cmd/internal/app, a bbolt file with fsync, the static
// upstream, the SAML IdP), with its own apps, receivers, SAML SP and
// resource server. With -url it drives a running bridge instead, whose
// configuration must enable dynamic registration (-registration-token), the
// admin API (-admin-token), a static upstream user (-user, -password), the
// SAML IdP and back-channel delivery to loopback; -write-config writes
// such a configuration.
//
// Usage:
//
//	go run ./cmd/slobload            # every scenario, about 10 minutes
//	go run ./cmd/slobload -short     # a few seconds
//	go run ./cmd/slobload -json      # JSON on stdout
//
//	dir=$(mktemp -d)
//	eval "$(go run ./cmd/slobload -write-config "$dir")"
//	go run ./cmd/slobridge serve --config "$dir/slobridge.yaml" &
//	go run ./cmd/slobload -url http://127.0.0.1:8080
//
// Figures go to stdout as a table (or JSON); a progress bar goes to stderr.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/signal"
	"runtime/pprof"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/slobridge/slobridge/oidc"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	err := run(ctx, os.Args[1:], os.Stdout, os.Stderr)
	stop()
	if err != nil {
		fmt.Fprintln(os.Stderr, "slobload:", err)
		os.Exit(1)
	}
}

// options are the command-line flags.
type options struct {
	URL, RegistrationToken, AdminToken, User, Password string
	Short, JSON, Quiet                                 bool
	Scenarios                                          string
	Workers                                            int
	CPUProfile, MemProfile, WriteConfig, Listen        string
	Postgres, BridgeLog, Alg, SigningAlg               string
	p                                                  params
}

func parseFlags(args []string, stderr io.Writer) (options, error) {
	fs := flag.NewFlagSet("slobload", flag.ContinueOnError)
	fs.SetOutput(stderr)
	var o options
	var sizes, delays string
	fs.StringVar(&o.URL, "url", "", "issuer URL of a running bridge; empty starts one in-process on 127.0.0.1")
	fs.StringVar(&o.RegistrationToken, "registration-token", os.Getenv("SLOBLOAD_REGISTRATION_TOKEN"), "initial access token of dynamic registration (with -url; env SLOBLOAD_REGISTRATION_TOKEN)")
	fs.StringVar(&o.AdminToken, "admin-token", os.Getenv("SLOBLOAD_ADMIN_TOKEN"), "admin API token (with -url; env SLOBLOAD_ADMIN_TOKEN)")
	fs.StringVar(&o.User, "user", "load", "static upstream username (with -url)")
	fs.StringVar(&o.Password, "password", os.Getenv("SLOBLOAD_PASSWORD"), "static upstream password (with -url; env SLOBLOAD_PASSWORD)")
	fs.BoolVar(&o.Short, "short", false, "run every scenario for a few seconds only")
	fs.BoolVar(&o.JSON, "json", false, "print the figures as JSON instead of a table")
	fs.BoolVar(&o.Quiet, "quiet", false, "no progress bar on stderr")
	fs.StringVar(&o.Scenarios, "scenarios", "login,saml,introspect,fanout,rejection,recovery", "comma-separated scenarios to run")
	fs.StringVar(&o.WriteConfig, "write-config", "", "write DIR/slobridge.yaml for `slobridge serve` and print its secrets as shell exports, then exit")
	fs.StringVar(&o.Listen, "listen", "127.0.0.1:8080", "the address the -write-config bridge listens on")
	fs.StringVar(&o.CPUProfile, "cpuprofile", "", "write a CPU profile of the whole run (tool and in-process bridge) to this file")
	fs.StringVar(&o.MemProfile, "memprofile", "", "write an allocation profile at the end of the run to this file")
	fs.StringVar(&o.Postgres, "postgres", "", "run the in-process bridge on PostgreSQL at this DSN (in a fresh schema, dropped at the end) instead of bbolt")
	fs.StringVar(&o.BridgeLog, "bridge-log", "", "append the in-process bridge's logs (level warn and above) to this file")
	fs.StringVar(&o.Alg, "alg", "", "id_token_signed_response_alg of the registered apps, RS256, ES256, PS256 or EdDSA (empty: the bridge's signing_alg); their logout tokens use it too")
	fs.StringVar(&o.SigningAlg, "signing-alg", "", "oidc.signing_alg of the in-process bridge (its ID, access and logout tokens), RS256, ES256, PS256 or EdDSA (empty: RS256)")
	fs.IntVar(&o.Workers, "workers", 0, "delivery.workers of the in-process bridge (0: the serve default, 256)")
	fs.DurationVar(&o.p.Duration, "duration", 0, "length of each throughput scenario (default 10s, -short 1s)")
	fs.IntVar(&o.p.Concurrency, "concurrency", 32, "concurrent browsers or callers")
	fs.StringVar(&sizes, "fanout", "", "participants per logged-out session (default 10,100,1000; -short 10,100)")
	fs.StringVar(&delays, "delays", "0,50ms", "receiver answer delays")
	fs.IntVar(&o.p.Logouts, "logouts", 0, "logouts per fan-out case (default 10, -short 2)")
	fs.IntVar(&o.p.Rejections, "rejections", 0, "logouts in the rejection scenario (default 200, -short 20)")
	fs.DurationVar(&o.p.FailFor, "fail-for", 0, "how long 30% of the receivers fail in the recovery scenario (default 1m, -short 1s)")
	fs.IntVar(&o.p.RecSessions, "recovery-sessions", 0, "sessions logged out in the recovery scenario (default 10, -short 3)")
	fs.IntVar(&o.p.RecApps, "recovery-apps", 0, "participants of each (default 100, -short 20)")
	if err := fs.Parse(args); err != nil {
		return o, err
	}
	if fs.NArg() > 0 {
		return o, fmt.Errorf("unexpected arguments %q", fs.Args())
	}
	def := func(v *int, full, short int) {
		if *v == 0 {
			*v = map[bool]int{false: full, true: short}[o.Short]
		}
	}
	defDur := func(v *time.Duration, full, short time.Duration) {
		if *v == 0 {
			*v = map[bool]time.Duration{false: full, true: short}[o.Short]
		}
	}
	defDur(&o.p.Duration, 10*time.Second, time.Second)
	defDur(&o.p.FailFor, time.Minute, time.Second)
	def(&o.p.Logouts, 10, 2)
	def(&o.p.Rejections, 200, 20)
	def(&o.p.RecSessions, 10, 3)
	def(&o.p.RecApps, 100, 20)
	if sizes == "" {
		sizes = map[bool]string{false: "10,100,1000", true: "10,100"}[o.Short]
	}
	var err error
	if o.p.FanoutSizes, err = parseInts(sizes); err != nil {
		return o, fmt.Errorf("-fanout: %w", err)
	}
	for _, f := range strings.Split(delays, ",") {
		d, err := time.ParseDuration(strings.TrimSpace(f))
		if f == "0" {
			d, err = 0, nil
		}
		if err != nil || d < 0 {
			return o, fmt.Errorf("-delays: %q is not a duration", f)
		}
		o.p.Delays = append(o.p.Delays, d)
	}
	for _, a := range []struct{ flag, v string }{{"-alg", o.Alg}, {"-signing-alg", o.SigningAlg}} {
		if a.v != "" && !slices.Contains(oidc.SigningAlgorithms(), a.v) {
			return o, fmt.Errorf("%s: %q is not one of %s", a.flag, a.v, strings.Join(oidc.SigningAlgorithms(), ", "))
		}
	}
	if o.p.Concurrency < 1 {
		return o, errors.New("-concurrency must be at least 1")
	}
	return o, nil
}

func parseInts(s string) ([]int, error) {
	var out []int
	for _, f := range strings.Split(s, ",") {
		n, err := strconv.Atoi(strings.TrimSpace(f))
		if err != nil || n < 1 {
			return nil, fmt.Errorf("%q is not a positive count", f)
		}
		out = append(out, n)
	}
	return out, nil
}

// run is the command with its arguments and output streams.
func run(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	o, err := parseFlags(args, stderr)
	if err != nil {
		return err
	}
	if o.WriteConfig != "" {
		return writeConfig(o.WriteConfig, o.Listen, stdout)
	}
	if o.CPUProfile != "" {
		f, err := os.Create(o.CPUProfile)
		if err != nil {
			return err
		}
		if err := pprof.StartCPUProfile(f); err != nil {
			return err
		}
		defer func() { pprof.StopCPUProfile(); _ = f.Close() }()
	}
	if o.MemProfile != "" {
		defer func() {
			if f, err := os.Create(o.MemProfile); err == nil {
				_ = pprof.Lookup("allocs").WriteTo(f, 0)
				_ = f.Close()
			}
		}()
	}
	var t *target
	if o.URL == "" {
		dir, err := os.MkdirTemp("", "slobload-")
		if err != nil {
			return err
		}
		defer os.RemoveAll(dir)
		var logw io.Writer
		if o.BridgeLog != "" {
			f, err := os.OpenFile(o.BridgeLog, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o600)
			if err != nil {
				return err
			}
			defer f.Close()
			logw = f
		}
		if t, err = startBridge(ctx, dir, o.Workers, o.Postgres, o.SigningAlg, logw); err != nil {
			return err
		}
	} else {
		t = &target{BaseURL: strings.TrimSuffix(o.URL, "/"), RegistrationToken: o.RegistrationToken,
			AdminToken: o.AdminToken, Username: o.User, Password: o.Password}
		if t.RegistrationToken == "" || t.Password == "" {
			return errors.New("-url needs -registration-token and -password (or their SLOBLOAD_ environment variables)")
		}
	}
	defer t.Close()

	rep := &report{Target: t.BaseURL, Started: time.Now().UTC(), Short: o.Short, Alg: o.Alg}
	switch {
	case o.URL == "" && o.Postgres != "":
		rep.Target = "in-process bridge (cmd/internal/app, PostgreSQL) at " + t.BaseURL
	case o.URL == "":
		rep.Target = "in-process bridge (cmd/internal/app, bbolt with fsync) at " + t.BaseURL
	}
	l := newLoader(t, o.p.Concurrency)
	l.alg = o.Alg
	r := &runner{p: o.p, l: l, rep: rep, bar: &progress{w: stderr, enabled: !o.Quiet}}
	want := map[string]bool{}
	for _, s := range strings.Split(o.Scenarios, ",") {
		want[strings.TrimSpace(s)] = true
	}
	// One app more than the largest fan-out: the RP that starts the logout.
	n := slices.Max(o.p.FanoutSizes) + 1 // parseInts never returns an empty list
	if want["recovery"] {
		n = max(n, o.p.RecApps+1)
	}
	if err := r.setup(ctx, n); err != nil {
		return fmt.Errorf("setup: %w", err)
	}
	defer r.rs.Close()
	for _, s := range []struct {
		name string
		run  func(context.Context) error
	}{
		{"login", r.logins}, {"saml", r.samlLogins}, {"introspect", r.introspect}, {"fanout", r.fanout},
		{"rejection", r.rejection}, {"recovery", r.recovery},
	} {
		if !want[s.name] {
			continue
		}
		err := s.run(ctx)
		var skip errSkip
		switch {
		case errors.As(err, &skip):
			rep.skip(s.name, skip.Error())
		case err != nil:
			rep.fail(s.name, err)
		}
		if ctx.Err() != nil {
			break
		}
	}
	if sz := fileSize(t.DBPath); sz >= 0 {
		rep.add(result{Scenario: "store", Metric: "bbolt file size at the end", Value: float64(sz) / (1 << 20), Unit: "MiB"})
	}
	if o.JSON {
		err = rep.writeJSON(stdout)
	} else {
		err = rep.writeTable(stdout)
	}
	if err != nil {
		return err
	}
	if len(rep.Failures) > 0 {
		return fmt.Errorf("%d scenario(s) failed", len(rep.Failures))
	}
	return ctx.Err()
}

// quietLogger discards the logs of the tool's own resource server.
func quietLogger() *slog.Logger { return slog.New(slog.DiscardHandler) }
