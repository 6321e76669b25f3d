package postgres

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/slobridge/slobridge/store"
)

// Defaults of ListenOptions.
const (
	defaultPollInterval = 2 * time.Second
	defaultListenBuffer = 64
	// listenAppName marks the listening connections in pg_stat_activity.
	listenAppName = "slobridge-listen"
)

// Change is one change that a replica (this one or another) committed: a
// new logout, or a delivery of a logout that changed state. It carries
// IDs only; read the logout or delivery from the store for the rest.
type Change struct {
	// LogoutID is the logout the change belongs to.
	LogoutID string
	// DeliveryID is the delivery that changed state; empty for the change
	// that announces a new logout.
	DeliveryID string
	// State is the delivery's new state; empty for a new logout.
	State store.DeliveryState
	// At is when the change was committed, by the database clock.
	At time.Time
}

// ListenOptions configure Listen. The zero value is ready to use.
type ListenOptions struct {
	// PollInterval is how often the change feed is read when no
	// notification arrives, and how often a lost LISTEN connection is
	// re-established. Zero means 2s.
	PollInterval time.Duration
	// PollOnly skips LISTEN and only polls: for a database reached through
	// a pooler that cannot hold a session (PgBouncer in transaction mode).
	PollOnly bool
	// Buffer is the capacity of the returned channel; zero means 64.
	Buffer int
	// Logger receives warnings about lost connections; nil discards them.
	Logger *slog.Logger
}

// pollSQL reads the changes of every transaction that ended since the
// last read. The window is one of transaction IDs, not of sequence
// numbers: [cursor, xmin of the current snapshot). Every transaction below
// that xmin has committed or aborted, so a row is read exactly once even
// when transactions commit out of the order in which they wrote; a
// transaction still running holds the window back until it ends. The
// snapshot is the statement's, so the rows read and the new cursor agree.
//
// The last column says whether committed changes wait above the window
// (held back by a transaction still running): the listener then reads
// again soon rather than at the next notification or poll.
const pollSQL = `WITH s AS (SELECT pg_snapshot_xmin(pg_current_snapshot()) AS hi)
	SELECT s.hi::text, c.logout_id, c.delivery_id, c.state, c.at,
		EXISTS (SELECT 1 FROM changes h WHERE h.xid >= s.hi)
	FROM s LEFT JOIN changes c ON c.xid >= $1::text::xid8 AND c.xid < s.hi
	ORDER BY c.xid, c.seq`

// minHeldRetry is the first delay of the quick re-reads while changes are
// held back; it doubles up to PollInterval.
const minHeldRetry = 10 * time.Millisecond

// Listen streams the changes committed by every replica on this database
// (this one included) from the moment it is called until ctx ends, when
// it closes the channel. A change is written in the same transaction as
// what it announces, so a rolled-back logout is never announced, and
// each change is delivered once, in commit order per transaction.
//
// The feed is read when a NOTIFY arrives (sent by the writing replica
// after it commits) and every PollInterval in any case, so changes keep flowing at
// the poll rate while the LISTEN connection is down; it reconnects by
// itself. While the database is unreachable nothing arrives; the changes
// made meanwhile follow once it is back (within an hour, see Sweep).
// A consumer slower than the feed holds it back: the channel is not
// lossy.
//
// Listen fails only when the database cannot be read at the start (the
// error wraps store.ErrUnavailable when it is unreachable).
func (db *DB) Listen(ctx context.Context, opts ListenOptions) (<-chan Change, error) {
	if opts.PollInterval <= 0 {
		opts.PollInterval = defaultPollInterval
	}
	if opts.Buffer <= 0 {
		opts.Buffer = defaultListenBuffer
	}
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.DiscardHandler)
	}
	l := &listener{db: db, opts: opts, out: make(chan Change, opts.Buffer)}
	err := db.pool.QueryRow(ctx, "SELECT pg_snapshot_xmin(pg_current_snapshot())::text").Scan(&l.cursor)
	if err != nil {
		return nil, fmt.Errorf("postgres: listen: %w", dbError(err))
	}
	go l.run(ctx)
	return l.out, nil
}

// listener is the state of one Listen call.
type listener struct {
	db     *DB
	opts   ListenOptions
	out    chan Change
	cursor string // xid8: the changes of transactions from here on are unread
	conn   *pgx.Conn
	// retry is how soon to read again because changes were held back
	// (zero when none were); it doubles up to PollInterval.
	retry time.Duration
}

// run waits for notifications (or the poll interval) and reads the feed
// until ctx ends.
func (l *listener) run(ctx context.Context) {
	defer close(l.out)
	defer l.closeConn()
	var lastDial time.Time
	for {
		// Right after LISTEN succeeds the feed is read at once: what
		// committed before the LISTEN sent no notification we could hear.
		listening := false
		if l.conn == nil && !l.opts.PollOnly && time.Since(lastDial) >= l.opts.PollInterval {
			lastDial = time.Now()
			listening = l.dial(ctx)
		}
		if !listening && !l.wait(ctx) {
			return
		}
		if ctx.Err() != nil {
			return
		}
		if err := l.poll(ctx); err != nil {
			if ctx.Err() != nil {
				return
			}
			l.opts.Logger.Warn("postgres: read the change feed", "err", err)
		}
	}
}

// dial opens the LISTEN connection and reports whether it did; on failure
// the listener polls and tries again later.
func (l *listener) dial(ctx context.Context) bool {
	cfg := l.db.pool.Config().ConnConfig
	cfg.RuntimeParams["application_name"] = listenAppName
	conn, err := pgx.ConnectConfig(ctx, cfg)
	if err == nil {
		_, err = conn.Exec(ctx, "LISTEN "+pgx.Identifier{l.db.channel}.Sanitize())
		if err != nil {
			_ = conn.Close(ctx)
		}
	}
	if err != nil {
		if ctx.Err() == nil {
			l.opts.Logger.Warn("postgres: LISTEN for changes failed; polling", "err", dbError(err))
		}
		return false
	}
	l.conn = conn
	return true
}

// wait returns after a notification or the poll interval; false when ctx
// ended.
func (l *listener) wait(ctx context.Context) bool {
	timeout := l.opts.PollInterval
	if l.retry > 0 {
		timeout = l.retry
	}
	if l.conn == nil {
		t := time.NewTimer(timeout)
		defer t.Stop()
		select {
		case <-ctx.Done():
			return false
		case <-t.C:
			return true
		}
	}
	wctx, cancel := context.WithTimeout(ctx, timeout)
	_, err := l.conn.WaitForNotification(wctx)
	cancel()
	if ctx.Err() != nil {
		return false
	}
	if err != nil && (l.conn.IsClosed() || !errors.Is(err, context.DeadlineExceeded)) {
		l.opts.Logger.Warn("postgres: LISTEN connection lost; polling until it is back", "err", dbError(err))
		l.closeConn()
	}
	return true
}

// closeConn closes the LISTEN connection, if any.
func (l *listener) closeConn() {
	if l.conn == nil {
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Second)
	defer cancel()
	_ = l.conn.Close(ctx)
	l.conn = nil
}

// poll reads the changes of the transactions that ended since the last
// read and sends them on.
func (l *listener) poll(ctx context.Context) error {
	w, err := readWindow(ctx, l.db.pool, l.cursor)
	if err != nil {
		return err
	}
	for _, c := range w.changes {
		select {
		case l.out <- c:
		case <-ctx.Done():
			return ctx.Err()
		}
	}
	l.cursor = w.next
	switch {
	case !w.held:
		l.retry = 0
	case l.retry == 0:
		l.retry = minHeldRetry
	default:
		l.retry = min(2*l.retry, l.opts.PollInterval)
	}
	return nil
}

// window is one read of the change feed.
type window struct {
	changes []Change
	// next is the cursor of the following read.
	next string
	// held reports committed changes above the window, held back by a
	// transaction still running.
	held bool
}

// readWindow reads the changes of the transactions from cursor up to the
// oldest one still running.
func readWindow(ctx context.Context, q querier, cursor string) (window, error) {
	rows, err := q.Query(ctx, pollSQL, cursor)
	if err != nil {
		return window{}, dbError(err)
	}
	defer rows.Close()
	var w window
	for rows.Next() {
		var logoutID, deliveryID, state *string
		var at *time.Time
		if err := rows.Scan(&w.next, &logoutID, &deliveryID, &state, &at, &w.held); err != nil {
			return window{}, err
		}
		if logoutID != nil {
			w.changes = append(w.changes, Change{LogoutID: *logoutID, DeliveryID: *deliveryID,
				State: store.DeliveryState(*state), At: fromTZ(at)})
		}
	}
	if err := rows.Err(); err != nil {
		return window{}, dbError(err)
	}
	return w, nil
}

// channelSQL names the NOTIFY channel of the schema the tables live in, so
// that installations sharing a database do not wake each other.
const channelSQL = "SELECT 'slobridge_' || left(md5(current_schema()), 16)"

// notifySQL sends the wake-up. It needs no durability, so its transaction
// does not wait for the WAL flush.
const notifySQL = "SELECT set_config('synchronous_commit', 'off', true), pg_notify($1, '')"

// notifier sends the NOTIFY that wakes the listeners of every replica
// after this one committed a change. It runs outside the writing
// transactions on purpose: PostgreSQL serialises the commits of
// transactions that NOTIFY, so a NOTIFY in each logout and attempt would
// halve the outbox throughput. Pokes that arrive while a NOTIFY is on its
// way collapse into one more. A NOTIFY lost to a crash between commit and
// poke only delays listeners to their next poll.
type notifier struct {
	pool    *pgxpool.Pool
	channel string
	pokes   chan struct{}
	cancel  context.CancelFunc
	done    chan struct{}
}

// startNotifier starts the notifier of channel.
func startNotifier(pool *pgxpool.Pool, channel string) *notifier {
	ctx, cancel := context.WithCancel(context.Background())
	n := &notifier{pool: pool, channel: channel, pokes: make(chan struct{}, 1), cancel: cancel, done: make(chan struct{})}
	go n.run(ctx)
	return n
}

// poke asks for a NOTIFY; it never blocks.
func (n *notifier) poke() {
	select {
	case n.pokes <- struct{}{}:
	default:
	}
}

// run sends one NOTIFY per batch of pokes until ctx ends. Errors are
// dropped: the listeners poll.
func (n *notifier) run(ctx context.Context) {
	defer close(n.done)
	for {
		select {
		case <-ctx.Done():
			return
		case <-n.pokes:
		}
		_, _ = n.pool.Exec(ctx, notifySQL, n.channel)
	}
}

// close stops the notifier.
func (n *notifier) close() {
	n.cancel()
	<-n.done
}
