package resource

import (
	"net/http"
	"net/http/httptest"
	"testing"
	"time"
)

// BenchmarkMiddleware measures the guard's cost per request: signature
// verification (RS256), claim checks and the ended-session lookup, with no
// network (the handler is called in-process).
func BenchmarkMiddleware(b *testing.B) {
	t := &testing.T{}
	k := newKey(t)
	g := newGuard(t, k, time.Now, nil)
	for i := range 10000 { // a realistic set of ended sessions
		g.EndSession("ended-" + string(rune(i)))
	}
	tok := accessToken(t, k, "sid-live", time.Now().Add(time.Second), nil)
	h := g.Middleware(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { w.WriteHeader(http.StatusNoContent) }))
	b.ReportAllocs()
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			req := httptest.NewRequest(http.MethodGet, "/data", nil)
			req.Header.Set("Authorization", "Bearer "+tok)
			w := httptest.NewRecorder()
			h.ServeHTTP(w, req)
			if w.Code != http.StatusNoContent {
				b.Fatalf("status %d", w.Code)
			}
		}
	})
}

// BenchmarkMiddlewareFirstSight measures a token the guard has not seen
// before (full RS256 verification every time).
func BenchmarkMiddlewareFirstSight(b *testing.B) {
	t := &testing.T{}
	k := newKey(t)
	g := newGuard(t, k, time.Now, nil)
	toks := make([]string, 512)
	for i := range toks {
		toks[i] = accessToken(t, k, "sid-"+string(rune('a'+i%26))+string(rune(i)), time.Now().Add(time.Second), nil)
	}
	h := g.Middleware(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { w.WriteHeader(http.StatusNoContent) }))
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; b.Loop(); i++ {
		g.cacheMu.Lock()
		clear(g.verified)
		g.cacheMu.Unlock()
		req := httptest.NewRequest(http.MethodGet, "/data", nil)
		req.Header.Set("Authorization", "Bearer "+toks[i%len(toks)])
		w := httptest.NewRecorder()
		h.ServeHTTP(w, req)
		if w.Code != http.StatusNoContent {
			b.Fatalf("status %d", w.Code)
		}
	}
}
