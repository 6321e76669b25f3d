// Command loadclient is the load generator of BenchmarkIntrospectHTTP: it
// runs in its own process so that the benchmark can tell the server's CPU
// time from the client's. It POSTs introspection requests over keep-alive
// HTTP/1.1 connections from -c goroutines, -n requests in all, cycling
// through the form bodies in -bodies (one per line), and checks that every
// answer is 200 with an active token. It prints the elapsed time and exits
// non-zero on the first bad answer.
package main

import (
	"bytes"
	"flag"
	"fmt"
	"io"
	"net/http"
	"os"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

func main() {
	target := flag.String("url", "", "introspection endpoint")
	auth := flag.String("auth", "", "Authorization header value")
	bodiesFile := flag.String("bodies", "", "file with one form body per line")
	n := flag.Int64("n", 1000, "requests in all")
	c := flag.Int("c", 16, "concurrent clients")
	flag.Parse()
	raw, err := os.ReadFile(*bodiesFile)
	if err != nil {
		fail(err)
	}
	bodies := strings.Fields(string(raw))
	if len(bodies) == 0 || *target == "" {
		fail(fmt.Errorf("need -url and -bodies"))
	}
	tr := &http.Transport{MaxIdleConnsPerHost: *c, MaxConnsPerHost: *c}
	client := &http.Client{Transport: tr, Timeout: 30 * time.Second}
	want := []byte(`{"active":true,`)
	var seq atomic.Int64
	var wg sync.WaitGroup
	start := time.Now()
	for range *c {
		wg.Add(1)
		go func() {
			defer wg.Done()
			buf := make([]byte, 4096)
			hdr := http.Header{"Content-Type": {"application/x-www-form-urlencoded"}, "Authorization": {*auth}}
			for i := seq.Add(1); i <= *n; i = seq.Add(1) {
				req, err := http.NewRequest(http.MethodPost, *target, strings.NewReader(bodies[i%int64(len(bodies))]))
				if err != nil {
					fail(err)
				}
				req.Header = hdr
				resp, err := client.Do(req)
				if err != nil {
					fail(err)
				}
				k, _ := io.ReadFull(resp.Body, buf)
				resp.Body.Close()
				if resp.StatusCode != http.StatusOK || !bytes.HasPrefix(buf[:k], want) {
					fail(fmt.Errorf("HTTP %d %s", resp.StatusCode, buf[:k]))
				}
			}
		}()
	}
	wg.Wait()
	fmt.Println(time.Since(start).Nanoseconds())
}

func fail(err error) {
	fmt.Fprintln(os.Stderr, "loadclient:", err)
	os.Exit(1)
}
