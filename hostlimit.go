package slobridge

import (
	"context"
	"net"
	"net/url"
	"strings"
	"sync"
)

// hostLimiter bounds concurrent attempts per receiver host so that one slow
// receiver cannot take every worker. Semaphores exist only while someone
// holds or waits for them: the map does not grow with every host ever seen.
type hostLimiter struct {
	per  int
	mu   sync.Mutex
	sems map[string]*hostSem
}

type hostSem struct {
	slots chan struct{}
	refs  int // holders and waiters
}

func newHostLimiter(per int) *hostLimiter {
	return &hostLimiter{per: per, sems: map[string]*hostSem{}}
}

// acquire waits for a slot of host, or for ctx to end.
func (l *hostLimiter) acquire(ctx context.Context, host string) error {
	l.mu.Lock()
	s := l.sems[host]
	if s == nil {
		s = &hostSem{slots: make(chan struct{}, l.per)}
		l.sems[host] = s
	}
	s.refs++
	l.mu.Unlock()
	select {
	case s.slots <- struct{}{}:
		return nil
	case <-ctx.Done():
		l.unref(host, s)
		return ctx.Err()
	}
}

// release frees a slot taken by acquire.
func (l *hostLimiter) release(host string) {
	l.mu.Lock()
	s := l.sems[host]
	l.mu.Unlock()
	<-s.slots
	l.unref(host, s)
}

func (l *hostLimiter) unref(host string, s *hostSem) {
	l.mu.Lock()
	defer l.mu.Unlock()
	s.refs--
	if s.refs == 0 {
		delete(l.sems, host)
	}
}

// hostKey returns the receiver a URL points at, as scheme://host:port with
// the default port made explicit, lower-cased. An unparsable URL maps to
// its own text, so it is still bounded (its attempts fail in the notifier).
func ReceiverOf(raw string) string {
	u, err := url.Parse(raw)
	if err != nil || u.Host == "" {
		return raw
	}
	scheme := strings.ToLower(u.Scheme)
	port := u.Port()
	if port == "" {
		switch scheme {
		case "https":
			port = "443"
		case "http":
			port = "80"
		}
	}
	return scheme + "://" + net.JoinHostPort(strings.ToLower(u.Hostname()), port)
}
