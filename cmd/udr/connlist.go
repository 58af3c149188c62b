package main

import (
	"fmt"
	"io"
	"net/netip"
	"time"

	"github.com/udr-lb/udr/conntrack"
	"github.com/udr-lb/udr/forwarder"
	"github.com/udr-lb/udr/service"
)

// writeConnList prints the connection table as ipvsadm -L -c -n does
// (ipvsadm.c list_conn and print_conn), in table order, which like the
// kernel's hash order is not sorted.
func writeConnList(w io.Writer, p *forwarder.Pipeline, now time.Time) {
	fmt.Fprintln(w, "IPVS connection entries")
	fmt.Fprintln(w, "pro expire state       source             virtual            destination")
	secs := p.Seconds(now)
	reg := p.Registry()
	p.Conns().Range(func(k conntrack.Key, e conntrack.Entry) bool {
		client, vip := k.Addrs()
		_, dest := reg.Dest(e.Dest)
		left := e.Expires(secs)
		expire := fmt.Sprintf("%02d:%02d", left/60, left%60)
		fmt.Fprintf(w, "%-3s %-6s %-11s %-18s %-18s %s\n",
			service.Proto(k.Proto), expire, e.State,
			formatAddrPort(client), formatAddrPort(vip), formatAddrPort(dest))
		return true
	})
}

func formatAddrPort(ap netip.AddrPort) string {
	return service.FormatAddrPort(ap.Addr(), ap.Port())
}
