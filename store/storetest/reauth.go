package storetest

import (
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/slobridge/slobridge/store"
)

// testReauthenticate covers ReauthenticateSession: what it keeps, what it
// replaces, the indexes it moves, its refusals and PriorLogins.
func testReauthenticate(t *testing.T, f Factory) {
	runAll(t, f, []subtest{
		{"KeepsSessionUpdatesFacts", testReauthKeeps},
		{"Indexes", testReauthIndexes},
		{"Refusals", testReauthRefusals},
		{"SameLoginAgain", testReauthSameLogin},
		{"PriorLoginsCap", testReauthCap},
		{"EndAndSweep", testReauthEndSweep},
		{"Parallel", testReauthParallel},
	})
}

// reauth returns the facts of a new login of user at "idp" with NameID
// value nameID and SessionIndex si, authenticated at authAt, expiring at
// exp.
func reauth(user, nameID, si string, authAt, exp time.Time) store.SessionAuth {
	return store.SessionAuth{
		UserID:   user,
		Upstream: "idp",
		NameID: store.NameID{
			Value:           nameID,
			Format:          "urn:oasis:names:tc:SAML:2.0:nameid-format:transient",
			NameQualifier:   "https://idp.example.org",
			SPNameQualifier: "https://bridge.example.org",
		},
		SessionIndex: si,
		Attributes:   map[string][]string{"email": {user + "@example.org"}, "groups": {"staff"}},
		AuthTime:     authAt,
		ExpiresAt:    exp,
	}
}

// wantFound fails unless FindSessionsByNameID returns exactly want.
func wantFound(t *testing.T, s store.Store, nameID store.NameID, si string, want []string, what string) {
	t.Helper()
	got, err := s.FindSessionsByNameID(ctx(t), "idp", nameID, si)
	must(t, err, "FindSessionsByNameID "+what)
	wantEqual(t, sessionIDs(got), want, "FindSessionsByNameID "+what)
}

func testReauthKeeps(t *testing.T, s store.Store) {
	old := newSession("s1", "alice", at(0))
	createSessions(t, s, old, newSession("s2", "alice", at(time.Minute)))
	addParticipants(t, s,
		newParticipant("s1", "app1", store.ChannelBack, at(0)),
		newParticipant("s1", "app2", store.ChannelFront, at(time.Minute)))
	upd := reauth("alice", "tr-2", "si-new", at(2*time.Hour), at(12*time.Hour))

	got, err := s.ReauthenticateSession(ctx(t), "s1", upd, at(2*time.Hour))
	must(t, err, "ReauthenticateSession")
	want := old
	want.Upstream, want.NameID, want.SessionIndex = upd.Upstream, upd.NameID, upd.SessionIndex
	want.Attributes, want.AuthTime, want.ExpiresAt = upd.Attributes, upd.AuthTime, upd.ExpiresAt
	want.PriorLogins = []store.UpstreamLogin{old.UpstreamLogin()}
	wantEqual(t, norm(got), norm(want), "returned session")
	wantEqual(t, getSession(t, s, "s1"), norm(want), "stored session")
	wantEqual(t, getSession(t, s, "s2"), norm(newSession("s2", "alice", at(time.Minute))), "the user's other session")

	ps, err := s.ListParticipants(ctx(t), "s1")
	must(t, err, "ListParticipants")
	if len(ps) != 2 || ps[0].AppID != "app1" || ps[1].AppID != "app2" {
		t.Fatalf("participants after re-authentication: %+v", ps)
	}
	added, err := s.AddParticipant(ctx(t), newParticipant("s1", "app3", store.ChannelBack, at(3*time.Hour)))
	must(t, err, "AddParticipant after re-authentication")
	if !added {
		t.Fatal("AddParticipant after re-authentication: not added")
	}
}

func testReauthIndexes(t *testing.T, s store.Store) {
	old := newSession("s1", "alice", at(0)) // expires at +8h
	createSessions(t, s, old, newSession("b1", "bob", at(0)))
	upd := reauth("alice", "tr-2", "si-new", at(time.Hour), at(20*time.Hour))
	_, err := s.ReauthenticateSession(ctx(t), "s1", upd, at(time.Hour))
	must(t, err, "ReauthenticateSession")

	wantFound(t, s, upd.NameID, "si-new", []string{"s1"}, "new NameID and SessionIndex")
	wantFound(t, s, store.NameID{Value: "tr-2"}, "", []string{"s1"}, "new NameID value only")
	wantFound(t, s, old.NameID, "si-s1", []string{"s1"}, "old NameID and SessionIndex (prior login)")
	wantFound(t, s, store.NameID{Value: old.NameID.Value}, "", []string{"s1"}, "old NameID value only (prior login)")
	wantFound(t, s, upd.NameID, "si-s1", nil, "new NameID with the old SessionIndex")
	wantFound(t, s, old.NameID, "si-new", nil, "old NameID with the new SessionIndex")
	wantFound(t, s, store.NameID{Value: old.NameID.Value, Format: upd.NameID.Format}, "", nil, "old NameID value with the new Format")
	got, err := s.FindSessionsByNameID(ctx(t), "idp2", store.NameID{Value: "tr-2"}, "")
	must(t, err, "FindSessionsByNameID other upstream")
	if len(got) != 0 {
		t.Fatalf("other upstream matched %v", sessionIDs(got))
	}

	byUser, err := s.ListSessionsByUser(ctx(t), "alice")
	must(t, err, "ListSessionsByUser")
	wantEqual(t, sessionIDs(byUser), []string{"s1"}, "alice's sessions")

	// The active index follows the new expiry: alive past the old +8h.
	for _, tc := range []struct {
		now  time.Time
		want int
	}{{at(2 * time.Hour), 2}, {at(9 * time.Hour), 1}, {at(20 * time.Hour), 0}} {
		n, err := s.CountActiveSessions(ctx(t), tc.now)
		must(t, err, "CountActiveSessions")
		if n != tc.want {
			t.Fatalf("CountActiveSessions(%v) = %d, want %d", tc.now, n, tc.want)
		}
	}

	// A shorter cap (SessionNotOnOrAfter of the new assertion) shortens
	// the session.
	short := reauth("alice", "tr-3", "si-3", at(2*time.Hour), at(3*time.Hour))
	_, err = s.ReauthenticateSession(ctx(t), "s1", short, at(2*time.Hour))
	must(t, err, "ReauthenticateSession with a shorter cap")
	n, err := s.CountActiveSessions(ctx(t), at(4*time.Hour))
	must(t, err, "CountActiveSessions")
	if n != 1 {
		t.Fatalf("CountActiveSessions after a shorter cap = %d, want 1 (bob)", n)
	}
	wantFound(t, s, upd.NameID, "si-new", []string{"s1"}, "second login, now prior")
	wantFound(t, s, old.NameID, "si-s1", []string{"s1"}, "first login, still prior")
	_, err = s.ReauthenticateSession(ctx(t), "s1", reauth("alice", "tr-4", "si-4", at(4*time.Hour), at(9*time.Hour)), at(4*time.Hour))
	wantErr(t, err, store.ErrSessionEnded, "ReauthenticateSession after the shorter cap expired")
}

func testReauthRefusals(t *testing.T, s store.Store) {
	createSessions(t, s, newSession("s1", "alice", at(0)), newSession("ended", "alice", at(0)))
	endSessions(t, s, "lo1", store.LogoutSpec{SessionIDs: []string{"ended"}, Now: at(time.Minute)})
	before := getSession(t, s, "s1")
	endedBefore := getSession(t, s, "ended")

	tests := []struct {
		name string
		id   string
		upd  store.SessionAuth
		now  time.Time
		want error
	}{
		{"unknown session", "nope", reauth("alice", "tr", "si", at(time.Hour), at(9*time.Hour)), at(time.Hour), store.ErrNotFound},
		{"ended session", "ended", reauth("alice", "tr", "si", at(time.Hour), at(9*time.Hour)), at(time.Hour), store.ErrSessionEnded},
		{"expired session", "s1", reauth("alice", "tr", "si", at(8*time.Hour), at(16*time.Hour)), at(8 * time.Hour), store.ErrSessionEnded},
		{"another user", "s1", reauth("bob", "tr", "si", at(time.Hour), at(9*time.Hour)), at(time.Hour), store.ErrInvalid},
		{"expiry not after now", "s1", reauth("alice", "tr", "si", at(time.Hour), at(time.Hour)), at(time.Hour), store.ErrInvalid},
		{"empty user", "s1", reauth("", "tr", "si", at(time.Hour), at(9*time.Hour)), at(time.Hour), store.ErrInvalid},
		{"empty session ID", "", reauth("alice", "tr", "si", at(time.Hour), at(9*time.Hour)), at(time.Hour), store.ErrInvalid},
	}
	for _, tc := range tests {
		_, err := s.ReauthenticateSession(ctx(t), tc.id, tc.upd, tc.now)
		wantErr(t, err, tc.want, "ReauthenticateSession: "+tc.name)
	}
	wantEqual(t, getSession(t, s, "s1"), before, "session after refusals")
	wantEqual(t, getSession(t, s, "ended"), endedBefore, "ended session after refusals")
	wantFound(t, s, store.NameID{Value: "tr"}, "", nil, "NameID of refused logins")
}

func testReauthSameLogin(t *testing.T, s store.Store) {
	old := newSession("s1", "alice", at(0))
	createSessions(t, s, old)
	// The upstream reuses its session: same NameID and SessionIndex, a new
	// AuthnInstant.
	upd := store.SessionAuth{UserID: "alice", Upstream: old.Upstream, NameID: old.NameID, SessionIndex: old.SessionIndex,
		Attributes: old.Attributes, AuthTime: at(time.Hour), ExpiresAt: at(9 * time.Hour)}
	got, err := s.ReauthenticateSession(ctx(t), "s1", upd, at(time.Hour))
	must(t, err, "ReauthenticateSession")
	if len(got.PriorLogins) != 0 {
		t.Fatalf("PriorLogins after the same login again: %+v", got.PriorLogins)
	}
	if !got.AuthTime.Equal(at(time.Hour)) || !got.ExpiresAt.Equal(at(9*time.Hour)) {
		t.Fatalf("AuthTime %v, ExpiresAt %v: not updated", got.AuthTime, got.ExpiresAt)
	}
	wantFound(t, s, old.NameID, old.SessionIndex, []string{"s1"}, "the login")

	// Back to an earlier login: it leaves PriorLogins, the one it replaces
	// enters.
	_, err = s.ReauthenticateSession(ctx(t), "s1", reauth("alice", "tr-2", "si-2", at(2*time.Hour), at(9*time.Hour)), at(2*time.Hour))
	must(t, err, "ReauthenticateSession tr-2")
	got, err = s.ReauthenticateSession(ctx(t), "s1", upd, at(3*time.Hour))
	must(t, err, "ReauthenticateSession back to the first login")
	wantEqual(t, norm(got.PriorLogins), []store.UpstreamLogin{norm(reauthLogin(reauth("alice", "tr-2", "si-2", at(0), at(0))))}, "PriorLogins")
	wantEqual(t, getSession(t, s, "s1"), norm(got), "stored session")

	// An upstream that answers from an older session of its own does not
	// move auth_time back.
	older := upd
	older.AuthTime = at(-time.Hour)
	got, err = s.ReauthenticateSession(ctx(t), "s1", older, at(4*time.Hour))
	must(t, err, "ReauthenticateSession with an older AuthnInstant")
	if !got.AuthTime.Equal(at(2 * time.Hour)) { // of the tr-2 login
		t.Fatalf("AuthTime %v after a login with an older AuthnInstant, want %v", got.AuthTime, at(2*time.Hour))
	}
	wantEqual(t, getSession(t, s, "s1"), norm(got), "stored session")
}

// reauthLogin is the upstream login of a.
func reauthLogin(a store.SessionAuth) store.UpstreamLogin {
	return store.UpstreamLogin{Upstream: a.Upstream, NameID: a.NameID, SessionIndex: a.SessionIndex}
}

func testReauthCap(t *testing.T, s store.Store) {
	old := newSession("s1", "alice", at(0))
	createSessions(t, s, old)
	n := store.MaxPriorLogins + 3
	var logins []store.UpstreamLogin // every login, oldest first
	logins = append(logins, old.UpstreamLogin())
	for i := range n {
		upd := reauth("alice", fmt.Sprintf("tr-%02d", i), fmt.Sprintf("si-%02d", i), at(time.Duration(i+1)*time.Minute), at(8*time.Hour))
		_, err := s.ReauthenticateSession(ctx(t), "s1", upd, at(time.Duration(i+1)*time.Minute))
		must(t, err, "ReauthenticateSession "+upd.SessionIndex)
		logins = append(logins, reauthLogin(upd))
	}
	got := getSession(t, s, "s1")
	// The last login is current; the MaxPriorLogins before it are prior.
	wantEqual(t, got.UpstreamLogin(), norm(logins[len(logins)-1]), "current login")
	wantEqual(t, got.PriorLogins, norm(logins[len(logins)-1-store.MaxPriorLogins:len(logins)-1]), "PriorLogins")
	for i, l := range logins {
		var want []string
		if i >= len(logins)-1-store.MaxPriorLogins {
			want = []string{"s1"}
		}
		wantFound(t, s, l.NameID, l.SessionIndex, want, fmt.Sprintf("login %d of %d", i, len(logins)))
	}
}

func testReauthEndSweep(t *testing.T, s store.Store) {
	old := newSession("s1", "alice", at(0))
	createSessions(t, s, old)
	addParticipants(t, s, newParticipant("s1", "app1", store.ChannelBack, at(0)))
	upd := reauth("alice", "tr-2", "si-2", at(time.Hour), at(9*time.Hour))
	_, err := s.ReauthenticateSession(ctx(t), "s1", upd, at(time.Hour))
	must(t, err, "ReauthenticateSession")
	addParticipants(t, s, newParticipant("s1", "app2", store.ChannelBack, at(2*time.Hour)))

	// A logout found by the new SessionIndex reaches the participant that
	// joined before the re-authentication.
	found, err := s.FindSessionsByNameID(ctx(t), "idp", upd.NameID, "si-2")
	must(t, err, "FindSessionsByNameID")
	wantEqual(t, sessionIDs(found), []string{"s1"}, "found by the new login")
	lo, ds := endSessions(t, s, "lo1", store.LogoutSpec{SessionIDs: sessionIDs(found), Now: at(3 * time.Hour)})
	wantEqual(t, lo.SessionIDs, []string{"s1"}, "ended sessions")
	if len(ds) != 2 || ds[0].Participant.AppID != "app1" || ds[1].Participant.AppID != "app2" {
		t.Fatalf("deliveries: %+v", ds)
	}
	_, err = s.ReauthenticateSession(ctx(t), "s1", upd, at(4*time.Hour))
	wantErr(t, err, store.ErrSessionEnded, "ReauthenticateSession of the ended session")
	n, err := s.CountActiveSessions(ctx(t), at(4*time.Hour))
	must(t, err, "CountActiveSessions")
	if n != 0 {
		t.Fatalf("CountActiveSessions after logout = %d", n)
	}

	// The sweep removes the session with every index entry, prior
	// logins' included.
	_, err = s.Sweep(ctx(t), at(48*time.Hour), time.Hour)
	must(t, err, "Sweep")
	_, err = s.GetSession(ctx(t), "s1")
	wantErr(t, err, store.ErrNotFound, "GetSession after sweep")
	wantFound(t, s, upd.NameID, "", nil, "new login after sweep")
	wantFound(t, s, old.NameID, "", nil, "prior login after sweep")
	byUser, err := s.ListSessionsByUser(ctx(t), "alice")
	must(t, err, "ListSessionsByUser after sweep")
	if len(byUser) != 0 {
		t.Fatalf("sessions of alice after sweep: %v", sessionIDs(byUser))
	}
}

func testReauthParallel(t *testing.T, s store.Store) {
	old := newSession("s1", "alice", at(0))
	createSessions(t, s, old)
	const n = 8
	var wg sync.WaitGroup
	errs := make(chan error, 2*n)
	for i := range n {
		wg.Go(func() {
			upd := reauth("alice", fmt.Sprintf("tr-%d", i), fmt.Sprintf("si-%d", i), at(time.Hour), at(9*time.Hour))
			_, err := s.ReauthenticateSession(ctx(t), "s1", upd, at(time.Hour))
			errs <- err
		})
		wg.Go(func() {
			_, err := s.AddParticipant(ctx(t), newParticipant("s1", fmt.Sprintf("app%d", i), store.ChannelBack, at(time.Hour)))
			errs <- err
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		must(t, err, "parallel ReauthenticateSession / AddParticipant")
	}
	got := getSession(t, s, "s1")
	if len(got.PriorLogins) != n {
		t.Fatalf("PriorLogins has %d entries after %d re-authentications, want %d: %+v", len(got.PriorLogins), n, n, got.PriorLogins)
	}
	wantFound(t, s, old.NameID, "si-s1", []string{"s1"}, "first login")
	for i := range n {
		wantFound(t, s, store.NameID{Value: fmt.Sprintf("tr-%d", i)}, fmt.Sprintf("si-%d", i), []string{"s1"}, fmt.Sprintf("login %d", i))
	}
	ps, err := s.ListParticipants(ctx(t), "s1")
	must(t, err, "ListParticipants")
	if len(ps) != n {
		t.Fatalf("participants after parallel adds: %d, want %d", len(ps), n)
	}
}
