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
	"runtime"
	"strconv"

	"github.com/vishvananda/netlink"
	"github.com/vishvananda/netns"
	"golang.org/x/sys/unix"
)

// A Host is one network namespace of a Lab.
type Host struct {
	name   string
	ns     string // the namespace's name under /run/netns
	handle netns.NsHandle
	nl     *netlink.Handle // netlink requests executed inside the namespace
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
// fn starts run elsewhere. fn must not call t.FailNow and friends.
func (h *Host) Run(fn func() error) error {
	errc := make(chan error, 1)
	go func() {
		runtime.LockOSThread()
		orig, err := netns.Get()
		if err != nil {
			runtime.UnlockOSThread()
			errc <- fmt.Errorf("get current namespace: %w", err)
			return
		}
		defer orig.Close()
		if err := netns.Set(h.handle); err != nil {
			runtime.UnlockOSThread()
			errc <- fmt.Errorf("enter namespace %s: %w", h.ns, err)
			return
		}
		ferr := fn()
		if err := netns.Set(orig); err != nil {
			// Leave the thread locked: the runtime ends it together with
			// this goroutine, so no other code runs in h's namespace by
			// accident.
			errc <- errors.Join(ferr, fmt.Errorf("leave namespace %s: %w", h.ns, err))
			return
		}
		runtime.UnlockOSThread()
		errc <- ferr
	}()
	return <-errc
}

// Command returns a command that runs name with args inside the host's
// namespace, through `ip netns exec`. Lab.Close kills it if it still runs.
func (h *Host) Command(name string, args ...string) *exec.Cmd {
	return exec.Command("ip", append([]string{"netns", "exec", h.ns, name}, args...)...)
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
	var errs []error
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
