// Package netlab builds small layer-2 laboratories out of Linux network
// namespaces for udr's privileged tests and its demo, and always tears them
// down again.
//
// A Lab owns a "switch" namespace holding one bridge, and any number of host
// namespaces named with the prefix "udr-<pid>-<lab>-", each wired to the
// bridge (Connect) or to another host (Pair) through veth pairs. Addresses
// are restricted in code to the documentation ranges (RFC 5737
// 192.0.2.0/24, 198.51.100.0/24, 203.0.113.0/24 and RFC 3849 2001:db8::/32),
// IPv6 duplicate address detection and router solicitations are off so that
// addresses are usable at once and the wire stays quiet. Close removes every
// namespace of the lab, is idempotent, and ends the processes still running
// inside them; New also removes namespaces left behind by udr test processes
// that no longer exist. Privileged skips a test that cannot create
// namespaces, except under CI=true, where it fails it. A Lab is safe for
// concurrent use.
package netlab
