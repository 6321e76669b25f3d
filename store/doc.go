// Package store defines the one storage interface that slobridge uses for
// everything it persists — bridge sessions, their participants, logouts and
// the durable delivery outbox, client registrations, expiring one-time
// records (authorization codes, SAML request state, RelayState) and the
// replay cache — together with its types and sentinel errors.
//
// Backends live beside it: store/bolt (go.etcd.io/bbolt, the embedded
// default) and store/postgres. Every backend runs the same conformance suite
// in store/storetest, so nothing backend-specific leaks through Store.
//
// Values returned by a Store are copies: callers may keep and modify them.
package store
