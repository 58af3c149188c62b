package service

import (
	"fmt"
	"net/netip"
)

// Proto is an IP protocol number of a virtual service.
type Proto uint8

// Protocols a virtual service can have. Only TCP and UDP are forwarded.
const (
	TCP Proto = 6
	UDP Proto = 17
)

// String returns the protocol as ipvsadm lists it: "TCP" or "UDP".
func (p Proto) String() string {
	switch p {
	case TCP:
		return "TCP"
	case UDP:
		return "UDP"
	}
	return fmt.Sprintf("proto(%d)", uint8(p))
}

// Flag returns the ipvsadm option that names the protocol: "-t" or "-u".
func (p Proto) Flag() string {
	if p == UDP {
		return "-u"
	}
	return "-t"
}

// SchedFlags are the scheduler flags of a service (ipvsadm -b), with the
// kernel's bit values (include/uapi/linux/ip_vs.h IP_VS_SVC_F_SCHED1..3).
type SchedFlags uint32

// Scheduler flag bits. sh-fallback and mh-fallback are SchedFlag1, sh-port and
// mh-port are SchedFlag2; the kernel gives them meaning per scheduler.
const (
	SchedFlag1 SchedFlags = 0x0008
	SchedFlag2 SchedFlags = 0x0010
	SchedFlag3 SchedFlags = 0x0020
)

// Defaults from ipvsadm's source (ipvsadm.c, libipvs/libipvs.h).
const (
	DefaultScheduler         = "wlc"
	DefaultWeight            = 1
	DefaultPersistentTimeout = 360 // seconds; ipvsadm.8 says 300, the source says 6*60
	MaxTimeout               = 2678400
)

// Key identifies a virtual service: protocol, virtual IP and port.
// Port 0 means "all ports" and is allowed only for persistent services.
type Key struct {
	Proto Proto
	Addr  netip.Addr
	Port  uint16
}

// String returns the key as ipvsadm -S -n prints it: "-t 192.0.2.1:80" or
// "-u [2001:db8::1]:53".
func (k Key) String() string {
	return k.Proto.Flag() + " " + netip.AddrPortFrom(k.Addr, k.Port).String()
}

// Service is one virtual service as ipvsadm -A defines it.
type Service struct {
	Key
	Scheduler  string
	Flags      SchedFlags
	Persistent bool
	Timeout    uint32 // persistence timeout in seconds, when Persistent
	Netmask    int    // persistence granularity as a prefix length: 32 (IPv4) or 128 (IPv6) by default
	OnePacket  bool   // -o, UDP only

	// Dests are the real servers in the kernel's list order: the most
	// recently added first. Every scheduler walks them from the head.
	Dests []Dest
}

// Dest is one real server of a service, as ipvsadm -a defines it.
// In direct routing its port always equals the service port.
type Dest struct {
	Addr       netip.Addr
	Port       uint16
	Weight     int32  // 0..65535; 0 quiesces it: no new connections
	UThreshold uint32 // -x: upper connection threshold, 0 = none
	LThreshold uint32 // -y: lower connection threshold, 0 = none

	// LastWeight is the latest non-zero weight the server had, which the
	// kernel keeps for mh so that quiescing does not reshuffle its table.
	LastWeight int32
}

// AddrPort returns the real server's address and port.
func (d Dest) AddrPort() netip.AddrPort { return netip.AddrPortFrom(d.Addr, d.Port) }

// Timeouts are the connection timeouts that ipvsadm --set changes, in seconds.
// Zero values mean the kernel defaults (900, 120, 300).
type Timeouts struct {
	TCP    uint32
	TCPFin uint32
	UDP    uint32
}

// Kernel default timeouts (net/netfilter/ipvs/ip_vs_proto_tcp.c, ip_vs_proto_udp.c).
const (
	DefaultTCPTimeout    = 900
	DefaultTCPFinTimeout = 120
	DefaultUDPTimeout    = 300
)

// WithDefaults returns t with every zero field set to the kernel default.
func (t Timeouts) WithDefaults() Timeouts {
	if t.TCP == 0 {
		t.TCP = DefaultTCPTimeout
	}
	if t.TCPFin == 0 {
		t.TCPFin = DefaultTCPFinTimeout
	}
	if t.UDP == 0 {
		t.UDP = DefaultUDPTimeout
	}
	return t
}

// Config is the whole virtual server table: services in the order they were
// added, and the connection timeouts.
type Config struct {
	Services []*Service
	Timeouts Timeouts
}

// Service returns the service with key k, or nil.
func (c *Config) Service(k Key) *Service {
	for _, s := range c.Services {
		if s.Key == k {
			return s
		}
	}
	return nil
}

// Clone returns a deep copy of c, so that a change can be validated and
// applied to the copy while c stays in use.
func (c *Config) Clone() *Config {
	n := &Config{Timeouts: c.Timeouts, Services: make([]*Service, len(c.Services))}
	for i, s := range c.Services {
		cp := *s
		cp.Dests = append([]Dest(nil), s.Dests...)
		n.Services[i] = &cp
	}
	return n
}
