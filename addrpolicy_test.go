package slobridge

import (
	"errors"
	"net/netip"
	"testing"
)

// TestAddressPolicy classifies IP literals only (nothing is dialled): every
// family of special-purpose address, under each combination of options.
// "pub" is allowed always, "loop" with AllowLoopback, "priv" with
// AllowPrivate, "never" never.
func TestAddressPolicy(t *testing.T) {
	for _, tc := range []struct {
		ip   string
		want string
	}{
		{"93.184.215.14", "pub"},
		{"2606:4700::1111", "pub"},
		{"::ffff:93.184.215.14", "pub"},
		{"64:ff9b::5db8:d70e", "pub"}, // NAT64 of 93.184.215.14
		// Loopback.
		{"127.0.0.1", "loop"},
		{"127.255.0.9", "loop"},
		{"::1", "loop"},
		{"::ffff:127.0.0.1", "loop"},
		{"64:ff9b::7f00:1", "never"}, // NAT64 of 127.0.0.1 is not this host
		{"::127.0.0.1", "never"},     // IPv4-compatible
		// Private.
		{"10.1.2.3", "priv"},
		{"172.16.0.1", "priv"},
		{"172.31.255.255", "priv"},
		{"192.168.1.1", "priv"},
		{"::ffff:192.168.1.1", "priv"},
		{"100.64.0.1", "priv"},
		{"fd00::1", "priv"},
		{"fc00::1", "priv"},
		{"fec0::1", "priv"},
		{"64:ff9b:1::a9fe:a9fe", "priv"},
		{"64:ff9b::a00:1", "priv"}, // NAT64 of 10.0.0.1
		// Cloud metadata, by every spelling.
		{"169.254.169.254", "never"},
		{"::ffff:169.254.169.254", "never"},
		{"::169.254.169.254", "never"},
		{"64:ff9b::a9fe:a9fe", "never"},
		{"fd00:ec2::254", "never"},
		{"100.100.100.200", "never"},
		{"169.254.170.2", "never"},
		{"168.63.129.16", "never"},
		// Link-local, unspecified, this network, broadcast, multicast.
		{"169.254.1.1", "never"},
		{"fe80::1", "never"},
		{"fe80::1%eth0", "never"},
		{"0.0.0.0", "never"},
		{"0.1.2.3", "never"},
		{"::", "never"},
		{"255.255.255.255", "never"},
		{"224.0.0.1", "never"},
		{"239.255.255.250", "never"},
		{"ff02::1", "never"},
		{"ff05::2", "never"},
		// Reserved, documentation, benchmarking, protocol assignments.
		{"240.0.0.1", "never"},
		{"192.0.2.1", "never"},
		{"198.51.100.7", "never"},
		{"203.0.113.9", "never"},
		{"198.18.0.1", "never"},
		{"198.19.255.254", "never"},
		{"192.0.0.1", "never"},
		{"192.88.99.1", "never"},
		{"2001:db8::1", "never"},
		{"3fff::1", "never"},
		{"2001:2::1", "never"},
		{"100::1", "never"},
		{"2001:20::1", "never"},
		// Tunnels: 6to4 and Teredo, whatever they embed.
		{"2002:a9fe:a9fe::1", "never"},
		{"2002:5db8:d70e::1", "never"},
		{"2001:0:4136:e378:8000:63bf:3fff:fdd2", "never"},
	} {
		ip := netip.MustParseAddr(tc.ip)
		for _, p := range []AddressPolicy{{}, {AllowLoopback: true}, {AllowPrivate: true}, {AllowPrivate: true, AllowLoopback: true}} {
			want := tc.want == "pub" || tc.want == "loop" && p.AllowLoopback || tc.want == "priv" && p.AllowPrivate
			err := p.Check(ip)
			if want && err != nil {
				t.Errorf("%s under %+v: %v, want allowed", tc.ip, p, err)
			}
			if !want && !errors.Is(err, ErrForbiddenDestination) {
				t.Errorf("%s under %+v: %v, want refused", tc.ip, p, err)
			}
		}
	}
}
