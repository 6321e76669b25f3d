package idp

import (
	"context"
	"os"
	"path/filepath"
	"slices"
	"sync"
	"testing"
	"time"

	bsaml "github.com/slobridge/slobridge/saml"
	"github.com/slobridge/slobridge/store"
)

// TestNameIDOutlivesEarlierSession (SAML Core §3.7.1): a LogoutRequest
// without SessionIndex means every session of the principal. The user's
// first session is short, a second one (same SP, same NameID) long; once
// the first and its records have expired, the NameID still names the user
// and the live second session is found.
func TestNameIDOutlivesEarlierSession(t *testing.T) {
	spFile := filepath.Join(t.TempDir(), "sp.xml")
	if err := os.WriteFile(spFile, corpusSPMetadata(t), 0o600); err != nil {
		t.Fatal(err)
	}
	var mu sync.Mutex
	clk := time.Now()
	now := func() time.Time { mu.Lock(); defer mu.Unlock(); return clk }
	b := newBridge(t, bridgeOpts{baseURL: corpusBase, now: now, cfg: Config{ServiceProviders: []SPConfig{{MetadataFile: spFile}}}})
	ctx := context.Background()
	sp, err := b.idp.ServiceProvider(ctx, corpusSP)
	if err != nil {
		t.Fatal(err)
	}
	s1, err := b.eng.CreateSession(ctx, store.Session{UserID: "alice", ExpiresAt: now().Add(time.Minute)})
	if err != nil {
		t.Fatal(err)
	}
	iss1, err := b.idp.join(ctx, sp, "", s1)
	if err != nil {
		t.Fatal(err)
	}
	s2, err := b.eng.CreateSession(ctx, store.Session{UserID: "alice", ExpiresAt: now().Add(48 * time.Hour)})
	if err != nil {
		t.Fatal(err)
	}
	iss2, err := b.idp.join(ctx, sp, "", s2)
	if err != nil {
		t.Fatal(err)
	}
	if iss1.NameID.Value != iss2.NameID.Value {
		t.Fatalf("the SP got two NameIDs for alice (%q, %q); the test needs one", iss1.NameID.Value, iss2.NameID.Value)
	}
	mu.Lock()
	clk = clk.Add(30 * time.Hour) // past s1's expiry, its records' grace and nameIDSlack
	mu.Unlock()
	sids, err := b.idp.MatchSessions(ctx, sp, &bsaml.LogoutRequest{NameID: bsaml.NameID{Value: iss2.NameID.Value,
		Format: iss2.NameID.Format, NameQualifier: iss2.NameID.NameQualifier, SPNameQualifier: iss2.NameID.SPNameQualifier}}, "")
	if err != nil || !slices.Contains(sids, s2.ID) {
		t.Fatalf("LogoutRequest without SessionIndex after the first session expired: %v (%v), want the live session %s", sids, err, s2.ID)
	}
}

// TestConcurrentJoinsOfOneUser: many sessions of one user join one SP at
// the same moment (a load test's concurrent logins); every join succeeds
// although each wants the user's NameID record to last longer.
func TestConcurrentJoinsOfOneUser(t *testing.T) {
	spFile := filepath.Join(t.TempDir(), "sp.xml")
	if err := os.WriteFile(spFile, corpusSPMetadata(t), 0o600); err != nil {
		t.Fatal(err)
	}
	b := newBridge(t, bridgeOpts{baseURL: corpusBase, cfg: Config{ServiceProviders: []SPConfig{{MetadataFile: spFile}}}})
	ctx := context.Background()
	sp, err := b.idp.ServiceProvider(ctx, corpusSP)
	if err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	errs := make([]error, 32)
	for i := range errs {
		s, err := b.eng.CreateSession(ctx, store.Session{UserID: "alice", ExpiresAt: time.Now().Add(time.Hour + time.Duration(i)*time.Second)})
		if err != nil {
			t.Fatal(err)
		}
		wg.Go(func() { _, errs[i] = b.idp.join(ctx, sp, "", s) })
	}
	wg.Wait()
	for i, err := range errs {
		if err != nil {
			t.Fatalf("join %d: %v", i, err)
		}
	}
}
