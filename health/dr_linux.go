//go:build linux

package health

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"net"
	"net/netip"
	"os"
	"sync"
	"sync/atomic"

	"github.com/mdlayher/packet"
	"golang.org/x/sys/unix"
)

// drProber sends dr mode's SYN probes and matches the replies, over one
// AF_PACKET socket for the whole checker.
//
// A probe is a SYN from the director's own address and a random ephemeral
// port to VIP:port, in a frame addressed to the real server's MAC: the
// real server answers only if the VIP is on its lo and the port listens.
// A SYN-ACK passes; the prober then sends a RST so that the real server
// drops the half-open connection at once. The director's kernel, which
// owns no socket on that port, also answers the SYN-ACK with a RST of its
// own: harmless, and the reason the probe needs no firewall rule.
type drProber struct {
	conn     *packet.Conn
	ifMAC    [6]byte
	src4     netip.Addr
	src6     netip.Addr
	neighbor func(netip.Addr) ([6]byte, bool)

	mu      sync.Mutex
	waiting map[flow]chan segment
	done    chan struct{} // closed when the reader returns
	closed  atomic.Bool
}

// flow names a probe: its destination VIP:port and its source port.
type flow struct {
	remote netip.AddrPort
	lport  uint16
}

// Ephemeral ports a probe uses: Linux's default ip_local_port_range.
const (
	firstPort = 32768
	lastPort  = 60999
)

func newDRProber(cfg DRConfig) (*drProber, error) {
	if cfg.NeighborMAC == nil {
		return nil, errors.New("dr mode: no NeighborMAC function to find the real servers' MACs")
	}
	ifi, err := net.InterfaceByName(cfg.Iface)
	if err != nil {
		return nil, fmt.Errorf("dr mode: interface %s: %w", cfg.Iface, err)
	}
	if len(ifi.HardwareAddr) != 6 {
		return nil, fmt.Errorf("dr mode: interface %s has no Ethernet address", cfg.Iface)
	}
	p := &drProber{
		ifMAC:    [6]byte(ifi.HardwareAddr),
		src4:     cfg.Source4.Unmap(),
		src6:     cfg.Source6,
		neighbor: cfg.NeighborMAC,
		waiting:  make(map[flow]chan segment),
		done:     make(chan struct{}),
	}
	if !p.src4.IsValid() || !p.src6.IsValid() {
		addrs, err := ifi.Addrs()
		if err != nil {
			return nil, fmt.Errorf("dr mode: addresses of %s: %w", cfg.Iface, err)
		}
		for _, a := range addrs {
			n, ok := a.(*net.IPNet)
			if !ok {
				continue
			}
			ip, ok := netip.AddrFromSlice(n.IP)
			if !ok || !ip.IsGlobalUnicast() {
				continue
			}
			if ip = ip.Unmap(); ip.Is4() && !p.src4.IsValid() {
				p.src4 = ip
			} else if ip.Is6() && !p.src6.IsValid() {
				p.src6 = ip
			}
		}
	}
	if !p.src4.IsValid() && !p.src6.IsValid() {
		return nil, fmt.Errorf("dr mode: interface %s has no address to send probes from", cfg.Iface)
	}
	filter, err := replyFilter(p.src4, p.src6)
	if err != nil {
		return nil, fmt.Errorf("dr mode: assemble filter: %w", err)
	}
	// ETH_P_ALL: one socket for IPv4 and IPv6. The filter, attached before
	// the socket is bound, keeps only TCP to the director's addresses; our
	// own SYNs and RSTs go to the VIP, so it drops them too.
	p.conn, err = packet.Listen(ifi, packet.Raw, unix.ETH_P_ALL, &packet.Config{Filter: filter})
	if err != nil {
		return nil, fmt.Errorf("dr mode: listen on %s: %w", cfg.Iface, err)
	}
	go p.read()
	return p, nil
}

func (p *drProber) close() error {
	p.closed.Store(true)
	err := p.conn.Close()
	<-p.done
	return err
}

// read hands every received segment to the probe waiting for it.
func (p *drProber) read() {
	defer close(p.done)
	buf := make([]byte, snapBytes)
	for {
		n, _, err := p.conn.ReadFrom(buf)
		if err != nil {
			if p.closed.Load() || errors.Is(err, net.ErrClosed) || errors.Is(err, os.ErrClosed) {
				return
			}
			continue // a socket error reported once (ENETDOWN): probes time out
		}
		s, ok := parseSegment(buf[:n])
		if !ok {
			continue
		}
		p.mu.Lock()
		ch := p.waiting[flow{remote: s.src, lport: s.dst.Port()}]
		p.mu.Unlock()
		if ch != nil {
			select {
			case ch <- s:
			default: // the probe has its answer already
			}
		}
	}
}

// probe sends a SYN to vip at rip's MAC and waits for the SYN-ACK until
// ctx is done.
func (p *drProber) probe(ctx context.Context, rip netip.Addr, vip netip.AddrPort) error {
	mac, ok := p.neighbor(rip)
	if !ok {
		return fmt.Errorf("dr check of %s via %s: the real server's MAC is not known", vip, rip)
	}
	src := p.src4
	if vip.Addr().Is6() {
		src = p.src6
	}
	if !src.IsValid() {
		return fmt.Errorf("dr check of %s via %s: no source address of that family", vip, rip)
	}
	ch := make(chan segment, 1)
	var f flow
	p.mu.Lock()
	for {
		f = flow{remote: vip, lport: uint16(firstPort + rand.IntN(lastPort-firstPort+1))}
		if p.waiting[f] == nil {
			break
		}
	}
	p.waiting[f] = ch
	p.mu.Unlock()
	defer func() {
		p.mu.Lock()
		delete(p.waiting, f)
		p.mu.Unlock()
	}()

	syn := segment{
		dstMAC: mac, srcMAC: p.ifMAC,
		src: netip.AddrPortFrom(src, f.lport), dst: vip,
		seq: rand.Uint32(), flags: tcpSYN,
	}
	to := &packet.Addr{HardwareAddr: mac[:]}
	if _, err := p.conn.WriteTo(syn.marshal(), to); err != nil {
		return fmt.Errorf("dr check of %s via %s: send SYN: %w", vip, rip, err)
	}
	for {
		select {
		case <-ctx.Done():
			return fmt.Errorf("dr check of %s via %s (%s): no SYN-ACK: %w", vip, rip, net.HardwareAddr(mac[:]), ctx.Err())
		case s := <-ch:
			if s.ack != syn.seq+1 || s.flags&tcpACK == 0 {
				continue // not an answer to this SYN
			}
			if s.flags&tcpRST != 0 {
				return fmt.Errorf("dr check of %s via %s: connection refused (RST)", vip, rip)
			}
			if s.flags&tcpSYN == 0 {
				continue
			}
			rst := segment{
				dstMAC: s.srcMAC, srcMAC: p.ifMAC,
				src: syn.src, dst: vip,
				seq: s.ack, flags: tcpRST,
			}
			// The RST only spares the real server a half-open entry; the
			// check has passed whatever happens to it.
			p.conn.WriteTo(rst.marshal(), to)
			return nil
		}
	}
}
