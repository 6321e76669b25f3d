// Package postgres is the PostgreSQL backend of store.Store, for running
// several bridge replicas against one database.
//
// Every Store method is one SQL statement or one transaction, so replicas
// need no coordination besides the database:
//   - EndSessions locks the sessions it ends (SELECT ... FOR UPDATE), marks
//     them ended, snapshots their participants and queues the deliveries in
//     one transaction; AddParticipant takes a share lock on its session in
//     the same statement that inserts, so a participant either joins before
//     the logout (and is in its snapshot) or is refused with
//     store.ErrSessionEnded.
//   - ClaimDueDeliveries leases deliveries with SELECT ... FOR UPDATE SKIP
//     LOCKED: each delivery is attempted by one replica at a time, and the
//     lease of a replica that died runs out so another one claims it.
//     CompleteAttempt only succeeds for the lease owner.
//   - TakeRecord is DELETE ... RETURNING and CheckReplay an upsert that only
//     overwrites an expired entry: exactly one of concurrent callers wins.
//
// The schema is created and upgraded by forward-only migrations embedded in
// the binary (migrations/NNNN_name.sql) and recorded in the table
// slobridge_schema_migrations. Open applies the missing ones under a
// transaction-scoped advisory lock, so replicas starting together do not
// race; Migrate does the same for a separate "migrate" step.
//
// Errors that mean the server cannot be reached (refused or dropped
// connections, a server shutting down, a connect timeout) wrap
// store.ErrUnavailable, which the HTTP layer answers with 503.
//
// Times are stored as timestamptz, which keeps microseconds: a time.Time
// round-trips truncated to the microsecond and in UTC. The zero time is
// stored as NULL.
//
// Tests need a server: set SLOBRIDGE_TEST_POSTGRES_DSN, for example
// postgres://postgres@127.0.0.1:5432/test?sslmode=disable. Each test runs in
// a schema of its own that it drops afterwards.
package postgres
