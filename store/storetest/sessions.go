package storetest

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/slobridge/slobridge/store"
)

// testSessions covers CreateSession, GetSession, the user and NameID
// indexes and CountActiveSessions.
func testSessions(t *testing.T, f Factory) {
	runAll(t, f, []subtest{
		{"CreateGet", testSessionCreateGet},
		{"Invalid", testSessionInvalid},
		{"CanceledContext", testSessionCanceled},
		{"ListByUser", testSessionsByUser},
		{"FindByNameID", testSessionsByNameID},
		{"FindByEmail", testSessionsByEmail},
		{"CountActive", testCountActive},
		{"ListByUpstreamOrApp", testListSessions},
	})
}

func testSessionCreateGet(t *testing.T, s store.Store) {
	want := newSession("s1", "alice", at(0))
	createSessions(t, s, want)
	wantEqual(t, getSession(t, s, "s1"), norm(want), "GetSession")

	dup := newSession("s1", "bob", at(time.Minute))
	wantErr(t, s.CreateSession(ctx(t), dup), store.ErrAlreadyExists, "CreateSession of a taken ID")
	wantEqual(t, getSession(t, s, "s1"), norm(want), "GetSession after refused duplicate")

	_, err := s.GetSession(ctx(t), "nope")
	wantErr(t, err, store.ErrNotFound, "GetSession unknown")
}

func testSessionInvalid(t *testing.T, s store.Store) {
	wantErr(t, s.CreateSession(ctx(t), newSession("", "alice", at(0))), store.ErrInvalid, "CreateSession with empty ID")
	_, err := s.AddParticipant(ctx(t), store.Participant{SessionID: "s1"})
	if err == nil {
		t.Fatal("AddParticipant with empty key: no error")
	}
}

func testSessionCanceled(t *testing.T, s store.Store) {
	createSessions(t, s, newSession("s1", "alice", at(0)))
	c, cancel := context.WithCancel(ctx(t))
	cancel()
	_, err := s.GetSession(c, "s1")
	wantErr(t, err, context.Canceled, "GetSession with canceled context")
	wantErr(t, s.CreateSession(c, newSession("s2", "alice", at(0))), context.Canceled, "CreateSession with canceled context")
	_, err = s.GetSession(ctx(t), "s2")
	wantErr(t, err, store.ErrNotFound, "session created under a canceled context")
}

func testSessionsByUser(t *testing.T, s store.Store) {
	// Created out of order: the list is oldest first by CreatedAt.
	createSessions(t, s,
		newSession("a-mid", "alice", at(time.Minute)),
		newSession("a-new", "alice", at(2*time.Minute)),
		newSession("b-1", "bob", at(0)),
		newSession("a-old", "alice", at(0)),
	)
	endSessions(t, s, "lo1", store.LogoutSpec{SessionIDs: []string{"a-mid"}, Now: at(3 * time.Minute)})

	got, err := s.ListSessionsByUser(ctx(t), "alice")
	must(t, err, "ListSessionsByUser alice")
	wantEqual(t, sessionIDs(got), []string{"a-old", "a-mid", "a-new"}, "alice's sessions, ended included, oldest first")
	wantEqual(t, norm(got[0]), norm(newSession("a-old", "alice", at(0))), "listed session")
	if got[1].EndedAt.IsZero() || got[1].LogoutID != "lo1" {
		t.Fatalf("listed ended session has EndedAt %v, LogoutID %q", got[1].EndedAt, got[1].LogoutID)
	}

	got, err = s.ListSessionsByUser(ctx(t), "bob")
	must(t, err, "ListSessionsByUser bob")
	wantEqual(t, sessionIDs(got), []string{"b-1"}, "bob's sessions")

	got, err = s.ListSessionsByUser(ctx(t), "carol")
	must(t, err, "ListSessionsByUser carol")
	if len(got) != 0 {
		t.Fatalf("unknown user has sessions %v", sessionIDs(got))
	}
	// A user ID that is a prefix of another must not match it.
	got, err = s.ListSessionsByUser(ctx(t), "ali")
	must(t, err, "ListSessionsByUser ali")
	if len(got) != 0 {
		t.Fatalf("user %q matched sessions %v of another user", "ali", sessionIDs(got))
	}
}

func testSessionsByNameID(t *testing.T, s store.Store) {
	a := newSession("a", "alice", at(0))
	b := newSession("b", "alice", at(time.Minute))
	other := newSession("other-upstream", "alice", at(2*time.Minute))
	other.Upstream = "idp2"
	qual := newSession("other-qualifier", "alice", at(3*time.Minute))
	qual.NameID.NameQualifier = "https://elsewhere.example.org"
	bob := newSession("bob", "bob", at(0))
	createSessions(t, s, qual, b, bob, other, a)

	nid := a.NameID
	tests := []struct {
		name     string
		upstream string
		nameID   store.NameID
		index    string
		want     []string
	}{
		{"value only: every session of the NameID", "idp", store.NameID{Value: nid.Value}, "", []string{"a", "b", "other-qualifier"}},
		{"all qualifiers", "idp", nid, "", []string{"a", "b"}},
		{"qualifiers and SessionIndex", "idp", nid, "si-b", []string{"b"}},
		{"value and SessionIndex", "idp", store.NameID{Value: nid.Value}, "si-other-qualifier", []string{"other-qualifier"}},
		{"unknown SessionIndex", "idp", nid, "si-zzz", nil},
		{"other NameQualifier", "idp", store.NameID{Value: nid.Value, NameQualifier: "https://elsewhere.example.org"}, "", []string{"other-qualifier"}},
		{"wrong SPNameQualifier", "idp", store.NameID{Value: nid.Value, SPNameQualifier: "https://wrong.example.org"}, "", nil},
		{"wrong Format", "idp", store.NameID{Value: nid.Value, Format: "urn:oasis:names:tc:SAML:2.0:nameid-format:persistent"}, "", nil},
		{"other upstream", "idp2", store.NameID{Value: nid.Value}, "", []string{"other-upstream"}},
		{"unknown upstream", "idp3", store.NameID{Value: nid.Value}, "", nil},
		{"unknown value", "idp", store.NameID{Value: "carol@example.org"}, "", nil},
		{"value prefix does not match", "idp", store.NameID{Value: "alice"}, "", nil},
	}
	for _, tc := range tests {
		got, err := s.FindSessionsByNameID(ctx(t), tc.upstream, tc.nameID, tc.index)
		must(t, err, "FindSessionsByNameID "+tc.name)
		wantEqual(t, sessionIDs(got), tc.want, "FindSessionsByNameID "+tc.name)
	}
	got, err := s.FindSessionsByNameID(ctx(t), "idp", nid, "si-a")
	must(t, err, "FindSessionsByNameID")
	wantEqual(t, norm(got), []store.Session{norm(a)}, "found session")
}

func testCountActive(t *testing.T, s store.Store) {
	short := newSession("short", "alice", at(0))
	short.ExpiresAt = at(time.Hour)
	createSessions(t, s, short, newSession("long", "alice", at(0)), newSession("ended", "bob", at(0)))
	endSessions(t, s, "lo1", store.LogoutSpec{SessionIDs: []string{"ended"}, Now: at(time.Minute)})

	tests := []struct {
		now  time.Time
		want int
	}{
		{at(30 * time.Minute), 2},
		{at(time.Hour), 1}, // expired at exactly ExpiresAt
		{at(9 * time.Hour), 0},
	}
	for _, tc := range tests {
		n, err := s.CountActiveSessions(ctx(t), tc.now)
		must(t, err, "CountActiveSessions")
		if n != tc.want {
			t.Fatalf("CountActiveSessions(%v) = %d, want %d", tc.now, n, tc.want)
		}
	}
}

// testSessionsByEmail: sessions are found by their "email" attribute,
// oldest first, ended ones included; an address that is only a prefix of
// another, or absent, finds nothing; a re-authentication that changes the
// attribute moves the session in the index.
func testSessionsByEmail(t *testing.T, s store.Store) {
	mail := func(id, user string, created time.Time, emails ...string) store.Session {
		x := newSession(id, user, created)
		x.Attributes = map[string][]string{"email": emails}
		return x
	}
	createSessions(t, s,
		mail("a2", "alice", at(time.Minute), "alice@example.org", "a.l@example.org"),
		mail("a1", "alice", at(0), "alice@example.org"),
		mail("b1", "bob", at(0), "bob@example.org"),
		mail("n1", "nomail", at(0)),
	)
	endSessions(t, s, "lo1", store.LogoutSpec{SessionIDs: []string{"a1"}, Now: at(2 * time.Minute)})
	for _, tc := range []struct {
		email string
		want  []string
	}{
		{"alice@example.org", []string{"a1", "a2"}},
		{"a.l@example.org", []string{"a2"}},
		{"bob@example.org", []string{"b1"}},
		{"alice@example", nil},
		{"carol@example.org", nil},
		{"", nil},
	} {
		got, err := s.FindSessionsByEmail(ctx(t), tc.email)
		must(t, err, "FindSessionsByEmail "+tc.email)
		wantEqual(t, sessionIDs(got), tc.want, "sessions of "+tc.email)
	}
	upd := store.SessionAuth{UserID: "bob", Upstream: "idp", NameID: store.NameID{Value: "bob@example.org"},
		SessionIndex: "si-b1-2", Attributes: map[string][]string{"email": {"robert@example.org"}},
		AuthTime: at(3 * time.Minute), ExpiresAt: at(8 * time.Hour)}
	_, err := s.ReauthenticateSession(ctx(t), "b1", upd, at(3*time.Minute))
	must(t, err, "ReauthenticateSession b1")
	for email, want := range map[string][]string{"bob@example.org": nil, "robert@example.org": {"b1"}} {
		got, err := s.FindSessionsByEmail(ctx(t), email)
		must(t, err, "FindSessionsByEmail "+email)
		wantEqual(t, sessionIDs(got), want, "after re-authentication, sessions of "+email)
	}
}

// testListSessions: ListSessions pages through the sessions of an
// upstream or of an app, newest first, ended ones included; a session
// re-authenticated at another upstream moves; swept sessions leave both
// indexes; a filter with neither or both set, or a bad limit, is refused.
func testListSessions(t *testing.T, s store.Store) {
	var corp []string
	for i := range 7 {
		id := fmt.Sprintf("s%d", i)
		se := newSession(id, fmt.Sprintf("u%d", i), at(time.Duration(i)*time.Minute))
		if i%2 == 1 {
			se.Upstream = "partner"
		} else {
			corp = append([]string{id}, corp...)
		}
		createSessions(t, s, se)
		if i < 5 {
			addParticipants(t, s, newParticipant(id, "payroll", store.ChannelBack, at(time.Hour)))
		}
		addParticipants(t, s, newParticipant(id, "wiki", store.ChannelBack, at(time.Hour)))
	}
	endSessions(t, s, "lo1", store.LogoutSpec{SessionIDs: []string{"s2"}, Now: at(2 * time.Hour)})
	pageAll := func(f store.SessionFilter, size int) []string {
		t.Helper()
		var got []string
		var cur store.Cursor
		for range 20 {
			page, err := s.ListSessions(ctx(t), f, cur, size)
			must(t, err, "ListSessions")
			if len(page) == 0 {
				return got
			}
			for _, se := range page {
				got = append(got, se.ID)
			}
			last := page[len(page)-1]
			cur = store.Cursor{CreatedAt: last.CreatedAt, ID: last.ID}
		}
		t.Fatal("ListSessions never ends")
		return nil
	}
	wantEqual(t, pageAll(store.SessionFilter{Upstream: "idp"}, 2), corp, "sessions at upstream idp, newest first, ended included")
	wantEqual(t, pageAll(store.SessionFilter{Upstream: "partner"}, 3), []string{"s5", "s3", "s1"}, "sessions at upstream partner")
	wantEqual(t, pageAll(store.SessionFilter{AppID: "payroll"}, 2), []string{"s4", "s3", "s2", "s1", "s0"}, "sessions payroll joined")
	wantEqual(t, pageAll(store.SessionFilter{AppID: "wiki"}, 100), []string{"s6", "s5", "s4", "s3", "s2", "s1", "s0"}, "sessions wiki joined")
	if got := pageAll(store.SessionFilter{AppID: "nobody"}, 5); len(got) != 0 {
		t.Fatalf("sessions of an app that joined none: %v", got)
	}

	upd := store.SessionAuth{UserID: "u4", Upstream: "partner", NameID: store.NameID{Value: "u4@partner"}, AuthTime: at(3 * time.Hour), ExpiresAt: at(48 * time.Hour)}
	_, err := s.ReauthenticateSession(ctx(t), "s4", upd, at(3*time.Hour))
	must(t, err, "ReauthenticateSession")
	wantEqual(t, pageAll(store.SessionFilter{Upstream: "partner"}, 10), []string{"s5", "s4", "s3", "s1"}, "partner's sessions after s4 re-authenticated there")
	wantEqual(t, pageAll(store.SessionFilter{Upstream: "idp"}, 10), []string{"s6", "s2", "s0"}, "idp's sessions after s4 left")

	// s2 ended at 2h; swept with a day's retention a week later, it
	// leaves every list.
	_, err = s.Sweep(ctx(t), at(7*24*time.Hour), 24*time.Hour)
	must(t, err, "Sweep")
	for _, f := range []store.SessionFilter{{Upstream: "idp"}, {AppID: "payroll"}} {
		for _, id := range pageAll(f, 10) {
			if id == "s2" {
				t.Fatalf("a swept session is still listed by %+v", f)
			}
		}
	}
	for _, f := range []store.SessionFilter{{}, {Upstream: "idp", AppID: "wiki"}} {
		_, err := s.ListSessions(ctx(t), f, store.Cursor{}, 10)
		wantErr(t, err, store.ErrInvalid, fmt.Sprintf("ListSessions with filter %+v", f))
	}
	for _, limit := range []int{0, store.MaxPage + 1} {
		_, err := s.ListSessions(ctx(t), store.SessionFilter{AppID: "wiki"}, store.Cursor{}, limit)
		wantErr(t, err, store.ErrInvalid, fmt.Sprintf("ListSessions with limit %d", limit))
	}
}
