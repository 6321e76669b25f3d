package postgres

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/slobridge/slobridge/store"
	"github.com/slobridge/slobridge/store/postgres/pgtest"
	"github.com/slobridge/slobridge/store/storetest"
)

// testDSN returns the DSN of the test server (pgtest.DSN).
func testDSN(tb testing.TB) string { return pgtest.DSN(tb) }

// newSchema returns a fresh schema name, dropped when the test ends
// (pgtest.NewSchema).
func newSchema(tb testing.TB) string { return pgtest.NewSchema(tb) }

// openSchema opens the store in schema and closes it when the test ends.
func openSchema(tb testing.TB, dsn, schema string, opts Options) *DB {
	tb.Helper()
	opts.Schema = schema
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	db, err := Open(ctx, dsn, opts)
	if err != nil {
		tb.Fatalf("Open: %v", err)
	}
	tb.Cleanup(func() { _ = db.Close() })
	return db
}

// openTemp opens a store in a fresh schema.
func openTemp(tb testing.TB) *DB {
	tb.Helper()
	return openSchema(tb, testDSN(tb), newSchema(tb), Options{})
}

func TestConformance(t *testing.T) {
	testDSN(t)
	storetest.RunTests(t, storetest.Factory{
		New: func(t *testing.T) store.Store { return openTemp(t) },
		Reopen: func(t *testing.T, s store.Store) store.Store {
			db := s.(*DB)
			if err := db.Close(); err != nil {
				t.Fatalf("Close: %v", err)
			}
			return openSchema(t, testDSN(t), db.Schema(), Options{})
		},
		Crash: func(t *testing.T, s store.Store) store.Store {
			// What PostgreSQL's crash recovery does to an UNLOGGED table:
			// it starts empty. Logged tables keep every committed row.
			db := s.(*DB)
			if _, err := db.pool.Exec(t.Context(), "TRUNCATE volatile_records"); err != nil {
				t.Fatalf("truncate the unlogged tables: %v", err)
			}
			db.pool.Close()
			return openSchema(t, testDSN(t), db.Schema(), Options{})
		},
	})
}

// TestVolatileRecordsAreUnlogged: the volatile records live in an UNLOGGED
// table (no WAL, emptied by crash recovery), every other table is logged.
func TestVolatileRecordsAreUnlogged(t *testing.T) {
	db := openTemp(t)
	rows, err := db.pool.Query(t.Context(), `SELECT c.relname, c.relpersistence FROM pg_class c
		JOIN pg_namespace n ON n.oid = c.relnamespace WHERE n.nspname = $1 AND c.relkind = 'r'`, db.Schema())
	if err != nil {
		t.Fatal(err)
	}
	defer rows.Close()
	seen := 0
	for rows.Next() {
		var name string
		var persistence byte
		if err := rows.Scan(&name, &persistence); err != nil {
			t.Fatal(err)
		}
		seen++
		want := byte('p')
		if name == "volatile_records" {
			want = 'u'
		}
		if persistence != want {
			t.Errorf("table %s: relpersistence %q, want %q", name, persistence, want)
		}
	}
	if err := rows.Err(); err != nil {
		t.Fatal(err)
	}
	if seen < 5 {
		t.Fatalf("saw %d tables in schema %s", seen, db.Schema())
	}
}

// TestListParticipantsEmptyOrUnknown covers the case ListParticipants
// answers with a second query: a session without participants lists
// none, an unknown session is ErrNotFound.
func TestListParticipantsEmptyOrUnknown(t *testing.T) {
	db := openTemp(t)
	ctx := context.Background()
	now := time.Now()
	if err := db.CreateSession(ctx, store.Session{ID: "s1", UserID: "alice", CreatedAt: now, ExpiresAt: now.Add(time.Hour)}); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		id      string
		wantErr error
	}{
		{"s1", nil},
		{"nope", store.ErrNotFound},
	}
	for _, tt := range tests {
		ps, err := db.ListParticipants(ctx, tt.id)
		if !errors.Is(err, tt.wantErr) || len(ps) != 0 {
			t.Errorf("ListParticipants(%q) = %v, %v; want none, %v", tt.id, ps, err, tt.wantErr)
		}
	}
}
