package storetest

import (
	"context"
	"errors"
	"fmt"
	"reflect"
	"sync/atomic"
	"testing"
	"time"

	"github.com/slobridge/slobridge/store"
)

// Factory makes the stores under test.
type Factory struct {
	// New returns a fresh, empty store; it should register its own cleanup
	// with t.Cleanup.
	New func(t *testing.T) store.Store
	// Reopen, when set, closes s and opens the same database again; the
	// suite then checks that everything survives.
	Reopen func(t *testing.T, s store.Store) store.Store
	// Crash, when set, stops s as a crash of the machine would — without
	// Close, losing whatever a crash may lose (bbolt: reopen without the
	// unsynced volatile file; PostgreSQL: its crash recovery empties the
	// UNLOGGED tables) — and opens the database again.
	Crash func(t *testing.T, s store.Store) store.Store
}

// at returns the suite's fixed "now" (2026-03-01 12:00:00 UTC) plus d;
// every time in the suite is one of these.
func at(d time.Duration) time.Time {
	return time.Date(2026, time.March, 1, 12, 0, 0, 0, time.UTC).Add(d)
}

// farPast and farFuture are expiries for PutRecord, which judges liveness
// at the backend's wall clock rather than at a time the suite passes.
func farPast() time.Time   { return time.Date(2001, time.January, 1, 0, 0, 0, 0, time.UTC) }
func farFuture() time.Time { return time.Date(2200, time.January, 1, 0, 0, 0, 0, time.UTC) }

// RunTests runs the whole conformance suite against the stores f makes.
func RunTests(t *testing.T, f Factory) {
	if f.New == nil {
		t.Fatal("storetest: Factory.New is nil")
	}
	groups := []struct {
		name string
		run  func(*testing.T, Factory)
	}{
		{"Sessions", testSessions},
		{"Reauthenticate", testReauthenticate},
		{"Participants", testParticipants},
		{"EndSessions", testEndSessions},
		{"Deliveries", testDeliveries},
		{"Clients", testClients},
		{"Records", testRecords},
		{"Volatile", testVolatile},
		{"Replay", testReplay},
		{"Keys", testKeys},
		{"Sweep", testSweep},
		{"Copies", testCopies},
		{"Reopen", testReopen},
	}
	for _, g := range groups {
		t.Run(g.name, func(t *testing.T) { g.run(t, f) })
	}
}

// subtest is one check that gets a fresh store.
type subtest struct {
	name string
	run  func(t *testing.T, s store.Store)
}

// runAll runs each subtest against its own fresh store.
func runAll(t *testing.T, f Factory, tests []subtest) {
	t.Helper()
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) { tc.run(t, f.New(t)) })
	}
}

// ctx is the context of the suite's calls.
func ctx(t *testing.T) context.Context { return t.Context() }

// must fails the test on err.
func must(t *testing.T, err error, what string) {
	t.Helper()
	if err != nil {
		t.Fatalf("%s: %v", what, err)
	}
}

// wantErr fails unless errors.Is(err, target).
func wantErr(t *testing.T, err, target error, what string) {
	t.Helper()
	if !errors.Is(err, target) {
		t.Fatalf("%s: got error %v, want %v", what, err, target)
	}
}

// wantEqual fails unless got and want are deeply equal.
func wantEqual(t *testing.T, got, want any, what string) {
	t.Helper()
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("%s:\n got: %+v\nwant: %+v", what, got, want)
	}
}

// idGen returns a generator of unique IDs with the given prefix.
func idGen(prefix string) func() string {
	var n atomic.Int64
	return func() string { return fmt.Sprintf("%s-%03d", prefix, n.Add(1)) }
}

// newSession returns a session of user created at created, expiring 8h
// later, with a SAML NameID at upstream "idp".
func newSession(id, user string, created time.Time) store.Session {
	return store.Session{
		ID:     id,
		UserID: user,
		// The upstream's identifiers for this login.
		Upstream: "idp",
		NameID: store.NameID{
			Value:           user + "@example.org",
			Format:          "urn:oasis:names:tc:SAML:1.1:nameid-format:emailAddress",
			NameQualifier:   "https://idp.example.org",
			SPNameQualifier: "https://bridge.example.org",
		},
		SessionIndex: "si-" + id,
		Attributes:   map[string][]string{"email": {user + "@example.org"}, "groups": {"staff", "ops"}},
		AuthTime:     created.Add(-time.Minute),
		CreatedAt:    created,
		ExpiresAt:    created.Add(8 * time.Hour),
	}
}

// newParticipant returns an OIDC participant of session sid for app.
func newParticipant(sid, app string, ch store.Channel, joined time.Time) store.Participant {
	p := store.Participant{
		SessionID: sid,
		Key:       "oidc:" + app,
		Kind:      "oidc",
		AppID:     app,
		Name:      "App " + app,
		Channels:  ch,
		Data:      map[string]string{"sid_required": "true"},
		JoinedAt:  joined,
	}
	if ch.Has(store.ChannelBack) {
		p.BackChannelURL = "https://" + app + ".example.org/backchannel-logout"
	}
	if ch.Has(store.ChannelFront) {
		p.FrontChannelURL = "https://" + app + ".example.org/frontchannel-logout"
	}
	return p
}

// createSessions stores every session or fails.
func createSessions(t *testing.T, s store.Store, ss ...store.Session) {
	t.Helper()
	for _, se := range ss {
		must(t, s.CreateSession(ctx(t), se), "CreateSession "+se.ID)
	}
}

// addParticipants adds every participant (each must be new) or fails.
func addParticipants(t *testing.T, s store.Store, ps ...store.Participant) {
	t.Helper()
	for _, p := range ps {
		added, err := s.AddParticipant(ctx(t), p)
		must(t, err, "AddParticipant "+p.Key)
		if !added {
			t.Fatalf("AddParticipant %s: added = false for a new participant", p.Key)
		}
	}
}

// endSessions runs EndSessions with a fresh logout and delivery IDs.
func endSessions(t *testing.T, s store.Store, logoutID string, spec store.LogoutSpec) (store.Logout, []store.Delivery) {
	t.Helper()
	spec.LogoutID = logoutID
	if spec.NewDeliveryID == nil {
		spec.NewDeliveryID = idGen(logoutID + "-d")
	}
	if spec.Initiator.Kind == "" {
		spec.Initiator = store.Initiator{Kind: store.InitiatorUser}
	}
	lo, ds, err := s.EndSessions(ctx(t), spec)
	must(t, err, "EndSessions "+logoutID)
	return norm(lo), norm(ds)
}

// getSession fetches one session or fails.
func getSession(t *testing.T, s store.Store, id string) store.Session {
	t.Helper()
	got, err := s.GetSession(ctx(t), id)
	must(t, err, "GetSession "+id)
	return norm(got)
}

// sessionIDs returns the IDs of ss in order.
func sessionIDs(ss []store.Session) []string {
	var out []string
	for _, s := range ss {
		out = append(out, s.ID)
	}
	return out
}

// deliveryIDs returns the IDs of ds in order.
func deliveryIDs(ds []store.Delivery) []string {
	var out []string
	for _, d := range ds {
		out = append(out, d.ID)
	}
	return out
}

// isNotFound reports errors.Is(err, store.ErrNotFound).
func isNotFound(err error) bool { return errors.Is(err, store.ErrNotFound) }

// isReplay reports errors.Is(err, store.ErrReplay).
func isReplay(err error) bool { return errors.Is(err, store.ErrReplay) }
