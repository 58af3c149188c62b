package forwarder

import (
	"github.com/udr-lb/udr/conntrack"
	"github.com/udr-lb/udr/dest"
	"github.com/udr-lb/udr/sched"
)

// transport handles a TCP or UDP packet to a VIP (ip_vs_in_hook): an
// existing connection goes on to its real server; otherwise the service's
// scheduler, or its persistence template, picks one.
func (p *Pipeline) transport(now uint32) (Verdict, []byte) {
	f := &p.f
	svc, ok := p.t.lookup(f.key.Proto, &f.key.VIP, f.key.VPort)
	if !ok {
		return VerdictNoService, nil
	}
	return p.transportTo(svc, now)
}

// transportTo is transport once the frame's service, svc, is found.
func (p *Pipeline) transportTo(svc *compiledService, now uint32) (Verdict, []byte) {
	f := &p.f
	p.last.Service = svc.cfg
	k := &f.key
	syn := k.Proto == protoTCP && f.tcpFlags&tcpSYN != 0
	if svc.cfg.OnePacket && k.Proto == protoUDP {
		if k.CPort == ftpDataPort {
			return VerdictFTPData, nil // see below
		}
		if p.serial {
			svc.mu.Lock()
			v, out := p.onePacket(svc, now)
			svc.mu.Unlock()
			return v, out
		}
		return p.onePacket(svc, now)
	}

	if e, ref, ok := p.conns.LookupRef(k, now); ok {
		st := p.reg.State(e.Dest)
		switch {
		case syn && conntrack.RescheduleOnSYN(e, p.t.opts.ConnReuseMode.Mode()):
			// The old connection is over: expire it and schedule the SYN.
			p.conns.Delete(*k, now)
			p.last.Resched = true
		case syn && p.t.opts.ExpireNodestConn && st.Available.Load() && st.Weight.Load() == 0:
			// expire_nodest_conn also moves a port-reusing SYN off a
			// quiesced server (ip_vs_in_hook, v6.12), a connection
			// controlled by a template too: only the conn_reuse_mode
			// test (is_new_conn_expected) leaves those alone. The new
			// connection goes through the template, which still holds
			// unless expire_quiescent_template is set.
			p.conns.Delete(*k, now)
			p.last.Resched = true
		case !st.Available.Load():
			if !p.t.opts.ExpireNodestConn {
				// The kernel's default: dropped, the entry left to time
				// out.
				return VerdictDestRemoved, nil
			}
			// expire_nodest_conn=1: the entry goes, and the packet is
			// handled as new (a SYN is rescheduled; anything else finds
			// no entry).
			p.conns.Delete(*k, now)
			p.last.Resched = true
		default:
			e = p.conns.UpdateRef(ref, f.tcpFlags, now)
			p.last.State = e.State
			if p.sync != nil {
				p.syncConn(svc, k, &e, now)
			}
			return p.forwardFirst(e.Dest, now)
		}
	}

	if k.Proto == protoTCP && (f.tcpFlags&tcpRST != 0 || (!syn && !svc.stateless && !p.t.opts.SloppyTCP)) {
		// tcp_conn_schedule: only a SYN starts a connection (a SYN+ACK too,
		// for active FTP); a RST never does.
		return VerdictNoConn, nil
	}
	if k.CPort == ftpDataPort {
		// ip_vs_schedule: "Not scheduling FTPDATA". A packet from the
		// client's port 20 never creates a connection, TCP or UDP; the
		// kernel passes it to the local stack.
		return VerdictFTPData, nil
	}
	if !svc.cfg.Persistent && k.VPort != svc.cfg.Port {
		// The port-21 service took a packet for another port
		// (ip_vs_service_find) but only a persistent one schedules it
		// (ip_vs_schedule); ip_vs_leave passes it to the local stack,
		// and no other service sees it.
		p.last.Service = nil
		return VerdictNoService, nil
	}
	p.last.Stateless = !syn && k.Proto == protoTCP
	if p.serial {
		svc.mu.Lock()
		v, out := p.schedule(svc, now)
		svc.mu.Unlock()
		return v, out
	}
	return p.schedule(svc, now)
}

// schedule makes the new connection of the frame (p.f) to svc: through its
// persistence template or the scheduler's pick. With a shared Table the
// caller holds svc.mu.
func (p *Pipeline) schedule(svc *compiledService, now uint32) (Verdict, []byte) {
	k := &p.f.key
	if svc.cfg.Persistent {
		return p.persistent(svc, *k, now)
	}
	i := svc.sched.Pick(p.flow(now))
	if i < 0 {
		return VerdictNoBackend, p.unreachable(now)
	}
	srv := &svc.servers[i]
	p.last.Dest = srv.ID
	if _, ok := p.neigh.mac(srv.ID); !ok {
		return VerdictNoNeighbor, nil
	}
	if err := p.conns.Insert(*k, srv.ID, now); err != nil {
		return VerdictTableFull, nil
	}
	return p.established(svc, *k, srv.ID, now)
}

// onePacket schedules every datagram of a one-packet service (ipvsadm -o,
// IP_VS_CONN_F_ONE_PACKET) on its own: the kernel makes a connection for
// it that is never hashed and expires at once, so nothing is tracked. A
// persistent one-packet service still keeps its client on one server
// through the template. With a shared Table the caller holds svc.mu.
func (p *Pipeline) onePacket(svc *compiledService, now uint32) (Verdict, []byte) {
	var id dest.ID
	if svc.cfg.Persistent {
		tk := svc.persistence(&p.f.key).TemplateKey(p.f.key)
		if t, ok := p.conns.Lookup(tk, now); ok && p.templateUsable(t) {
			id, p.last.Persist = t.Dest, true
			p.conns.InsertTemplate(tk, id, svc.cfg.Timeout, now) // restart its timer
		} else if ok {
			p.conns.InvalidateTemplate(tk, now) // ip_vs_check_template
		}
	}
	if id == 0 {
		i := svc.sched.Pick(p.flow(now))
		if i < 0 {
			return VerdictNoBackend, p.unreachable(now)
		}
		id = svc.servers[i].ID
		if svc.cfg.Persistent {
			tk := svc.persistence(&p.f.key).TemplateKey(p.f.key)
			if err := p.conns.InsertTemplate(tk, id, svc.cfg.Timeout, now); err != nil {
				return VerdictTableFull, nil
			}
		}
	}
	p.last.New = true
	p.reg.State(id).Conns.Add(1)
	if p.sync != nil && svc.cfg.Persistent {
		// IP_VS_CONN_F_ONE_PACKET: not the connection, its template
		// (ip_vs_sync_conn).
		p.syncTemplate(svc, svc.persistence(&p.f.key).TemplateKey(p.f.key), now)
	}
	return p.forward(id)
}

// persistent schedules a new connection of a persistent service
// (ip_vs_sched_persist): the client's template decides while its real server
// is still in the service; otherwise the scheduler picks and a new template
// remembers the pick for svc.Timeout seconds.
func (p *Pipeline) persistent(svc *compiledService, k conntrack.Key, now uint32) (Verdict, []byte) {
	pers := svc.persistence(&k)
	tk := pers.TemplateKey(k)
	t, ok := p.conns.Lookup(tk, now)
	if ok && p.templateUsable(t) {
		p.last.Persist = true
	} else {
		if ok {
			// ip_vs_check_template: the template is moved out of the
			// way, still bound to its server with its connections, and
			// a new one takes its key.
			p.conns.InvalidateTemplate(tk, now)
		}
		i := svc.sched.Pick(p.flow(now))
		if i < 0 {
			if svc.cfg.Port == ftpPort && k.VPort != ftpPort {
				// ip_vs_leave: a packet that came to the FTP service
				// for another port is passed on, not answered.
				return VerdictNoBackend, nil
			}
			return VerdictNoBackend, p.unreachable(now)
		}
		srv := &svc.servers[i]
		p.last.Dest = srv.ID
		if _, ok := p.neigh.mac(srv.ID); !ok {
			return VerdictNoNeighbor, nil
		}
		if err := p.conns.InsertTemplate(tk, srv.ID, svc.cfg.Timeout, now); err != nil {
			return VerdictTableFull, nil
		}
	}
	id, err := p.conns.InsertControlled(k, pers, now)
	if err != nil {
		return VerdictTableFull, nil
	}
	return p.established(svc, k, id, now)
}

// persistence returns how connection k of persistent service svc is
// grouped under a template (ip_vs_sched_persist). The template's virtual
// port is k's for a packet to the service's own port, but 0 for the FTP
// service (port 21: <caddr, 0, vaddr, 0>), for a port-0 service, and for a
// packet that came to another port (FTP data, ip_vs_service_find): one
// template then covers the client's control and data connections.
func (svc *compiledService) persistence(k *conntrack.Key) conntrack.Persistence {
	return conntrack.Persistence{
		Timeout:  svc.cfg.Timeout,
		Netmask:  uint8(svc.cfg.Netmask),
		AllPorts: k.VPort != svc.cfg.Port || svc.cfg.Port == ftpPort,
	}
}

// templateUsable is ip_vs_check_template: the template's real server is
// still in its service, and, with expire_quiescent_template, not quiesced.
func (p *Pipeline) templateUsable(t conntrack.Entry) bool {
	st := p.reg.State(t.Dest)
	return st.Available.Load() && !(p.t.opts.ExpireQuiescentTemplate && st.Weight.Load() == 0)
}

// established applies the first packet to a connection just created and
// forwards it.
func (p *Pipeline) established(svc *compiledService, k conntrack.Key, id dest.ID, now uint32) (Verdict, []byte) {
	e, _ := p.conns.Update(k, p.f.tcpFlags, now)
	p.last.State = e.State
	p.last.New = true
	p.reg.State(id).Conns.Add(1)
	if p.sync != nil {
		p.syncConn(svc, &k, &e, now)
	}
	return p.forwardFirst(id, now)
}

// forwardFirst forwards the packet and, when it is the first fragment of a
// datagram, remembers where its later fragments go.
func (p *Pipeline) forwardFirst(id dest.ID, now uint32) (Verdict, []byte) {
	if p.f.fragment {
		p.frags.remember(p.f.fragKey(), id, now)
	}
	return p.forward(id)
}

func (p *Pipeline) flow(now uint32) sched.Flow {
	f := &p.f
	return sched.Flow{Src: f.key.Client, Dst: f.key.VIP, SrcPort: f.key.CPort, DstPort: f.key.VPort, Is6: f.is6, Now: p.secs(now)}
}
