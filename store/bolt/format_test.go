package bolt

import (
	"context"
	"encoding/binary"
	"encoding/json"
	"reflect"
	"strings"
	"testing"
	"time"

	bbolt "go.etcd.io/bbolt"

	"github.com/slobridge/slobridge/store"
)

// formatTimes are times the binary form must keep exactly: with and without
// nanoseconds, before 1970, and at the edges of what time.Time holds.
var formatTimes = []time.Time{
	time.Date(2026, 11, 27, 23, 59, 1, 123456789, time.UTC),
	time.Date(2026, 11, 27, 23, 59, 1, 0, time.FixedZone("CET", 3600)),
	time.Date(1969, 12, 31, 23, 59, 59, 999999999, time.UTC),
	time.Date(1, 1, 1, 0, 0, 0, 1, time.UTC),
	time.Date(9999, 12, 31, 23, 59, 59, 999999999, time.UTC),
	time.Unix(1<<62, 5).UTC(),
	time.Unix(-1<<62, 999).UTC(),
}

func TestSessionFormatRoundTrip(t *testing.T) {
	base := store.Session{
		ID: "sid-1", UserID: "alice", Upstream: "corp",
		NameID: store.NameID{Value: "alice@example.com", Format: "urn:oasis:names:tc:SAML:1.1:nameid-format:emailAddress",
			NameQualifier: "https://idp.example.com", SPNameQualifier: "https://bridge.example.com"},
		SessionIndex: "_si1",
		Attributes:   map[string][]string{"email": {"alice@example.com"}, "groups": {"a", "", "c"}, "x-custom": {"ü"}},
		AuthTime:     formatTimes[0].Add(-time.Minute), CreatedAt: formatTimes[0], ExpiresAt: formatTimes[0].Add(8 * time.Hour),
	}
	ended := base
	ended.EndedAt, ended.LogoutID = formatTimes[0].Add(time.Hour+7), "lo-1"
	ended.PriorLogins = []store.UpstreamLogin{
		{Upstream: "corp", NameID: store.NameID{Value: "old"}, SessionIndex: "_si0"},
		{Upstream: "other", NameID: store.NameID{Value: "x", Format: "urn:oasis:names:tc:SAML:2.0:nameid-format:transient"}},
	}
	tests := []struct {
		name string
		s    store.Session
	}{
		{"minimal", store.Session{ID: "m", UserID: "u"}},
		{"session ID inside strings", store.Session{ID: "sid-9", UserID: "sid-9", SessionIndex: "_sid-9_",
			Attributes: map[string][]string{"sid-9": {"a sid-9 b sid-9"}}}},
		{"saml login", base},
		{"ended with prior logins", ended},
	}
	for i, tm := range formatTimes {
		s := store.Session{ID: "t", UserID: "u", CreatedAt: tm, AuthTime: formatTimes[(i+1)%len(formatTimes)],
			ExpiresAt: formatTimes[(i+2)%len(formatTimes)], EndedAt: formatTimes[(i+3)%len(formatTimes)]}
		tests = append(tests, struct {
			name string
			s    store.Session
		}{"times " + tm.String(), s})
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			v := encodeSession(tt.s)
			if v[0] != formatV1 {
				t.Fatalf("first byte %#x, want version %#x", v[0], formatV1)
			}
			got, err := decodeSession(tt.s.ID, v)
			if err != nil {
				t.Fatal(err)
			}
			want := utcSession(tt.s)
			if !reflect.DeepEqual(got, want) {
				t.Fatalf("round trip:\n got %+v\nwant %+v", got, want)
			}
		})
	}
}

// utcSession returns s with its times in UTC, as the store returns them.
func utcSession(s store.Session) store.Session {
	for _, p := range []*time.Time{&s.AuthTime, &s.CreatedAt, &s.ExpiresAt, &s.EndedAt} {
		if !p.IsZero() {
			*p = p.UTC()
		}
	}
	return s
}

func TestParticipantFormatRoundTrip(t *testing.T) {
	tests := []struct {
		name string
		p    store.Participant
	}{
		{"oidc back-channel, key is kind:app", store.Participant{SessionID: "s", Key: "oidc:crm", Kind: "oidc", AppID: "crm", Name: "CRM",
			Channels: store.ChannelBack, BackChannelURL: "https://crm.example.com/bcl",
			Data: map[string]string{"backchannel_sid_required": "true", "sub": "alice", "alg": "ES256"}, JoinedAt: formatTimes[0]}},
		{"saml both channels", store.Participant{SessionID: "s", Key: "saml:https://sp.example.com/md", Kind: "saml", AppID: "https://sp.example.com/md",
			Channels: store.ChannelBack | store.ChannelFront, BackChannelURL: "https://sp/soap", FrontChannelURL: "https://sp/slo",
			Data:     map[string]string{"name_id_format": "urn:oasis:names:tc:SAML:2.0:nameid-format:persistent", "front_binding": "urn:oasis:names:tc:SAML:2.0:bindings:HTTP-Redirect", "empty": ""},
			JoinedAt: formatTimes[1]}},
		{"kind with a colon", store.Participant{SessionID: "s", Key: "a:b:c", Kind: "a:b", AppID: "c", JoinedAt: formatTimes[2]}},
		{"key not kind:app", store.Participant{SessionID: "s", Key: "custom", Kind: "http", AppID: "app", JoinedAt: formatTimes[3]}},
		{"empty kind", store.Participant{SessionID: "s", Key: ":x", AppID: "x"}},
		{"session ID inside strings", store.Participant{SessionID: "sid-7", Key: "oidc:wiki", Kind: "oidc", AppID: "wiki",
			Channels: store.ChannelFront, FrontChannelURL: "https://wiki/fcl?sid=sid-7&again=sid-7sid-7",
			Data: map[string]string{"sid-7": "sid-7", "x": "prefix-sid-7"}}},
		{"far times", store.Participant{SessionID: "s", Key: "k", Kind: "k2", JoinedAt: formatTimes[6]}},
	}
	for i, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			seq := uint64(i)*1000 + 1
			v := encodeParticipantValue(seq, tt.p)
			gotSeq, got, err := decodeParticipantValue(tt.p.SessionID, tt.p.Key, v)
			if err != nil {
				t.Fatal(err)
			}
			want := tt.p
			if !want.JoinedAt.IsZero() {
				want.JoinedAt = want.JoinedAt.UTC()
			}
			if gotSeq != seq || !reflect.DeepEqual(got, want) {
				t.Fatalf("round trip: got seq %d %+v\nwant seq %d %+v", gotSeq, got, seq, want)
			}
		})
	}
}

func TestFormatRejectsBadValues(t *testing.T) {
	good := encodeSession(store.Session{ID: "s", UserID: "u", CreatedAt: formatTimes[0], ExpiresAt: formatTimes[0].Add(time.Hour)})
	goodP := encodeParticipantValue(1, store.Participant{SessionID: "s", Key: "oidc:a", Kind: "oidc", AppID: "a", JoinedAt: formatTimes[0]})
	tests := []struct {
		name    string
		decode  func() error
		wantSub string
	}{
		{"session empty", func() error { _, err := decodeSession("s", nil); return err }, "empty"},
		{"session unknown version", func() error { _, err := decodeSession("s", append([]byte{0x7f}, good[1:]...)); return err }, "unknown format version 127"},
		{"session truncated", func() error { _, err := decodeSession("s", good[:len(good)-2]); return err }, "truncated"},
		{"session trailing bytes", func() error { _, err := decodeSession("s", append(good, 0)); return err }, "unexpected bytes"},
		{"session bad JSON", func() error { _, err := decodeSession("s", []byte("{nope")); return err }, "JSON"},
		{"participant unknown version", func() error {
			_, _, err := decodeParticipantValue("s", "oidc:a", append([]byte{0x02}, goodP[1:]...))
			return err
		}, "unknown format"},
		{"participant truncated", func() error { _, _, err := decodeParticipantValue("s", "oidc:a", goodP[:len(goodP)-1]); return err }, "truncated"},
		{"participant kind does not fit key", func() error { _, _, err := decodeParticipantValue("s", "oid", goodP); return err }, "does not fit key"},
		{"participant string reference out of range", func() error {
			e := encoder{b: []byte{formatV1}}
			e.uvarint(1)
			e.uvarint(0)
			e.uvarint(uint64(len(wellKnown)+1)<<1 | 1)
			_, _, err := decodeParticipantValue("s", "k", e.b)
			return err
		}, "unknown string reference"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := tt.decode()
			if err == nil || !strings.Contains(err.Error(), tt.wantSub) {
				t.Fatalf("got error %v, want one containing %q", err, tt.wantSub)
			}
		})
	}
}

// TestLegacyJSONValues shows that sessions and participants written as
// JSON by earlier builds still read back, in join order with participants
// written in the binary form after them, and that rewriting such a session
// stores the binary form.
func TestLegacyJSONValues(t *testing.T) {
	ctx := context.Background()
	db := openTemp(t)
	now := time.Date(2026, 11, 27, 12, 0, 0, 42, time.UTC)
	s := store.Session{ID: "legacy", UserID: "alice", Upstream: "corp", NameID: store.NameID{Value: "alice"},
		Attributes: map[string][]string{"email": {"a@example.com"}}, AuthTime: now, CreatedAt: now, ExpiresAt: now.Add(time.Hour)}
	old := store.Participant{SessionID: "legacy", Key: "oidc:crm", Kind: "oidc", AppID: "crm", Channels: store.ChannelBack,
		BackChannelURL: "https://crm/bcl", Data: map[string]string{"sub": "alice"}, JoinedAt: now}
	err := db.bolt.Update(func(tx *bbolt.Tx) error {
		raw, err := json.Marshal(s)
		if err != nil {
			return err
		}
		for _, e := range sessionIndexKeys(s) {
			if err := tx.Bucket([]byte(e.bucket)).Put(e.key, nil); err != nil {
				return err
			}
		}
		if err := tx.Bucket([]byte(bkSessions)).Put([]byte(s.ID), raw); err != nil {
			return err
		}
		pb := tx.Bucket([]byte(bkParticipants))
		seq, err := pb.NextSequence()
		if err != nil {
			return err
		}
		praw, err := json.Marshal(old)
		if err != nil {
			return err
		}
		return pb.Put(key(prefix(s.ID), []byte(old.Key)), append(binary.BigEndian.AppendUint64(nil, seq), praw...))
	})
	if err != nil {
		t.Fatal(err)
	}
	got, err := db.GetSession(ctx, s.ID)
	if err != nil {
		t.Fatalf("GetSession of a JSON value: %v", err)
	}
	if !reflect.DeepEqual(got, s) {
		t.Fatalf("JSON session:\n got %+v\nwant %+v", got, s)
	}
	second := store.Participant{SessionID: "legacy", Key: "saml:hr", Kind: "saml", AppID: "hr", Channels: store.ChannelFront, JoinedAt: now.Add(time.Second)}
	if added, err := db.AddParticipant(ctx, second); err != nil || !added {
		t.Fatalf("AddParticipant beside a JSON participant: added %v, %v", added, err)
	}
	ps, err := db.ListParticipants(ctx, s.ID)
	if err != nil {
		t.Fatalf("ListParticipants with a JSON participant: %v", err)
	}
	if want := []store.Participant{old, second}; !reflect.DeepEqual(ps, want) {
		t.Fatalf("participants:\n got %+v\nwant %+v", ps, want)
	}
	upd := store.SessionAuth{UserID: "alice", Upstream: "corp", NameID: store.NameID{Value: "alice2"}, AuthTime: now.Add(time.Minute), ExpiresAt: now.Add(2 * time.Hour)}
	if _, err := db.ReauthenticateSession(ctx, s.ID, upd, now.Add(time.Minute)); err != nil {
		t.Fatalf("ReauthenticateSession of a JSON session: %v", err)
	}
	err = db.bolt.View(func(tx *bbolt.Tx) error {
		if v := tx.Bucket([]byte(bkSessions)).Get([]byte(s.ID)); v[0] != formatV1 {
			t.Errorf("rewritten session starts with %#x, want version %#x", v[0], formatV1)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	found, err := db.FindSessionsByNameID(ctx, "corp", store.NameID{Value: "alice"}, "")
	if err != nil || len(found) != 1 || found[0].PriorLogins[0].NameID.Value != "alice" {
		t.Fatalf("FindSessionsByNameID by the prior (JSON-era) login: %+v, %v", found, err)
	}
}

// TestFormatSmallerThanJSON checks the point of the binary form on a
// session and participant as the SAML upstream and OIDC flows create them.
func TestFormatSmallerThanJSON(t *testing.T) {
	now := time.Date(2026, 11, 27, 12, 0, 0, 123456789, time.UTC)
	s := store.Session{ID: "s000000000000000000001", UserID: "user-00000001", Upstream: "corp-idp",
		NameID: store.NameID{Value: "user-00000001@example.com", Format: "urn:oasis:names:tc:SAML:1.1:nameid-format:emailAddress",
			NameQualifier: "https://idp.example.com/saml/metadata"},
		SessionIndex: "_si00000000000000000000000000001",
		Attributes:   map[string][]string{"email": {"user-00000001@example.com"}, "name": {"Test User 1"}, "groups": {"staff", "engineering"}},
		AuthTime:     now, CreatedAt: now, ExpiresAt: now.Add(8 * time.Hour)}
	p := store.Participant{SessionID: s.ID, Key: "oidc:crm", Kind: "oidc", AppID: "crm", Name: "CRM",
		Channels: store.ChannelBack | store.ChannelFront, BackChannelURL: "https://crm.example.com/oidc/backchannel-logout",
		FrontChannelURL: "https://crm.example.com/oidc/frontchannel-logout?iss=https%3A%2F%2Fsso.example.com&sid=" + s.ID,
		Data:            map[string]string{"backchannel_sid_required": "true", "sub": s.UserID, "alg": "RS256"}, JoinedAt: now}
	sj, _ := json.Marshal(s)
	pj, _ := json.Marshal(p)
	sb, pb := encodeSession(s), encodeParticipantValue(1, p)
	t.Logf("session: JSON %d B, binary %d B; participant: JSON %d B, binary %d B", len(sj), len(sb), len(pj)+8, len(pb))
	if strings.Contains(string(sb), s.ID) || strings.Contains(string(pb), s.ID) || strings.Contains(string(pb), p.Key) {
		t.Errorf("a value repeats the session ID or participant key its key holds")
	}
	if 2*len(sb) > len(sj) || 2*len(pb) > len(pj)+8 {
		t.Fatalf("binary form not under half of JSON: session %d/%d B, participant %d/%d B", len(sb), len(sj), len(pb), len(pj)+8)
	}
}

// FuzzDecodeValues feeds arbitrary bytes to the decoders: they must not
// panic, and whatever decodes must survive encoding and decoding again.
func FuzzDecodeValues(f *testing.F) {
	now := formatTimes[0]
	f.Add(encodeSession(store.Session{ID: "sid", UserID: "u", Upstream: "corp", NameID: store.NameID{Value: "v"},
		Attributes: map[string][]string{"email": {"a"}}, CreatedAt: now, ExpiresAt: now.Add(time.Hour),
		PriorLogins: []store.UpstreamLogin{{Upstream: "x"}}}))
	f.Add(encodeParticipantValue(3, store.Participant{SessionID: "sid", Key: "oidc:a", Kind: "oidc", AppID: "a",
		FrontChannelURL: "https://a/?sid=sid", Data: map[string]string{"sub": "u"}, JoinedAt: now}))
	f.Add([]byte(`{"id":"x","user_id":"u"}`))
	f.Add(encodeLogout(store.Logout{ID: "lo", SessionIDs: []string{"sid"}, CreatedAt: now,
		Participants: []store.Participant{{SessionID: "sid", Key: "k", Kind: "http", FrontChannelURL: "x?sid"}}}))
	f.Add(encodeDelivery(store.Delivery{ID: "d", State: store.DeliveryRetrying, CreatedAt: now,
		Participant: store.Participant{SessionID: "sid", Key: "saml:x", Kind: "saml", AppID: "x"},
		Attempts:    []store.Attempt{{At: now, OK: true, StatusCode: 200}}}))
	f.Fuzz(func(t *testing.T, v []byte) {
		if lo, err := decodeLogout("lo", v); err == nil {
			again, err := decodeLogout("lo", encodeLogout(lo))
			if err != nil || !reflect.DeepEqual(utcLogout(again), utcLogout(lo)) {
				t.Fatalf("logout does not survive a round trip: %+v / %+v, %v", lo, again, err)
			}
		}
		if dl, err := decodeDelivery("d", v); err == nil {
			again, err := decodeDelivery("d", encodeDelivery(dl))
			if err != nil || !reflect.DeepEqual(utcDelivery(again), utcDelivery(dl)) {
				t.Fatalf("delivery does not survive a round trip: %+v / %+v, %v", dl, again, err)
			}
		}
		if s, err := decodeSession("sid", v); err == nil {
			again, err := decodeSession("sid", encodeSession(s))
			if err != nil || !reflect.DeepEqual(utcSession(again), utcSession(s)) {
				t.Fatalf("session does not survive a round trip: %+v / %+v, %v", s, again, err)
			}
		}
		if seq, p, err := decodeParticipantValue("sid", "oidc:a", v); err == nil {
			seq2, again, err := decodeParticipantValue("sid", "oidc:a", encodeParticipantValue(seq, p))
			if err != nil || seq2 != seq || !reflect.DeepEqual(again, p) {
				t.Fatalf("participant does not survive a round trip: %+v / %+v, %v", p, again, err)
			}
		}
	})
}

func TestLogoutAndDeliveryFormatRoundTrip(t *testing.T) {
	now := formatTimes[0]
	parts := []store.Participant{
		{SessionID: "s1", Key: "oidc:crm", Kind: "oidc", AppID: "crm", Channels: store.ChannelBack | store.ChannelFront,
			BackChannelURL: "https://crm/bcl", FrontChannelURL: "https://crm/fcl?sid=s1", Data: map[string]string{"sub": "alice"}, JoinedAt: now},
		{SessionID: "s2", Key: "custom-key", Kind: "http", AppID: "hook", Name: "Hook", JoinedAt: formatTimes[2]},
	}
	logouts := []store.Logout{
		{ID: "lo-empty", Initiator: store.Initiator{Kind: store.InitiatorSystem}, CreatedAt: now},
		{ID: "lo-1", UserID: "alice", SessionIDs: []string{"s1", "s2"}, Initiator: store.Initiator{Kind: store.InitiatorRP, ID: "crm"},
			ExcludeKey: "oidc:crm", CreatedAt: now, Participants: parts},
	}
	for _, lo := range logouts {
		got, err := decodeLogout(lo.ID, encodeLogout(lo))
		if err != nil {
			t.Fatalf("%s: %v", lo.ID, err)
		}
		if !reflect.DeepEqual(got, utcLogout(lo)) {
			t.Fatalf("%s round trip:\n got %+v\nwant %+v", lo.ID, got, lo)
		}
	}
	deliveries := []store.Delivery{
		{ID: "d-new", LogoutID: "lo-1", Participant: parts[0], State: store.DeliveryPending, CreatedAt: now, NextAttemptAt: now},
		{ID: "d-done", LogoutID: "lo-1", Participant: parts[1], State: store.DeliveryDelivered, CreatedAt: now,
			NextAttemptAt: now.Add(time.Minute), LeaseOwner: "w1", LeaseUntil: now.Add(2 * time.Minute),
			Attempts: []store.Attempt{
				{At: now, Duration: 1500 * time.Millisecond, StatusCode: 503, Error: "receiver answered 503"},
				{At: now.Add(time.Minute + 7), Duration: 20 * time.Millisecond, OK: true, StatusCode: 200},
			}, LastError: "receiver answered 503", DoneAt: now.Add(time.Minute + 9)},
	}
	for _, dl := range deliveries {
		got, err := decodeDelivery(dl.ID, encodeDelivery(dl))
		if err != nil {
			t.Fatalf("%s: %v", dl.ID, err)
		}
		if !reflect.DeepEqual(got, utcDelivery(dl)) {
			t.Fatalf("%s round trip:\n got %+v\nwant %+v", dl.ID, got, dl)
		}
	}
	for name, decode := range map[string]func([]byte) error{
		"logout":   func(v []byte) error { _, err := decodeLogout("x", v); return err },
		"delivery": func(v []byte) error { _, err := decodeDelivery("x", v); return err },
	} {
		for _, bad := range [][]byte{nil, {0x09}, {formatV1}, []byte("{")} {
			if decode(bad) == nil {
				t.Errorf("%s %q decoded without error", name, bad)
			}
		}
	}
}

// utcLogout and utcDelivery return their argument with its times in UTC,
// as the store returns them.
func utcLogout(lo store.Logout) store.Logout {
	lo.CreatedAt = lo.CreatedAt.UTC()
	lo.Participants = append([]store.Participant(nil), lo.Participants...)
	for i := range lo.Participants {
		lo.Participants[i].JoinedAt = lo.Participants[i].JoinedAt.UTC()
	}
	return lo
}

func utcDelivery(dl store.Delivery) store.Delivery {
	for _, p := range []*time.Time{&dl.CreatedAt, &dl.NextAttemptAt, &dl.LeaseUntil, &dl.DoneAt, &dl.Participant.JoinedAt} {
		if !p.IsZero() {
			*p = p.UTC()
		}
	}
	dl.Attempts = append([]store.Attempt(nil), dl.Attempts...)
	for i := range dl.Attempts {
		dl.Attempts[i].At = dl.Attempts[i].At.UTC()
	}
	return dl
}

// TestLegacyJSONLogoutAndDelivery shows that a logout and a delivery an
// earlier build wrote as JSON still read back through the Store.
func TestLegacyJSONLogoutAndDelivery(t *testing.T) {
	ctx := context.Background()
	db := openTemp(t)
	now := time.Date(2026, 11, 27, 12, 0, 0, 0, time.UTC)
	p := store.Participant{SessionID: "s1", Key: "oidc:crm", Kind: "oidc", AppID: "crm", Channels: store.ChannelBack, JoinedAt: now}
	lo := store.Logout{ID: "lo-json", UserID: "alice", SessionIDs: []string{"s1"}, Initiator: store.Initiator{Kind: store.InitiatorAdmin, ID: "ops"},
		CreatedAt: now, Participants: []store.Participant{p}}
	dl := store.Delivery{ID: "d-json", LogoutID: lo.ID, Participant: p, State: store.DeliveryFailed, CreatedAt: now, NextAttemptAt: now,
		Attempts: []store.Attempt{{At: now, Duration: time.Second, Error: "refused"}}, LastError: "refused", DoneAt: now.Add(time.Hour)}
	err := db.bolt.Update(func(tx *bbolt.Tx) error {
		for bucket, kv := range map[string]struct {
			k string
			v any
		}{bkLogouts: {lo.ID, lo}, bkDeliveries: {dl.ID, dl}} {
			raw, err := json.Marshal(kv.v)
			if err != nil {
				return err
			}
			if err := tx.Bucket([]byte(bucket)).Put([]byte(kv.k), raw); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	gotLo, err := db.GetLogout(ctx, lo.ID)
	if err != nil || !reflect.DeepEqual(gotLo, lo) {
		t.Fatalf("GetLogout of a JSON value:\n got %+v, %v\nwant %+v", gotLo, err, lo)
	}
	err = db.bolt.View(func(tx *bbolt.Tx) error {
		got, err := getDelivery(tx, dl.ID)
		if err != nil {
			return err
		}
		if !reflect.DeepEqual(got, dl) {
			t.Errorf("JSON delivery:\n got %+v\nwant %+v", got, dl)
		}
		return nil
	})
	if err != nil {
		t.Fatalf("getDelivery of a JSON value: %v", err)
	}
}
