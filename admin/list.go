package admin

import (
	"fmt"
	"io"
	"strconv"

	"github.com/udr-lb/udr/service"
)

// format is ipvsadm's FMT_ flags of a listing.
type format struct {
	stats, rate, thresholds, persistentConn, tunInfo bool
	noSort, exact                                    bool
}

func formatOf(o Option) format {
	return format{
		stats:          o.Has(OptStats),
		rate:           o.Has(OptRate),
		thresholds:     o.Has(OptThresholds),
		persistentConn: o.Has(OptPersistentConn),
		tunInfo:        o.Has(OptTunInfo),
		noSort:         o.Has(OptNoSort),
		exact:          o.Has(OptExact),
	}
}

// list is ipvsadm's CMD_LIST: the connections (-c), one service (-t, -u),
// the timeouts, the sync daemons, or the whole table, in that order of
// precedence.
func (r *runner) list(cmd *Command) int {
	o := cmd.Options
	if o.Has(OptJSON) {
		return r.listJSON(cmd)
	}
	if o&(OptConnection|OptService|OptTimeout) == 0 && o.Has(OptDaemon) {
		r.listDaemons(r.out) // needs no table
		return ExitOK
	}
	st, err := r.b.State(o.Has(OptConnection))
	if err != nil {
		r.errorln("udr: " + err.Error())
		return ExitListFail
	}
	n := newNamer(o.Has(OptNumeric), r.resolver)
	f := formatOf(o)
	switch {
	case o.Has(OptConnection):
		writeConns(r.out, st.Conns, n, f)
	case o.Has(OptService):
		svc := st.Config.Service(cmd.Service.Key)
		if svc == nil {
			r.errorln("No such service") // ipvs_get_service: ESRCH
			return ExitListFail
		}
		writeTitle(r.out, f)
		writeService(r.out, svc, st, n, f)
	case o.Has(OptTimeout):
		t := st.Config.Timeouts.WithDefaults()
		fmt.Fprintf(r.out, "Timeout (tcp tcpfin udp): %d %d %d\n", t.TCP, t.TCPFin, t.UDP)
	default:
		size := st.ConnTabSize
		if size == 0 {
			size = 4096 // the kernel's default table (CONFIG_IP_VS_TAB_BITS 12)
		}
		fmt.Fprintf(r.out, "IP Virtual Server version %s (size=%d)\n", ipvsVersion, size)
		writeTitle(r.out, f)
		services := st.Config.Services
		if !f.noSort {
			services = service.SortedServices(st.Config)
		}
		for _, s := range services {
			writeService(r.out, s, st, n, f)
		}
	}
	if st.Standby && !o.Has(OptConnection) && !o.Has(OptTimeout) {
		// On stderr, so that stdout stays what ipvsadm prints.
		r.errorln(standbyNote)
	}
	return ExitOK
}

// standbyNote is the line udr adds to a listing of a director in standby.
const standbyNote = "udr: standby: this director answers no ARP/NDP for the VIPs and forwards nothing (udr admin --active)"

// writeTitle is print_title: the two column title lines.
func writeTitle(w io.Writer, f format) {
	const prot = "Prot LocalAddress:Port"
	switch {
	case f.stats:
		fmt.Fprintf(w, "%-33s %8s %8s %8s %8s %8s\n  -> RemoteAddress:Port\n",
			prot, "Conns", "InPkts", "OutPkts", "InBytes", "OutBytes")
	case f.rate:
		fmt.Fprintf(w, "%-33s %8s %8s %8s %8s %8s\n  -> RemoteAddress:Port\n",
			prot, "CPS", "InPPS", "OutPPS", "InBPS", "OutBPS")
	case f.thresholds:
		fmt.Fprintf(w, "%-33s %-10s %-10s %-10s %-10s\n  -> RemoteAddress:Port\n",
			prot, "Uthreshold", "Lthreshold", "ActiveConn", "InActConn")
	case f.persistentConn:
		fmt.Fprintf(w, "%-33s %-9s %-11s %-10s %-10s\n  -> RemoteAddress:Port\n",
			prot, "Weight", "PersistConn", "ActiveConn", "InActConn")
	case f.tunInfo:
		io.WriteString(w, "Prot LocalAddress:Port Scheduler Flags\n"+
			"  -> RemoteAddress:Port           Forward TunnelInfo    Weight ActiveConn InActConn\n")
	default:
		io.WriteString(w, "Prot LocalAddress:Port Scheduler Flags\n"+
			"  -> RemoteAddress:Port           Forward Weight ActiveConn InActConn\n")
	}
}

// forwardName is fwd_name for udr's only method, direct routing.
const forwardName = "Route"

// writeService is print_service_entry without FMT_RULE: the service line,
// then its real servers, sorted unless --nosort.
func writeService(w io.Writer, s *service.Service, st *State, n *namer, f format) {
	name := n.serviceName(s)
	switch {
	case f.stats:
		ss := st.Services[s.Key]
		fmt.Fprintf(w, "%-33s", name)
		writeLargeNums(w, f.exact, ss.Conns, ss.InPkts, ss.OutPkts, ss.InBytes, ss.OutBytes)
	case f.rate:
		ss := st.Services[s.Key]
		fmt.Fprintf(w, "%-33s", name)
		writeLargeNums(w, f.exact, ss.CPS, ss.InPPS, ss.OutPPS, ss.InBPS, ss.OutBPS)
	default:
		fmt.Fprintf(w, "%s %s", name, s.Scheduler)
		if s.Flags&(service.SchedFlag1|service.SchedFlag2|service.SchedFlag3) != 0 {
			fmt.Fprintf(w, " (%s)", service.SchedFlagsString(s.Scheduler, s.Flags))
		}
		if s.Persistent {
			fmt.Fprintf(w, " persistent %d", s.Timeout)
			if s.Addr.Is4() && s.Netmask != 32 {
				fmt.Fprintf(w, " mask %s", formatMask(prefixMask(s.Netmask)))
			}
			if s.Addr.Is6() && s.Netmask != 128 {
				fmt.Fprintf(w, " mask %d", s.Netmask)
			}
		}
		if s.OnePacket {
			io.WriteString(w, " ops")
		}
	}
	io.WriteString(w, "\n")

	dests := s.Dests
	if !f.noSort {
		dests = service.SortedDests(s)
	}
	for _, d := range dests {
		dn := n.destName(s, d)
		di := st.Dests[DestKey{Service: s.Key, Dest: d.AddrPort()}]
		ds := di.Stats
		switch {
		case f.stats:
			fmt.Fprintf(w, "  -> %-28s", dn)
			writeLargeNums(w, f.exact, ds.Conns, ds.InPkts, ds.OutPkts, ds.InBytes, ds.OutBytes)
			io.WriteString(w, "\n")
		case f.rate:
			// CPS and the packet rates are never abbreviated.
			fmt.Fprintf(w, "  -> %-28s %8d %8d %8d", dn, ds.CPS, ds.InPPS, ds.OutPPS)
			writeLargeNums(w, f.exact, ds.InBPS, ds.OutBPS)
			io.WriteString(w, "\n")
		case f.thresholds:
			fmt.Fprintf(w, "  -> %-28s %-10d %-10d %-10d %-10d\n", dn,
				d.UThreshold, d.LThreshold, di.ActiveConn, di.InActConn)
		case f.persistentConn:
			fmt.Fprintf(w, "  -> %-28s %-9d %-11d %-10d %-10d\n", dn,
				d.Weight, di.PersistConn, di.ActiveConn, di.InActConn)
		case f.tunInfo:
			fmt.Fprintf(w, "  -> %-28s %-7s %-13s %-6d %-10d %-10d\n", dn,
				forwardName, "n/a", d.Weight, di.ActiveConn, di.InActConn)
		default:
			fmt.Fprintf(w, "  -> %-28s %-7s %-6d %-10d %-10d\n", dn,
				forwardName, d.Weight, di.ActiveConn, di.InActConn)
		}
	}
}

func writeLargeNums(w io.Writer, exact bool, vs ...uint64) {
	var b []byte
	for _, v := range vs {
		b = appendLargeNum(b, v, exact)
	}
	w.Write(b)
}

// appendLargeNum is print_largenum: nine columns, scaled to K, M, G or T
// above 10^8 unless --exact, which widens the column to fit instead.
func appendLargeNum(b []byte, v uint64, exact bool) []byte {
	if exact {
		s := strconv.FormatUint(v, 10)
		width := 9
		if len(s) > 8 {
			width = len(s) + 1
		}
		return fmt.Appendf(b, "%*s", width, s)
	}
	switch {
	case v < 100_000_000:
		return fmt.Appendf(b, "%9d", v)
	case v < 1_000_000_000:
		return fmt.Appendf(b, "%8dK", v/1_000)
	case v < 100_000_000_000:
		return fmt.Appendf(b, "%8dM", v/1_000_000)
	case v < 100_000_000_000_000:
		return fmt.Appendf(b, "%8dG", v/1_000_000_000)
	}
	return fmt.Appendf(b, "%8dT", v/1_000_000_000_000)
}

// writeConns is list_conn and print_conn: the connection entries in the
// order the backend gives them (the kernel's hash order; not sorted).
func writeConns(w io.Writer, conns []Conn, n *namer, f format) {
	io.WriteString(w, "IPVS connection entries\n")
	if f.persistentConn {
		fmt.Fprintf(w, "pro expire %-11s %-18s %-18s %-18s %-16s %s\n",
			"state", "source", "virtual", "destination", "pe name", "pe_data")
	} else {
		fmt.Fprintf(w, "pro expire %-11s %-18s %-18s %s\n",
			"state", "source", "virtual", "destination")
	}
	for _, c := range conns {
		// Without a persistence engine the kernel writes no pe columns,
		// so print_conn uses the short row even with --persistent-conn.
		expire := fmt.Sprintf("%02d:%02d", c.Expires/60, c.Expires%60)
		fmt.Fprintf(w, "%-3s %-6s %-11s %-18s %-18s %s\n",
			c.Proto, expire, c.State,
			n.addrPort(c.Client.Addr(), c.Client.Port(), c.Proto),
			n.addrPort(c.Virtual.Addr(), c.Virtual.Port(), c.Proto),
			n.addrPort(c.Dest.Addr(), c.Dest.Port(), c.Proto))
	}
}
