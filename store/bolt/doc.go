// Package bolt is the embedded store.Store backend of slobridge, built on
// go.etcd.io/bbolt: one file, one writer process, no server to run.
//
// # Layout
//
// Every record kind has its own bucket keyed by ID, plus secondary index
// buckets whose keys carry everything a scan needs and whose values are
// empty:
//
//	sessions            id → session (binary, see below)
//	sessions_by_user    userID 0x00 createdAt id
//	sessions_by_nameid  upstream 0x00 nameID 0x00 createdAt id
//	sessions_active     expiresAt id   (active sessions, for counts and sweeps)
//	sessions_ended      endedAt id     (ended sessions, for sweeps)
//	participants        sessionID 0x00 key → participant with its join sequence (binary)
//	logouts             id → logout (binary); logouts_by_user (userID 0x00 createdAt id),
//	                    logouts_by_time (createdAt id)
//	deliveries          id → delivery (binary); deliveries_by_logout (logoutID 0x00 n → id),
//	                    deliveries_due (nextAttemptAt id, pending and retrying only),
//	                    delivery_counts (state → count)
//	records             namespace 0x00 key → record; records_exp (expiresAt namespace 0x00 key)
//	replay              namespace 0x00 id → expiresAt; replay_exp (expiresAt namespace 0x00 id)
//	clients, keys       id → value
//	meta                counters kept in step with the data (sessions_active_n:
//	                    the entries of sessions_active, so counting is a read)
//
// The records of volatile namespaces (store.IsVolatile) live in memory: a
// login in progress costs neither an fsync nor a write system call. Close
// writes them to <path>.volatile (synced, renamed into place) and Open
// reads them back and removes the file, so a restart keeps the logins in
// progress and a crash loses them, as the store's contract allows.
//
// Times in keys are 8-byte big-endian Unix nanoseconds with the sign bit
// flipped, so byte order is time order. The index buckets keyed by time
// (sessions_active, sessions_ended, logouts_by_time, deliveries_due,
// records_exp, replay_exp) are appended to nearly in order and split their
// pages 90% full (bbolt FillPercent); the others keep bbolt's 50%.
//
// # Value formats
//
// Sessions and participants, written at every login, and logouts and
// deliveries, written at every logout and attempt, are stored in a
// compact binary form whose first byte is its version (0x01; see
// binary.go): strings with a length prefix or as a reference to a table of
// protocol constants, times as differences in seconds, maps in key order,
// and nothing the key already holds (the session ID, a participant's
// session ID and key, and its kind and app ID when the key is kind:appID).
// Values an earlier build wrote as JSON still decode; such a session is
// rewritten in the binary form when it next changes (participants never
// change, so theirs stay JSON until swept; likewise logouts). Clients,
// keys and records are JSON. IDs, namespaces and user IDs may not
// contain the byte 0x00 (it separates key parts); such input is refused with
// store.ErrInvalid.
//
// # Concurrency
//
// bbolt allows one writer at a time. Small durable writes — sessions,
// participants, records, replay IDs, completed attempts — go through
// bbolt's Batch, so that concurrent logins share one commit and its fsync
// (a group commit, at most 2ms of waiting); their functions are safe to run
// twice and report a refusal (ErrAlreadyExists, ErrNotFound …) before they
// write. Volatile records are written under a mutex of their own.
// EndSessions and claims use a plain Update. The sweeper works in bounded
// transactions (sweep.go) so that a backlog never holds the writer for
// long. CommitCounts counts the commits of both files
// (slobridge_store_commits_total).
//
// Values read inside a transaction are decoded (copied) before the
// transaction ends: bbolt's memory is only valid inside it.
package bolt
