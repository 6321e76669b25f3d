package storetest

import (
	"testing"
	"time"

	"github.com/slobridge/slobridge/store"
)

// testCopies checks that values passed in and handed out are copies:
// changing them afterwards does not change the store.
func testCopies(t *testing.T, f Factory) {
	runAll(t, f, []subtest{
		{"Sessions", testCopySessions},
		{"LogoutsAndDeliveries", testCopyLogouts},
		{"ClientsRecordsKeys", testCopyBytes},
	})
}

func testCopySessions(t *testing.T, s store.Store) {
	se := newSession("s1", "alice", at(0))
	want := norm(se)
	createSessions(t, s, se)
	se.Attributes["email"][0] = "changed-input"
	se.Attributes["new"] = []string{"x"}

	got := getSession(t, s, "s1")
	wantEqual(t, got, want, "session after changing the input")
	raw, err := s.GetSession(ctx(t), "s1")
	must(t, err, "GetSession")
	raw.Attributes["email"][0] = "changed-output"
	delete(raw.Attributes, "groups")
	wantEqual(t, getSession(t, s, "s1"), want, "session after changing a returned one")

	p := newParticipant("s1", "app1", store.ChannelBack, at(0))
	wantP := norm(p)
	addParticipants(t, s, p)
	p.Data["sid_required"] = "changed-input"
	ps, err := s.ListParticipants(ctx(t), "s1")
	must(t, err, "ListParticipants")
	wantEqual(t, norm(ps), []store.Participant{wantP}, "participant after changing the input")
	ps[0].Data["sid_required"] = "changed-output"
	ps, err = s.ListParticipants(ctx(t), "s1")
	must(t, err, "ListParticipants")
	wantEqual(t, norm(ps), []store.Participant{wantP}, "participant after changing a returned one")

	list, err := s.ListSessionsByUser(ctx(t), "alice")
	must(t, err, "ListSessionsByUser")
	list[0].Attributes["email"][0] = "changed-list"
	wantEqual(t, getSession(t, s, "s1"), want, "session after changing a listed one")
}

func testCopyLogouts(t *testing.T, s store.Store) {
	createSessions(t, s, newSession("s1", "alice", at(0)))
	addParticipants(t, s, newParticipant("s1", "app1", store.ChannelBack, at(0)))
	lo, ds, err := s.EndSessions(ctx(t), store.LogoutSpec{LogoutID: "lo1", SessionIDs: []string{"s1"},
		Initiator: store.Initiator{Kind: store.InitiatorUser}, NewDeliveryID: idGen("d"), Now: at(time.Minute)})
	must(t, err, "EndSessions")
	wantLo, wantDs := norm(lo), norm(ds)
	lo.SessionIDs[0] = "changed"
	lo.Participants[0].Data["sid_required"] = "changed"
	ds[0].Participant.Data["sid_required"] = "changed"

	got, err := s.GetLogout(ctx(t), "lo1")
	must(t, err, "GetLogout")
	wantEqual(t, norm(got), wantLo, "logout after changing the returned one")
	got.Participants[0].Key = "changed"
	got2, err := s.GetLogout(ctx(t), "lo1")
	must(t, err, "GetLogout")
	wantEqual(t, norm(got2), wantLo, "logout after changing a fetched one")

	claimed := claim(t, s, "w1", at(time.Minute), time.Minute, 1)
	a := store.Attempt{At: at(time.Minute), Error: "boom"}
	d, err := s.CompleteAttempt(ctx(t), claimed[0].ID, "w1", a, store.DeliveryRetrying, at(time.Hour))
	must(t, err, "CompleteAttempt")
	d.Attempts[0].Error = "changed"
	stored, err := s.GetDelivery(ctx(t), wantDs[0].ID)
	must(t, err, "GetDelivery")
	if stored.Attempts[0].Error != "boom" || stored.Participant.Data["sid_required"] != "true" {
		t.Fatalf("stored delivery changed through a returned value: %+v", stored)
	}
}

func testCopyBytes(t *testing.T, s store.Store) {
	c := newClient("c1", "oidc")
	must(t, s.PutClient(ctx(t), c), "PutClient")
	c.Metadata[0] = 'X'
	got, err := s.GetClient(ctx(t), "c1")
	must(t, err, "GetClient")
	wantEqual(t, string(got.Metadata), string(newClient("c1", "oidc").Metadata), "client metadata after changing the input")
	got.Metadata[0] = 'Y'
	again, err := s.GetClient(ctx(t), "c1")
	must(t, err, "GetClient")
	wantEqual(t, string(again.Metadata), string(newClient("c1", "oidc").Metadata), "client metadata after changing a returned one")

	r := store.Record{Namespace: "code", Key: "k1", Value: []byte("value"), ExpiresAt: farFuture()}
	must(t, s.PutRecord(ctx(t), r), "PutRecord")
	r.Value[0] = 'X'
	rec, err := s.GetRecord(ctx(t), "code", "k1", at(0))
	must(t, err, "GetRecord")
	wantEqual(t, string(rec.Value), "value", "record after changing the input")
	rec.Value[0] = 'Y'
	rec, err = s.TakeRecord(ctx(t), "code", "k1", at(0))
	must(t, err, "TakeRecord")
	wantEqual(t, string(rec.Value), "value", "record after changing a returned one")

	k := newKey("k1", "oidc", at(0))
	want := norm(k)
	must(t, s.PutKey(ctx(t), k), "PutKey")
	k.PrivatePEM[0] = 'X'
	keys, err := s.ListKeys(ctx(t), "oidc")
	must(t, err, "ListKeys")
	wantEqual(t, norm(keys), []store.Key{want}, "key after changing the input")
}
