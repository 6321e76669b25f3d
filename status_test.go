package slobridge

import (
	"testing"
	"time"

	"github.com/slobridge/slobridge/store"
)

func TestBuildStatus(t *testing.T) {
	t0 := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
	part := func(sid, key string, ch store.Channel) store.Participant {
		return store.Participant{SessionID: sid, Key: key, Kind: "http", AppID: key, Channels: ch}
	}
	lo := store.Logout{
		ID: "lo1", CreatedAt: t0, ExcludeKey: "http:init",
		Participants: []store.Participant{
			part("s1", "http:back", store.ChannelBack),
			part("s1", "http:front", store.ChannelFront),
			part("s1", "http:init", store.ChannelBack|store.ChannelFront),
			part("s1", "http:both", store.ChannelBack|store.ChannelFront),
			part("s2", "http:back", store.ChannelBack),
			part("s1", "http:lost", store.ChannelBack),
			part("s1", "http:mute", 0),
		},
	}
	ds := []store.Delivery{
		{ID: "d1", LogoutID: "lo1", Participant: lo.Participants[0], State: store.DeliveryDelivered, CreatedAt: t0,
			Attempts: []store.Attempt{{At: t0, Duration: time.Second, StatusCode: 500, Error: "boom"}, {At: t0.Add(2 * time.Second), Duration: time.Second, OK: true}},
			DoneAt:   t0.Add(3 * time.Second)},
		{ID: "d2", LogoutID: "lo1", Participant: lo.Participants[3], State: store.DeliveryRetrying, CreatedAt: t0,
			Attempts: []store.Attempt{{At: t0, Duration: time.Second, Error: "refused"}}, LastError: "refused"},
		{ID: "d3", LogoutID: "lo1", Participant: lo.Participants[4], State: store.DeliveryFailed, CreatedAt: t0, DoneAt: t0.Add(time.Hour), LastError: "gone"},
	}
	want := []ParticipantStatus{
		{SessionID: "s1", Key: "http:back", Channel: "back", State: "delivered", Attempts: 2, DeliveryID: "d1", UpdatedAt: t0.Add(3 * time.Second)},
		{SessionID: "s1", Key: "http:front", Channel: "front", State: StateFrontChannel, UpdatedAt: t0},
		{SessionID: "s1", Key: "http:init", Channel: "back+front", State: StateInitiator, UpdatedAt: t0},
		{SessionID: "s1", Key: "http:both", Channel: "back+front", State: "retrying", Attempts: 1, LastError: "refused", DeliveryID: "d2", UpdatedAt: t0.Add(time.Second)},
		{SessionID: "s2", Key: "http:back", Channel: "back", State: "failed", LastError: "gone", DeliveryID: "d3", UpdatedAt: t0.Add(time.Hour)},
		{SessionID: "s1", Key: "http:lost", Channel: "back", State: StateUnknown, UpdatedAt: t0},
		{SessionID: "s1", Key: "http:mute", Channel: "none", State: StateNone, UpdatedAt: t0},
	}
	got := buildStatus(lo, ds)
	if got.Done {
		t.Errorf("Done = true with a retrying delivery")
	}
	if len(got.Participants) != len(want) {
		t.Fatalf("got %d rows, want %d", len(got.Participants), len(want))
	}
	for i, w := range want {
		w.Kind, w.AppID = "http", w.Key
		if g := got.Participants[i]; g != w {
			t.Errorf("row %d:\n got %+v\nwant %+v", i, g, w)
		}
	}

	ds[1].State = store.DeliveryDelivered
	if !buildStatus(lo, ds).Done {
		t.Errorf("Done = false with every delivery final")
	}
	if !buildStatus(store.Logout{ID: "empty"}, nil).Done {
		t.Errorf("Done = false for a logout without deliveries")
	}
}
