package config

import (
	"errors"
	"fmt"
	"math"
	"net/netip"
	"syscall"
	"time"

	"github.com/goccy/go-yaml/ast"

	"github.com/udr-lb/udr/admin"
	"github.com/udr-lb/udr/health"
	"github.com/udr-lb/udr/sched"
	"github.com/udr-lb/udr/service"
)

// service converts services[i] and its servers. Problems of its servers are
// reported even when the service itself is faulty; ok is false after any.
// asked are the ports of its servers as written (0: none).
func (d *configDecoder) service(i int, doc *serviceDoc) (s Service, asked []uint16, ok bool) {
	p := fmt.Sprintf("services[%d]", i)
	before := len(d.errs)

	proto, _ := d.oneOf(p+".protocol", doc.Protocol, "tcp", "tcp", "udp")
	s.Proto = service.TCP
	if proto == "udp" {
		s.Proto = service.UDP
	}
	addrOK := false
	s.Addr, addrOK = d.addr(p+".address", doc.Address)
	if addrOK {
		if err := admin.CheckVIP(s.Addr); err != nil {
			d.errorf(p+".address", "%v", err)
		}
	}
	port, portOK := d.integer(p+".port", doc.Port, 0, 65535, 0)
	s.Port = uint16(port)

	s.Scheduler, _ = d.str(p+".scheduler", doc.Scheduler, service.DefaultScheduler)
	switch {
	case s.Scheduler == "":
		d.errorf(p+".scheduler", "must not be empty, the default is %s", service.DefaultScheduler)
	case !sched.Valid(s.Scheduler):
		d.errorf(p+".scheduler", "unknown scheduler %q", s.Scheduler)
	}
	flags, _ := d.stringList(p+".flags", doc.Flags)
	for j, name := range flags {
		f, err := admin.ParseSchedFlags(s.Scheduler, name)
		var ue *admin.UsageError
		switch {
		case err == nil:
			s.Flags |= f
		case errors.As(err, &ue) && ue.Detail != "":
			d.errorf(fmt.Sprintf("%s.flags[%d]", p, j), "%q needs scheduler %s, not %s", name, name[:2], s.Scheduler)
		default:
			d.errorf(fmt.Sprintf("%s.flags[%d]", p, j), "%q unknown, want %s", name,
				orList([]string{"flag-1", "flag-2", "flag-3", "sh-fallback", "sh-port", "mh-fallback", "mh-port"}))
		}
	}

	if pd := doc.Persistence; pd != nil {
		s.Persistence = &Persistence{}
		s.Persistence.Timeout, _ = d.duration(p+".persistence.timeout", pd.Timeout,
			time.Second, service.MaxTimeout*time.Second, service.DefaultPersistentTimeout*time.Second, true)
		if addrOK {
			s.Persistence.Netmask = d.netmask(p+".persistence.netmask", pd.Netmask, s.Addr)
		}
	}
	if portOK && port == 0 && s.Persistence == nil {
		if absent(doc.Port) {
			d.errorf(p+".port", "required (0, every port, only with persistence)")
		} else {
			d.errorf(p+".port", "0 (every port) needs persistence")
		}
	}
	s.OnePacket, _ = d.boolean(p+".one_packet", doc.OnePacket)
	if s.OnePacket && s.Proto != service.UDP {
		d.errorf(p+".one_packet", "only for udp services")
	}
	s.HealthCheck, _ = d.health(mergeHealth(doc.HealthCheck, p+".health_check", nil, ""), s.Addr)

	s.Quorum, _ = d.integer(p+".quorum", doc.Quorum, 1, math.MaxInt32, 1)
	s.Hysteresis, _ = d.integer(p+".hysteresis", doc.Hysteresis, 0, math.MaxInt32, 0)
	if sd := doc.SorryServer; sd != nil {
		sp := p + ".sorry_server"
		if absent(sd.Address) {
			d.errorf(sp+".address", "required")
		} else if r, written, ok := d.server(sp, &serverDoc{Address: sd.Address, Port: sd.Port}, addrOK, s.Addr, s.Port); ok {
			s.SorryServer = &SorryServer{Addr: r.Addr, Port: r.Port, asked: written}
			s.SorryServer.Inhibit, _ = d.boolean(sp+".inhibit", sd.Inhibit)
		}
	}

	for j := range doc.Servers {
		sp := fmt.Sprintf("%s.servers[%d]", p, j)
		r, written, ok := d.server(sp, &doc.Servers[j], addrOK, s.Addr, s.Port)
		if !ok {
			continue
		}
		asked = append(asked, written)
		hs := mergeHealth(doc.HealthCheck, p+".health_check", doc.Servers[j].HealthCheck, sp+".health_check")
		if r.HealthCheck, ok = d.health(hs, r.Addr); ok && r.HealthCheck != nil && r.HealthCheck.Kind != health.KindMisc &&
			r.HealthCheck.Port == 0 && portOK && port == 0 {
			d.errorf(hs.owner+".port", "required: the service port is 0 (every port)")
		}
		s.Servers = append(s.Servers, r)
	}
	return s, asked, len(d.errs) == before
}

// netmask returns the persistence netmask at path for a service at vip: a
// prefix length, or for IPv4 also a mask such as 255.255.255.0.
func (d *configDecoder) netmask(path string, n ast.Node, vip netip.Addr) int {
	bits := vip.BitLen()
	if absent(n) {
		return bits
	}
	if s, ok := n.(*ast.StringNode); ok && vip.Is4() {
		m, err := netip.ParseAddr(s.Value)
		if err != nil || !m.Is4() {
			d.errorf(path, "%q is not an IPv4 netmask or a prefix length", s.Value)
			return bits
		}
		b := m.As4()
		plen, ok := admin.MaskPrefix(uint32(b[0])<<24 | uint32(b[1])<<16 | uint32(b[2])<<8 | uint32(b[3]))
		if !ok {
			d.errorf(path, "%s is not a prefix mask: udr supports prefix masks only", s.Value)
			return bits
		}
		return plen
	}
	min := int64(0)
	if vip.Is6() {
		min = 1 // the kernel refuses 0 (ip_vs_ctl.c ip_vs_add_service)
	}
	plen, _ := d.integer(path, n, min, int64(bits), int64(bits))
	return int(plen)
}

// server converts one real server of a service at vip:port.
// asked is the port as written, 0 when none was.
func (d *configDecoder) server(p string, doc *serverDoc, vipOK bool, vip netip.Addr, port uint16) (r Server, asked uint16, ok bool) {
	before := len(d.errs)
	r.Port = port
	var addrOK bool
	r.Addr, addrOK = d.addr(p+".address", doc.Address)
	switch {
	case !addrOK:
	case vipOK && r.Addr.Is4() != vip.Is4():
		d.errorf(p+".address", "%s is %s, the service address is not", r.Addr, familyName(r.Addr))
	case !admin.Unicast(r.Addr):
		d.errorf(p+".address", "%s is not a unicast address", r.Addr)
	case vipOK:
		if err := admin.CheckRealServer(vip, r.Addr); err != nil {
			d.errorf(p+".address", "%v", err)
		}
	}
	written, _ := d.integer(p+".port", doc.Port, 0, 65535, 0)
	weight, _ := d.integer(p+".weight", doc.Weight, 0, 65535, service.DefaultWeight)
	upper, uok := d.integer(p+".upper_threshold", doc.UpperThreshold, 0, math.MaxInt32, 0)
	lower, lok := d.integer(p+".lower_threshold", doc.LowerThreshold, 0, math.MaxInt32, 0)
	if uok && lok && lower > upper {
		// ip_vs_add_dest refuses it (ERANGE), even with no upper threshold.
		d.errorf(p+".lower_threshold", "%d is above upper_threshold %d", lower, upper)
	}
	r.Weight, r.UpperThreshold, r.LowerThreshold = int32(weight), uint32(upper), uint32(lower)
	return r, uint16(written), len(d.errs) == before
}

func familyName(a netip.Addr) string {
	if a.Is4() {
		return "IPv4"
	}
	return "IPv6"
}

// apply adds service services[i] and its servers to cfg as ipvsadm -A and
// -a would, and returns the warnings of real server ports that direct
// routing ignored. asked are the servers' ports as written (0: none).
func (d *configDecoder) apply(cfg *service.Config, i int, s Service, asked []uint16) []string {
	p := fmt.Sprintf("services[%d]", i)
	add := &admin.Command{Op: admin.OpAddService, Options: admin.OptService | admin.OptScheduler}
	add.Service = service.Service{Key: s.Key, Scheduler: s.Scheduler, Flags: s.Flags, Netmask: s.Addr.BitLen(), OnePacket: s.OnePacket}
	if s.Persistence != nil {
		add.Options |= admin.OptPersistent | admin.OptNetmask
		add.Service.Persistent = true
		add.Service.Timeout = uint32(s.Persistence.Timeout / time.Second)
		add.Service.Netmask = s.Persistence.Netmask
	}
	if err := admin.Apply(cfg, add); err != nil {
		d.errorf(p, "%v", err) // every cause of failure was checked before
		return nil
	}
	var warnings []string
	first := make(map[netip.AddrPort]int) // real server → index of its first listing
	for j, r := range s.Servers {
		sp := fmt.Sprintf("%s.servers[%d]", p, j)
		cmd := &admin.Command{
			Op:      admin.OpAddServer,
			Options: admin.OptService | admin.OptServer | admin.OptForward | admin.OptWeight | admin.OptUThreshold | admin.OptLThreshold,
			Service: service.Service{Key: s.Key},
			Dest:    service.Dest{Addr: r.Addr, Port: r.Port, Weight: r.Weight, UThreshold: r.UpperThreshold, LThreshold: r.LowerThreshold},
			// Direct routing forwards to the service port, whatever
			// port was written (ipvsadm's process_options).
			AskedPort:  asked[j],
			PortForced: asked[j] != 0 && asked[j] != r.Port,
		}
		if !cmd.PortForced {
			cmd.AskedPort = r.Port
		}
		ap := netip.AddrPortFrom(r.Addr, r.Port)
		err := admin.Apply(cfg, cmd)
		switch {
		case err == nil:
			first[ap] = j
			if w := cmd.ForcedPortWarning(); w != "" {
				warnings = append(warnings, fmt.Sprintf("%s: %s.port: %s", d.where(sp+".port"), sp, w))
			}
		case errors.Is(err, syscall.EEXIST):
			k := first[ap]
			d.errorf(sp, "real server %s already listed as servers[%d] (%s)",
				service.FormatAddrPort(r.Addr, r.Port), k, d.where(fmt.Sprintf("%s.servers[%d]", p, k)))
		default:
			d.errorf(sp, "%v", err) // every other cause was checked before
		}
	}
	return warnings
}
