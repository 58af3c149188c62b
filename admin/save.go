package admin

import (
	"fmt"
	"io"

	"github.com/udr-lb/udr/service"
)

// save is ipvsadm's CMD_SAVE: list_all with FMT_RULE. No header; one -A
// line per service and one -a line per real server, sorted; names are
// resolved unless -n (`ipvsadm-save -n` is `ipvsadm -S -n`), so only the
// -n form reads back into udr, which takes numbers only.
func (r *runner) save(cmd *Command) int {
	st, err := r.b.State(false)
	if err != nil {
		r.errorln("udr: " + err.Error())
		return ExitListFail
	}
	writeRules(r.out, st.Config, newNamer(cmd.Options.Has(OptNumeric), r.resolver))
	return ExitOK
}

// writeRules is print_service_entry with FMT_RULE for every service. With a
// numeric namer its output equals WriteRules.
func writeRules(w io.Writer, c *service.Config, n *namer) {
	for _, s := range service.SortedServices(c) {
		name := s.Proto.Flag() + " " + n.addrPort(s.Addr, s.Port, s.Proto)
		fmt.Fprintf(w, "-A %s -s %s", name, s.Scheduler)
		if s.Persistent {
			fmt.Fprintf(w, " -p %d", s.Timeout)
			if s.Addr.Is4() && s.Netmask != 32 {
				fmt.Fprintf(w, " -M %s", formatMask(prefixMask(s.Netmask)))
			}
			if s.Addr.Is6() && s.Netmask != 128 {
				fmt.Fprintf(w, " -M %d", s.Netmask)
			}
		}
		if s.OnePacket {
			io.WriteString(w, " -o")
		}
		if s.Flags&(service.SchedFlag1|service.SchedFlag2|service.SchedFlag3) != 0 {
			io.WriteString(w, " -b "+service.SchedFlagsString(s.Scheduler, s.Flags))
		}
		io.WriteString(w, "\n")
		for _, d := range service.SortedDests(s) {
			// Local forwarding would be saved as -g too (fwd_switch); udr
			// has direct routing only. Thresholds are not saved.
			fmt.Fprintf(w, "-a %s -r %s -g -w %d\n", name, n.addrPort(d.Addr, d.Port, s.Proto), d.Weight)
		}
	}
}
