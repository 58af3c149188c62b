package ipvssync

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"golang.org/x/net/ipv4"
	"golang.org/x/net/ipv6"
	"golang.org/x/sys/unix"
)

// sendTimeout bounds one Send: the kernel's master sends without waiting
// (MSG_DONTWAIT) and waits for room when the socket buffer is full; udr
// waits at most this long per destination.
const sendTimeout = time.Second

// Sender is the master side: it sends finished messages to the group and
// to the peers. Send is safe for concurrent use.
type Sender struct {
	v4, v6   *net.UDPConn
	dests    []netip.AddrPort
	messages atomic.Uint64
	errs     atomic.Uint64
}

// NewSender opens the sending sockets as the kernel's make_send_sock
// does: multicast out of Interface, multicast loop off, TTL, fragmentation
// allowed (IP_PMTUDISC_DONT), IPv4 socket bound to the interface's first
// IPv4 address. Peers that are addresses of this host are left out.
func NewSender(o Options) (*Sender, error) {
	if err := o.check(); err != nil {
		return nil, err
	}
	ifi, err := lookupInterface(o.Interface)
	if err != nil {
		return nil, err
	}
	local, err := localAddrs()
	if err != nil {
		return nil, err
	}
	s := &Sender{}
	g := o.group()
	if g.IsValid() {
		s.dests = append(s.dests, netip.AddrPortFrom(g, o.port()))
	}
	for _, p := range o.Peers {
		p = netip.AddrPortFrom(p.Addr().Unmap(), p.Port())
		if _, ok := local[p.Addr()]; ok {
			continue
		}
		s.dests = append(s.dests, p)
	}
	ok := false
	defer func() {
		if !ok {
			s.Close()
		}
	}()
	for _, d := range s.dests {
		mcast := d.Addr() == g
		if d.Addr().Is4() && s.v4 == nil {
			if s.v4, err = openSend4(ifi); err != nil {
				return nil, err
			}
		}
		if d.Addr().Is6() && s.v6 == nil {
			if s.v6, err = openSend6(); err != nil {
				return nil, err
			}
		}
		if !mcast {
			continue
		}
		if d.Addr().Is4() {
			err = setMulticast4(s.v4, ifi, o.ttl())
		} else {
			err = setMulticast6(s.v6, ifi, o.ttl())
		}
		if err != nil {
			return nil, err
		}
	}
	ok = true
	return s, nil
}

func lookupInterface(name string) (*net.Interface, error) {
	if name == "" {
		return nil, nil
	}
	ifi, err := net.InterfaceByName(name)
	if err != nil {
		return nil, fmt.Errorf("ipvssync: interface %q: %w", name, err)
	}
	return ifi, nil
}

// localAddrs returns this host's addresses (in the calling thread's
// network namespace).
func localAddrs() (map[netip.Addr]struct{}, error) {
	addrs, err := net.InterfaceAddrs()
	if err != nil {
		return nil, fmt.Errorf("ipvssync: list local addresses: %w", err)
	}
	m := make(map[netip.Addr]struct{}, len(addrs))
	for _, a := range addrs {
		if p, err := netip.ParsePrefix(a.String()); err == nil {
			m[p.Addr().Unmap()] = struct{}{}
		}
	}
	return m, nil
}

func openSend4(ifi *net.Interface) (*net.UDPConn, error) {
	laddr := &net.UDPAddr{IP: net.IPv4zero}
	if ifi != nil {
		// bind_mcastif_addr: the interface's address is the source.
		if addrs, err := ifi.Addrs(); err == nil {
			for _, a := range addrs {
				if n, ok := a.(*net.IPNet); ok && n.IP.To4() != nil {
					laddr.IP = n.IP.To4()
					break
				}
			}
		}
	}
	c, err := net.ListenUDP("udp4", laddr)
	if err != nil {
		return nil, fmt.Errorf("ipvssync: sending socket: %w", err)
	}
	if err := setsockopt(c, unix.IPPROTO_IP, unix.IP_MTU_DISCOVER, unix.IP_PMTUDISC_DONT); err != nil {
		c.Close()
		return nil, err
	}
	return c, nil
}

func openSend6() (*net.UDPConn, error) {
	c, err := net.ListenUDP("udp6", &net.UDPAddr{IP: net.IPv6unspecified})
	if err != nil {
		return nil, fmt.Errorf("ipvssync: sending socket: %w", err)
	}
	if err := setsockopt(c, unix.IPPROTO_IPV6, unix.IPV6_MTU_DISCOVER, unix.IPV6_PMTUDISC_DONT); err != nil {
		c.Close()
		return nil, err
	}
	return c, nil
}

func setMulticast4(c *net.UDPConn, ifi *net.Interface, ttl int) error {
	p := ipv4.NewPacketConn(c)
	if err := p.SetMulticastInterface(ifi); err != nil {
		return fmt.Errorf("ipvssync: multicast interface %s: %w", ifi.Name, err)
	}
	if err := p.SetMulticastTTL(ttl); err != nil {
		return fmt.Errorf("ipvssync: multicast TTL: %w", err)
	}
	if err := p.SetMulticastLoopback(false); err != nil {
		return fmt.Errorf("ipvssync: multicast loop: %w", err)
	}
	return nil
}

func setMulticast6(c *net.UDPConn, ifi *net.Interface, hops int) error {
	p := ipv6.NewPacketConn(c)
	if err := p.SetMulticastInterface(ifi); err != nil {
		return fmt.Errorf("ipvssync: multicast interface %s: %w", ifi.Name, err)
	}
	if err := p.SetMulticastHopLimit(hops); err != nil {
		return fmt.Errorf("ipvssync: multicast hop limit: %w", err)
	}
	if err := p.SetMulticastLoopback(false); err != nil {
		return fmt.Errorf("ipvssync: multicast loop: %w", err)
	}
	return nil
}

func setsockopt(c *net.UDPConn, level, opt, val int) error {
	rc, err := c.SyscallConn()
	if err != nil {
		return err
	}
	var serr error
	if err := rc.Control(func(fd uintptr) { serr = unix.SetsockoptInt(int(fd), level, opt, val) }); err != nil {
		return err
	}
	if serr != nil {
		return fmt.Errorf("ipvssync: setsockopt %d/%d: %w", level, opt, serr)
	}
	return nil
}

// Send sends msg (a finished message, see Encoder) to the group and to
// each peer, waiting at most a second for each. It returns the first error
// and goes on with the other destinations.
func (s *Sender) Send(msg []byte) error {
	var first error
	deadline := time.Now().Add(sendTimeout)
	for _, d := range s.dests {
		c := s.v4
		if d.Addr().Is6() {
			c = s.v6
		}
		c.SetWriteDeadline(deadline)
		if _, err := c.WriteToUDPAddrPort(msg, d); err != nil {
			s.errs.Add(1)
			if first == nil {
				first = fmt.Errorf("ipvssync: send to %s: %w", d, err)
			}
			continue
		}
		s.messages.Add(1)
	}
	return first
}

// Destinations returns the group and the peers Send sends to.
func (s *Sender) Destinations() []netip.AddrPort { return append([]netip.AddrPort(nil), s.dests...) }

// Stats returns the Sender's counters.
func (s *Sender) Stats() SenderStats {
	return SenderStats{Messages: s.messages.Load(), Errors: s.errs.Load()}
}

// Close closes the sockets.
func (s *Sender) Close() error {
	var errs []error
	for _, c := range []*net.UDPConn{s.v4, s.v6} {
		if c != nil {
			errs = append(errs, c.Close())
		}
	}
	return errors.Join(errs...)
}

// Receiver is the backup side. It listens on Port for the group (joined on
// Interface) and for unicast, drops what the kernel's backup drops
// (ip_vs_process_message) and what it sent itself, counts each drop, and
// calls fn for each accepted message, hellos (no connections) included.
// fn is called from one goroutine at a time; conns is valid only during
// the call.
type Receiver struct {
	o     Options
	fn    func(from netip.AddrPort, syncid uint8, conns []Conn)
	socks []*recvSock
	local map[netip.Addr]struct{} // this host's addresses when it started
	count receiverCounters

	fnMu    sync.Mutex
	running atomic.Bool
}

type recvSock struct {
	c      *net.UDPConn
	buf    []byte // the receive buffer, one byte longer than the kernel's to see truncation
	maxLen int    // the kernel's buffer
	conns  []Conn
}

// NewReceiver opens the receiving sockets, as the kernel's
// make_receive_sock does (SO_REUSEADDR, group joined on the interface),
// but bound to the wildcard address so that unicast from the peers
// arrives too, with IP_MULTICAST_ALL off so that no other group does.
// One socket per address family in use (the group's, the peers').
func NewReceiver(o Options, fn func(from netip.AddrPort, syncid uint8, conns []Conn)) (*Receiver, error) {
	if err := o.check(); err != nil {
		return nil, err
	}
	if fn == nil {
		return nil, errors.New("ipvssync: NewReceiver needs a function")
	}
	ifi, err := lookupInterface(o.Interface)
	if err != nil {
		return nil, err
	}
	mtu := 1500
	if ifi != nil {
		mtu = ifi.MTU
	}
	local, err := localAddrs()
	if err != nil {
		return nil, err
	}
	r := &Receiver{o: o, fn: fn, local: local}
	g := o.group()
	var want4, want6 bool
	if g.IsValid() {
		want4, want6 = g.Is4(), g.Is6()
	}
	for _, p := range o.Peers {
		want4 = want4 || p.Addr().Unmap().Is4()
		want6 = want6 || p.Addr().Unmap().Is6()
	}
	ok := false
	defer func() {
		if !ok {
			r.Close()
		}
	}()
	maxLen := o.recvLen(mtu)
	if want4 {
		c, err := listen("udp4", netip.AddrPortFrom(netip.IPv4Unspecified(), o.port()))
		if err != nil {
			return nil, err
		}
		r.socks = append(r.socks, &recvSock{c: c, buf: make([]byte, maxLen+1), maxLen: maxLen, conns: make([]Conn, 0, maxConns)})
		if g.Is4() {
			if err := ipv4.NewPacketConn(c).JoinGroup(ifi, &net.UDPAddr{IP: g.AsSlice()}); err != nil {
				return nil, fmt.Errorf("ipvssync: join %s on %s: %w", g, o.Interface, err)
			}
		}
	}
	if want6 {
		c, err := listen("udp6", netip.AddrPortFrom(netip.IPv6Unspecified(), o.port()))
		if err != nil {
			return nil, err
		}
		r.socks = append(r.socks, &recvSock{c: c, buf: make([]byte, maxLen+1), maxLen: maxLen, conns: make([]Conn, 0, maxConns)})
		if g.Is6() {
			if err := ipv6.NewPacketConn(c).JoinGroup(ifi, &net.UDPAddr{IP: g.AsSlice()}); err != nil {
				return nil, fmt.Errorf("ipvssync: join %s on %s: %w", g, o.Interface, err)
			}
		}
	}
	ok = true
	return r, nil
}

func listen(network string, addr netip.AddrPort) (*net.UDPConn, error) {
	lc := net.ListenConfig{Control: func(network, address string, rc syscall.RawConn) error {
		var serr error
		err := rc.Control(func(fd uintptr) {
			// make_receive_sock: sk_reuse = SK_CAN_REUSE.
			if serr = unix.SetsockoptInt(int(fd), unix.SOL_SOCKET, unix.SO_REUSEADDR, 1); serr != nil {
				return
			}
			// Only the groups this socket joined, not every group the
			// host joined on this port.
			if network == "udp4" {
				serr = unix.SetsockoptInt(int(fd), unix.IPPROTO_IP, unix.IP_MULTICAST_ALL, 0)
			} else {
				serr = unix.SetsockoptInt(int(fd), unix.IPPROTO_IPV6, unix.IPV6_MULTICAST_ALL, 0)
			}
		})
		if err != nil {
			return err
		}
		return serr
	}}
	pc, err := lc.ListenPacket(context.Background(), network, addr.String())
	if err != nil {
		return nil, fmt.Errorf("ipvssync: listen on %s: %w", addr, err)
	}
	return pc.(*net.UDPConn), nil
}

// Addrs returns the local addresses the Receiver listens on.
func (r *Receiver) Addrs() []netip.AddrPort {
	var out []netip.AddrPort
	for _, s := range r.socks {
		out = append(out, s.c.LocalAddr().(*net.UDPAddr).AddrPort())
	}
	return out
}

// Run receives until ctx is done or the Receiver is closed, and then
// returns nil; it returns early with the error of a failed read. It does
// not allocate per datagram. Run may be called once.
func (r *Receiver) Run(ctx context.Context) error {
	if !r.running.CompareAndSwap(false, true) {
		return errors.New("ipvssync: Receiver.Run called twice")
	}
	var stopped atomic.Bool
	stopAll := func() {
		stopped.Store(true)
		for _, s := range r.socks {
			s.c.SetReadDeadline(time.Unix(1, 0))
		}
	}
	defer context.AfterFunc(ctx, stopAll)()
	errc := make(chan error, len(r.socks))
	for _, s := range r.socks {
		go func() {
			err := r.loop(s, &stopped)
			if err != nil {
				stopAll()
			}
			errc <- err
		}()
	}
	var first error
	for range r.socks {
		if err := <-errc; err != nil && first == nil {
			first = err
		}
	}
	return first
}

func (r *Receiver) loop(s *recvSock, stopped *atomic.Bool) error {
	for {
		n, from, err := s.c.ReadFromUDPAddrPort(s.buf)
		if err != nil {
			if stopped.Load() || errors.Is(err, net.ErrClosed) {
				return nil
			}
			return fmt.Errorf("ipvssync: receive: %w", err)
		}
		r.handle(s, netip.AddrPortFrom(from.Addr().Unmap(), from.Port()), s.buf[:n])
	}
}

// handle applies the checks of sync_thread_backup and ip_vs_process_message
// to one datagram b, in the kernel's order.
func (r *Receiver) handle(s *recvSock, from netip.AddrPort, b []byte) {
	if _, own := r.local[from.Addr()]; own {
		r.count.drops[DropOwn].Add(1)
		return
	}
	if len(b) > s.maxLen {
		// The kernel's buffer holds maxLen bytes: the rest is cut off,
		// and the size field no longer matches.
		r.count.drops[DropTooLong].Add(1)
		return
	}
	// ip_vs_process_message checks the syncid after the size, before the
	// version.
	if len(b) >= HeaderLenV0 && int(binary.BigEndian.Uint16(b[hSize:])) == len(b) &&
		r.o.SyncID != 0 && b[hSyncID] != r.o.SyncID {
		r.count.drops[DropSyncID].Add(1)
		return
	}
	m, err := DecodeMessage(b, s.conns[:0])
	s.conns = m.Conns[:0]
	if err != nil {
		r.count.drops[dropReason(err)].Add(1)
		return
	}
	r.count.messages.Add(1)
	r.count.conns.Add(uint64(len(m.Conns)))
	r.count.skipped.Add(uint64(m.Skipped))
	r.fnMu.Lock()
	defer r.fnMu.Unlock()
	r.fn(from, m.SyncID, m.Conns)
}

// Stats returns the Receiver's counters.
func (r *Receiver) Stats() ReceiverStats { return r.count.snapshot() }

// Close closes the sockets (leaving the group); a running Run returns.
func (r *Receiver) Close() error {
	var errs []error
	for _, s := range r.socks {
		errs = append(errs, s.c.Close())
	}
	return errors.Join(errs...)
}
