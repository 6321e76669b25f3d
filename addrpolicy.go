package slobridge

import (
	"fmt"
	"net/netip"
)

// AddressPolicy is the one rule for which addresses the bridge may reach on
// the back channel. The registration checks (a back-channel URI, an SP's
// SOAP endpoint, a push URL) and the dialer (NewBackChannelClient, on the
// address actually connected) both ask it, so they cannot disagree.
//
// Public unicast addresses are allowed. Loopback needs AllowLoopback,
// private networks (RFC 1918, RFC 4193 unique-local, RFC 6598 shared, the
// deprecated IPv6 site-local and local-use NAT64) need AllowPrivate. Cloud
// metadata services, link-local, unspecified, this-network, broadcast,
// multicast, reserved, documentation (TEST-NET) and benchmarking ranges,
// IETF protocol assignments, discard-only, ORCHID, and the IPv6 tunnels
// (6to4, Teredo) are refused whatever the options say. An IPv4 address
// inside IPv6 (IPv4-mapped, IPv4-compatible, NAT64 64:ff9b::/96) is judged
// as the IPv4 address it reaches.
type AddressPolicy struct {
	// AllowPrivate permits the private classes.
	AllowPrivate bool
	// AllowLoopback permits 127.0.0.0/8 and ::1.
	AllowLoopback bool
}

// AddressClass is what an address is, for AddressPolicy.
type AddressClass int

// Address classes.
const (
	// ClassPublic is a globally reachable unicast address.
	ClassPublic AddressClass = iota
	// ClassLoopback is allowed with AllowLoopback.
	ClassLoopback
	// ClassPrivate is allowed with AllowPrivate.
	ClassPrivate
	// ClassRefused is never allowed.
	ClassRefused
	// ClassMetadata is a cloud metadata service: never allowed.
	ClassMetadata
)

// addressRange is one row of the table.
type addressRange struct {
	prefix netip.Prefix
	class  AddressClass
	name   string
}

// addressTable returns the classification table, most specific rows
// first (the first match wins). It is built on each call: the policy has
// no global state, and the table is small.
func addressTable() []addressRange {
	row := func(p string, c AddressClass, name string) addressRange {
		return addressRange{netip.MustParsePrefix(p), c, name}
	}
	return []addressRange{
		// Cloud metadata services, named (always refused).
		row("169.254.169.254/32", ClassMetadata, "cloud metadata (AWS, GCP, Azure, OpenStack)"),
		row("169.254.170.2/32", ClassMetadata, "cloud metadata (AWS ECS task)"),
		row("168.63.129.16/32", ClassMetadata, "cloud metadata (Azure wire server)"),
		row("100.100.100.200/32", ClassMetadata, "cloud metadata (Alibaba Cloud)"),
		row("fd00:ec2::254/128", ClassMetadata, "cloud metadata (AWS IPv6)"),
		// IPv4 (RFC 6890 and the IANA special-purpose registry).
		row("0.0.0.0/8", ClassRefused, "this network"),
		row("127.0.0.0/8", ClassLoopback, "loopback"),
		row("10.0.0.0/8", ClassPrivate, "private (RFC 1918)"),
		row("172.16.0.0/12", ClassPrivate, "private (RFC 1918)"),
		row("192.168.0.0/16", ClassPrivate, "private (RFC 1918)"),
		row("100.64.0.0/10", ClassPrivate, "shared address space (RFC 6598)"),
		row("169.254.0.0/16", ClassRefused, "link-local"),
		row("192.0.0.0/24", ClassRefused, "IETF protocol assignments"),
		row("192.0.2.0/24", ClassRefused, "documentation (TEST-NET-1)"),
		row("198.51.100.0/24", ClassRefused, "documentation (TEST-NET-2)"),
		row("203.0.113.0/24", ClassRefused, "documentation (TEST-NET-3)"),
		row("198.18.0.0/15", ClassRefused, "benchmarking"),
		row("192.88.99.0/24", ClassRefused, "6to4 relay anycast"),
		row("224.0.0.0/4", ClassRefused, "multicast"),
		row("255.255.255.255/32", ClassRefused, "broadcast"),
		row("240.0.0.0/4", ClassRefused, "reserved"),
		// IPv6.
		row("::/128", ClassRefused, "unspecified"),
		row("::1/128", ClassLoopback, "loopback"),
		row("100::/64", ClassRefused, "discard-only"),
		row("64:ff9b:1::/48", ClassPrivate, "local-use NAT64"),
		row("2001::/32", ClassRefused, "Teredo tunnel"),
		row("2001:2::/48", ClassRefused, "benchmarking"),
		row("2001:10::/28", ClassRefused, "ORCHID"),
		row("2001:20::/28", ClassRefused, "ORCHIDv2"),
		row("2001:db8::/32", ClassRefused, "documentation"),
		row("2002::/16", ClassRefused, "6to4 tunnel"),
		row("3fff::/20", ClassRefused, "documentation"),
		row("5f00::/16", ClassRefused, "segment routing SIDs"),
		row("fc00::/7", ClassPrivate, "unique local (RFC 4193)"),
		row("fe80::/10", ClassRefused, "link-local"),
		row("fec0::/10", ClassPrivate, "site-local (deprecated)"),
		row("ff00::/8", ClassRefused, "multicast"),
	}
}

// embedded4 returns the IPv4 address an IPv6 address reaches: IPv4-mapped
// (::ffff:0:0/96), IPv4-compatible (::/96, deprecated) and the well-known
// NAT64 prefix (64:ff9b::/96, RFC 6052).
func embedded4(ip netip.Addr) (netip.Addr, bool) {
	if !ip.Is6() {
		return netip.Addr{}, false
	}
	if ip.Is4In6() {
		return ip.Unmap(), true
	}
	b := ip.As16()
	v4 := netip.AddrFrom4([4]byte{b[12], b[13], b[14], b[15]})
	nat64 := netip.MustParsePrefix("64:ff9b::/96")
	compat := netip.MustParsePrefix("::/96")
	switch {
	case nat64.Contains(ip):
		return v4, true
	case compat.Contains(ip) && ip != netip.IPv6Unspecified() && ip != netip.IPv6Loopback():
		return v4, true
	}
	return netip.Addr{}, false
}

// ClassifyAddress returns the class of ip and the name of its range.
func ClassifyAddress(ip netip.Addr) (AddressClass, string) {
	if !ip.IsValid() {
		return ClassRefused, "invalid"
	}
	ip = ip.WithZone("")
	if v4, ok := embedded4(ip); ok {
		c, name := ClassifyAddress(v4)
		switch {
		case c == ClassPublic:
			return ClassPublic, ""
		case c == ClassLoopback && !ip.Is4In6():
			// A NAT64 or IPv4-compatible form of 127/8 is not this host.
			c = ClassRefused
		}
		return c, name + " (embedded in " + ip.String() + ")"
	}
	for _, r := range addressTable() {
		if r.prefix.Contains(ip) {
			return r.class, r.name
		}
	}
	return ClassPublic, ""
}

// Check returns nil when ip may be reached under the policy, and otherwise
// an error wrapping ErrForbiddenDestination that names the range.
func (p AddressPolicy) Check(ip netip.Addr) error {
	c, name := ClassifyAddress(ip)
	switch {
	case c == ClassPublic, c == ClassLoopback && p.AllowLoopback, c == ClassPrivate && p.AllowPrivate:
		return nil
	}
	return fmt.Errorf("%w: %s is %s", ErrForbiddenDestination, ip, name)
}
