package storetest

import (
	"fmt"
	"sort"
	"sync"
	"testing"
	"time"

	"github.com/slobridge/slobridge/store"
)

// testParticipants covers AddParticipant and ListParticipants.
func testParticipants(t *testing.T, f Factory) {
	runAll(t, f, []subtest{
		{"AddIdempotent", testAddIdempotent},
		{"UnknownSession", testAddUnknownSession},
		{"EndedSession", testAddEndedSession},
		{"Parallel", testAddParallel},
	})
}

func testAddIdempotent(t *testing.T, s store.Store) {
	createSessions(t, s, newSession("s1", "alice", at(0)), newSession("s2", "alice", at(0)))
	p1 := newParticipant("s1", "app1", store.ChannelBack, at(time.Minute))
	p2 := newParticipant("s1", "app2", store.ChannelFront, at(2*time.Minute))
	p3 := newParticipant("s1", "app3", store.ChannelBack|store.ChannelFront, at(3*time.Minute))
	addParticipants(t, s, p1, p2, p3)

	again := p1
	again.Name, again.JoinedAt = "Renamed", at(4*time.Minute)
	added, err := s.AddParticipant(ctx(t), again)
	must(t, err, "AddParticipant again")
	if added {
		t.Fatal("AddParticipant of a present key: added = true")
	}
	// The same key in another session is another participant.
	addParticipants(t, s, newParticipant("s2", "app1", store.ChannelBack, at(5*time.Minute)))

	got, err := s.ListParticipants(ctx(t), "s1")
	must(t, err, "ListParticipants")
	wantEqual(t, norm(got), norm([]store.Participant{p1, p2, p3}), "participants in join order, first join kept")
	got, err = s.ListParticipants(ctx(t), "s2")
	must(t, err, "ListParticipants s2")
	if len(got) != 1 || got[0].SessionID != "s2" {
		t.Fatalf("participants of s2: %+v", got)
	}
}

func testAddUnknownSession(t *testing.T, s store.Store) {
	_, err := s.AddParticipant(ctx(t), newParticipant("nope", "app1", store.ChannelBack, at(0)))
	wantErr(t, err, store.ErrNotFound, "AddParticipant to unknown session")
}

func testAddEndedSession(t *testing.T, s store.Store) {
	createSessions(t, s, newSession("s1", "alice", at(0)))
	addParticipants(t, s, newParticipant("s1", "app1", store.ChannelBack, at(0)))
	endSessions(t, s, "lo1", store.LogoutSpec{SessionIDs: []string{"s1"}, Now: at(time.Minute)})
	for _, app := range []string{"app1", "app2"} {
		_, err := s.AddParticipant(ctx(t), newParticipant("s1", app, store.ChannelBack, at(2*time.Minute)))
		wantErr(t, err, store.ErrSessionEnded, "AddParticipant "+app+" to ended session")
	}
	got, err := s.ListParticipants(ctx(t), "s1")
	must(t, err, "ListParticipants")
	if len(got) != 1 {
		t.Fatalf("ended session has %d participants, want 1", len(got))
	}
}

// testAddParallel adds overlapping participants to two sessions from many
// goroutines: each key must be added exactly once.
func testAddParallel(t *testing.T, s store.Store) {
	const workers, apps = 32, 24
	sessions := []string{"s1", "s2"}
	for _, id := range sessions {
		createSessions(t, s, newSession(id, "alice", at(0)))
	}
	var mu sync.Mutex
	adds := map[string]int{}
	errs := make(chan error, workers)
	var wg sync.WaitGroup
	for w := range workers {
		wg.Go(func() {
			for i := range apps * len(sessions) {
				app := fmt.Sprintf("app%02d", (i/len(sessions)+w)%apps)
				sid := sessions[(i+w)%len(sessions)]
				added, err := s.AddParticipant(ctx(t), newParticipant(sid, app, store.ChannelBack, at(time.Duration(w)*time.Second)))
				if err != nil {
					errs <- err
					return
				}
				if added {
					mu.Lock()
					adds[sid+"/"+app]++
					mu.Unlock()
				}
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatalf("parallel AddParticipant: %v", err)
	}
	total := 0
	for _, sid := range sessions {
		got, err := s.ListParticipants(ctx(t), sid)
		must(t, err, "ListParticipants "+sid)
		var keys []string
		for _, p := range got {
			keys = append(keys, p.Key)
			if adds[sid+"/"+p.AppID] != 1 {
				t.Errorf("%s/%s reported added %d times", sid, p.AppID, adds[sid+"/"+p.AppID])
			}
		}
		sort.Strings(keys)
		for i := 1; i < len(keys); i++ {
			if keys[i] == keys[i-1] {
				t.Errorf("%s: participant %s stored twice", sid, keys[i])
			}
		}
		total += len(got)
	}
	if total != len(adds) || total != apps*len(sessions) {
		t.Fatalf("stored %d participants, %d reported added, want %d", total, len(adds), apps*len(sessions))
	}
}
