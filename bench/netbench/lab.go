//go:build linux

package main

import (
	"context"
	"fmt"
	"net"
	"net/netip"
	"os/exec"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/udr-lb/udr/internal/drlab"
	"github.com/udr-lb/udr/internal/host"
	"github.com/udr-lb/udr/internal/netlab"
)

// The lab's addresses are the walkthrough's (drlab), all RFC 5737: the
// generator is its client.
var (
	vip       = drlab.VIP
	genAddr   = drlab.Client
	dirAddr   = drlab.Director
	floodPort = 5300 // the udp and tcp floods' destination port
	httpPort  = 80
)

// sinkAddr is sink i's address (i from 0): the walkthrough's rs<i+1>,
// 192.0.2.11, .12, ...
func sinkAddr(i int) netip.Prefix {
	a4, _ := drlab.RealServerAddr(i + 1)
	return a4
}

// numSinks is the number of sinks (real servers).
const numSinks = 2

// topo is the running lab: generator, director and sinks on one bridge,
// each on its eth0.
type topo struct {
	lab   *netlab.Lab
	gen   *netlab.Host
	dir   *netlab.Host
	sinks []*netlab.Host

	genMAC, dirMAC net.HardwareAddr
	sinkMACs       []net.HardwareAddr
	dirIfindex     int

	profileDir string         // where udr writes CPU profiles; "" for none
	profileSeq map[string]int // the next profile's number, by case name
}

// newTopo builds the lab. The caller closes t.lab, also when newTopo fails
// after creating it (it returns the partial topo then).
func newTopo() (*topo, error) {
	lab, err := netlab.New("nb")
	if err != nil {
		return nil, err
	}
	t := &topo{lab: lab}
	add := func(name string, addr netip.Prefix) (*netlab.Host, net.HardwareAddr, error) {
		h, err := lab.AddHost(name)
		if err != nil {
			return nil, nil, err
		}
		if err := lab.Connect(h, "eth0", addr); err != nil {
			return nil, nil, err
		}
		mac, err := h.MAC("eth0")
		return h, mac, err
	}
	if t.gen, t.genMAC, err = add("gen", genAddr); err != nil {
		return t, err
	}
	if t.dir, t.dirMAC, err = add("dir", dirAddr); err != nil {
		return t, err
	}
	for i := range numSinks {
		h, mac, err := add(fmt.Sprintf("sink%d", i+1), sinkAddr(i))
		if err != nil {
			return t, err
		}
		t.sinks = append(t.sinks, h)
		t.sinkMACs = append(t.sinkMACs, mac)
		if err := h.Run(func() error { return host.SetupRealServer([]netip.Addr{vip}) }); err != nil {
			return t, fmt.Errorf("%s: %w", h.Name(), err)
		}
		// The sinks count the flood at their interface and drop it at
		// ingress, before their stack spends anything on it.
		if err := nft(h, fmt.Sprintf(`table netdev sink {
	chain in {
		type filter hook ingress device "eth0" priority 0;
		ip daddr %s meta l4proto { tcp, udp } th dport %d drop
	}
}`, vip, floodPort)); err != nil {
			return t, err
		}
	}
	// udr turns these offloads off on its interface; every case sees the
	// director's interface in that state.
	if err := t.dir.Run(func() error { _, err := host.DisableOffloads("eth0"); return err }); err != nil {
		return t, fmt.Errorf("director offloads: %w", err)
	}
	link, err := t.dir.Netlink().LinkByName("eth0")
	if err != nil {
		return t, err
	}
	t.dirIfindex = link.Attrs().Index
	// The generator reaches the VIP at the director's interface address,
	// whatever case runs there: udr answers ARP with it (--vip-mac iface),
	// kernel-dr and HAProxy do not answer at all.
	if err := t.gen.AddNeighbor("eth0", vip, t.dirMAC); err != nil {
		return t, err
	}
	return t, nil
}

// learn makes every host send a frame, so that the bridge knows where each
// MAC is and never floods the load to every port (aging forgets them
// after 300 s).
func (t *topo) learn() error {
	for _, h := range append([]*netlab.Host{t.dir, t.gen}, t.sinks...) {
		to := dirAddr.Addr()
		if h == t.dir {
			to = genAddr.Addr()
		}
		err := h.Run(func() error {
			c, err := net.Dial("udp", netip.AddrPortFrom(to, 9).String())
			if err != nil {
				return err
			}
			defer c.Close()
			_, err = c.Write([]byte("learn"))
			return err
		})
		if err != nil {
			return fmt.Errorf("%s: bridge learning frame: %w", h.Name(), err)
		}
	}
	time.Sleep(20 * time.Millisecond) // ARP resolution and the first frames
	return nil
}

// nft loads ruleset into h's nftables.
func nft(h *netlab.Host, ruleset string) error {
	cmd := h.Command("nft", "-f", "-")
	cmd.Stdin = strings.NewReader(ruleset)
	if out, err := cmd.CombinedOutput(); err != nil {
		return fmt.Errorf("%s: nft: %w: %s", h.Name(), err, strings.TrimSpace(string(out)))
	}
	return nil
}

// rxPackets returns the received-frame counter of each sink's eth0.
func (t *topo) rxPackets() ([]uint64, error) {
	rx := make([]uint64, len(t.sinks))
	for i, h := range t.sinks {
		l, err := h.Netlink().LinkByName("eth0")
		if err != nil {
			return nil, err
		}
		rx[i] = l.Attrs().Statistics.RxPackets
	}
	return rx, nil
}

// txPackets returns the generator's eth0 sent-frame counter.
func (t *topo) txPackets() (uint64, error) {
	l, err := t.gen.Netlink().LinkByName("eth0")
	if err != nil {
		return 0, err
	}
	return l.Attrs().Statistics.TxPackets, nil
}

// process is a command started in a namespace, whose output is kept for
// its error message.
type process struct {
	name string
	cmd  *exec.Cmd
	out  *tailBuffer
	done chan struct{}
	err  error
}

// start starts cmd (called name in errors), which writes into a fresh
// tail buffer unless its output goes elsewhere.
func start(name string, cmd *exec.Cmd) (*process, error) {
	p := &process{name: name, cmd: cmd, out: &tailBuffer{}, done: make(chan struct{})}
	if cmd.Stdout == nil {
		cmd.Stdout = p.out
	}
	if cmd.Stderr == nil {
		cmd.Stderr = p.out
	}
	// Its own process group, so that a signal reaches the children too
	// (trafgen sends from a child).
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	// A child that outlives it would otherwise hold Wait on the pipes.
	cmd.WaitDelay = 2 * time.Second
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("start %s: %w", name, err)
	}
	go func() { p.err = cmd.Wait(); close(p.done) }()
	return p, nil
}

// exited reports whether the process has ended.
func (p *process) exited() bool {
	select {
	case <-p.done:
		return true
	default:
		return false
	}
}

// stop sends sig to the process group, waits up to 5 s for the process's
// end, then kills the group. It returns the output the process wrote.
func (p *process) stop(sig syscall.Signal) string {
	pg := -p.cmd.Process.Pid
	if !p.exited() {
		syscall.Kill(pg, sig)
		select {
		case <-p.done:
		case <-time.After(5 * time.Second):
			syscall.Kill(pg, syscall.SIGKILL)
			<-p.done
		}
	}
	// Children still running in the group (none should) end with it.
	syscall.Kill(pg, syscall.SIGKILL)
	return p.out.String()
}

// waitFor polls cond every 20 ms until it holds, the process ends, ctx
// ends or timeout passes.
func waitFor(ctx context.Context, p *process, what string, timeout time.Duration, cond func() bool) error {
	deadline := time.Now().Add(timeout)
	for !cond() {
		if p != nil && p.exited() {
			return fmt.Errorf("%s ended before %s: %v: %s", p.name, what, p.err, strings.TrimSpace(p.out.String()))
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("no %s within %v", what, timeout)
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(20 * time.Millisecond):
		}
	}
	return nil
}

// tailBuffer is a concurrency-safe writer that keeps the last 256 KiB
// written.
type tailBuffer struct {
	mu  sync.Mutex
	buf []byte
}

func (b *tailBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.buf = append(b.buf, p...)
	if over := len(b.buf) - 256<<10; over > 0 {
		b.buf = append(b.buf[:0], b.buf[over:]...)
	}
	return len(p), nil
}

func (b *tailBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return string(b.buf)
}
