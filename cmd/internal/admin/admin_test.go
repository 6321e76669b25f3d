package admin

import (
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"path/filepath"
	"reflect"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/gin-gonic/gin"

	"github.com/slobridge/slobridge"
	"github.com/slobridge/slobridge/store"
)

const testAdminToken = "test-admin-token-0123456789"

// adminServer serves the admin API of e on a loopback test server.
func adminServer(t *testing.T, e *slobridge.Engine, maxBody int64) *httptest.Server {
	t.Helper()
	a, err := New(Options{Engine: e, Token: testAdminToken, MaxBody: maxBody, Logger: quietLogger()})
	if err != nil {
		t.Fatalf("NewAdmin: %v", err)
	}
	gin.SetMode(gin.TestMode)
	r := gin.New()
	a.Mount(r)
	srv := httptest.NewServer(r)
	t.Cleanup(srv.Close)
	return srv
}

// adminCall sends one request and decodes the JSON answer into out (when
// not nil); it returns the status.
func adminCall(t *testing.T, srv *httptest.Server, method, path, token string, body io.Reader, out any) int {
	t.Helper()
	req, err := http.NewRequest(method, srv.URL+path, body)
	if err != nil {
		t.Fatal(err)
	}
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	resp, err := srv.Client().Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", method, path, err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	if ct := resp.Header.Get("Content-Type"); !strings.HasPrefix(ct, "application/json") {
		t.Fatalf("%s %s: Content-Type %q, body %s", method, path, ct, b)
	}
	if out != nil {
		if err := json.Unmarshal(b, out); err != nil {
			t.Fatalf("%s %s: decode %s: %v", method, path, b, err)
		}
	}
	return resp.StatusCode
}

// storeSnapshot is what a refused admin request must leave unchanged.
type storeSnapshot struct {
	Sessions []store.Session
	Logouts  []store.Logout
	Counts   map[store.DeliveryState]int
}

func snapshot(t *testing.T, st store.Store, user string) storeSnapshot {
	t.Helper()
	ctx := context.Background()
	ss, err := st.ListSessionsByUser(ctx, user)
	if err != nil {
		t.Fatal(err)
	}
	ls, err := st.ListLogoutsByUser(ctx, user)
	if err != nil {
		t.Fatal(err)
	}
	cs, err := st.CountDeliveries(ctx)
	if err != nil {
		t.Fatal(err)
	}
	return storeSnapshot{Sessions: ss, Logouts: ls, Counts: cs}
}

func TestAdminRejectsBadInputAndChangesNothing(t *testing.T) {
	st := openStore(t, filepath.Join(t.TempDir(), "admin.db"))
	e, err := slobridge.NewEngine(testOptions(st)) // no workers: nothing may move
	if err != nil {
		t.Fatal(err)
	}
	rc := newReceiver(t, nil)
	s := newSession(t, e, "alice", backParticipant("app1", rc.srv.URL))
	srv := adminServer(t, e, 1024)
	before := snapshot(t, st, "alice")

	huge := strings.Repeat("x", 4096)
	tests := []struct {
		name        string
		method      string
		path        string
		token       string
		body        string
		chunked     bool
		status      int
		wantErrCode string
	}{
		{"no token", "POST", "/admin/v1/logouts", "", `{"session_id":"` + s.ID + `"}`, false, 401, "unauthorized"},
		{"wrong token", "POST", "/admin/v1/logouts", "wrong-token", `{"session_id":"` + s.ID + `"}`, false, 401, "invalid_token"},
		{"token prefix", "GET", "/admin/v1/users/alice/sessions", testAdminToken[:10], "", false, 401, "invalid_token"},
		{"wrong token on status", "GET", "/admin/v1/logouts/x", "nope", "", false, 401, "invalid_token"},
		{"malformed JSON", "POST", "/admin/v1/logouts", testAdminToken, `{"session_id":`, false, 400, "invalid_request"},
		{"not an object", "POST", "/admin/v1/logouts", testAdminToken, `["` + s.ID + `"]`, false, 400, "invalid_request"},
		{"unknown field", "POST", "/admin/v1/logouts", testAdminToken, `{"session":"` + s.ID + `"}`, false, 400, "invalid_request"},
		{"trailing data", "POST", "/admin/v1/logouts", testAdminToken, `{"session_id":"` + s.ID + `"} {}`, false, 400, "invalid_request"},
		{"both targets", "POST", "/admin/v1/logouts", testAdminToken, `{"session_id":"` + s.ID + `","user_id":"alice"}`, false, 400, "invalid_request"},
		{"no target", "POST", "/admin/v1/logouts", testAdminToken, `{}`, false, 400, "invalid_request"},
		{"empty body", "POST", "/admin/v1/logouts", testAdminToken, ``, false, 400, "invalid_request"},
		{"unknown session", "POST", "/admin/v1/logouts", testAdminToken, `{"session_id":"no-such-session"}`, false, 404, "not_found"},
		{"unknown user logout", "POST", "/admin/v1/logouts", testAdminToken, `{"user_id":"mallory"}`, false, 404, "not_found"},
		{"unknown user sessions", "GET", "/admin/v1/users/mallory/sessions", testAdminToken, "", false, 404, "not_found"},
		{"unknown logout status", "GET", "/admin/v1/logouts/no-such-logout", testAdminToken, "", false, 404, "not_found"},
		{"unknown logout retry", "POST", "/admin/v1/logouts/no-such-logout/retry", testAdminToken, "", false, 404, "not_found"},
		{"huge body", "POST", "/admin/v1/logouts", testAdminToken, `{"session_id":"` + huge + `"}`, false, 413, "request_too_large"},
		{"huge chunked body", "POST", "/admin/v1/logouts", testAdminToken, `{"session_id":"` + huge + `"}`, true, 413, "request_too_large"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var body io.Reader
			if tt.body != "" {
				body = strings.NewReader(tt.body)
				if tt.chunked {
					body = io.MultiReader(body) // hides the length: sent chunked
				}
			}
			var ae Error
			got := adminCall(t, srv, tt.method, tt.path, tt.token, body, &ae)
			if got != tt.status || ae.Error != tt.wantErrCode || ae.Description == "" {
				t.Errorf("status %d error %q (%q), want %d %q", got, ae.Error, ae.Description, tt.status, tt.wantErrCode)
			}
			if after := snapshot(t, st, "alice"); !reflect.DeepEqual(before, after) {
				t.Errorf("store changed:\nbefore %+v\nafter  %+v", before, after)
			}
		})
	}
	if ids := rc.got(); len(ids) != 0 {
		t.Errorf("receiver was notified %d times by refused requests", len(ids))
	}
}

func TestAdminLogoutStatusAndRetry(t *testing.T) {
	st := openStore(t, filepath.Join(t.TempDir(), "admin.db"))
	var failing atomic.Bool
	failing.Store(true)
	rc := newReceiver(t, func(n int, r *http.Request) int {
		if failing.Load() {
			return http.StatusGone // permanent: fails at once
		}
		return http.StatusOK
	})
	opts := testOptions(st)
	e, _ := runEngine(t, opts)
	s1 := newSession(t, e, "bob", backParticipant("app1", rc.srv.URL))
	s2 := newSession(t, e, "bob", backParticipant("app2", rc.srv.URL+"/two"))
	s3 := newSession(t, e, "bob")
	srv := adminServer(t, e, 0)

	var list Sessions
	if got := adminCall(t, srv, "GET", "/admin/v1/users/bob/sessions", testAdminToken, nil, &list); got != 200 || len(list.Sessions) != 3 {
		t.Fatalf("list sessions: %d %+v", got, list)
	}
	for _, s := range list.Sessions {
		want := map[string]int{s1.ID: 1, s2.ID: 1, s3.ID: 0}[s.ID]
		if !s.Active || s.UserID != "bob" || len(s.Participants) != want {
			t.Errorf("session %s: active %v user %q participants %d, want active, bob, %d", s.ID, s.Active, s.UserID, len(s.Participants), want)
		}
	}

	// End one session: its participant fails permanently (410).
	var lr LogoutResponse
	if got := adminCall(t, srv, "POST", "/admin/v1/logouts", testAdminToken, strings.NewReader(`{"session_id":"`+s1.ID+`"}`), &lr); got != 201 {
		t.Fatalf("logout session: %d", got)
	}
	if lr.Logout.Initiator.Kind != store.InitiatorAdmin || len(lr.Logout.SessionIDs) != 1 || lr.Logout.SessionIDs[0] != s1.ID {
		t.Fatalf("logout: %+v", lr.Logout)
	}
	waitStatus(t, e, lr.Logout.ID, "failed delivery", allDone)
	var status Status
	if got := adminCall(t, srv, "GET", lr.StatusURL, testAdminToken, nil, &status); got != 200 {
		t.Fatalf("status: %d", got)
	}
	if len(status.Participants) != 1 || status.Participants[0].State != string(store.DeliveryFailed) || status.Participants[0].LastError == "" {
		t.Fatalf("status after 410: %+v", status.Participants)
	}
	// The outcome is the engine's one decision: partial, with the failed leg.
	if status.Outcome.Complete || len(status.Outcome.Failed) != 1 || status.Outcome.Failed[0].Key != "http:app1" || status.Outcome.Failed[0].Why == "" {
		t.Fatalf("outcome after 410: %+v", status.Outcome)
	}

	// The same session again: already ended.
	var ae Error
	if got := adminCall(t, srv, "POST", "/admin/v1/logouts", testAdminToken, strings.NewReader(`{"session_id":"`+s1.ID+`"}`), &ae); got != 409 {
		t.Fatalf("second logout of one session: %d %+v", got, ae)
	}

	// Retry after the receiver recovers.
	failing.Store(false)
	var rr RetryResponse
	if got := adminCall(t, srv, "POST", lr.StatusURL+"/retry", testAdminToken, nil, &rr); got != 200 || rr.Reset != 1 {
		t.Fatalf("retry: %d %+v", got, rr)
	}
	st1 := waitStatus(t, e, lr.Logout.ID, "delivered after retry", allDone)
	if st1.Participants[0].State != string(store.DeliveryDelivered) {
		t.Fatalf("after retry: %+v", st1.Participants)
	}
	var after Status
	if got := adminCall(t, srv, "GET", lr.StatusURL, testAdminToken, nil, &after); got != 200 || !after.Outcome.Complete || len(after.Outcome.Failed) != 0 {
		t.Fatalf("outcome after the retry: %d %+v", got, after.Outcome)
	}

	// Log the user out everywhere: the two remaining sessions end.
	var all LogoutResponse
	if got := adminCall(t, srv, "POST", "/admin/v1/logouts", testAdminToken, strings.NewReader(`{"user_id":"bob"}`), &all); got != 201 {
		t.Fatalf("logout user: %d", got)
	}
	if len(all.Logout.SessionIDs) != 2 || !containsAll(all.Logout.SessionIDs, s2.ID, s3.ID) {
		t.Fatalf("logout user ended %v, want %s and %s", all.Logout.SessionIDs, s2.ID, s3.ID)
	}
	waitStatus(t, e, all.Logout.ID, "user logout delivered", allDone)
	if got := adminCall(t, srv, "POST", "/admin/v1/logouts", testAdminToken, strings.NewReader(`{"user_id":"bob"}`), &ae); got != 409 {
		t.Fatalf("logout of a user without active sessions: %d", got)
	}
}

func containsAll(list []string, want ...string) bool {
	for _, w := range want {
		found := false
		for _, l := range list {
			found = found || l == w
		}
		if !found {
			return false
		}
	}
	return true
}

func TestNewAdminNeedsToken(t *testing.T) {
	st := openStore(t, filepath.Join(t.TempDir(), "admin.db"))
	e, err := slobridge.NewEngine(testOptions(st))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := New(Options{Engine: e}); err == nil {
		t.Fatal("NewAdmin without a token succeeded")
	}
}

// TestAdminFindsUserByNameID: the sessions query takes the user ID, an
// email address or the NameID an upstream knows the user by.
func TestAdminFindsUserByNameID(t *testing.T) {
	st := openStore(t, filepath.Join(t.TempDir(), "admin.db"))
	e, err := slobridge.NewEngine(testOptions(st))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := e.CreateSession(context.Background(), store.Session{UserID: "corp:alice", Upstream: "corp",
		NameID:       store.NameID{Value: "AAdzZWNyZXQx", Format: "urn:oasis:names:tc:SAML:2.0:nameid-format:persistent"},
		SessionIndex: "_si1", ExpiresAt: e.Now().Add(time.Hour),
		Attributes: map[string][]string{"email": {"alice@corp.example"}}}); err != nil {
		t.Fatal(err)
	}
	a, err := New(Options{Engine: e, Token: testAdminToken, Logger: quietLogger(), Upstreams: []string{"corp"}})
	if err != nil {
		t.Fatal(err)
	}
	r := gin.New()
	a.Mount(r)
	srv := httptest.NewServer(r)
	t.Cleanup(srv.Close)
	for _, who := range []string{"corp:alice", "AAdzZWNyZXQx", "alice@corp.example"} {
		var got Sessions
		if code := adminCall(t, srv, "GET", "/admin/v1/users/"+url.PathEscape(who)+"/sessions", testAdminToken, nil, &got); code != 200 ||
			got.UserID != "corp:alice" || len(got.Sessions) != 1 {
			t.Fatalf("sessions of %q: %d %+v", who, code, got)
		}
	}
	if code := adminCall(t, srv, "GET", "/admin/v1/users/nobody/sessions", testAdminToken, nil, nil); code != 404 {
		t.Fatalf("unknown user: %d", code)
	}
}

// TestAdminListsLogouts: GET /admin/v1/logouts pages through the logouts
// newest first, each with its outcome, and refuses a bad page request.
func TestAdminListsLogouts(t *testing.T) {
	st := openStore(t, filepath.Join(t.TempDir(), "admin.db"))
	rc := newReceiver(t, func(n int, r *http.Request) int { return http.StatusGone })
	e, _ := runEngine(t, testOptions(st))
	srv := adminServer(t, e, 0)
	var ids []string
	for i := range 5 {
		var ps []store.Participant
		if i == 0 {
			ps = append(ps, backParticipant("app1", rc.srv.URL)) // fails for good
		}
		s := newSession(t, e, "u"+strconv.Itoa(i), ps...)
		var lr LogoutResponse
		if got := adminCall(t, srv, "POST", "/admin/v1/logouts", testAdminToken, strings.NewReader(`{"session_id":"`+s.ID+`"}`), &lr); got != 201 {
			t.Fatalf("logout %d: %d", i, got)
		}
		ids = append([]string{lr.Logout.ID}, ids...)
		if i == 0 {
			waitStatus(t, e, lr.Logout.ID, "failed delivery", allDone)
		}
	}
	var got []LogoutSummary
	path := "/admin/v1/logouts?limit=2"
	for pages := 0; path != ""; pages++ {
		if pages > 3 {
			t.Fatal("more than 3 pages of 2 for 5 logouts")
		}
		var page Logouts
		if code := adminCall(t, srv, "GET", path, testAdminToken, nil, &page); code != 200 {
			t.Fatalf("GET %s: %d", path, code)
		}
		got = append(got, page.Logouts...)
		path = page.Next
		if len(page.Logouts) < 2 && path != "" {
			t.Fatalf("a short page with a next link: %+v", page)
		}
	}
	var gotIDs []string
	for _, lo := range got {
		gotIDs = append(gotIDs, lo.ID)
	}
	if !reflect.DeepEqual(gotIDs, ids) {
		t.Fatalf("logouts %v, want %v (newest first)", gotIDs, ids)
	}
	oldest := got[len(got)-1]
	if oldest.Complete || oldest.Failed != 1 || !oldest.Done || oldest.UserID != "u0" || oldest.Participants != 1 ||
		oldest.Initiator.Kind != store.InitiatorAdmin {
		t.Fatalf("the failed logout is listed as %+v", oldest)
	}
	if !got[0].Complete || got[0].Failed != 0 || got[0].Sessions != 1 {
		t.Fatalf("a logout with no participant is listed as %+v", got[0])
	}
	for _, bad := range []string{"?limit=0", "?limit=201", "?limit=x", "?before_time=yesterday&before_id=a", "?before_time=2026-01-01T00:00:00Z"} {
		var e Error
		if code := adminCall(t, srv, "GET", "/admin/v1/logouts"+bad, testAdminToken, nil, &e); code != 400 || e.Error != "invalid_request" {
			t.Errorf("GET logouts%s: %d %+v, want 400 invalid_request", bad, code, e)
		}
	}
}
