package idp

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"slices"
	"testing"
	"time"

	bsaml "github.com/slobridge/slobridge/saml"
	"github.com/slobridge/slobridge/store"
)

// TestMatchSessions: a LogoutRequest names sessions by NameID and any
// number of SessionIndexes (Core §3.7.1); each SessionIndex counts only
// when this IdP issued it to the requesting SP with that NameID, and no
// SessionIndex means every session in which the SP was issued the NameID.
// Nothing matching is Requester/UnknownPrincipal.
func TestMatchSessions(t *testing.T) {
	spFile := filepath.Join(t.TempDir(), "sp.xml")
	if err := os.WriteFile(spFile, corpusSPMetadata(t), 0o600); err != nil {
		t.Fatal(err)
	}
	// Persistent pairwise NameIDs: one per (user, SP), the same in every
	// session of the user.
	b := newBridge(t, bridgeOpts{cfg: Config{ServiceProviders: []SPConfig{{MetadataFile: spFile, NameID: NameIDPersistent}}}})
	ctx := context.Background()
	sp, err := b.idp.ServiceProvider(ctx, corpusSP)
	if err != nil {
		t.Fatal(err)
	}
	var sids, sis []string
	var nameID store.NameID
	for range 3 {
		s, err := b.eng.CreateSession(ctx, store.Session{UserID: "alice", ExpiresAt: time.Now().Add(time.Hour)})
		if err != nil {
			t.Fatal(err)
		}
		iss, err := b.idp.join(ctx, sp, "", s)
		if err != nil {
			t.Fatal(err)
		}
		sids, sis, nameID = append(sids, s.ID), append(sis, iss.SessionIndex), iss.NameID
	}
	// A session of bob, whose SessionIndex alice's NameID must not reach.
	bob, err := b.eng.CreateSession(ctx, store.Session{UserID: "bob", ExpiresAt: time.Now().Add(time.Hour)})
	if err != nil {
		t.Fatal(err)
	}
	bobIss, err := b.idp.join(ctx, sp, "", bob)
	if err != nil {
		t.Fatal(err)
	}
	alice := bsaml.NameID{Value: nameID.Value, Format: nameID.Format}
	for _, tc := range []struct {
		name  string
		id    bsaml.NameID
		sis   []string
		want  []string
		noHit bool
	}{
		{name: "one SessionIndex", id: alice, sis: sis[1:2], want: sids[1:2]},
		{name: "two SessionIndexes", id: alice, sis: []string{sis[0], sis[2]}, want: []string{sids[0], sids[2]}},
		{name: "a foreign SessionIndex beside ours", id: alice, sis: []string{"not-ours", sis[1]}, want: sids[1:2]},
		{name: "repeated SessionIndex", id: alice, sis: []string{sis[0], sis[0]}, want: sids[:1]},
		{name: "no SessionIndex: every session of the NameID", id: alice, want: sids},
		{name: "bob's SessionIndex with alice's NameID", id: alice, sis: []string{bobIss.SessionIndex}, noHit: true},
		{name: "only foreign SessionIndexes", id: alice, sis: []string{"x", "y"}, noHit: true},
		{name: "unknown NameID", id: bsaml.NameID{Value: "nobody"}, noHit: true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, err := b.idp.MatchSessions(ctx, sp, &bsaml.LogoutRequest{NameID: tc.id, SessionIndexes: tc.sis}, "")
			if tc.noHit {
				var se *bsaml.Error
				if !errors.As(err, &se) || se.Status != bsaml.StatusRequester || se.SubStatus != bsaml.StatusUnknownPrincipal {
					t.Fatalf("MatchSessions = %v, %v; want Requester/UnknownPrincipal", got, err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			slices.Sort(got)
			want := slices.Clone(tc.want)
			slices.Sort(want)
			if !slices.Equal(got, want) {
				t.Fatalf("MatchSessions = %v, want %v", got, want)
			}
		})
	}
}
