//go:build linux

package netlab

import (
	"errors"
	"fmt"
	"net"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"sync"

	"github.com/vishvananda/netlink"
	"github.com/vishvananda/netns"

	"github.com/udr-lb/udr/internal/nsrun"
	"golang.org/x/sys/unix"
)

// A Host is one network namespace of a Lab.
type Host struct {
	name   string
	ns     string // the namespace's name under /run/netns
	handle netns.NsHandle
	nl     *netlink.Handle // netlink requests executed inside the namespace

	mu   sync.Mutex
	cmds []*exec.Cmd // made by Command, killed by destroy if started

	// running is held shared by Run and exclusively by destroy, so that
	// the namespace handle outlives every Run in progress.
	running sync.RWMutex
	closed  bool
}

// Name returns the host's name inside its lab.
func (h *Host) Name() string { return h.name }

// Namespace returns the name of the host's namespace, as `ip netns list`
// shows it.
func (h *Host) Namespace() string { return h.ns }

// Netlink returns a netlink handle whose requests act inside the host's
// namespace; it is valid until the lab is closed.
func (h *Host) Netlink() *netlink.Handle { return h.nl }

// Run executes fn on an OS thread that has entered the host's namespace,
// and returns fn's error. Sockets that fn opens stay in the namespace after
// Run returns, and /proc/sys/net reads and writes act on it; goroutines that
// fn starts run elsewhere. fn must not call t.FailNow and friends, nor
// Lab.Close, which waits for the Run calls in progress.
func (h *Host) Run(fn func() error) error {
	h.running.RLock()
	defer h.running.RUnlock()
	if h.closed {
		return fmt.Errorf("run in %s: the lab is closed", h.ns)
	}
	return nsrun.FromHandle(h.handle).Do(fn)
}

// Command returns a command that runs name with args inside the host's
// namespace, through `ip netns exec`. Lab.Close kills it if it was started
// and still runs.
func (h *Host) Command(name string, args ...string) *exec.Cmd {
	cmd := exec.Command("ip", append([]string{"netns", "exec", h.ns, name}, args...)...)
	h.mu.Lock()
	h.cmds = append(h.cmds, cmd)
	h.mu.Unlock()
	return cmd
}

// MAC returns the hardware address of the host's interface ifname.
func (h *Host) MAC(ifname string) (net.HardwareAddr, error) {
	mac, err := hardwareAddr(h.nl, ifname)
	if err != nil {
		return nil, fmt.Errorf("mac of %s in %s: %w", ifname, h.ns, err)
	}
	return mac, nil
}

// AddAddrs assigns addrs to the host's interface ifname, without duplicate
// address detection. Every address must lie in a documentation range (see
// ValidPrefix).
func (h *Host) AddAddrs(ifname string, addrs ...netip.Prefix) error {
	if err := validPrefixes(addrs); err != nil {
		return err
	}
	if len(addrs) == 0 {
		return nil
	}
	link, err := h.nl.LinkByName(ifname)
	if err != nil {
		return fmt.Errorf("find %s in %s: %w", ifname, h.ns, err)
	}
	for _, p := range addrs {
		a := &netlink.Addr{
			IPNet: &net.IPNet{IP: p.Addr().AsSlice(), Mask: net.CIDRMask(p.Bits(), p.Addr().BitLen())},
			Flags: unix.IFA_F_NODAD,
		}
		if err := h.nl.AddrAdd(link, a); err != nil {
			return fmt.Errorf("add %s to %s in %s: %w", p, ifname, h.ns, err)
		}
	}
	return nil
}

// destroy kills the processes inside the namespace and deletes it.
func (h *Host) destroy() error {
	h.running.Lock()
	defer h.running.Unlock()
	h.closed = true
	var errs []error
	// Kill the commands by their pid first: one may still be on its way
	// into the namespace, where the scan below would miss it.
	h.mu.Lock()
	for _, cmd := range h.cmds {
		if cmd.Process == nil {
			continue
		}
		if err := cmd.Process.Kill(); err != nil && !errors.Is(err, os.ErrProcessDone) {
			errs = append(errs, fmt.Errorf("kill %s: %w", cmd, err))
		}
	}
	h.cmds = nil
	h.mu.Unlock()
	if h.handle.IsOpen() {
		errs = append(errs, killProcessesIn(h.handle))
	}
	if h.nl != nil {
		h.nl.Close()
		h.nl = nil
	}
	if h.handle.IsOpen() {
		errs = append(errs, h.handle.Close())
		h.handle = netns.None()
	}
	if err := deleteNamed(h.ns); err != nil {
		errs = append(errs, fmt.Errorf("delete namespace %s: %w", h.ns, err))
	}
	return errors.Join(errs...)
}

// killProcessesIn sends SIGKILL to every process whose network namespace is
// ns. Such processes were started by the lab's user (Host.Command) and
// would keep the namespace alive after its name is gone.
func killProcessesIn(ns netns.NsHandle) error {
	var want unix.Stat_t
	if err := unix.Fstat(int(ns), &want); err != nil {
		return fmt.Errorf("stat namespace: %w", err)
	}
	dirs, err := os.ReadDir("/proc")
	if err != nil {
		return err
	}
	self := os.Getpid()
	var errs []error
	for _, d := range dirs {
		pid, err := strconv.Atoi(d.Name())
		if err != nil || pid == self {
			continue
		}
		var st unix.Stat_t
		if unix.Stat(filepath.Join("/proc", d.Name(), "ns", "net"), &st) != nil {
			continue // exited, or not ours to inspect
		}
		if st.Dev != want.Dev || st.Ino != want.Ino {
			continue
		}
		if err := unix.Kill(pid, unix.SIGKILL); err != nil && !errors.Is(err, unix.ESRCH) {
			errs = append(errs, fmt.Errorf("kill %d: %w", pid, err))
		}
	}
	return errors.Join(errs...)
}

// writeSysctls writes each value to /proc/sys/<key>. Called inside Run, it
// changes the namespace's settings.
func writeSysctls(kv map[string]string) error {
	for k, v := range kv {
		if err := os.WriteFile(filepath.Join("/proc/sys", k), []byte(v), 0); err != nil {
			return fmt.Errorf("write sysctl %s: %w", k, err)
		}
	}
	return nil
}

// AddNeighbor adds a permanent neighbour entry (ARP or NDP) for ip with
// mac on the host's interface ifname, so that traffic to ip needs no
// resolution. ip must lie in a documentation range.
func (h *Host) AddNeighbor(ifname string, ip netip.Addr, mac net.HardwareAddr) error {
	if err := ValidPrefix(netip.PrefixFrom(ip, ip.BitLen())); err != nil {
		return err
	}
	link, err := h.nl.LinkByName(ifname)
	if err != nil {
		return fmt.Errorf("find %s in %s: %w", ifname, h.ns, err)
	}
	n := &netlink.Neigh{LinkIndex: link.Attrs().Index, State: netlink.NUD_PERMANENT, IP: ip.AsSlice(), HardwareAddr: mac}
	if err := h.nl.NeighAdd(n); err != nil {
		return fmt.Errorf("add neighbour %s on %s in %s: %w", ip, ifname, h.ns, err)
	}
	return nil
}

// AddVLAN creates the 802.1Q interface name with VLAN id on the host's
// interface parent, and brings it up. Kernels built without 8021q answer
// an error wrapping unix.EOPNOTSUPP.
func (h *Host) AddVLAN(parent, name string, id int) error {
	p, err := h.nl.LinkByName(parent)
	if err != nil {
		return fmt.Errorf("find %s in %s: %w", parent, h.ns, err)
	}
	v := &netlink.Vlan{LinkAttrs: netlink.LinkAttrs{Name: name, ParentIndex: p.Attrs().Index}, VlanId: id}
	if err := h.nl.LinkAdd(v); err != nil {
		return fmt.Errorf("add vlan %s (id %d on %s) in %s: %w", name, id, parent, h.ns, err)
	}
	if err := h.nl.LinkSetUp(v); err != nil {
		return fmt.Errorf("set %s up in %s: %w", name, h.ns, err)
	}
	return nil
}
