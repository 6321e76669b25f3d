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
//
// # Durability
//
// Everything a logout needs after a crash is durable: once a write method
// returns, sessions, their participants, logouts and the outbox, client
// registrations, signing keys, replay entries and the records of every
// other namespace survive a crash of the process or of the machine.
//
// Records of a volatile namespace (IsVolatile: the name begins with
// VolatilePrefix) are not: they hold a login in progress, which the person
// simply starts again, and they cost no synchronous disk write. They obey
// every other rule of records (expiry, take-once, TakeGrant under
// concurrency) and survive an orderly Close and reopen. After a crash a
// backend may lose any of them, all at once — never part of one record and
// never a durable write — and it comes back working: bbolt keeps them in
// memory and writes them to <path>.volatile only at Close, for the next
// Open to read back; PostgreSQL keeps them in UNLOGGED
// tables, which the server empties in its crash recovery. So after a crash
// a session and its participants are never lost; a login in progress may be
// (the person sees "start again"), and a code issued just before the crash
// may no longer be redeemable.
package store
