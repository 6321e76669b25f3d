// Package postgres is the PostgreSQL backend of store.Store, for running
// several bridge replicas against one database (bbolt stays the embedded
// default).
//
// # API
//
//   - Open(ctx, dsn, Options) connects a pgxpool, applies the missing
//     migrations (or, with Options.SkipMigrations, only checks the schema
//     version) and returns a *DB that implements store.Store.
//   - Migrate(ctx, dsn, Options) applies the migrations without serving,
//     for a "slobridge migrate" command; it returns the versions applied.
//     LatestVersion reports the version this binary migrates to.
//   - (*DB).Listen(ctx, ListenOptions) streams the Changes (new logouts,
//     delivery state changes) committed by every replica, for the live
//     status page and the event stream of a replica that did not make
//     the change.
//
// # Replicas
//
// Every Store method is one SQL statement or one transaction, so replicas
// need no coordination besides the database:
//   - EndSessions locks the sessions it ends (SELECT ... FOR UPDATE, in ID
//     order), marks them ended, snapshots their participants and queues
//     the deliveries in one transaction; AddParticipant takes a key-share
//     lock on its session in the same statement that inserts, so a
//     participant either joins before the logout (and is in its snapshot)
//     or is refused with store.ErrSessionEnded.
//   - ClaimDueDeliveries leases deliveries with SELECT ... FOR UPDATE SKIP
//     LOCKED: each delivery is attempted by one replica at a time, and the
//     lease of a replica that died runs out so another one claims it.
//     CompleteAttempt only succeeds for the lease owner. Leases are judged
//     at the times callers pass, so replicas' clocks must agree (NTP) to
//     well within a lease.
//   - TakeRecord is DELETE ... RETURNING and CheckReplay an upsert that only
//     overwrites an expired entry: exactly one of concurrent callers wins.
//   - UpdateClient reads the client FOR UPDATE, so concurrent updates run
//     one after the other.
//
// # Change feed
//
// EndSessions, CompleteAttempt and RetryDeliveries write a row to the
// table "changes" in their own transaction. Listen reads the rows of every
// transaction that has ended, in windows of transaction IDs (xid8) below
// the oldest transaction still running, so no row is skipped when
// transactions commit in another order than they wrote (a long-running
// writing transaction anywhere on the server holds the feed back until it
// ends). After each commit the writer sends NOTIFY on a channel named
// after the schema, from outside the transaction and coalesced (a NOTIFY
// inside it would serialise every commit on the notification queue lock);
// Listen reads the feed when one arrives and every PollInterval in any
// case, so it keeps working, at the poll rate, when a NOTIFY is lost, when
// its LISTEN connection is down, or when a pooler cannot hold one
// (ListenOptions.PollOnly). Sweep removes rows older than an hour.
//
// # Migrations
//
// The schema is created and upgraded by forward-only migrations embedded in
// the binary (migrations/NNNN_name.sql, never edited once released) and
// recorded in the table slobridge_schema_migrations. They are applied in
// one transaction that first takes pg_advisory_xact_lock on a key derived
// from the schema, so replicas starting together do not race: the first
// applies them, the others wait and find nothing left to do. When
// Options.Schema names a schema that does not exist, it is created.
//
// # Errors
//
// Errors that mean the server cannot be reached (refused or dropped
// connections, a server shutting down, a connect timeout, too many
// connections) wrap store.ErrUnavailable, which the HTTP layer answers
// with 503; the pool reconnects by itself once the server is back. Unique
// violations wrap store.ErrAlreadyExists. A DSN that cannot be parsed is
// store.ErrInvalid, and the error does not echo it (it may hold a
// password).
//
// Times are stored as timestamptz, which keeps microseconds: a time.Time
// round-trips truncated to the microsecond and in UTC. The zero time is
// stored as NULL (as year 1 for the due time of a due delivery).
//
// # Tests
//
// Tests need a server: set SLOBRIDGE_TEST_POSTGRES_DSN, for example
// postgres://postgres@127.0.0.1:5432/test?sslmode=disable. Without it they
// skip, and fail when CI=true. Each test runs in a schema of its own that
// it drops afterwards.
package postgres
