package resource

import (
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/slobridge/slobridge/oidc/ssf"
	"github.com/slobridge/slobridge/store"
)

// FuzzPushedSET posts arbitrary bodies to the RFC 8935 push endpoint of a
// guard: no panic, no 5xx (the keys are static, so "keys unavailable"
// cannot happen), and a session ends only for a SET signed by the bridge.
func FuzzPushedSET(f *testing.F) {
	k, other := newKey(f), newKey(f)
	g := newGuard(f, k, nil, nil)
	h := g.EventHandler()
	set := func(signer keyPair, sid, jti string) string {
		return signer.sign(f, ssf.TokenType, ssf.NewSessionRevoked(issuer, []string{audience}, jti, store.Session{ID: sid, UserID: "u"}, store.Logout{ID: "lo"}, time.Now()))
	}
	for _, s := range []string{
		set(k, "sid-seed", "jti-seed"), set(other, "sid-forged", "jti-forged"),
		k.sign(f, "JWT", map[string]any{"iss": issuer}), "a.b.c", "", "eyJhbGciOiJub25lIn0.e30.",
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, body string) {
		req := httptest.NewRequest(http.MethodPost, "/events", strings.NewReader(body))
		req.Header.Set("Content-Type", ssf.ContentType)
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, req)
		if rec.Code >= 500 {
			t.Fatalf("HTTP %d for %q", rec.Code, body)
		}
		if g.Ended("sid-forged") {
			t.Fatal("a SET signed with another key ended a session")
		}
	})
}
