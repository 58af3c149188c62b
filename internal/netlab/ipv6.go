//go:build linux

package netlab

import (
	"fmt"
	"net"
	"strings"
	"time"

	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"
)

// WaitIPv6 returns when the host's IPv6 is usable: no address is still
// tentative or failed duplicate address detection, and every link that is
// up (other than lo) has its link-local address. The kernel configures the
// link-local address and ends DAD asynchronously after a link comes up; a
// test that sends at once, on a busy machine, can otherwise find its
// neighbour solicitations unanswered. It follows the namespace's address
// updates and gives up after timeout, naming what is still pending.
func (h *Host) WaitIPv6(timeout time.Duration) error {
	updates := make(chan netlink.AddrUpdate, 64)
	done := make(chan struct{})
	defer close(done)
	err := netlink.AddrSubscribeWithOptions(updates, done, netlink.AddrSubscribeOptions{Namespace: &h.handle})
	if err != nil {
		return fmt.Errorf("follow addresses in %s: %w", h.ns, err)
	}
	deadline := time.NewTimer(timeout)
	defer deadline.Stop()
	tick := time.NewTicker(10 * time.Millisecond)
	defer tick.Stop()
	for {
		pending, err := h.ipv6Pending()
		if err != nil {
			return err
		}
		if len(pending) == 0 {
			return nil
		}
		select {
		case <-updates:
		case <-tick.C:
		case <-deadline.C:
			return fmt.Errorf("IPv6 in %s not ready after %v: %s", h.ns, timeout, strings.Join(pending, "; "))
		}
	}
}

// ipv6Pending lists what keeps the host's IPv6 from being usable.
func (h *Host) ipv6Pending() ([]string, error) {
	links, err := h.nl.LinkList()
	if err != nil {
		return nil, fmt.Errorf("list links in %s: %w", h.ns, err)
	}
	var pending []string
	for _, link := range links {
		attrs := link.Attrs()
		addrs, err := h.nl.AddrList(link, netlink.FAMILY_V6)
		if err != nil {
			return nil, fmt.Errorf("list addresses of %s in %s: %w", attrs.Name, h.ns, err)
		}
		linkLocal := false
		for _, a := range addrs {
			switch {
			case a.Flags&unix.IFA_F_DADFAILED != 0:
				pending = append(pending, fmt.Sprintf("%s on %s failed duplicate address detection", a.IPNet, attrs.Name))
			case a.Flags&unix.IFA_F_TENTATIVE != 0:
				pending = append(pending, fmt.Sprintf("%s on %s is tentative", a.IPNet, attrs.Name))
			case a.IP.IsLinkLocalUnicast():
				linkLocal = true
			}
		}
		up := attrs.Flags&net.FlagUp != 0 && attrs.OperState == netlink.OperUp
		if up && attrs.Flags&net.FlagLoopback == 0 && !linkLocal {
			pending = append(pending, fmt.Sprintf("%s has no link-local address yet", attrs.Name))
		}
	}
	return pending, nil
}
