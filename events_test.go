package slobridge

import (
	"context"
	"fmt"
	"path/filepath"
	"testing"
	"time"

	"github.com/slobridge/slobridge/store"
)

// TestHubDropsEchoesOfOwnEvents feeds the hub sequences of own events and
// change-feed entries and checks which entries reach a subscriber as
// remote events.
func TestHubDropsEchoesOfOwnEvents(t *testing.T) {
	t0 := time.Date(2026, 11, 28, 0, 0, 0, 0, time.UTC)
	newLogout := Change{LogoutID: "lo1"}
	delivered := Change{LogoutID: "lo1", DeliveryID: "d1", State: store.DeliveryDelivered}
	retrying := Change{LogoutID: "lo1", DeliveryID: "d1", State: store.DeliveryRetrying}
	foreign := Change{LogoutID: "lo2"}
	type step struct {
		own  *Change // recorded as published here at t0+after
		feed *Change // read from the feed at t0+after
		// after is the time of the step since t0.
		after time.Duration
		// published is whether a feed step reaches the subscriber.
		published bool
	}
	own := func(c Change, after time.Duration) step { return step{own: &c, after: after} }
	feed := func(c Change, after time.Duration, published bool) step {
		return step{feed: &c, after: after, published: published}
	}
	tests := []struct {
		name  string
		steps []step
	}{
		{"echo of a new logout is dropped", []step{own(newLogout, 0), feed(newLogout, time.Millisecond, false)}},
		{"change of another replica is published", []step{own(newLogout, 0), feed(foreign, time.Millisecond, true)}},
		{"same delivery in another state is not an echo", []step{own(retrying, 0), feed(delivered, time.Millisecond, true)}},
		{"each own event drops one echo", []step{
			own(retrying, 0), own(retrying, time.Second),
			feed(retrying, 2*time.Second, false), feed(retrying, 2*time.Second, false),
			feed(retrying, 2*time.Second, true),
		}},
		{"echo arriving before the event is published", []step{feed(delivered, 0, true), own(delivered, time.Millisecond)}},
		{"echo older than the record is published", []step{own(delivered, 0), feed(delivered, ownEventTTL+time.Second, true)}},
		{"record is pruned after its lifetime", []step{
			own(retrying, 0), own(newLogout, ownEventTTL+time.Second),
			feed(retrying, ownEventTTL+2*time.Second, true), feed(newLogout, ownEventTTL+2*time.Second, false),
		}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			h := newHub()
			ch := make(chan Event, 16)
			h.subs[0] = &subscriber{ch: ch}
			for i, s := range tc.steps {
				now := t0.Add(s.after)
				if s.own != nil {
					h.mu.Lock()
					h.record(*s.own, now)
					h.mu.Unlock()
					continue
				}
				got := h.publishChange(*s.feed, now)
				if got != s.published {
					t.Fatalf("step %d: feed %+v published %v, want %v", i, *s.feed, got, s.published)
				}
				if !got {
					continue
				}
				select {
				case ev := <-ch:
					want := Event{LogoutID: s.feed.LogoutID, Remote: s.feed}
					if ev.LogoutID != want.LogoutID || ev.Remote == nil || *ev.Remote != *s.feed || ev.Logout != nil || ev.Delivery != nil {
						t.Fatalf("step %d: event %+v, want %+v", i, ev, want)
					}
				default:
					t.Fatalf("step %d: published change did not reach the subscriber", i)
				}
			}
			if len(ch) != 0 {
				t.Fatalf("%d events left, want none", len(ch))
			}
		})
	}
}

// TestHubRecordIsBounded checks that the record of own events does not
// grow past maxOwnEvents.
func TestHubRecordIsBounded(t *testing.T) {
	h := newHub()
	now := time.Now()
	for i := range maxOwnEvents + 10 {
		h.record(Change{LogoutID: "lo", DeliveryID: string(rune(i))}, now)
	}
	if n := len(h.own); n > maxOwnEvents {
		t.Fatalf("record holds %d changes, bound is %d", n, maxOwnEvents)
	}
}

// TestFollowChangesTwoEngines runs two engines on one store, as two
// replicas on one database, and plays the change feed to engine A by
// hand: A's subscriber sees A's own logout once, sees B's logout as a
// remote event, and A's idle workers deliver B's logout as soon as its
// change arrives, not at their next poll (an hour away).
func TestFollowChangesTwoEngines(t *testing.T) {
	st := openStore(t, t.TempDir()+"/slobridge.db")
	rc := newReceiver(t, nil)
	optsA := testOptions(st)
	optsA.PollInterval = time.Hour
	optsA.Owner = "replica-a"
	a, _ := runEngine(t, optsA)
	optsB := testOptions(st)
	optsB.Owner = "replica-b"
	b, err := NewEngine(optsB) // its workers do not run: A must deliver
	if err != nil {
		t.Fatal(err)
	}
	events, unsubscribe := a.Subscribe(64)
	defer unsubscribe()
	feed := make(chan Change, 16)
	ctx, cancel := context.WithCancel(context.Background())
	followed := make(chan struct{})
	go func() { defer close(followed); a.FollowChanges(ctx, feed) }()
	defer func() { cancel(); <-followed }()

	next := func(what string) Event {
		t.Helper()
		select {
		case ev := <-events:
			return ev
		case <-time.After(waitTimeout):
			t.Fatalf("no event for %s", what)
			return Event{}
		}
	}
	// A change of an unknown logout is remote; once A's subscriber has
	// it, A is following.
	feed <- Change{LogoutID: "elsewhere"}
	if ev := next("the first change"); ev.Remote == nil || ev.LogoutID != "elsewhere" {
		t.Fatalf("first event %+v, want the remote change of logout elsewhere", ev)
	}

	// A's own logout: one local event with the Logout, its echo dropped.
	sa := newSession(t, a, "alice", backParticipant("app", rc.srv.URL))
	loA, err := a.Logout(context.Background(), LogoutRequest{SessionIDs: []string{sa.ID}, Initiator: store.Initiator{Kind: store.InitiatorUser}})
	if err != nil {
		t.Fatal(err)
	}
	if ev := next("A's logout"); ev.Remote != nil || ev.Logout == nil || ev.LogoutID != loA.ID {
		t.Fatalf("event %+v, want A's own logout %s", ev, loA.ID)
	}
	ev := next("A's delivery")
	if ev.Remote != nil || ev.Delivery == nil || ev.Delivery.State != store.DeliveryDelivered {
		t.Fatalf("event %+v, want A's delivery", ev)
	}
	feed <- Change{LogoutID: loA.ID}
	feed <- Change{LogoutID: loA.ID, DeliveryID: ev.Delivery.ID, State: store.DeliveryDelivered}

	// B's logout reaches A as a remote event and wakes A's workers.
	sb := newSession(t, b, "bob", backParticipant("app", rc.srv.URL))
	loB, err := b.Logout(context.Background(), LogoutRequest{SessionIDs: []string{sb.ID}, Initiator: store.Initiator{Kind: store.InitiatorAdmin}})
	if err != nil {
		t.Fatal(err)
	}
	feed <- Change{LogoutID: loB.ID}
	if ev := next("B's logout"); ev.Remote == nil || *ev.Remote != (Change{LogoutID: loB.ID}) || ev.Logout != nil {
		t.Fatalf("event %+v, want B's logout %s as a remote event (echoes of A's own changes dropped)", ev, loB.ID)
	}
	st2 := waitStatus(t, a, loB.ID, "A to deliver B's logout", allDone)
	if got := row(t, st2, "http:app").State; got != string(store.DeliveryDelivered) {
		t.Fatalf("B's delivery is %s, want delivered by A", got)
	}
	if n := len(rc.got()); n != 2 {
		t.Fatalf("receiver got %d requests, want 2 (one per logout)", n)
	}
}

// TestSubscriberToldWhenItFellBehind: a subscriber whose buffer is full
// loses events, and is told so (an Event with Lagged) before the next one
// it gets, so that it re-reads the store instead of missing a change.
func TestSubscriberToldWhenItFellBehind(t *testing.T) {
	e, err := NewEngine(testOptions(openStore(t, filepath.Join(t.TempDir(), "h.db"))))
	if err != nil {
		t.Fatal(err)
	}
	ch, stop := e.Subscribe(2)
	defer stop()
	for i := range 10 {
		e.hub.publish(Event{LogoutID: fmt.Sprint("lo-", i)})
	}
	if a, b := <-ch, <-ch; a.LogoutID != "lo-0" || b.LogoutID != "lo-1" {
		t.Fatalf("first events %q %q", a.LogoutID, b.LogoutID)
	}
	e.hub.publish(Event{LogoutID: "lo-after"})
	if ev := <-ch; !ev.Lagged || ev.LogoutID != "" {
		t.Fatalf("after falling behind got %+v, want a Lagged event", ev)
	}
	if ev := <-ch; ev.LogoutID != "lo-after" {
		t.Fatalf("then got %+v, want lo-after", ev)
	}
}
