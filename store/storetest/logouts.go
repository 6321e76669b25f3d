package storetest

import (
	"fmt"
	"slices"
	"testing"
	"time"

	"github.com/slobridge/slobridge/store"
)

// testEndSessions covers the logout transaction, GetLogout and
// ListLogoutsByUser.
func testEndSessions(t *testing.T, f Factory) {
	runAll(t, f, []subtest{
		{"Snapshot", testEndSnapshot},
		{"Legs", testEndLegs},
		{"UnknownSessionChangesNothing", testEndUnknown},
		{"AlreadyEndedSkipped", testEndAlreadyEnded},
		{"ByUser", testEndByUser},
		{"NoActiveMatch", testEndNoMatch},
		{"LogoutsByUser", testLogoutsByUser},
		{"ListLogoutsPages", testListLogouts},
	})
}

// testListLogouts: ListLogouts pages through every logout newest first,
// two with the same time in ID order, each page after the last of the
// previous; a bad limit is refused.
func testListLogouts(t *testing.T, s store.Store) {
	var want []string
	for i := range 7 {
		sid, lid := fmt.Sprintf("s%d", i), fmt.Sprintf("lo%d", i)
		createSessions(t, s, newSession(sid, "alice", at(0)))
		// lo3 and lo4 share a time.
		d := time.Duration(i) * time.Minute
		if i == 4 {
			d = 3 * time.Minute
		}
		endSessions(t, s, lid, store.LogoutSpec{SessionIDs: []string{sid}, Now: at(time.Hour + d)})
		want = append([]string{lid}, want...)
	}
	var got []string
	var cur store.LogoutCursor
	for pages := 0; ; pages++ {
		page, err := s.ListLogouts(ctx(t), cur, 3)
		must(t, err, "ListLogouts")
		if len(page) == 0 {
			if pages != 3 {
				t.Fatalf("%d pages of 3 for 7 logouts", pages)
			}
			break
		}
		for _, lo := range page {
			got = append(got, lo.ID)
		}
		last := page[len(page)-1]
		cur = store.LogoutCursor{CreatedAt: last.CreatedAt, ID: last.ID}
	}
	wantEqual(t, got, want, "every logout, newest first, one page after another")
	// A cursor after every logout starts at the newest.
	page, err := s.ListLogouts(ctx(t), store.LogoutCursor{CreatedAt: at(48 * time.Hour), ID: "z"}, 2)
	must(t, err, "ListLogouts from the future")
	if len(page) != 2 || page[0].ID != "lo6" || page[1].ID != "lo5" {
		t.Fatalf("page from a future cursor: %+v", page)
	}
	for _, limit := range []int{0, -1, store.MaxPage + 1} {
		_, err := s.ListLogouts(ctx(t), store.LogoutCursor{}, limit)
		wantErr(t, err, store.ErrInvalid, fmt.Sprintf("ListLogouts with limit %d", limit))
	}
}

func testEndSnapshot(t *testing.T, s store.Store) {
	createSessions(t, s, newSession("s1", "alice", at(0)))
	back := newParticipant("s1", "back", store.ChannelBack, at(time.Minute))
	front := newParticipant("s1", "front", store.ChannelFront, at(2*time.Minute))
	both := newParticipant("s1", "both", store.ChannelBack|store.ChannelFront, at(3*time.Minute))
	asker := newParticipant("s1", "asker", store.ChannelBack, at(4*time.Minute))
	addParticipants(t, s, back, front, both, asker)

	now := at(time.Hour)
	lo, ds := endSessions(t, s, "lo1", store.LogoutSpec{
		SessionIDs: []string{"s1"},
		Initiator:  store.Initiator{Kind: store.InitiatorRP, ID: "asker"},
		ExcludeKey: asker.Key,
		Now:        now,
	})
	wantLogout := norm(store.Logout{
		ID: "lo1", UserID: "alice", SessionIDs: []string{"s1"},
		Initiator:  store.Initiator{Kind: store.InitiatorRP, ID: "asker"},
		ExcludeKey: asker.Key, CreatedAt: now,
		Participants: []store.Participant{back, front, both, asker},
	})
	wantEqual(t, lo, wantLogout, "returned logout")

	if len(ds) != 2 || ds[0].ID == ds[1].ID {
		t.Fatalf("deliveries %+v, want two with distinct IDs", ds)
	}
	for i, p := range []store.Participant{back, both} {
		want := norm(store.Delivery{
			ID: ds[i].ID, LogoutID: "lo1", Participant: p, State: store.DeliveryPending,
			CreatedAt: now, NextAttemptAt: now,
		})
		wantEqual(t, ds[i], want, "delivery "+p.Key)
		got, err := s.GetDelivery(ctx(t), ds[i].ID)
		must(t, err, "GetDelivery")
		wantEqual(t, norm(got), want, "stored delivery "+p.Key)
	}

	got, err := s.GetLogout(ctx(t), "lo1")
	must(t, err, "GetLogout")
	wantEqual(t, norm(got), wantLogout, "stored logout")
	list, err := s.ListDeliveries(ctx(t), "lo1")
	must(t, err, "ListDeliveries")
	wantEqual(t, norm(list), ds, "listed deliveries, creation order")

	ended := getSession(t, s, "s1")
	if !ended.EndedAt.Equal(now) || ended.LogoutID != "lo1" || ended.Active(now) {
		t.Fatalf("ended session: EndedAt %v LogoutID %q", ended.EndedAt, ended.LogoutID)
	}
	counts, err := s.CountDeliveries(ctx(t))
	must(t, err, "CountDeliveries")
	if counts[store.DeliveryPending] != 2 {
		t.Fatalf("CountDeliveries = %v, want 2 pending", counts)
	}
	_, _, err = s.EndSessions(ctx(t), store.LogoutSpec{
		LogoutID: "lo1", UserID: "alice", NewDeliveryID: idGen("x"), Now: now,
		Initiator: store.Initiator{Kind: store.InitiatorUser},
	})
	if err != nil {
		t.Fatalf("EndSessions with nothing active left: %v", err)
	}
}

func testEndUnknown(t *testing.T, s store.Store) {
	createSessions(t, s, newSession("s1", "alice", at(0)))
	addParticipants(t, s, newParticipant("s1", "app1", store.ChannelBack, at(0)))
	_, _, err := s.EndSessions(ctx(t), store.LogoutSpec{
		LogoutID: "lo1", SessionIDs: []string{"s1", "nope"}, NewDeliveryID: idGen("d"),
		Initiator: store.Initiator{Kind: store.InitiatorUser}, Now: at(time.Minute),
	})
	wantErr(t, err, store.ErrNotFound, "EndSessions with an unknown session")

	if got := getSession(t, s, "s1"); !got.EndedAt.IsZero() || got.LogoutID != "" {
		t.Fatalf("session changed by a failed logout: %+v", got)
	}
	_, err = s.GetLogout(ctx(t), "lo1")
	wantErr(t, err, store.ErrNotFound, "GetLogout of a failed logout")
	assertNoDeliveries(t, s)
	added, err := s.AddParticipant(ctx(t), newParticipant("s1", "app2", store.ChannelBack, at(2*time.Minute)))
	if err != nil || !added {
		t.Fatalf("session not active after failed logout: added %v, err %v", added, err)
	}
}

// assertNoDeliveries fails when the outbox holds anything.
func assertNoDeliveries(t *testing.T, s store.Store) {
	t.Helper()
	counts, err := s.CountDeliveries(ctx(t))
	must(t, err, "CountDeliveries")
	for state, n := range counts {
		if n != 0 {
			t.Fatalf("outbox holds %d %s deliveries, want none", n, state)
		}
	}
	_, ok, err := s.NextDueAt(ctx(t))
	must(t, err, "NextDueAt")
	if ok {
		t.Fatal("NextDueAt reports a due delivery, want none")
	}
}

func testEndAlreadyEnded(t *testing.T, s store.Store) {
	createSessions(t, s, newSession("s1", "alice", at(0)), newSession("s2", "alice", at(0)))
	addParticipants(t, s,
		newParticipant("s1", "app1", store.ChannelBack, at(0)),
		newParticipant("s2", "app2", store.ChannelBack, at(0)))
	endSessions(t, s, "lo1", store.LogoutSpec{SessionIDs: []string{"s1"}, Now: at(time.Minute)})

	lo, ds := endSessions(t, s, "lo2", store.LogoutSpec{SessionIDs: []string{"s1", "s2"}, Now: at(2 * time.Minute)})
	wantEqual(t, lo.SessionIDs, []string{"s2"}, "second logout's sessions")
	if len(lo.Participants) != 1 || lo.Participants[0].SessionID != "s2" {
		t.Fatalf("second logout's participants %+v, want only s2's", lo.Participants)
	}
	if len(ds) != 1 || ds[0].Participant.SessionID != "s2" {
		t.Fatalf("second logout's deliveries %+v, want only s2's", ds)
	}
	if got := getSession(t, s, "s1"); got.LogoutID != "lo1" || !got.EndedAt.Equal(at(time.Minute)) {
		t.Fatalf("already ended session was changed: %+v", got)
	}
	list, err := s.ListDeliveries(ctx(t), "lo1")
	must(t, err, "ListDeliveries lo1")
	if len(list) != 1 {
		t.Fatalf("first logout has %d deliveries, want 1", len(list))
	}
}

func testEndByUser(t *testing.T, s store.Store) {
	expired := newSession("a-expired", "alice", at(-9*time.Hour))
	createSessions(t, s, newSession("a1", "alice", at(0)), newSession("a2", "alice", at(time.Minute)),
		newSession("a-ended", "alice", at(0)), expired, newSession("b1", "bob", at(0)))
	addParticipants(t, s,
		newParticipant("a1", "app1", store.ChannelBack, at(0)),
		newParticipant("a2", "app2", store.ChannelBack|store.ChannelFront, at(0)),
		newParticipant("a2", "app3", store.ChannelFront, at(0)),
		newParticipant("b1", "app1", store.ChannelBack, at(0)))
	endSessions(t, s, "lo0", store.LogoutSpec{SessionIDs: []string{"a-ended"}, Now: at(2 * time.Minute)})

	now := at(3 * time.Minute)
	lo, ds := endSessions(t, s, "lo1", store.LogoutSpec{UserID: "alice", Now: now,
		Initiator: store.Initiator{Kind: store.InitiatorAdmin, ID: "ops"}})
	ids := slices.Clone(lo.SessionIDs)
	slices.Sort(ids)
	wantEqual(t, ids, []string{"a1", "a2"}, "sessions ended by user")
	if lo.UserID != "alice" || len(lo.Participants) != 3 || len(ds) != 2 {
		t.Fatalf("logout by user: user %q, %d participants, %d deliveries; want alice, 3, 2",
			lo.UserID, len(lo.Participants), len(ds))
	}
	for _, id := range []string{"a1", "a2"} {
		if got := getSession(t, s, id); got.LogoutID != "lo1" {
			t.Fatalf("session %s not ended by the logout: %+v", id, got)
		}
	}
	if got := getSession(t, s, "a-expired"); !got.EndedAt.IsZero() {
		t.Fatalf("expired session was ended: %+v", got)
	}
	if got := getSession(t, s, "b1"); !got.EndedAt.IsZero() {
		t.Fatalf("another user's session was ended: %+v", got)
	}
}

func testEndNoMatch(t *testing.T, s store.Store) {
	createSessions(t, s, newSession("s1", "alice", at(0)))
	addParticipants(t, s, newParticipant("s1", "app1", store.ChannelBack, at(0)))
	endSessions(t, s, "lo1", store.LogoutSpec{SessionIDs: []string{"s1"}, Now: at(time.Minute)})
	before, err := s.CountDeliveries(ctx(t))
	must(t, err, "CountDeliveries")

	specs := map[string]store.LogoutSpec{
		"unknown user":        {UserID: "carol", Now: at(2 * time.Minute)},
		"all already ended":   {UserID: "alice", SessionIDs: []string{"s1"}, Now: at(2 * time.Minute)},
		"only expired active": {UserID: "alice", Now: at(10 * time.Hour)},
	}
	for name, spec := range specs {
		lo, ds := endSessions(t, s, "lo-none", spec)
		if len(lo.SessionIDs) != 0 || len(lo.Participants) != 0 || len(ds) != 0 {
			t.Fatalf("%s: logout %+v with %d deliveries, want none", name, lo, len(ds))
		}
		_, err := s.GetLogout(ctx(t), "lo-none")
		wantErr(t, err, store.ErrNotFound, name+": GetLogout of an empty logout")
	}
	after, err := s.CountDeliveries(ctx(t))
	must(t, err, "CountDeliveries")
	wantEqual(t, after, before, "delivery counts after empty logouts")
	los, err := s.ListLogoutsByUser(ctx(t), "carol")
	must(t, err, "ListLogoutsByUser")
	if len(los) != 0 {
		t.Fatalf("empty logout was listed: %+v", los)
	}
}

func testLogoutsByUser(t *testing.T, s store.Store) {
	createSessions(t, s, newSession("s1", "alice", at(0)), newSession("s2", "alice", at(0)),
		newSession("s3", "bob", at(0)))
	endSessions(t, s, "lo-old", store.LogoutSpec{SessionIDs: []string{"s1"}, Now: at(time.Minute)})
	endSessions(t, s, "lo-new", store.LogoutSpec{SessionIDs: []string{"s2"}, Now: at(2 * time.Minute)})
	endSessions(t, s, "lo-bob", store.LogoutSpec{UserID: "bob", Now: at(3 * time.Minute)})

	got, err := s.ListLogoutsByUser(ctx(t), "alice")
	must(t, err, "ListLogoutsByUser alice")
	var ids []string
	for _, lo := range got {
		ids = append(ids, lo.ID)
	}
	wantEqual(t, ids, []string{"lo-new", "lo-old"}, "alice's logouts, newest first")
	got, err = s.ListLogoutsByUser(ctx(t), "bob")
	must(t, err, "ListLogoutsByUser bob")
	if len(got) != 1 || got[0].ID != "lo-bob" || got[0].UserID != "bob" {
		t.Fatalf("bob's logouts: %+v", got)
	}
}

// testEndLegs: LogoutSpec.Legs join the snapshot after their session's
// participants and a back-channel leg gets a delivery; a leg of a session
// the logout does not end (already ended) is dropped.
func testEndLegs(t *testing.T, s store.Store) {
	createSessions(t, s, newSession("s1", "alice", at(0)), newSession("s2", "alice", at(time.Second)),
		newSession("s3", "alice", at(2*time.Second)))
	p1 := newParticipant("s1", "one", store.ChannelFront, at(time.Minute))
	p2 := newParticipant("s2", "two", store.ChannelBack, at(time.Minute))
	addParticipants(t, s, p1, p2)
	endSessions(t, s, "lo0", store.LogoutSpec{SessionIDs: []string{"s3"}, Now: at(time.Minute)})

	leg := func(sid string, ch store.Channel) store.Participant {
		return store.Participant{SessionID: sid, Key: "saml-upstream:idp", Kind: "saml-upstream", AppID: "https://idp.example.org",
			Name: "The IdP", Channels: ch, BackChannelURL: "https://idp.example.org/soap",
			Data: map[string]string{"name_id": "alice@example.org"}, JoinedAt: at(0)}
	}
	l1, l2, l3 := leg("s1", store.ChannelBack), leg("s2", store.ChannelFront), leg("s3", store.ChannelBack)
	now := at(time.Hour)
	var ended []string
	lo, ds := endSessions(t, s, "lo1", store.LogoutSpec{SessionIDs: []string{"s2", "s1", "s3"}, Now: now,
		Legs: func(ss []store.Session) []store.Participant {
			ended = sessionIDs(ss)
			return []store.Participant{l3, l1, l2}
		}})
	wantEqual(t, ended, []string{"s2", "s1"}, "sessions given to Legs: those the logout ends")
	want := norm([]store.Participant{p2, l2, p1, l1})
	wantEqual(t, lo.Participants, want, "snapshot with legs")
	if len(ds) != 2 || ds[0].Participant.Key != p2.Key || ds[1].Participant.Key != l1.Key || ds[1].Participant.SessionID != "s1" {
		t.Fatalf("deliveries %+v, want p2 then the s1 leg", ds)
	}
	got, err := s.GetLogout(ctx(t), "lo1")
	must(t, err, "GetLogout")
	wantEqual(t, norm(got).Participants, want, "stored snapshot with legs")
}
