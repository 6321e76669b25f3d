package oidc

import (
	"context"
	"sync"
	"testing"
	"time"

	"github.com/slobridge/slobridge/store"
	"github.com/slobridge/slobridge/store/postgres"
	"github.com/slobridge/slobridge/store/postgres/pgtest"
)

// raceBackends are the stores the grant races run on: bbolt always, and
// PostgreSQL when SLOBRIDGE_TEST_POSTGRES_DSN names one (required under
// CI=true, like every PostgreSQL test).
func raceBackends() map[string]func(t *testing.T) store.Store {
	return map[string]func(t *testing.T) store.Store{
		"bolt": func(t *testing.T) store.Store { return openStore(t, true) },
		"postgres": func(t *testing.T) store.Store {
			db, err := postgres.Open(context.Background(), pgtest.DSN(t), postgres.Options{Schema: pgtest.NewSchema(t)})
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { _ = db.Close() })
			return db
		},
	}
}

// TestGrantRaces redeems one authorization code, and rotates one refresh
// token, from several goroutines at the same moment, 100 rounds each on
// every backend (RFC 6749 §4.1.2, RFC 9700 §4.14.2): at most one
// redemption gets tokens, the others invalid_grant; and after the race
// every token of the family (every access token and refresh token any
// of them was given) is inactive.
func TestGrantRaces(t *testing.T) {
	const racers = 4
	rounds := 100
	if testing.Short() {
		rounds = 10
	}
	for name, open := range raceBackends() {
		t.Run(name, func(t *testing.T) {
			b := newBridgeStore(t, open(t), nil)
			ctx := context.Background()
			reg := b.register(t, ClientMetadata{RedirectURIs: []string{"http://127.0.0.1:9/cb"}, ClientName: "racer"})
			cl, err := b.p.client(ctx, reg.ClientID)
			if err != nil {
				t.Fatal(err)
			}
			now := b.clock.Now()
			s, err := b.eng.CreateSession(ctx, store.Session{UserID: "alice", AuthTime: now, ExpiresAt: now.Add(time.Hour)})
			if err != nil {
				t.Fatal(err)
			}
			// race runs f from every racer at once and returns what each got.
			race := func(f func() (TokenResponse, error)) ([]TokenResponse, []error) {
				toks, errs := make([]TokenResponse, racers), make([]error, racers)
				start := make(chan struct{})
				var wg sync.WaitGroup
				for i := range racers {
					wg.Go(func() { <-start; toks[i], errs[i] = f() })
				}
				close(start)
				wg.Wait()
				return toks, errs
			}
			// check asserts at most one winner and a dead family.
			check := func(round int, what string, toks []TokenResponse, errs []error) {
				t.Helper()
				wins := 0
				for i, err := range errs {
					if err == nil {
						wins++
						continue
					}
					if oe, ok := err.(*Error); !ok || oe.Code != ErrInvalidGrant {
						t.Fatalf("round %d %s: racer %d: %v, want invalid_grant", round, what, i, err)
					}
				}
				if wins > 1 {
					t.Fatalf("round %d %s: %d racers got tokens", round, what, wins)
				}
				for i, tok := range toks {
					if tok.AccessToken == "" {
						continue
					}
					if in, err := b.p.Introspect(ctx, cl, IntrospectionRequest{Token: tok.AccessToken}); err != nil || in.Active {
						t.Fatalf("round %d %s: racer %d's access token active after the race (%v)", round, what, i, err)
					}
					if in, err := b.p.Introspect(ctx, cl, IntrospectionRequest{Token: tok.RefreshToken}); err != nil || in.Active {
						t.Fatalf("round %d %s: racer %d's refresh token active after the race (%v)", round, what, i, err)
					}
				}
			}
			for round := range rounds {
				code, err := b.p.IssueCode(ctx, AuthRequest{ClientID: cl.ID, RedirectURI: "http://127.0.0.1:9/cb", Scope: "openid"}, s, now)
				if err != nil {
					t.Fatal(err)
				}
				toks, errs := race(func() (TokenResponse, error) {
					return b.p.ExchangeCode(ctx, cl, code, "http://127.0.0.1:9/cb", "")
				})
				check(round, "code", toks, errs)

				// A refresh token from a clean redemption, then rotated by
				// every racer at once.
				code, err = b.p.IssueCode(ctx, AuthRequest{ClientID: cl.ID, RedirectURI: "http://127.0.0.1:9/cb", Scope: "openid"}, s, now)
				if err != nil {
					t.Fatal(err)
				}
				tok, err := b.p.ExchangeCode(ctx, cl, code, "http://127.0.0.1:9/cb", "")
				if err != nil {
					t.Fatal(err)
				}
				toks, errs = race(func() (TokenResponse, error) { return b.p.Refresh(ctx, cl, tok.RefreshToken) })
				check(round, "refresh", append(toks, tok), errs)
			}
		})
	}
}
