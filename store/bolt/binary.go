package bolt

import (
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"slices"
	"strings"
	"time"

	"github.com/slobridge/slobridge/store"
)

// The hot records — sessions and participants, written at every login,
// logouts and deliveries, written at every logout and delivery attempt —
// are stored in a small versioned binary form rather than JSON: the first
// byte of the value is the format version (formatV1). Values written by
// earlier builds as JSON (a session value starting with '{'; a participant
// value of an 8-byte join sequence followed by JSON; a logout or delivery
// starting with '{') still decode; a session or delivery is rewritten in
// the binary form when it next changes.
//
// Encoding of the fields, in order:
//   - unsigned integers: uvarint; signed: zigzag varint;
//   - strings: uvarint h then, when h is even, h/2 bytes of the string;
//     when h is 1, two strings follow and the string is the first, the
//     session ID, then the second (an OIDC front-channel logout URL carries
//     the sid) — the session ID of the key, or inside a logout or delivery
//     the participant's own; when h is odd and above 1, the string is entry
//     h/2-1 of wellKnown (protocol constants such as SAML NameID formats
//     and bindings);
//   - times: uvarint tag 0 (zero time), 1 (seconds follow) or 2 (seconds
//     and nanoseconds follow), then the zigzag difference in Unix seconds
//     from a base time and, for tag 2, the zigzag difference in
//     nanoseconds of the second. Times decode in UTC.
//   - maps: uvarint count, then key and value(s) in key order.
//
// Nothing the key already holds is repeated in the value: a session's ID,
// a participant's SessionID and Key, and a participant's Kind and AppID
// when Key is Kind ":" AppID (the convention of the protocol packages).
const formatV1 = 0x01

// wellKnown are strings that values refer to by index. Append only: the
// index of an entry is part of the stored format.
var wellKnown = []string{
	"urn:oasis:names:tc:SAML:1.1:nameid-format:unspecified",
	"urn:oasis:names:tc:SAML:1.1:nameid-format:emailAddress",
	"urn:oasis:names:tc:SAML:1.1:nameid-format:X509SubjectName",
	"urn:oasis:names:tc:SAML:1.1:nameid-format:WindowsDomainQualifiedName",
	"urn:oasis:names:tc:SAML:2.0:nameid-format:kerberos",
	"urn:oasis:names:tc:SAML:2.0:nameid-format:entity",
	"urn:oasis:names:tc:SAML:2.0:nameid-format:persistent",
	"urn:oasis:names:tc:SAML:2.0:nameid-format:transient",
	"urn:oasis:names:tc:SAML:2.0:bindings:HTTP-Redirect",
	"urn:oasis:names:tc:SAML:2.0:bindings:HTTP-POST",
	"urn:oasis:names:tc:SAML:2.0:bindings:SOAP",
	"urn:oasis:names:tc:SAML:2.0:bindings:HTTP-Artifact",
	"true",
	"false",
	"oidc",
	"saml",
	"http",
	"ssf",
	"backchannel_sid_required",
	"sub",
	"alg",
	"RS256",
	"ES256",
	"name_id",
	"name_id_format",
	"name_qualifier",
	"sp_name_qualifier",
	"session_index",
	"front_binding",
	"front_location",
	"front_channel_top_level",
	"frame_origins",
	"email",
	"name",
	"groups",
	"pending",
	"retrying",
	"delivered",
	"failed",
	"user",
	"rp",
	"sp",
	"upstream",
	"admin",
	"system",
}

// wellKnownIndex maps each wellKnown string to its index.
var wellKnownIndex = func() map[string]int {
	m := make(map[string]int, len(wellKnown))
	for i, s := range wellKnown {
		m[s] = i
	}
	return m
}()

// encoder appends the binary form to b; sid is the session ID of the
// record's key, spliced out of the strings that contain it.
type encoder struct {
	b   []byte
	sid string
}

func (e *encoder) uvarint(n uint64) { e.b = binary.AppendUvarint(e.b, n) }
func (e *encoder) varint(n int64)   { e.b = binary.AppendVarint(e.b, n) }

func (e *encoder) str(s string) {
	if i, ok := wellKnownIndex[s]; ok {
		e.uvarint(uint64(i+1)<<1 | 1)
		return
	}
	if e.sid != "" {
		if before, after, ok := strings.Cut(s, e.sid); ok {
			e.uvarint(1)
			e.str(before)
			e.str(after)
			return
		}
	}
	e.uvarint(uint64(len(s)) << 1)
	e.b = append(e.b, s...)
}

// time encodes t relative to base (the seconds subtract with wrap-around,
// so every representable time round-trips).
func (e *encoder) time(t, base time.Time) {
	if t.IsZero() {
		e.uvarint(0)
		return
	}
	var bs, bn int64
	if !base.IsZero() {
		bs, bn = base.Unix(), int64(base.Nanosecond())
	}
	ds := int64(uint64(t.Unix()) - uint64(bs))
	dn := int64(t.Nanosecond()) - bn
	if dn == 0 {
		e.uvarint(1)
		e.varint(ds)
		return
	}
	e.uvarint(2)
	e.varint(ds)
	e.varint(dn)
}

func (e *encoder) strMap(m map[string]string) {
	e.uvarint(uint64(len(m)))
	for _, k := range slices.Sorted(maps.Keys(m)) {
		e.str(k)
		e.str(m[k])
	}
}

func (e *encoder) strsMap(m map[string][]string) {
	e.uvarint(uint64(len(m)))
	for _, k := range slices.Sorted(maps.Keys(m)) {
		e.str(k)
		e.uvarint(uint64(len(m[k])))
		for _, v := range m[k] {
			e.str(v)
		}
	}
}

func (e *encoder) login(l store.UpstreamLogin) {
	e.str(l.Upstream)
	e.nameID(l.NameID)
	e.str(l.SessionIndex)
}

func (e *encoder) nameID(n store.NameID) {
	e.str(n.Value)
	e.str(n.Format)
	e.str(n.NameQualifier)
	e.str(n.SPNameQualifier)
}

// errTruncated reports a value that ends before its last field.
var errTruncated = errors.New("value truncated")

// decoder reads the binary form; the first error sticks and later reads
// return zero values. Strings are copied out of b. sid is the session ID
// of the record's key.
type decoder struct {
	b   []byte
	sid string
	err error
}

func (d *decoder) fail(err error) {
	if d.err == nil {
		d.err = err
	}
}

func (d *decoder) uvarint() uint64 {
	if d.err != nil {
		return 0
	}
	n, k := binary.Uvarint(d.b)
	if k <= 0 {
		d.fail(errTruncated)
		return 0
	}
	d.b = d.b[k:]
	return n
}

func (d *decoder) varint() int64 {
	if d.err != nil {
		return 0
	}
	n, k := binary.Varint(d.b)
	if k <= 0 {
		d.fail(errTruncated)
		return 0
	}
	d.b = d.b[k:]
	return n
}

// count reads a length and checks it against the bytes left (every item
// takes at least one byte), so a corrupt value cannot make a huge slice.
func (d *decoder) count() int {
	n := d.uvarint()
	if n > uint64(len(d.b)) {
		d.fail(errTruncated)
		return 0
	}
	return int(n)
}

func (d *decoder) str() string {
	h := d.uvarint()
	if d.err != nil {
		return ""
	}
	if h == 1 {
		before := d.str()
		return before + d.sid + d.str()
	}
	if h&1 == 1 {
		i := h>>1 - 1
		if i >= uint64(len(wellKnown)) {
			d.fail(fmt.Errorf("unknown string reference %d", i))
			return ""
		}
		return wellKnown[i]
	}
	n := h >> 1
	if n > uint64(len(d.b)) {
		d.fail(errTruncated)
		return ""
	}
	s := string(d.b[:n])
	d.b = d.b[n:]
	return s
}

func (d *decoder) time(base time.Time) time.Time {
	tag := d.uvarint()
	if d.err != nil || tag == 0 {
		return time.Time{}
	}
	if tag > 2 {
		d.fail(fmt.Errorf("unknown time tag %d", tag))
		return time.Time{}
	}
	var bs, bn int64
	if !base.IsZero() {
		bs, bn = base.Unix(), int64(base.Nanosecond())
	}
	sec := int64(uint64(d.varint()) + uint64(bs))
	ns := bn
	if tag == 2 {
		ns += d.varint()
	}
	if d.err != nil {
		return time.Time{}
	}
	if ns < 0 || ns >= int64(time.Second) {
		d.fail(fmt.Errorf("nanoseconds %d out of range", ns))
		return time.Time{}
	}
	return time.Unix(sec, ns).UTC()
}

func (d *decoder) strMap() map[string]string {
	n := d.count()
	if n == 0 {
		return nil
	}
	m := make(map[string]string, n)
	for range n {
		k := d.str()
		m[k] = d.str()
	}
	return m
}

func (d *decoder) strsMap() map[string][]string {
	n := d.count()
	if n == 0 {
		return nil
	}
	m := make(map[string][]string, n)
	for range n {
		k := d.str()
		var vs []string
		if c := d.count(); c > 0 {
			vs = make([]string, c)
			for i := range vs {
				vs[i] = d.str()
			}
		}
		m[k] = vs
	}
	return m
}

func (d *decoder) login() store.UpstreamLogin {
	var l store.UpstreamLogin
	l.Upstream = d.str()
	l.NameID = d.nameID()
	l.SessionIndex = d.str()
	return l
}

func (d *decoder) nameID() store.NameID {
	var n store.NameID
	n.Value = d.str()
	n.Format = d.str()
	n.NameQualifier = d.str()
	n.SPNameQualifier = d.str()
	return n
}

// end fails unless every byte was read.
func (d *decoder) end() error {
	if d.err == nil && len(d.b) != 0 {
		d.fail(fmt.Errorf("%d unexpected bytes after the last field", len(d.b)))
	}
	return d.err
}

// encodeSession returns the stored form of s (its ID is the key).
func encodeSession(s store.Session) []byte {
	e := encoder{b: make([]byte, 0, 256), sid: s.ID}
	e.b = append(e.b, formatV1)
	e.str(s.UserID)
	e.login(s.UpstreamLogin())
	e.strsMap(s.Attributes)
	e.time(s.CreatedAt, time.Time{})
	e.time(s.AuthTime, s.CreatedAt)
	e.time(s.ExpiresAt, s.CreatedAt)
	e.time(s.EndedAt, s.CreatedAt)
	e.str(s.LogoutID)
	e.uvarint(uint64(len(s.PriorLogins)))
	for _, l := range s.PriorLogins {
		e.login(l)
	}
	return e.b
}

// decodeSession decodes a stored session, binary or (as written by
// earlier builds) JSON, whose key is id.
func decodeSession(id string, v []byte) (store.Session, error) {
	if len(v) == 0 {
		return store.Session{}, errors.New("decode session: empty value")
	}
	var s store.Session
	switch v[0] {
	case '{':
		if err := json.Unmarshal(v, &s); err != nil {
			return store.Session{}, fmt.Errorf("decode session (JSON): %w", err)
		}
		s.ID = id
		return s, nil
	case formatV1:
	default:
		return store.Session{}, fmt.Errorf("decode session: unknown format version %d", v[0])
	}
	d := decoder{b: v[1:], sid: id}
	s.ID = id
	s.UserID = d.str()
	l := d.login()
	s.Upstream, s.NameID, s.SessionIndex = l.Upstream, l.NameID, l.SessionIndex
	s.Attributes = d.strsMap()
	s.CreatedAt = d.time(time.Time{})
	s.AuthTime = d.time(s.CreatedAt)
	s.ExpiresAt = d.time(s.CreatedAt)
	s.EndedAt = d.time(s.CreatedAt)
	s.LogoutID = d.str()
	if n := d.count(); n > 0 {
		s.PriorLogins = make([]store.UpstreamLogin, n)
		for i := range s.PriorLogins {
			s.PriorLogins[i] = d.login()
		}
	}
	if err := d.end(); err != nil {
		return store.Session{}, fmt.Errorf("decode session: %w", err)
	}
	return s, nil
}

// encodeParticipantValue returns the stored form of p with its join
// sequence number (its SessionID and Key are the key).
func encodeParticipantValue(seq uint64, p store.Participant) []byte {
	e := encoder{b: make([]byte, 0, 192), sid: p.SessionID}
	e.b = append(e.b, formatV1)
	e.uvarint(seq)
	if p.Kind != "" && p.Key == p.Kind+":"+p.AppID {
		e.uvarint(uint64(len(p.Kind)) + 1) // Kind and AppID are in the key
	} else {
		e.uvarint(0)
		e.str(p.Kind)
		e.str(p.AppID)
	}
	e.participantRest(p)
	return e.b
}

// participantRest encodes the fields of p after its key, kind and app ID.
func (e *encoder) participantRest(p store.Participant) {
	e.str(p.Name)
	e.uvarint(uint64(p.Channels))
	e.str(p.BackChannelURL)
	e.str(p.FrontChannelURL)
	e.strMap(p.Data)
	e.time(p.JoinedAt, time.Time{})
}

// participant encodes all of p, inside a logout or a delivery: its
// session ID, then (with that session ID as the one spliced out of its
// strings) 1 and its kind and app ID when its key is kind:appID, or 0 and
// its key, kind and app ID, then the rest.
func (e *encoder) participant(p store.Participant) {
	e.str(p.SessionID)
	outer := e.sid
	e.sid = p.SessionID
	if p.Kind != "" && p.Key == p.Kind+":"+p.AppID {
		e.uvarint(1)
	} else {
		e.uvarint(0)
		e.str(p.Key)
	}
	e.str(p.Kind)
	e.str(p.AppID)
	e.participantRest(p)
	e.sid = outer
}

// decodeParticipantValue decodes a stored participant, binary or (as
// written by earlier builds) an 8-byte sequence and JSON, of session
// sessionID with key pkey. It returns the join sequence number.
func decodeParticipantValue(sessionID, pkey string, v []byte) (uint64, store.Participant, error) {
	var p store.Participant
	if len(v) >= 9 && v[0] == 0 && v[8] == '{' {
		if err := json.Unmarshal(v[8:], &p); err != nil {
			return 0, p, fmt.Errorf("decode participant (JSON): %w", err)
		}
		p.SessionID, p.Key = sessionID, pkey
		return binary.BigEndian.Uint64(v[:8]), p, nil
	}
	if len(v) == 0 || v[0] != formatV1 {
		return 0, p, fmt.Errorf("decode participant: unknown format (%d bytes)", len(v))
	}
	d := decoder{b: v[1:], sid: sessionID}
	seq := d.uvarint()
	p.SessionID, p.Key = sessionID, pkey
	if n := d.uvarint(); n > 0 {
		kl := int(n - 1)
		if n-1 >= uint64(len(pkey)) || pkey[kl] != ':' {
			return 0, store.Participant{}, fmt.Errorf("decode participant: kind length %d does not fit key %q", kl, pkey)
		}
		p.Kind, p.AppID = pkey[:kl], pkey[kl+1:]
	} else {
		p.Kind = d.str()
		p.AppID = d.str()
	}
	d.participantRest(&p)
	if err := d.end(); err != nil {
		return 0, store.Participant{}, fmt.Errorf("decode participant: %w", err)
	}
	return seq, p, nil
}

// participantRest decodes what encoder.participantRest encodes.
func (d *decoder) participantRest(p *store.Participant) {
	p.Name = d.str()
	if c := d.uvarint(); c <= 0xff {
		p.Channels = store.Channel(c)
	} else {
		d.fail(fmt.Errorf("channel set %d out of range", c))
	}
	p.BackChannelURL = d.str()
	p.FrontChannelURL = d.str()
	p.Data = d.strMap()
	p.JoinedAt = d.time(time.Time{})
}

// participant decodes what encoder.participant encodes.
func (d *decoder) participant() store.Participant {
	var p store.Participant
	p.SessionID = d.str()
	outer := d.sid
	d.sid = p.SessionID
	derived := d.uvarint()
	switch derived {
	case 0:
		p.Key = d.str()
	case 1:
	default:
		d.fail(fmt.Errorf("unknown participant key flag %d", derived))
	}
	p.Kind = d.str()
	p.AppID = d.str()
	if derived == 1 {
		p.Key = p.Kind + ":" + p.AppID
	}
	d.participantRest(&p)
	d.sid = outer
	return p
}

// encodeLogout returns the stored form of lo (its ID is the key).
func encodeLogout(lo store.Logout) []byte {
	e := encoder{b: make([]byte, 0, 64+160*len(lo.Participants))}
	e.b = append(e.b, formatV1)
	e.str(lo.UserID)
	e.uvarint(uint64(len(lo.SessionIDs)))
	for _, id := range lo.SessionIDs {
		e.str(id)
	}
	e.str(string(lo.Initiator.Kind))
	e.str(lo.Initiator.ID)
	e.str(lo.ExcludeKey)
	e.time(lo.CreatedAt, time.Time{})
	e.uvarint(uint64(len(lo.Participants)))
	for _, p := range lo.Participants {
		e.participant(p)
	}
	return e.b
}

// decodeLogout decodes a stored logout, binary or (as written by earlier
// builds) JSON, whose key is id.
func decodeLogout(id string, v []byte) (store.Logout, error) {
	var lo store.Logout
	if len(v) > 0 && v[0] == '{' {
		if err := json.Unmarshal(v, &lo); err != nil {
			return store.Logout{}, fmt.Errorf("decode logout (JSON): %w", err)
		}
		lo.ID = id
		return lo, nil
	}
	if len(v) == 0 || v[0] != formatV1 {
		return store.Logout{}, fmt.Errorf("decode logout: unknown format (%d bytes)", len(v))
	}
	d := decoder{b: v[1:]}
	lo.ID = id
	lo.UserID = d.str()
	if n := d.count(); n > 0 {
		lo.SessionIDs = make([]string, n)
		for i := range lo.SessionIDs {
			lo.SessionIDs[i] = d.str()
		}
	}
	lo.Initiator.Kind = store.InitiatorKind(d.str())
	lo.Initiator.ID = d.str()
	lo.ExcludeKey = d.str()
	lo.CreatedAt = d.time(time.Time{})
	if n := d.count(); n > 0 {
		lo.Participants = make([]store.Participant, n)
		for i := range lo.Participants {
			lo.Participants[i] = d.participant()
		}
	}
	if err := d.end(); err != nil {
		return store.Logout{}, fmt.Errorf("decode logout: %w", err)
	}
	return lo, nil
}

// encodeDelivery returns the stored form of dl (its ID is the key).
func encodeDelivery(dl store.Delivery) []byte {
	e := encoder{b: make([]byte, 0, 256)}
	e.b = append(e.b, formatV1)
	e.str(dl.LogoutID)
	e.participant(dl.Participant)
	e.str(string(dl.State))
	e.time(dl.CreatedAt, time.Time{})
	e.time(dl.NextAttemptAt, dl.CreatedAt)
	e.str(dl.LeaseOwner)
	e.time(dl.LeaseUntil, dl.CreatedAt)
	e.uvarint(uint64(len(dl.Attempts)))
	for _, a := range dl.Attempts {
		e.time(a.At, dl.CreatedAt)
		e.varint(int64(a.Duration))
		ok := uint64(0)
		if a.OK {
			ok = 1
		}
		e.uvarint(ok)
		e.varint(int64(a.StatusCode))
		e.str(a.Error)
	}
	e.str(dl.LastError)
	e.time(dl.DoneAt, dl.CreatedAt)
	return e.b
}

// decodeDelivery decodes a stored delivery, binary or (as written by
// earlier builds) JSON, whose key is id.
func decodeDelivery(id string, v []byte) (store.Delivery, error) {
	var dl store.Delivery
	if len(v) > 0 && v[0] == '{' {
		if err := json.Unmarshal(v, &dl); err != nil {
			return store.Delivery{}, fmt.Errorf("decode delivery (JSON): %w", err)
		}
		dl.ID = id
		return dl, nil
	}
	if len(v) == 0 || v[0] != formatV1 {
		return store.Delivery{}, fmt.Errorf("decode delivery: unknown format (%d bytes)", len(v))
	}
	d := decoder{b: v[1:]}
	dl.ID = id
	dl.LogoutID = d.str()
	dl.Participant = d.participant()
	dl.State = store.DeliveryState(d.str())
	dl.CreatedAt = d.time(time.Time{})
	dl.NextAttemptAt = d.time(dl.CreatedAt)
	dl.LeaseOwner = d.str()
	dl.LeaseUntil = d.time(dl.CreatedAt)
	if n := d.count(); n > 0 {
		dl.Attempts = make([]store.Attempt, n)
		for i := range dl.Attempts {
			a := &dl.Attempts[i]
			a.At = d.time(dl.CreatedAt)
			a.Duration = time.Duration(d.varint())
			switch ok := d.uvarint(); ok {
			case 0:
			case 1:
				a.OK = true
			default:
				d.fail(fmt.Errorf("attempt outcome %d is not 0 or 1", ok))
			}
			a.StatusCode = int(d.varint())
			a.Error = d.str()
		}
	}
	dl.LastError = d.str()
	dl.DoneAt = d.time(dl.CreatedAt)
	if err := d.end(); err != nil {
		return store.Delivery{}, fmt.Errorf("decode delivery: %w", err)
	}
	return dl, nil
}
