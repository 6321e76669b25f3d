// Package enginetest runs the logout engine (package slobridge) on the
// PostgreSQL store with several engines sharing one database, as replicas
// of the bridge behind a load balancer do: a login on one replica and the
// logout on another, a replica that dies holding leases, and the
// 1,000-participant fan-out beside bbolt. It holds tests only; it lives
// apart from package postgres so that the store's own tests do not depend
// on the engine.
//
// Set SLOBRIDGE_TEST_POSTGRES_DSN to run it (see package postgres).
package enginetest
