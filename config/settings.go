package config

import (
	"fmt"
	"net"
	"time"
)

// The checks of udr run's settings that both a flag and a key of udr.yaml
// give: udr run's flags, the decoder of udr.yaml and the director (at
// start, whatever gave the value) use these same ones.

// ParseVIPMAC checks a vip_mac (--vip-mac) value: "" (a virtual MAC),
// "iface" (the interface's own), or a MAC address that a neighbour can
// keep for a unicast IP address: 6 bytes, not all zero, not broadcast or
// multicast (the I/G bit clear). It returns the address, or nil for "" and
// "iface".
func ParseVIPMAC(s string) (net.HardwareAddr, error) {
	if s == "" || s == "iface" {
		return nil, nil
	}
	mac, err := net.ParseMAC(s)
	switch {
	case err != nil || len(mac) != 6:
		return nil, fmt.Errorf(`%q is not an Ethernet MAC address, "" (a virtual MAC) or iface`, s)
	case [6]byte(mac) == [6]byte{}:
		return nil, fmt.Errorf("%s is the all-zero MAC, which no neighbour accepts: want a unicast MAC address", s)
	case [6]byte(mac) == [6]byte{0xff, 0xff, 0xff, 0xff, 0xff, 0xff}:
		return nil, fmt.Errorf("%s is the broadcast MAC: want a unicast MAC address", s)
	case mac[0]&1 != 0:
		return nil, fmt.Errorf("%s is a multicast MAC (the first byte is odd): want a unicast MAC address", s)
	}
	return mac, nil
}

// CheckAnnounceInterval checks an announce_interval (--garp-interval).
func CheckAnnounceInterval(d time.Duration) error {
	if d < MinAnnounceInterval || d > MaxAnnounceInterval {
		return fmt.Errorf("%s out of range %s..%s", shortDuration(d), shortDuration(MinAnnounceInterval), shortDuration(MaxAnnounceInterval))
	}
	return nil
}

// CheckCapacity checks a capacity (--capacity): the connection table's
// entries. Whether the machine has the memory is checked where the table
// is made.
func CheckCapacity(n int) error {
	if n < 1 || n > MaxCapacity {
		return fmt.Errorf("%d out of range 1..%d", n, MaxCapacity)
	}
	return nil
}
