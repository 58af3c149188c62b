//go:build linux

package netlab

import (
	"errors"
	"fmt"
	"net"
	"net/netip"
	"os"
	"regexp"
	"runtime"
	"sync"
	"sync/atomic"

	"github.com/vishvananda/netlink"
	"github.com/vishvananda/netns"
	"golang.org/x/sys/unix"
)

// bridgeName is the bridge inside a lab's switch namespace.
const bridgeName = "br0"

// nameRE restricts lab and host names: they become parts of namespace names
// and (for hosts) of veth names limited to 15 bytes.
var nameRE = regexp.MustCompile(`^[a-z][a-z0-9]{0,9}$`)

// labSeq makes the namespaces of two labs of the same name in one process
// distinct.
var labSeq atomic.Uint32

// A Lab is a set of network namespaces: one switch namespace with a bridge,
// and the hosts added with AddHost. The zero value is not usable; call New.
type Lab struct {
	prefix string // "udr-<pid>-<name><seq>-"

	mu     sync.Mutex
	closed bool
	sw     *Host // the switch namespace; holds bridgeName
	hosts  []*Host
	ports  int // veth peers created in the switch so far
}

// New creates a lab named name (1-10 lower-case letters or digits, starting
// with a letter): its switch namespace and bridge. It first removes
// namespaces left by udr test processes that have exited (see RemoveStale).
// The caller must Close the lab; Cleanup arranges that for tests.
func New(name string) (*Lab, error) {
	if !nameRE.MatchString(name) {
		return nil, fmt.Errorf("lab name %q: want 1-10 lower-case letters or digits, starting with a letter", name)
	}
	if _, err := RemoveStale(); err != nil {
		return nil, err
	}
	l := &Lab{prefix: fmt.Sprintf("%s%d-%s%d-", namePrefix, os.Getpid(), name, labSeq.Add(1))}
	sw, err := l.newHost("sw", map[string]string{
		// The switch forwards frames only; without IPv6 on its ports it
		// sends no router solicitations or MLD reports of its own.
		"net/ipv6/conf/default/disable_ipv6": "1",
		"net/ipv6/conf/all/disable_ipv6":     "1",
	})
	if err != nil {
		return nil, err
	}
	l.sw = sw
	snooping := false
	br := &netlink.Bridge{LinkAttrs: netlink.LinkAttrs{Name: bridgeName}, MulticastSnooping: &snooping}
	if err := sw.nl.LinkAdd(br); err != nil {
		_ = l.Close()
		return nil, fmt.Errorf("add bridge %s in %s: %w", bridgeName, sw.ns, err)
	}
	if err := sw.nl.LinkSetUp(br); err != nil {
		_ = l.Close()
		return nil, fmt.Errorf("set bridge %s up in %s: %w", bridgeName, sw.ns, err)
	}
	return l, nil
}

// Prefix returns the prefix of the names of every namespace of the lab, for
// Leftovers.
func (l *Lab) Prefix() string { return l.prefix }

// Switch returns the switch namespace, whose bridge "br0" joins the ports
// made by Connect. Tests may use it to watch the segment.
func (l *Lab) Switch() *Host { return l.sw }

// AddHost creates a host namespace named Prefix()+name with lo up, IPv6 DAD
// and router solicitations off. name follows the rules of New and must be
// unique in the lab.
func (l *Lab) AddHost(name string) (*Host, error) {
	if !nameRE.MatchString(name) || name == "sw" {
		return nil, fmt.Errorf("host name %q: want 1-10 lower-case letters or digits, starting with a letter, not %q", name, "sw")
	}
	return l.newHost(name, map[string]string{
		// RFC 4862 DAD would keep new IPv6 addresses "tentative" (unusable)
		// for about a second; the lab's addresses are unique by construction.
		"net/ipv6/conf/all/accept_dad":               "0",
		"net/ipv6/conf/default/accept_dad":           "0",
		"net/ipv6/conf/default/dad_transmits":        "0",
		"net/ipv6/conf/default/router_solicitations": "0",
		"net/ipv6/conf/default/accept_ra":            "0",
	})
}

// newHost creates and registers the named namespace, brings lo up and
// writes sysctls inside it.
func (l *Lab) newHost(name string, sysctls map[string]string) (*Host, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.closed {
		return nil, errors.New("lab is closed")
	}
	for _, h := range l.hosts {
		if h.name == name {
			return nil, fmt.Errorf("host %q already exists in the lab", name)
		}
	}
	nsName := l.prefix + name
	handle, err := newNamedNS(nsName)
	if err != nil {
		return nil, fmt.Errorf("create namespace %s: %w", nsName, err)
	}
	h := &Host{name: name, ns: nsName, handle: handle}
	// Register first, so that Close removes the namespace whatever fails next.
	l.hosts = append(l.hosts, h)
	if h.nl, err = netlink.NewHandleAt(handle); err != nil {
		return nil, fmt.Errorf("netlink handle in %s: %w", nsName, err)
	}
	lo, err := h.nl.LinkByName("lo")
	if err != nil {
		return nil, fmt.Errorf("find lo in %s: %w", nsName, err)
	}
	if err := h.nl.LinkSetUp(lo); err != nil {
		return nil, fmt.Errorf("set lo up in %s: %w", nsName, err)
	}
	if err := h.Run(func() error { return writeSysctls(sysctls) }); err != nil {
		return nil, err
	}
	return h, nil
}

// Connect creates a veth pair between h (as ifname) and the lab's bridge,
// brings both ends up and assigns addrs to h's end. Every address must lie
// in a documentation range (see ValidPrefix).
func (l *Lab) Connect(h *Host, ifname string, addrs ...netip.Prefix) error {
	if err := validPrefixes(addrs); err != nil {
		return err
	}
	l.mu.Lock()
	if l.closed {
		l.mu.Unlock()
		return errors.New("lab is closed")
	}
	l.ports++
	peer := fmt.Sprintf("p%d-%s", l.ports, h.name)
	l.mu.Unlock()

	if err := l.veth(h, ifname, l.sw, peer); err != nil {
		return err
	}
	port, err := l.sw.nl.LinkByName(peer)
	if err != nil {
		return fmt.Errorf("find port %s in %s: %w", peer, l.sw.ns, err)
	}
	br, err := l.sw.nl.LinkByName(bridgeName)
	if err != nil {
		return fmt.Errorf("find bridge in %s: %w", l.sw.ns, err)
	}
	if err := l.sw.nl.LinkSetMaster(port, br); err != nil {
		return fmt.Errorf("attach %s to %s: %w", peer, bridgeName, err)
	}
	if err := l.sw.nl.LinkSetUp(port); err != nil {
		return fmt.Errorf("set %s up in %s: %w", peer, l.sw.ns, err)
	}
	return h.AddAddrs(ifname, addrs...)
}

// Pair creates a veth pair between a (as aif) and b (as bif), with no
// bridge between them, and brings both ends up. Addresses are added with
// Host.AddAddrs.
func (l *Lab) Pair(a *Host, aif string, b *Host, bif string) error {
	if err := l.veth(a, aif, b, bif); err != nil {
		return err
	}
	peer, err := b.nl.LinkByName(bif)
	if err != nil {
		return fmt.Errorf("find %s in %s: %w", bif, b.ns, err)
	}
	if err := b.nl.LinkSetUp(peer); err != nil {
		return fmt.Errorf("set %s up in %s: %w", bif, b.ns, err)
	}
	return nil
}

// veth creates a's end ifname and b's end peer, and sets a's end up.
func (l *Lab) veth(a *Host, ifname string, b *Host, peer string) error {
	if len(ifname) == 0 || len(ifname) >= unix.IFNAMSIZ || len(peer) >= unix.IFNAMSIZ {
		return fmt.Errorf("veth %q/%q: interface names must have 1-%d bytes", ifname, peer, unix.IFNAMSIZ-1)
	}
	v := &netlink.Veth{
		LinkAttrs:     netlink.LinkAttrs{Name: ifname},
		PeerName:      peer,
		PeerNamespace: netlink.NsFd(b.handle),
	}
	if err := a.nl.LinkAdd(v); err != nil {
		return fmt.Errorf("add veth %s (%s) - %s (%s): %w", ifname, a.ns, peer, b.ns, err)
	}
	link, err := a.nl.LinkByName(ifname)
	if err != nil {
		return fmt.Errorf("find %s in %s: %w", ifname, a.ns, err)
	}
	if err := a.nl.LinkSetUp(link); err != nil {
		return fmt.Errorf("set %s up in %s: %w", ifname, a.ns, err)
	}
	return nil
}

// Close ends the processes left inside the lab's namespaces and deletes the
// namespaces, which removes their interfaces. It is idempotent; it reports
// every failure, joined.
func (l *Lab) Close() error {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.closed {
		return nil
	}
	l.closed = true
	var errs []error
	for i := len(l.hosts) - 1; i >= 0; i-- {
		if err := l.hosts[i].destroy(); err != nil {
			errs = append(errs, err)
		}
	}
	l.hosts = nil
	return errors.Join(errs...)
}

// newNamedNS creates a network namespace bound to /run/netns/name (so that
// `ip netns` sees it) from a dedicated locked thread, which it leaves in its
// original namespace.
func newNamedNS(name string) (netns.NsHandle, error) {
	type result struct {
		h   netns.NsHandle
		err error
	}
	c := make(chan result, 1)
	go func() {
		runtime.LockOSThread()
		orig, err := netns.Get()
		if err != nil {
			runtime.UnlockOSThread()
			c <- result{netns.None(), err}
			return
		}
		defer orig.Close()
		if err := sharedNetnsDir(); err != nil {
			runtime.UnlockOSThread()
			c <- result{netns.None(), err}
			return
		}
		h, err := netns.NewNamed(name)
		if serr := netns.Set(orig); serr != nil {
			// The thread stays locked and dies with this goroutine, so
			// nothing else ever runs in the wrong namespace.
			c <- result{h, errors.Join(err, fmt.Errorf("restore namespace: %w", serr))}
			return
		}
		runtime.UnlockOSThread()
		c <- result{h, err}
	}()
	r := <-c
	if r.err != nil && r.h.IsOpen() {
		r.h.Close()
		_ = deleteNamed(name)
	}
	return r.h, r.err
}

// sharedNetnsDir makes /run/netns a shared mount point, as `ip netns add`
// does (netns_add in iproute2). If it is not one when a namespace is
// bound there, a later `ip netns add` binds the directory over itself and
// hides every namespace bound before: they can no longer be removed, and
// every later lab fails to clean them up as stale.
func sharedNetnsDir() error {
	netnsDirOnce.Do(func() {
		if err := os.MkdirAll(netnsDir, 0o755); err != nil {
			netnsDirErr = err
			return
		}
		err := unix.Mount("", netnsDir, "none", unix.MS_SHARED|unix.MS_REC, "")
		if errors.Is(err, unix.EINVAL) { // not a mount point yet
			if err = unix.Mount(netnsDir, netnsDir, "none", unix.MS_BIND|unix.MS_REC, ""); err == nil {
				err = unix.Mount("", netnsDir, "none", unix.MS_SHARED|unix.MS_REC, "")
			}
		}
		if err != nil {
			netnsDirErr = fmt.Errorf("make %s a shared mount point: %w", netnsDir, err)
		}
	})
	return netnsDirErr
}

var (
	netnsDirOnce sync.Once
	netnsDirErr  error
)

// hardwareAddr is a helper for Host.MAC: the address of an interface.
func hardwareAddr(nl *netlink.Handle, ifname string) (net.HardwareAddr, error) {
	link, err := nl.LinkByName(ifname)
	if err != nil {
		return nil, err
	}
	return link.Attrs().HardwareAddr, nil
}
