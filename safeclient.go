package slobridge

import (
	"crypto/tls"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/netip"
	"syscall"
	"time"
)

// ErrForbiddenDestination reports a back-channel connection refused because
// the address it would reach is loopback, private, link-local, unspecified,
// multicast or broadcast (see ClientOptions).
var ErrForbiddenDestination = errors.New("slobridge: back-channel destination address not allowed")

// ClientOptions configure the HTTP client of back-channel notifiers.
type ClientOptions struct {
	// AllowPrivate permits private (RFC 1918, RFC 4193 unique-local) and
	// shared (RFC 6598) addresses: receivers on the same internal network.
	AllowPrivate bool
	// AllowLoopback permits 127.0.0.0/8 and ::1 (tests, a receiver on the
	// same host).
	AllowLoopback bool
	// DialTimeout bounds connection set-up; default 5s. The attempt itself
	// is bounded by the context the engine gives each attempt.
	DialTimeout time.Duration
	// TLSConfig, when set, is used for HTTPS receivers (custom roots);
	// default: system roots, TLS 1.2 or later.
	TLSConfig *tls.Config
}

// NewBackChannelClient returns the HTTP client shared by every back-channel
// notifier (OIDC, SAML SOAP, SSF push, generic HTTP).
//
// Back-channel URLs come from app registrations, some of them dynamic (RFC
// 7591), so a URL is attacker-controlled input and the bridge must not become
// a server-side request forgery proxy into its own network:
//   - redirects are never followed: a 3xx is the answer, and a failed
//     attempt (a receiver must answer at the registered URL);
//   - the dialer refuses what AddressPolicy refuses: loopback and private
//     addresses unless allowed; cloud metadata, link-local and every other
//     special-purpose range always. The check runs in net.Dialer.Control on the
//     IP actually being connected, after DNS resolution, so DNS rebinding
//     (a name that resolves to a public address at validation time and to
//     127.0.0.1 at connect time) cannot bypass it;
//   - no proxy from the environment, since the check would then see only
//     the proxy's address.
func NewBackChannelClient(opts ClientOptions) *http.Client {
	if opts.DialTimeout <= 0 {
		opts.DialTimeout = 5 * time.Second
	}
	tlsConf := opts.TLSConfig
	if tlsConf == nil {
		tlsConf = &tls.Config{MinVersion: tls.VersionTLS12}
	}
	dialer := &net.Dialer{
		Timeout:   opts.DialTimeout,
		KeepAlive: 30 * time.Second,
		Control: func(network, address string, _ syscall.RawConn) error {
			return checkDestination(address, opts)
		},
	}
	tr := &http.Transport{
		Proxy:                 nil,
		DialContext:           dialer.DialContext,
		TLSClientConfig:       tlsConf,
		ForceAttemptHTTP2:     true,
		MaxIdleConns:          1024,
		MaxIdleConnsPerHost:   64,
		IdleConnTimeout:       90 * time.Second,
		TLSHandshakeTimeout:   opts.DialTimeout,
		ExpectContinueTimeout: time.Second,
	}
	return &http.Client{
		Transport: tr,
		CheckRedirect: func(*http.Request, []*http.Request) error {
			return http.ErrUseLastResponse
		},
	}
}

// checkDestination decides whether a dial to address ("ip:port") may go
// ahead, by the AddressPolicy of opts.
func checkDestination(address string, opts ClientOptions) error {
	host, _, err := net.SplitHostPort(address)
	if err != nil {
		return fmt.Errorf("%w: %q: %v", ErrForbiddenDestination, address, err)
	}
	ip, err := netip.ParseAddr(host)
	if err != nil {
		return fmt.Errorf("%w: %q is not an IP address", ErrForbiddenDestination, host)
	}
	return AddressPolicy{AllowPrivate: opts.AllowPrivate, AllowLoopback: opts.AllowLoopback}.Check(ip)
}
