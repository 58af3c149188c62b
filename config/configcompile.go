package config

import (
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/goccy/go-yaml/ast"

	"github.com/udr-lb/udr/admin"
	"github.com/udr-lb/udr/service"
)

// config converts every value of doc, reporting each problem, and builds the
// virtual server table. The results are meaningful only when d.errs is empty.
func (d *configDecoder) config(doc *fileDoc, dir string) (*File, *service.Config, []string) {
	fc := &File{}
	var ok bool
	fc.Interface, ok = d.str("interface", doc.Interface, "")
	switch {
	case !ok:
	case fc.Interface == "":
		d.errorf("interface", "required")
	case len(fc.Interface) > maxIfName || strings.ContainsAny(fc.Interface, "/ \t\n") ||
		fc.Interface == "." || fc.Interface == "..":
		d.errorf("interface", "%q is not an interface name", fc.Interface)
	}
	fc.VIPMAC, ok = d.str("vip_mac", doc.VIPMAC, "")
	if ok {
		if _, err := ParseVIPMAC(fc.VIPMAC); err != nil {
			d.errorf("vip_mac", "%v", err)
		}
	}
	fc.ControlSocket, ok = d.str("control_socket", doc.ControlSocket, DefaultControlSocket)
	if ok && (fc.ControlSocket == "" || len(fc.ControlSocket) > 107) {
		d.errorf("control_socket", "%q is not a unix socket path of 1..107 bytes", fc.ControlSocket)
	}
	fc.StateFile, ok = d.str("state_file", doc.StateFile, "")
	if ok && strings.ContainsRune(fc.StateFile, 0) {
		d.errorf("state_file", "%q is not a file path", fc.StateFile)
	}
	fc.MetricsAddress, ok = d.str("metrics_address", doc.MetricsAddress, DefaultMetricsAddress)
	if fc.MetricsAddress == "off" {
		fc.MetricsAddress = ""
	}
	if ok && fc.MetricsAddress != "" {
		_, port, err := net.SplitHostPort(fc.MetricsAddress)
		if p, perr := strconv.ParseUint(port, 10, 16); err != nil || perr != nil || p == 0 {
			d.errorf("metrics_address", `%q is not host:port, "" or off`, fc.MetricsAddress)
		}
	}
	fc.IO, ok = d.str("io", doc.IO, DefaultIO)
	if ok && fc.IO != "ring" && fc.IO != "ring-v2" && fc.IO != "socket" && fc.IO != "auto" {
		d.errorf("io", "%q is not ring, ring-v2, socket or auto", fc.IO)
	}
	fc.Workers = DefaultWorkers
	if s, ok := doc.Workers.(*ast.StringNode); ok {
		if s.Value != "auto" {
			d.errorf("workers", "%q is not a number of workers (1..%d) or auto", s.Value, MaxWorkers)
		}
	} else {
		workers, _ := d.integer("workers", doc.Workers, 1, MaxWorkers, DefaultWorkers)
		fc.Workers = int(workers)
	}
	fc.AnnounceInterval, _ = d.duration("announce_interval", doc.AnnounceInterval, MinAnnounceInterval, MaxAnnounceInterval, DefaultAnnounceInterval, false)
	capacity, _ := d.integer("capacity", doc.Capacity, 1, MaxCapacity, DefaultCapacity)
	fc.Capacity = int(capacity)
	fc.SloppyTCP, _ = d.boolean("sloppy_tcp", doc.SloppyTCP)
	fc.Standby, _ = d.boolean("standby", doc.Standby)
	reuse, _ := d.integer("conn_reuse_mode", doc.ConnReuseMode, 0, 3, DefaultConnReuseMode)
	fc.ConnReuseMode = int(reuse)
	fc.ExpireNodestConn, _ = d.boolean("expire_nodest_conn", doc.ExpireNodestConn)
	fc.ExpireQuiescentTemplate, _ = d.boolean("expire_quiescent_template", doc.ExpireQuiescent)
	dropEntry, _ := d.integer("drop_entry", doc.DropEntry, 0, 3, 0)
	secureTCP, _ := d.integer("secure_tcp", doc.SecureTCP, 0, 3, 0)
	fc.DropEntry, fc.SecureTCP = int(dropEntry), int(secureTCP)
	if t := doc.Timeouts; t != nil {
		fc.Timeouts = service.Timeouts{
			TCP:    d.seconds("timeouts.tcp", t.TCP),
			TCPFin: d.seconds("timeouts.tcp_fin", t.TCPFin),
			UDP:    d.seconds("timeouts.udp", t.UDP),
		}
	}

	fc.Sync = d.sync(doc.Sync)

	fc.Rules, ok = d.str("rules", doc.Rules, "")
	if ok && fc.Rules != "" && !filepath.IsAbs(fc.Rules) {
		fc.Rules = filepath.Join(dir, fc.Rules)
	}
	if fc.Rules != "" && len(doc.Services) > 0 {
		d.errorf("services", "give services or rules, not both")
	}
	var (
		cfg      = &service.Config{}
		warnings []string
	)
	if fc.Rules != "" && len(doc.Services) == 0 {
		cfg, warnings = d.rules(fc.Rules)
	}
	first := make(map[service.Key]int) // service key → index of the service that defined it
	for i := range doc.Services {
		s, asked, ok := d.service(i, &doc.Services[i])
		if !ok {
			continue
		}
		if j, dup := first[s.Key]; dup {
			d.errorf(fmt.Sprintf("services[%d]", i), "%s %s already defined by services[%d] (%s)",
				strings.ToLower(s.Proto.String()), service.FormatAddrPort(s.Addr, s.Port), j, d.where(fmt.Sprintf("services[%d]", j)))
			continue
		}
		first[s.Key] = i
		warnings = append(warnings, d.apply(cfg, i, s, asked)...)
		if ss := s.SorryServer; ss != nil && ss.asked != 0 && ss.asked != ss.Port {
			sp := fmt.Sprintf("services[%d].sorry_server.port", i)
			warnings = append(warnings, fmt.Sprintf("%s: %s: port %d ignored: direct routing forwards to the service port %d",
				d.where(sp), sp, ss.asked, ss.Port))
		}
		fc.Services = append(fc.Services, s)
	}
	cfg.Timeouts = fc.Timeouts
	fc.BGP = d.bgp(doc.BGP)
	d.bgpNextHops(fc.BGP, cfg)
	warnings = append(warnings, BGPWarnings(d.name, fc.BGP, fc.Sync, cfg)...)
	return fc, cfg, warnings
}

// seconds returns the duration at path in whole seconds, 0..MaxTimeout.
func (d *configDecoder) seconds(path string, n ast.Node) uint32 {
	v, _ := d.duration(path, n, 0, service.MaxTimeout*time.Second, 0, true)
	return uint32(v / time.Second)
}

// rules reads the rules file at path. Its problems are reported as
// ParseRules words them, naming the rules file and its lines.
func (d *configDecoder) rules(path string) (*service.Config, []string) {
	f, err := os.Open(path)
	if err != nil {
		d.errorf("rules", "%v", err)
		return &service.Config{}, nil
	}
	defer f.Close()
	cfg, warnings, err := admin.ParseRules(f, path)
	if err != nil {
		line := d.line("rules")
		if j, ok := err.(interface{ Unwrap() []error }); ok {
			for _, e := range j.Unwrap() {
				d.report(line, e)
			}
		} else {
			d.report(line, err)
		}
		return &service.Config{}, warnings
	}
	return cfg, warnings
}

// maxIfName is the longest interface name Linux allows (IFNAMSIZ - 1).
const maxIfName = 15
