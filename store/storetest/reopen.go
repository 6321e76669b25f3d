package storetest

import (
	"testing"
	"time"

	"github.com/slobridge/slobridge/store"
)

// testReopen stores one of everything, closes and reopens the database,
// and checks that everything (and every index) survived.
func testReopen(t *testing.T, f Factory) {
	if f.Reopen == nil {
		t.Skip("storetest: Factory.Reopen not set: the backend cannot reopen its database")
	}
	s := f.New(t)
	createSessions(t, s, newSession("s1", "alice", at(0)), newSession("s2", "alice", at(time.Minute)))
	addParticipants(t, s,
		newParticipant("s1", "app1", store.ChannelBack, at(0)),
		newParticipant("s2", "app2", store.ChannelBack, at(0)))
	lo, ds := endSessions(t, s, "lo1", store.LogoutSpec{SessionIDs: []string{"s1"}, Now: at(time.Hour)})
	c := newClient("c1", "oidc")
	must(t, s.PutClient(ctx(t), c), "PutClient")
	r := store.Record{Namespace: "code", Key: "k1", Value: []byte("v"), ExpiresAt: farFuture()}
	must(t, s.PutRecord(ctx(t), r), "PutRecord")
	must(t, s.CheckReplay(ctx(t), "saml", "id-1", at(2*time.Hour), at(0)), "CheckReplay")
	k := newKey("key1", "oidc", at(0))
	must(t, s.PutKey(ctx(t), k), "PutKey")
	upd := store.SessionAuth{UserID: "alice", Upstream: "idp", NameID: store.NameID{Value: "alice-2"},
		SessionIndex: "si-s2-again", AuthTime: at(time.Hour), ExpiresAt: at(20 * time.Hour)}
	_, err := s.ReauthenticateSession(ctx(t), "s2", upd, at(time.Hour))
	must(t, err, "ReauthenticateSession")
	s2 := getSession(t, s, "s2")

	s = f.Reopen(t, s)

	wantEqual(t, getSession(t, s, "s2"), s2, "session after reopen")
	byUser, err := s.ListSessionsByUser(ctx(t), "alice")
	must(t, err, "ListSessionsByUser")
	wantEqual(t, sessionIDs(byUser), []string{"s1", "s2"}, "sessions by user after reopen")
	byNameID, err := s.FindSessionsByNameID(ctx(t), "idp", s2.NameID, "si-s2-again")
	must(t, err, "FindSessionsByNameID")
	wantEqual(t, sessionIDs(byNameID), []string{"s2"}, "sessions by NameID after reopen")
	byNameID, err = s.FindSessionsByNameID(ctx(t), "idp", newSession("s2", "alice", at(0)).NameID, "si-s2")
	must(t, err, "FindSessionsByNameID of the prior login")
	wantEqual(t, sessionIDs(byNameID), []string{"s2"}, "sessions by prior NameID after reopen")
	n, err := s.CountActiveSessions(ctx(t), at(10*time.Hour))
	must(t, err, "CountActiveSessions")
	if n != 1 {
		t.Fatalf("CountActiveSessions after reopen = %d, want 1 (s2, re-authenticated until +20h)", n)
	}
	ps, err := s.ListParticipants(ctx(t), "s2")
	must(t, err, "ListParticipants")
	if len(ps) != 1 || ps[0].AppID != "app2" {
		t.Fatalf("participants after reopen: %+v", ps)
	}
	gotLo, err := s.GetLogout(ctx(t), "lo1")
	must(t, err, "GetLogout")
	wantEqual(t, norm(gotLo), lo, "logout after reopen")
	wantNextDue(t, s, at(time.Hour))
	claimed := claim(t, s, "w1", at(time.Hour), time.Minute, 10)
	wantEqual(t, deliveryIDs(claimed), deliveryIDs(ds), "claimable deliveries after reopen")
	gotC, err := s.GetClient(ctx(t), "c1")
	must(t, err, "GetClient")
	wantEqual(t, norm(gotC), norm(c), "client after reopen")
	wantErr(t, s.CheckReplay(ctx(t), "saml", "id-1", at(2*time.Hour), at(time.Minute)), store.ErrReplay, "replay after reopen")
	gotR, err := s.TakeRecord(ctx(t), "code", "k1", at(0))
	must(t, err, "TakeRecord")
	wantEqual(t, norm(gotR), norm(r), "record after reopen")
	keys, err := s.ListKeys(ctx(t), "oidc")
	must(t, err, "ListKeys")
	wantEqual(t, norm(keys), []store.Key{norm(k)}, "keys after reopen")
	must(t, s.Ping(ctx(t)), "Ping after reopen")
}
