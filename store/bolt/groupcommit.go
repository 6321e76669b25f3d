package bolt

import (
	"sync"

	bbolt "go.etcd.io/bbolt"
)

// groupCommit shares write transactions between concurrent callers — a
// group commit — without making anyone wait for company: a write that
// finds no commit under way is committed at once; the writes that arrive
// while a commit (and its fsync) is under way are committed together right
// after it. Under load every fsync carries many logins; alone, a login
// pays one fsync and no delay. (bbolt's own Batch waits MaxBatchDelay for
// company even when none comes.)
//
// As with bbolt's Batch, a function may run more than once: when the
// shared transaction fails, each of its functions runs again alone, so
// that one failure does not fail the others.
type groupCommit struct {
	db *bbolt.DB
	// max is the most functions in one transaction.
	max int
	// before runs first in every transaction; committed after each commit.
	before    func(tx *bbolt.Tx)
	committed func()

	mu      sync.Mutex
	pending []groupCall
	leading bool
}

// groupCall is one function waiting for its commit.
type groupCall struct {
	fn   func(tx *bbolt.Tx) error
	done chan error
}

// do runs fn in a shared write transaction and returns when it committed
// (nil) or failed.
func (g *groupCommit) do(fn func(tx *bbolt.Tx) error) error {
	c := groupCall{fn: fn, done: make(chan error, 1)}
	g.mu.Lock()
	g.pending = append(g.pending, c)
	if !g.leading {
		g.leading = true
		go g.lead()
	}
	g.mu.Unlock()
	return <-c.done
}

// lead commits what is pending, group after group, until nothing is.
func (g *groupCommit) lead() {
	for {
		g.mu.Lock()
		n := min(len(g.pending), g.max)
		if n == 0 {
			g.leading = false
			g.mu.Unlock()
			return
		}
		calls := g.pending[:n:n]
		g.pending = append([]groupCall(nil), g.pending[n:]...)
		g.mu.Unlock()
		g.commit(calls)
	}
}

// commit runs calls in one transaction, or each alone when that fails.
func (g *groupCommit) commit(calls []groupCall) {
	err := g.update(func(tx *bbolt.Tx) error {
		for _, c := range calls {
			if err := c.fn(tx); err != nil {
				return err
			}
		}
		return nil
	})
	if err == nil || len(calls) == 1 {
		for _, c := range calls {
			c.done <- err
		}
		return
	}
	for _, c := range calls {
		c.done <- g.update(c.fn)
	}
}

// update runs fn in one write transaction of its own.
func (g *groupCommit) update(fn func(tx *bbolt.Tx) error) error {
	err := g.db.Update(func(tx *bbolt.Tx) error {
		g.before(tx)
		return fn(tx)
	})
	if err == nil {
		g.committed()
	}
	return err
}
