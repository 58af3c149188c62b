package main

import (
	"bufio"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"slices"
	"strings"

	"github.com/udr-lb/udr/admin"
	"github.com/udr-lb/udr/arpresponder"
	"github.com/udr-lb/udr/capture"
	"github.com/udr-lb/udr/forwarder"
	"github.com/udr-lb/udr/service"
)

// neighFlags collects repeated --neigh RIP=MAC flags.
type neighFlags map[netip.Addr][6]byte

func (n neighFlags) String() string { return "" }

func (n neighFlags) Set(v string) error {
	ip, mac, ok := strings.Cut(v, "=")
	if !ok {
		return fmt.Errorf("%q: want RIP=MAC", v)
	}
	addr, err := netip.ParseAddr(ip)
	if err != nil {
		return fmt.Errorf("%q: not an IP address", ip)
	}
	hw, err := parseMAC(mac)
	if err != nil {
		return err
	}
	n[addr.Unmap()] = hw
	return nil
}

func parseMAC(s string) ([6]byte, error) {
	hw, err := net.ParseMAC(s)
	if err != nil || len(hw) != 6 {
		return [6]byte{}, fmt.Errorf("%q: not an Ethernet MAC address", s)
	}
	return [6]byte(hw), nil
}

// loadRules reads an ipvsadm-save rules file.
func loadRules(path string, stderr io.Writer) (*service.Config, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	cfg, warnings, err := admin.ParseRules(f, path)
	for _, w := range warnings {
		fmt.Fprintf(stderr, "udr: warning: %s\n", w)
	}
	return cfg, err
}

func runReplay(args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("udr replay", flag.ContinueOnError)
	fs.SetOutput(stderr)
	var (
		rules   = fs.String("rules", "", "ipvsadm-save rules `file` (required)")
		in      = fs.String("in", "", "input pcap or pcapng `file` (required)")
		out     = fs.String("out", "", "output capture `file`; pcapng (with explanations as comments) when it ends in .pcapng")
		mac     = fs.String("mac", "", "the director's interface `MAC` (required)")
		vipMAC  = fs.String("vip-mac", "", "`MAC` that answers ARP/NDP for the VIPs: an address, \"iface\" for --mac, or empty for the virtual MAC")
		conns   = fs.Bool("conns", false, "print the connection table at the end, as ipvsadm -L -c -n")
		explain = fs.Bool("explain", false, "print one line per input frame: the decision and why")
		sloppy  = fs.Bool("sloppy-tcp", false, "schedule TCP packets without SYN that have no entry (sysctl sloppy_tcp)")
		reuse   = fs.Int("conn-reuse-mode", 1, "the kernel's conn_reuse_mode `0..3`")
		nodest  = fs.Bool("expire-nodest-conn", false, "expire a deleted real server's connections at their next packet (sysctl expire_nodest_conn)")
		quiesc  = fs.Bool("expire-quiescent-template", false, "persistent clients leave a weight-0 real server (sysctl expire_quiescent_template)")
		standby = fs.Bool("standby", false, "decide as a director in standby (udr run --standby): no ARP/NDP answers and no forwarding for the VIPs")
		neigh   = neighFlags{}
	)
	fs.Var(neigh, "neigh", "real server `RIP=MAC` (repeatable); more are learnt from ARP in the input")
	if err := fs.Parse(args); err != nil {
		return flagError(err)
	}
	if fs.NArg() > 0 {
		return usageErrorf("replay: unexpected argument %q", fs.Arg(0))
	}
	for _, req := range []struct{ name, value string }{{"--rules", *rules}, {"--in", *in}, {"--mac", *mac}} {
		if req.value == "" {
			return usageErrorf("replay: %s is required", req.name)
		}
	}
	ifMAC, err := parseMAC(*mac)
	if err != nil {
		return usageErrorf("replay: --mac %v", err)
	}
	cfg, err := loadRules(*rules, stderr)
	if err != nil {
		return usageErrorf("replay: %v", err)
	}
	opts := forwarder.Options{IfMAC: ifMAC, SloppyTCP: *sloppy, ExpireNodestConn: *nodest, ExpireQuiescentTemplate: *quiesc, Standby: *standby}
	if opts.ConnReuseMode, err = forwarder.ConnReuseMode(*reuse); err != nil {
		return usageErrorf("replay: --conn-reuse-mode: %v", err)
	}
	switch *vipMAC {
	case "":
		opts.VIPMAC = arpresponder.VirtualMAC(ifMAC)
	case "iface":
		opts.VIPMAC = ifMAC
	default:
		if opts.VIPMAC, err = parseMAC(*vipMAC); err != nil {
			return usageErrorf("replay: --vip-mac %v", err)
		}
	}
	inf, err := os.Open(*in)
	if err != nil {
		return usageErrorf("replay: %v", err)
	}
	defer inf.Close()

	neighbors := forwarder.NewNeighbors(1 << 16)
	for addr, hw := range neigh {
		neighbors.Set(addr, hw)
	}
	rc := capture.ReplayConfig{Config: cfg, Options: opts, Neighbors: neighbors, In: inf}
	// The capture is written next to OUT and renamed into place when the
	// replay succeeded, so a failed run leaves no half-written file.
	var outf *os.File
	var bw *bufio.Writer
	if *out != "" {
		if outf, err = os.CreateTemp(filepath.Dir(*out), filepath.Base(*out)+".*"); err != nil {
			return usageErrorf("replay: %v", err)
		}
		defer os.Remove(outf.Name())
		defer outf.Close()
		bw = bufio.NewWriter(outf)
		rc.Out = bw
		rc.PcapNG = strings.HasSuffix(*out, ".pcapng")
	}
	if *explain {
		rc.Explain = func(n int, _ *forwarder.Decision, line string) {
			fmt.Fprintf(stdout, "%d %s\n", n, line)
		}
	}
	res, err := capture.Replay(rc)
	if err != nil {
		return usageErrorf("replay: %s: %v", *in, err)
	}
	if bw != nil {
		if err := bw.Flush(); err != nil {
			return err
		}
		if err := outf.Close(); err != nil {
			return err
		}
		if err := os.Chmod(outf.Name(), 0o644); err != nil {
			return err
		}
		if err := os.Rename(outf.Name(), *out); err != nil {
			return err
		}
	}
	fmt.Fprintf(stdout, "VIP MAC %s\n", net.HardwareAddr(opts.VIPMAC[:]))
	writeSummary(stdout, res)
	if *conns && res.Pipeline != nil {
		// The same listing as ipvsadm -L -c -n against a running udr.
		admin.Run([]string{"-L", "-n", "-c"}, replayState{cfg, res}, nil, stdout, stderr, admin.Options{})
	}
	return nil
}

// replayState shows the end of a replay to admin's listings; it takes no
// changes.
type replayState struct {
	cfg *service.Config
	res *capture.ReplayResult
}

func (r replayState) Apply(*admin.Command) error {
	return errors.New("a replay's table cannot be changed")
}

func (r replayState) Edit(func(*admin.Editor) error) error {
	return errors.New("a replay's table cannot be changed")
}

func (r replayState) State(conns bool) (*admin.State, error) {
	st := &admin.State{Config: r.cfg, ConnTabSize: 4096}
	if conns {
		p := r.res.Pipeline
		st.Conns = admin.Conns(p.Conns(), p.Registry(), p.Ticks(r.res.Last))
	}
	return st, nil
}

// writeSummary prints frames read, forwarded frames per real server,
// replies, and drops by reason.
func writeSummary(w io.Writer, res *capture.ReplayResult) {
	st := &res.Stats
	fmt.Fprintf(w, "frames %d\n", res.Frames)
	fmt.Fprintf(w, "forward %d\n", st.Verdicts[forwarder.VerdictForward])
	type row struct {
		svc, dest string
		n         int
	}
	var rows []row
	for id, n := range res.Forwarded {
		k := res.Pipeline.Registry().Key(id)
		svc, rs := service.KeyOf(k), k.Real
		rows = append(rows, row{svc.Proto.String() + " " + service.FormatAddrPort(svc.Addr, svc.Port), service.FormatAddrPort(rs.Addr(), rs.Port()), n})
	}
	slices.SortFunc(rows, func(a, b row) int {
		if c := strings.Compare(a.svc, b.svc); c != 0 {
			return c
		}
		return strings.Compare(a.dest, b.dest)
	})
	for _, r := range rows {
		fmt.Fprintf(w, "  %s -> %s %d\n", r.svc, r.dest, r.n)
	}
	fmt.Fprintf(w, "reply %d\n", st.Verdicts[forwarder.VerdictReply])
	var dropped uint64
	for _, v := range forwarder.Verdicts()[2:] {
		dropped += st.Verdicts[v]
	}
	fmt.Fprintf(w, "drop %d\n", dropped)
	for _, v := range forwarder.Verdicts()[2:] {
		if n := st.Verdicts[v]; n != 0 {
			fmt.Fprintf(w, "  %s %d\n", v, n)
		}
	}
}
