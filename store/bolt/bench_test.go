package bolt_test

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	bbolt "go.etcd.io/bbolt"

	"github.com/slobridge/slobridge/store"
	"github.com/slobridge/slobridge/store/bolt"
)

// Store benchmarks: bytes per session, write rate, parallel participant adds,
// and start-up time and memory with large files. Commands and figures are in
// BENCHMARKS.md. The start-up benchmark builds 100,000 sessions by default;
// set SLOBRIDGE_BENCH_SESSIONS=100000,1000000 to add the 1,000,000 case
// (building it takes minutes).

// probeEnv names the file the start-up probe opens when the test binary is
// re-executed by BenchmarkStartup: a fresh process, so its resident set
// is the store's alone.
const probeEnv = "SLOBRIDGE_BOLT_STARTUP_PROBE"

// TestMain runs the start-up probe instead of the tests when probeEnv is
// set, and the tests otherwise.
func TestMain(m *testing.M) {
	if path := os.Getenv(probeEnv); path != "" {
		if err := startupProbe(path); err != nil {
			fmt.Fprintln(os.Stderr, "startup probe:", err)
			os.Exit(1)
		}
		os.Exit(0)
	}
	os.Exit(m.Run())
}

// sessionFixture returns a bridge session as the SAML upstream creates it:
// a NameID with its qualifiers, a SessionIndex and the mapped attributes.
func sessionFixture(i int, now time.Time) store.Session {
	user := fmt.Sprintf("user-%08d", i)
	return store.Session{
		ID:       fmt.Sprintf("s%021d", i), // the length of a 128-bit base64url ID
		UserID:   user,
		Upstream: "corp-idp",
		NameID: store.NameID{
			Value:         user + "@example.com",
			Format:        "urn:oasis:names:tc:SAML:1.1:nameid-format:emailAddress",
			NameQualifier: "https://idp.example.com/saml/metadata",
		},
		SessionIndex: fmt.Sprintf("_si%029d", i),
		Attributes: map[string][]string{
			"email":  {user + "@example.com"},
			"name":   {"Test User " + strconv.Itoa(i)},
			"groups": {"staff", "engineering"},
		},
		AuthTime:  now,
		CreatedAt: now,
		ExpiresAt: now.Add(8 * time.Hour),
	}
}

// participantFixtures returns the three participants of the reference
// session: an OIDC client with back-channel logout, an OIDC client with
// front-channel logout, and a SAML SP with SOAP back-channel logout.
func participantFixtures(sessionID string, now time.Time) []store.Participant {
	return []store.Participant{
		{SessionID: sessionID, Key: "oidc:crm", Kind: "oidc", AppID: "crm", Name: "CRM",
			Channels: store.ChannelBack, BackChannelURL: "https://crm.example.com/oidc/backchannel-logout",
			Data: map[string]string{"backchannel_sid_required": "true"}, JoinedAt: now},
		{SessionID: sessionID, Key: "oidc:wiki", Kind: "oidc", AppID: "wiki", Name: "Wiki",
			Channels: store.ChannelFront, FrontChannelURL: "https://wiki.example.com/frontchannel-logout?iss=https%3A%2F%2Fsso.example.com&sid=" + sessionID,
			JoinedAt: now},
		{SessionID: sessionID, Key: "saml:https://hr.example.com/saml/metadata", Kind: "saml",
			AppID: "https://hr.example.com/saml/metadata", Name: "HR", Channels: store.ChannelBack | store.ChannelFront,
			BackChannelURL: "https://hr.example.com/saml/slo/soap", FrontChannelURL: "https://hr.example.com/saml/slo",
			Data: map[string]string{"name_id": "alice@example.com", "name_id_format": "urn:oasis:names:tc:SAML:1.1:nameid-format:emailAddress",
				"session_index": "_b" + sessionID}, JoinedAt: now},
	}
}

// openBench opens a fresh store file under b.TempDir.
func openBench(b *testing.B, path string, opts bolt.Options) *bolt.DB {
	b.Helper()
	db, err := bolt.Open(path, opts)
	if err != nil {
		b.Fatalf("open %s: %v", path, err)
	}
	b.Cleanup(func() { _ = db.Close() })
	return db
}

// addSession stores session i with its three participants.
func addSession(ctx context.Context, db store.Store, i int, now time.Time) error {
	s := sessionFixture(i, now)
	if err := db.CreateSession(ctx, s); err != nil {
		return err
	}
	for _, p := range participantFixtures(s.ID, now) {
		if _, err := db.AddParticipant(ctx, p); err != nil {
			return err
		}
	}
	return nil
}

// fillOptions open a file for building fixtures: no fsync.
var fillOptions = bolt.Options{NoSync: true}

// fillStore adds sessions [from, to) with their participants, from several
// goroutines so that participant adds share bbolt batches.
func fillStore(ctx context.Context, db store.Store, from, to int, now time.Time) error {
	const workers = 64
	errs := make(chan error, workers)
	var next atomic.Int64
	next.Store(int64(from))
	for range workers {
		go func() {
			for {
				i := int(next.Add(1) - 1)
				if i >= to {
					errs <- nil
					return
				}
				if err := addSession(ctx, db, i, now); err != nil {
					errs <- fmt.Errorf("session %d: %w", i, err)
					return
				}
			}
		}()
	}
	var first error
	for range workers {
		if err := <-errs; err != nil && first == nil {
			first = err
		}
	}
	return first
}

// fileStats reads the size of a closed bbolt file: the file on disk, the
// pages up to the high-water mark, and the bytes of leaf and branch pages
// actually in use by keys and values over every bucket.
type fileStats struct {
	FileBytes  int64
	PageBytes  int64
	InuseBytes int64
	AllocBytes int64
	Buckets    map[string]int64 // in-use bytes by bucket
}

func readFileStats(path string) (fileStats, error) {
	fi, err := os.Stat(path)
	if err != nil {
		return fileStats{}, err
	}
	bdb, err := bbolt.Open(path, 0o600, &bbolt.Options{ReadOnly: true, Timeout: time.Second})
	if err != nil {
		return fileStats{}, err
	}
	defer bdb.Close()
	st := fileStats{FileBytes: fi.Size(), Buckets: map[string]int64{}}
	err = bdb.View(func(tx *bbolt.Tx) error {
		st.PageBytes = tx.Size()
		return tx.ForEach(func(name []byte, b *bbolt.Bucket) error {
			bs := b.Stats()
			n := int64(bs.BranchInuse + bs.LeafInuse + bs.InlineBucketInuse)
			st.InuseBytes += n
			st.AllocBytes += int64(bs.BranchAlloc + bs.LeafAlloc)
			st.Buckets[string(name)] = n
			return nil
		})
	})
	return st, err
}

// BenchmarkSessionSize measures the store space of one session with three
// participants (two back-channel, so a logout writes two deliveries): the
// growth of the file, of its pages, and of the bytes in use between a file
// with 1,000 and one with 1,000+n sessions. It reports B/session; ns/op is
// the time to build the sessions and means nothing here.
func BenchmarkSessionSize(b *testing.B) {
	const base, n = 1000, 20000
	ctx := context.Background()
	now := time.Now()
	var before, after fileStats
	for b.Loop() {
		path := filepath.Join(b.TempDir(), "size.db")
		db, err := bolt.Open(path, fillOptions)
		if err != nil {
			b.Fatal(err)
		}
		if err := fillStore(ctx, db, 0, base, now); err != nil {
			b.Fatal(err)
		}
		if err := db.Close(); err != nil {
			b.Fatal(err)
		}
		if before, err = readFileStats(path); err != nil {
			b.Fatal(err)
		}
		if db, err = bolt.Open(path, fillOptions); err != nil {
			b.Fatal(err)
		}
		if err := fillStore(ctx, db, base, base+n, now); err != nil {
			b.Fatal(err)
		}
		if err := db.Close(); err != nil {
			b.Fatal(err)
		}
		if after, err = readFileStats(path); err != nil {
			b.Fatal(err)
		}
	}
	for name, used := range after.Buckets {
		if d := used - before.Buckets[name]; d > 0 {
			b.Logf("bucket %-22s %7.1f B/session in use", name, float64(d)/n)
		}
	}
	b.ReportMetric(float64(after.AllocBytes-before.AllocBytes)/n, "alloc-B/session")
	b.ReportMetric(float64(after.FileBytes-before.FileBytes)/n, "file-B/session")
	b.ReportMetric(float64(after.PageBytes-before.PageBytes)/n, "page-B/session")
	b.ReportMetric(float64(after.InuseBytes-before.InuseBytes)/n, "inuse-B/session")
}

// BenchmarkCreateSession measures the write rate of logins with fsync on:
// one op is a session and its three participants (four commits), from one
// goroutine (serial) and from 32 goroutines per CPU (parallel).
func BenchmarkCreateSession(b *testing.B) {
	ctx := context.Background()
	now := time.Now()
	b.Run("serial", func(b *testing.B) {
		db := openBench(b, filepath.Join(b.TempDir(), "write.db"), bolt.Options{})
		start, cpu := time.Now(), cpuTime(b)
		for i := 0; i < b.N; i++ {
			if err := addSession(ctx, db, i, now); err != nil {
				b.Fatal(err)
			}
		}
		b.ReportMetric(float64(b.N)/time.Since(start).Seconds(), "sessions/s")
		reportCPU(b, cpu, "cpu-µs/session")
	})
	b.Run("parallel", func(b *testing.B) {
		db := openBench(b, filepath.Join(b.TempDir(), "write.db"), bolt.Options{})
		var next atomic.Int64
		b.SetParallelism(32)
		start, cpu := time.Now(), cpuTime(b)
		b.RunParallel(func(pb *testing.PB) {
			for pb.Next() {
				if err := addSession(ctx, db, int(next.Add(1)), now); err != nil {
					b.Error(err)
					return
				}
			}
		})
		b.ReportMetric(float64(b.N)/time.Since(start).Seconds(), "sessions/s")
		reportCPU(b, cpu, "cpu-µs/session")
	})
}

// BenchmarkAddParticipantParallel measures participant adds to existing
// sessions from many goroutines at once (concurrent logins at different
// apps), fsync on: AddParticipant is idempotent and runs in a bbolt Batch,
// so concurrent adds share a commit. Target: ≥ 20,000 adds/s.
func BenchmarkAddParticipantParallel(b *testing.B) {
	for _, par := range []int{1, 16, 64, 512} {
		b.Run(fmt.Sprintf("goroutines/cpu=%d", par), func(b *testing.B) {
			db := openBench(b, filepath.Join(b.TempDir(), "adds.db"), bolt.Options{})
			ctx := context.Background()
			now := time.Now()
			const sessions = 1000
			for i := range sessions {
				if err := db.CreateSession(ctx, sessionFixture(i, now)); err != nil {
					b.Fatal(err)
				}
			}
			var next atomic.Int64
			b.SetParallelism(par)
			b.ResetTimer()
			start, cpu := time.Now(), cpuTime(b)
			b.RunParallel(func(pb *testing.PB) {
				for pb.Next() {
					n := int(next.Add(1))
					p := participantFixtures(sessionFixture(n%sessions, now).ID, now)[n%3]
					p.Key = fmt.Sprintf("%s-%d", p.Key, n)
					added, err := db.AddParticipant(ctx, p)
					if err != nil || !added {
						b.Errorf("add %s: added=%v %v", p.Key, added, err)
						return
					}
				}
			})
			b.ReportMetric(float64(b.N)/time.Since(start).Seconds(), "adds/s")
			reportCPU(b, cpu, "cpu-µs/add")
		})
	}
}

// startupResult is what the probe prints: how long Open took, how long the
// first queries a starting bridge makes took (the active-session gauge and
// the outbox's next due time), and the process's resident set after each.
type startupResult struct {
	OpenNS       int64 `json:"open_ns"`
	QueriesNS    int64 `json:"queries_ns"`
	Active       int   `json:"active"`
	RSSOpenKB    int64 `json:"rss_open_kb"`
	RSSQueriesKB int64 `json:"rss_queries_kb"`
}

// startupProbe opens path as `slobridge serve` does, runs the start-up
// queries and prints a startupResult as JSON on stdout.
func startupProbe(path string) error {
	start := time.Now()
	db, err := bolt.Open(path, bolt.Options{})
	if err != nil {
		return err
	}
	defer db.Close()
	var r startupResult
	r.OpenNS = time.Since(start).Nanoseconds()
	if r.RSSOpenKB, err = rssKB(); err != nil {
		return err
	}
	ctx := context.Background()
	start = time.Now()
	if r.Active, err = db.CountActiveSessions(ctx, time.Now()); err != nil {
		return err
	}
	if _, _, err := db.NextDueAt(ctx); err != nil {
		return err
	}
	r.QueriesNS = time.Since(start).Nanoseconds()
	if r.RSSQueriesKB, err = rssKB(); err != nil {
		return err
	}
	return json.NewEncoder(os.Stdout).Encode(r)
}

// rssKB reads the resident set size of this process from /proc.
func rssKB() (int64, error) {
	f, err := os.Open("/proc/self/status")
	if err != nil {
		return 0, err
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if v, ok := strings.CutPrefix(sc.Text(), "VmRSS:"); ok {
			return strconv.ParseInt(strings.TrimSuffix(strings.TrimSpace(v), " kB"), 10, 64)
		}
	}
	return 0, fmt.Errorf("no VmRSS in /proc/self/status")
}

// BenchmarkStartup measures start-up with a large file: Open, then the
// start-up queries, each in a fresh process (this test binary re-executed
// with probeEnv), reporting open-ms, queries-ms and the RSS. The file is
// built once per size, before timing; its size is reported too.
func BenchmarkStartup(b *testing.B) {
	sizes := []int{100000}
	if v := os.Getenv("SLOBRIDGE_BENCH_SESSIONS"); v != "" {
		sizes = nil
		for _, f := range strings.Split(v, ",") {
			n, err := strconv.Atoi(strings.TrimSpace(f))
			if err != nil || n <= 0 {
				b.Fatalf("SLOBRIDGE_BENCH_SESSIONS=%q: want a comma-separated list of positive counts", v)
			}
			sizes = append(sizes, n)
		}
	}
	exe, err := os.Executable()
	if err != nil {
		b.Fatal(err)
	}
	for _, n := range sizes {
		path := filepath.Join(b.TempDir(), "startup.db")
		db, err := bolt.Open(path, fillOptions)
		if err != nil {
			b.Fatal(err)
		}
		built := time.Now()
		if err := fillStore(context.Background(), db, 0, n, time.Now()); err != nil {
			b.Fatal(err)
		}
		buildTime := time.Since(built)
		if err := db.Close(); err != nil {
			b.Fatal(err)
		}
		fs, err := readFileStats(path)
		if err != nil {
			b.Fatal(err)
		}
		b.Run(fmt.Sprintf("sessions=%d", n), func(b *testing.B) {
			var sum startupResult
			for b.Loop() {
				r, err := runProbe(exe, path)
				if err != nil {
					b.Fatal(err)
				}
				if r.Active != n {
					b.Fatalf("probe counted %d active sessions, want %d", r.Active, n)
				}
				sum.OpenNS += r.OpenNS
				sum.QueriesNS += r.QueriesNS
				sum.RSSOpenKB = max(sum.RSSOpenKB, r.RSSOpenKB)
				sum.RSSQueriesKB = max(sum.RSSQueriesKB, r.RSSQueriesKB)
			}
			b.ReportMetric(float64(sum.OpenNS)/float64(b.N)/1e6, "open-ms")
			b.ReportMetric(float64(sum.QueriesNS)/float64(b.N)/1e6, "queries-ms")
			b.ReportMetric(float64(sum.RSSOpenKB)/1024, "rss-open-MB")
			b.ReportMetric(float64(sum.RSSQueriesKB)/1024, "rss-queries-MB")
			b.ReportMetric(float64(fs.FileBytes)/(1<<20), "file-MB")
			b.ReportMetric(float64(n)/buildTime.Seconds(), "build-sessions/s")
		})
	}
}

// runProbe re-executes the test binary as the start-up probe on path.
func runProbe(exe, path string) (startupResult, error) {
	cmd := exec.Command(exe, "-test.run=^$")
	cmd.Env = append(os.Environ(), probeEnv+"="+path)
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	if err := cmd.Run(); err != nil {
		return startupResult{}, fmt.Errorf("probe: %v: %s", err, errb.String())
	}
	var r startupResult
	if err := json.Unmarshal(out.Bytes(), &r); err != nil {
		return startupResult{}, fmt.Errorf("probe output %q: %w", out.String(), err)
	}
	return r, nil
}

// BenchmarkListClientsByKind measures ListClients("ssf") with one event
// receiver among n OIDC clients: what every new session pays when the SSF
// transmitter joins the registered receivers to it (ssf.ListReceivers).
func BenchmarkListClientsByKind(b *testing.B) {
	for _, n := range []int{10, 1000, 10000} {
		b.Run(fmt.Sprintf("clients=%d", n), func(b *testing.B) {
			db := openBench(b, filepath.Join(b.TempDir(), "clients.db"), bolt.Options{NoSync: true})
			ctx := context.Background()
			now := time.Now()
			md := []byte(`{"client_name":"App","redirect_uris":["https://app.example.com/callback"],` +
				`"post_logout_redirect_uris":["https://app.example.com/logged-out"],` +
				`"backchannel_logout_uri":"https://app.example.com/backchannel-logout","backchannel_logout_session_required":true,` +
				`"token_endpoint_auth_method":"client_secret_basic","client_secret_hash":"$2a$10$0123456789012345678901234567890123456789012345678901"}`)
			for i := range n {
				c := store.Client{ID: fmt.Sprintf("client-%06d", i), Kind: "oidc", Name: "App", Metadata: md, CreatedAt: now, UpdatedAt: now}
				if err := db.PutClient(ctx, c); err != nil {
					b.Fatal(err)
				}
			}
			if err := db.PutClient(ctx, store.Client{ID: "ssf:api", Kind: "ssf", Metadata: []byte(`{"id":"api","push_url":"https://api.example.com/events"}`),
				CreatedAt: now, UpdatedAt: now}); err != nil {
				b.Fatal(err)
			}
			cpu := cpuTime(b)
			for b.Loop() {
				cs, err := db.ListClients(ctx, "ssf")
				if err != nil || len(cs) != 1 {
					b.Fatalf("ListClients(ssf) = %d clients, %v", len(cs), err)
				}
			}
			reportCPU(b, cpu, "cpu-µs/op")
		})
	}
}

// cpuTime returns the CPU time (user and system) this process has used.
// On a shared machine wall-clock figures include time other processes took
// from us; CPU per operation does not.
func cpuTime(b *testing.B) time.Duration {
	b.Helper()
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		b.Fatal(err)
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// reportCPU reports the CPU time per op since start.
func reportCPU(b *testing.B, start time.Duration, unit string) {
	b.ReportMetric(float64((cpuTime(b)-start).Microseconds())/float64(b.N), unit)
}
