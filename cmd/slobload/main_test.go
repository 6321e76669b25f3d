package main

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/slobridge/slobridge/cmd/internal/app"
)

// TestShortRun runs the tool's -short mode end to end against an
// in-process bridge on 127.0.0.1, as the README tells people to, so that
// the tool cannot rot: every scenario must produce its figures, none may
// fail, and no delivery may be lost. Timings are reported, never asserted.
func TestShortRun(t *testing.T) {
	if testing.Short() {
		t.Skip("the load tool's short run takes about 15 s; run without -short")
	}
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	var out, errb bytes.Buffer
	if err := run(ctx, []string{"-short", "-json"}, &out, &errb); err != nil {
		t.Fatalf("slobload -short -json: %v\nstdout:\n%s", err, out.String())
	}
	var rep report
	if err := json.Unmarshal(out.Bytes(), &rep); err != nil {
		t.Fatalf("output is not the JSON report: %v\n%s", err, out.String())
	}
	if len(rep.Failures) > 0 {
		t.Fatalf("failed scenarios: %v", rep.Failures)
	}
	if !rep.Short || !strings.Contains(rep.Target, "in-process bridge") {
		t.Errorf("report header: short=%v target=%q", rep.Short, rep.Target)
	}
	byName := map[string]result{}
	for _, r := range rep.Results {
		byName[r.Scenario+" / "+r.Metric] = r
		t.Logf("%-40s %-45s %10.2f %s", r.Scenario, r.Metric, r.Value, r.Unit)
	}
	positive := []string{
		"oidc-login / full login (new session + participant)",
		"oidc-login / sso login (new participant)",
		"saml-login / full login (new session + participant)",
		"saml-login / sso login (bridge session exists)",
		"introspection / requests",
		"fanout n=10 delay=0s / logout to last notification (median)",
		"fanout n=10 delay=50ms / logout to last notification (median)",
		"fanout n=100 delay=0s / logout to each notification p99",
		"fanout n=100 delay=50ms / logout to each notification p99",
		"logout-to-rejection / p50",
		"logout-to-rejection / p99",
		"recovery 3x20, 30% down 1s / throughput to the healthy receivers",
		"recovery 3x20, 30% down 1s / recovery to delivery p50",
	}
	for _, k := range positive {
		r, ok := byName[k]
		if !ok {
			t.Errorf("no figure %q", k)
			continue
		}
		if r.Value <= 0 {
			t.Errorf("%s = %v %s, want a positive measurement", k, r.Value, r.Unit)
		}
	}
	// A receiver that answers after 50 ms acknowledges no sooner than 50 ms
	// after the logout: the acknowledgment includes the receiver's delay.
	if r := byName["fanout n=10 delay=50ms / logout to last acknowledgment (median)"]; r.Value < 50 {
		t.Errorf("fan-out with 50 ms receivers: last acknowledgment after %v ms", r.Value)
	}
	for _, k := range []string{
		"recovery 3x20, 30% down 1s / lost deliveries",
		"recovery 3x20, 30% down 1s / participants not delivered per admin status",
	} {
		r, ok := byName[k]
		if !ok || r.Value != 0 || r.Met == nil || !*r.Met {
			t.Errorf("%s: %+v, want 0", k, r)
		}
	}
	if r := byName["recovery 3x20, 30% down 1s / delivered while receivers were down"]; !strings.Contains(r.Note, "answered 500") ||
		strings.HasPrefix(r.Note, "0 answered") {
		t.Errorf("the failing receivers never refused a delivery: %+v", r)
	}
	// The progress bar went to stderr, and the table renders every figure.
	if !strings.Contains(errb.String(), "100%") {
		t.Errorf("no progress bar on stderr: %q", errb.String())
	}
	var table bytes.Buffer
	if err := rep.writeTable(&table); err != nil {
		t.Fatal(err)
	}
	for _, r := range rep.Results {
		if !strings.Contains(table.String(), r.Metric) {
			t.Errorf("table lacks %q", r.Metric)
		}
	}
}

func TestFlags(t *testing.T) {
	tests := []struct {
		name    string
		args    []string
		wantErr string
		check   func(t *testing.T, o options)
	}{
		{name: "full defaults", check: func(t *testing.T, o options) {
			if o.p.Duration != 10*time.Second || o.p.FailFor != time.Minute || len(o.p.FanoutSizes) != 3 || o.p.FanoutSizes[2] != 1000 {
				t.Errorf("defaults: %+v", o.p)
			}
		}},
		{name: "short defaults", args: []string{"-short"}, check: func(t *testing.T, o options) {
			if o.p.Duration != time.Second || o.p.FailFor != time.Second || len(o.p.FanoutSizes) != 2 {
				t.Errorf("short defaults: %+v", o.p)
			}
		}},
		{name: "explicit values win over -short", args: []string{"-short", "-fanout", "1000", "-delays", "0,20ms", "-logouts", "5"}, check: func(t *testing.T, o options) {
			if len(o.p.FanoutSizes) != 1 || o.p.FanoutSizes[0] != 1000 || len(o.p.Delays) != 2 || o.p.Delays[1] != 20*time.Millisecond || o.p.Logouts != 5 {
				t.Errorf("explicit: %+v", o.p)
			}
		}},
		{name: "bad fan-out size", args: []string{"-fanout", "10,x"}, wantErr: "-fanout"},
		{name: "negative size", args: []string{"-fanout", "-3"}, wantErr: "-fanout"},
		{name: "bad delay", args: []string{"-delays", "soon"}, wantErr: "-delays"},
		{name: "no concurrency", args: []string{"-concurrency", "0"}, wantErr: "-concurrency"},
		{name: "unknown alg", args: []string{"-alg", "HS256"}, wantErr: "-alg"},
		{name: "stray argument", args: []string{"extra"}, wantErr: "unexpected arguments"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var errb bytes.Buffer
			o, err := parseFlags(tt.args, &errb)
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("err = %v, want one mentioning %q", err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			tt.check(t, o)
		})
	}
}

// TestRemoteNeedsCredentials: driving a running bridge without the
// registration token or password fails at once with a message naming them.
func TestRemoteNeedsCredentials(t *testing.T) {
	t.Setenv("SLOBLOAD_REGISTRATION_TOKEN", "")
	t.Setenv("SLOBLOAD_PASSWORD", "")
	var out, errb bytes.Buffer
	err := run(context.Background(), []string{"-url", "http://127.0.0.1:9"}, &out, &errb)
	if err == nil || !strings.Contains(err.Error(), "-registration-token") {
		t.Fatalf("err = %v, want one naming -registration-token", err)
	}
}

func TestPercentile(t *testing.T) {
	ms := func(v ...int) []time.Duration {
		out := make([]time.Duration, len(v))
		for i, x := range v {
			out[i] = time.Duration(x) * time.Millisecond
		}
		return out
	}
	tests := []struct {
		in   []time.Duration
		p    float64
		want float64
	}{
		{nil, 50, 0},
		{ms(7), 99, 7},
		{ms(1, 2, 3, 4), 50, 2},
		{ms(1, 2, 3, 4, 5, 6, 7, 8, 9, 10), 90, 9},
		{ms(1, 2, 3, 4, 5, 6, 7, 8, 9, 10), 100, 10},
	}
	for _, tt := range tests {
		if got := percentile(tt.in, tt.p); got != tt.want {
			t.Errorf("percentile(%v, %v) = %v, want %v", tt.in, tt.p, got, tt.want)
		}
	}
}

// TestRemoteServe drives a bridge started from the configuration
// -write-config writes, as `slobridge serve --config` would load it, over
// -url with the credentials of the printed exports: the README's second way
// to run the tool.
func TestRemoteServe(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	var exports bytes.Buffer
	if err := run(context.Background(), []string{"-write-config", dir, "-listen", ln.Addr().String()}, &exports, io.Discard); err != nil {
		t.Fatalf("-write-config: %v", err)
	}
	env := map[string]string{}
	for _, line := range strings.Split(exports.String(), "\n") {
		if kv, ok := strings.CutPrefix(line, "export "); ok {
			k, v, _ := strings.Cut(kv, "=")
			env[k] = strings.Trim(v, "'")
		}
	}
	doc, err := os.ReadFile(filepath.Join(dir, "slobridge.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	if strings.Contains(string(doc), env["SLOBLOAD_PASSWORD"]) || len(env) != 4 {
		t.Fatalf("the secrets must be exported, not written to the file: %d exports", len(env))
	}
	cfg, err := app.Parse(doc, func(k string) (string, bool) { v, ok := env[k]; return v, ok })
	if err != nil {
		t.Fatalf("the written configuration does not load: %v", err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	a, err := app.New(ctx, cfg, slog.New(slog.DiscardHandler))
	if err != nil {
		cancel()
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- a.Serve(ctx, ln) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("Serve: %v", err)
		}
		_ = a.Close()
	})

	var out bytes.Buffer
	args := []string{"-url", "http://" + ln.Addr().String(), "-registration-token", env["SLOBLOAD_REGISTRATION_TOKEN"],
		"-admin-token", env["SLOBLOAD_ADMIN_TOKEN"], "-password", env["SLOBLOAD_PASSWORD"],
		"-scenarios", "login,saml,fanout,rejection", "-duration", "300ms", "-fanout", "5", "-delays", "0", "-logouts", "1",
		"-rejections", "3", "-concurrency", "4", "-json", "-quiet"}
	if err := run(context.Background(), args, &out, io.Discard); err != nil {
		t.Fatalf("slobload -url: %v\n%s", err, out.String())
	}
	var rep report
	if err := json.Unmarshal(out.Bytes(), &rep); err != nil {
		t.Fatal(err)
	}
	seen := map[string]bool{}
	for _, r := range rep.Results {
		seen[r.Scenario] = true
	}
	for _, s := range []string{"oidc-login", "saml-login", "fanout n=5 delay=0s", "logout-to-rejection"} {
		if !seen[s] {
			t.Errorf("no figures for %s against the running bridge: %s", s, out.String())
		}
	}
	if rep.Target != "http://"+ln.Addr().String() {
		t.Errorf("target %q", rep.Target)
	}
}
