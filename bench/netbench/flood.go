//go:build linux

package main

import (
	"bufio"
	"context"
	"encoding/binary"
	"fmt"
	"net"
	"net/netip"
	"os"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/udr-lb/udr/internal/checksum"
)

// floodSources are the flood's source addresses: RFC 5737's
// 198.51.100.1-254 and 203.0.113.1-254.
func floodSources() []netip.Addr {
	var a []netip.Addr
	for _, net := range [][3]byte{{198, 51, 100}, {203, 0, 113}} {
		for h := 1; h <= 254; h++ {
			a = append(a, netip.AddrFrom4([4]byte{net[0], net[1], net[2], byte(h)}))
		}
	}
	return a
}

// maxFlows is the most flows floodFrames makes: every source address with
// 50 source ports.
const maxFlows = 508 * 50

// floodFrames returns the frames of one pass of a flood of proto ("udp" or
// "tcp") from flows flows: 60 bytes each (64 on the wire with the FCS),
// from the generator's MAC to dst(flow). A udp flow has one frame; a tcp
// flow two, a SYN and then an ACK of the same connection.
func floodFrames(proto string, flows int, src net.HardwareAddr, dst func(flow int) net.HardwareAddr) [][]byte {
	addrs := floodSources()
	var frames [][]byte
	for f := range flows {
		saddr := addrs[f%len(addrs)]
		sport := uint16(10000 + f/len(addrs))
		d := dst(f)
		switch proto {
		case "udp":
			frames = append(frames, frame(d, src, saddr, sport, syscall.IPPROTO_UDP, 0))
		case "tcp":
			frames = append(frames,
				frame(d, src, saddr, sport, syscall.IPPROTO_TCP, 0x02), // SYN
				frame(d, src, saddr, sport, syscall.IPPROTO_TCP, 0x10)) // ACK
		}
	}
	return frames
}

// frame builds one 60-byte IPv4 frame to vip:floodPort; flags are the TCP
// flags for a TCP frame.
func frame(dst, src net.HardwareAddr, saddr netip.Addr, sport uint16, proto int, flags byte) []byte {
	b := make([]byte, 60)
	copy(b[0:6], dst)
	copy(b[6:12], src)
	binary.BigEndian.PutUint16(b[12:], 0x0800)
	ip := b[14:34]
	l4len := 8 + 18 // UDP header and 18 bytes of payload
	if proto == syscall.IPPROTO_TCP {
		l4len = 20
	}
	ip[0] = 0x45
	binary.BigEndian.PutUint16(ip[2:], uint16(20+l4len))
	binary.BigEndian.PutUint16(ip[4:], sport) // identification
	ip[8] = 64
	ip[9] = byte(proto)
	s4, d4 := saddr.As4(), vip.As4()
	copy(ip[12:16], s4[:])
	copy(ip[16:20], d4[:])
	binary.BigEndian.PutUint16(ip[10:], checksum.Checksum(ip))
	l4 := b[34 : 34+l4len]
	binary.BigEndian.PutUint16(l4[0:], sport)
	binary.BigEndian.PutUint16(l4[2:], uint16(floodPort))
	off := 6 // checksum offset
	if proto == syscall.IPPROTO_TCP {
		binary.BigEndian.PutUint32(l4[4:], uint32(sport)<<16|1000) // seq
		if flags&0x10 != 0 {
			binary.BigEndian.PutUint32(l4[8:], 7000) // ack
		}
		l4[12] = 5 << 4
		l4[13] = flags
		binary.BigEndian.PutUint16(l4[14:], 65535) // window
		off = 16
	} else {
		binary.BigEndian.PutUint16(l4[4:], uint16(l4len))
	}
	c := checksum.Finish(checksum.Add(checksum.Pseudo(s4[:], d4[:], uint8(proto), l4len), l4))
	if c == 0 && proto == syscall.IPPROTO_UDP {
		c = 0xffff
	}
	binary.BigEndian.PutUint16(l4[off:], c)
	return b
}

// writeTrafgen writes frames as a trafgen configuration: one packet
// definition per frame, which trafgen sends in turn, round and round.
func writeTrafgen(path string, frames [][]byte) error {
	f, err := os.Create(path)
	if err != nil {
		return err
	}
	w := bufio.NewWriter(f)
	for _, fr := range frames {
		w.WriteString("{")
		for i, c := range fr {
			if i > 0 {
				w.WriteByte(',')
			}
			fmt.Fprintf(w, "0x%02x", c)
		}
		w.WriteString("}\n")
	}
	if err := w.Flush(); err != nil {
		f.Close()
		return err
	}
	return f.Close()
}

// cpuBusy returns the whole machine's busy CPU time (every state but idle
// and iowait), in seconds, from /proc/stat.
func cpuBusy() (float64, error) {
	b, err := os.ReadFile("/proc/stat")
	if err != nil {
		return 0, err
	}
	line, _, _ := strings.Cut(string(b), "\n")
	f := strings.Fields(line)
	if len(f) < 8 || f[0] != "cpu" {
		return 0, fmt.Errorf("/proc/stat: unexpected first line %q", line)
	}
	var busy uint64
	for i, s := range f[1:] {
		if i == 3 || i == 4 || i >= 8 { // idle, iowait; guest time is in user already
			continue
		}
		v, err := strconv.ParseUint(s, 10, 64)
		if err != nil {
			return 0, fmt.Errorf("/proc/stat: %w", err)
		}
		busy += v
	}
	return float64(busy) / clockTicks, nil
}

// clockTicks is USER_HZ, the unit of /proc/stat and /proc/PID/stat.
const clockTicks = 100

// procCPU returns the user and system CPU time of process pid, in seconds,
// from /proc/PID/stat.
func procCPU(pid int) (float64, error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return 0, err
	}
	// The command name in parentheses may hold spaces: fields count from
	// the last ')'.
	s := string(b)
	i := strings.LastIndexByte(s, ')')
	f := strings.Fields(s[i+1:])
	if len(f) < 13 {
		return 0, fmt.Errorf("/proc/%d/stat: too short", pid)
	}
	ut, err1 := strconv.ParseUint(f[11], 10, 64)
	st, err2 := strconv.ParseUint(f[12], 10, 64)
	if err1 != nil || err2 != nil {
		return 0, fmt.Errorf("/proc/%d/stat: bad utime/stime", pid)
	}
	return float64(ut+st) / clockTicks, nil
}

// floodSample is one measured flood.
type floodSample struct {
	sent, recv uint64  // frames the generator sent, the sinks received
	secs       float64 // the measured window
	busy       float64 // the machine's busy CPU seconds in the window
	udrCPU     float64 // udr's CPU seconds in the window (0: no udr)
}

func (s floodSample) pps() float64 { return float64(s.recv) / s.secs }

// flood runs trafgen with config cfg in the generator and measures dur of
// its sending, once it has started: the frames sent, those the sinks
// received, the CPU time. rate, when not 0, limits trafgen to that many
// frames per second; otherwise it sends as fast as it can. udrPID, when not
// 0, is the process whose CPU time is measured too.
func (t *topo) flood(ctx context.Context, cfg string, dur time.Duration, rate float64, udrPID int) (floodSample, error) {
	var s floodSample
	if err := t.learn(); err != nil {
		return s, err
	}
	tx0, err := t.txPackets()
	if err != nil {
		return s, err
	}
	// The count bounds the run whatever happens to the signal below: 10
	// Mpps for the whole window and 10 s more.
	limit := uint64((dur.Seconds() + 10) * 10e6)
	args := []string{"--dev", "eth0", "--conf", cfg, "--cpus", "1",
		"--num", strconv.FormatUint(limit, 10), "--no-sock-mem", "--notouch-irq", "--no-cpu-stats"}
	if rate > 0 {
		args = append(args, "--rate", fmt.Sprintf("%.0fpps", rate))
	}
	p, err := start("trafgen", t.gen.Command("trafgen", args...))
	if err != nil {
		return s, err
	}
	defer p.stop(syscall.SIGINT)
	// trafgen parses its configuration first: measure from its first
	// frames on.
	if err := waitFor(ctx, p, "frames from trafgen", 30*time.Second, func() bool {
		tx, err := t.txPackets()
		return err == nil && tx > tx0+1000
	}); err != nil {
		return s, err
	}
	type snap struct {
		at       time.Time
		tx, rx   uint64
		busy, pc float64
	}
	take := func() (snap, error) {
		var n snap
		var err error
		if n.tx, err = t.txPackets(); err != nil {
			return n, err
		}
		if n.rx, err = t.rxPackets(); err != nil {
			return n, err
		}
		if n.busy, err = cpuBusy(); err != nil {
			return n, err
		}
		if udrPID != 0 {
			if n.pc, err = procCPU(udrPID); err != nil {
				return n, err
			}
		}
		n.at = time.Now()
		return n, nil
	}
	a, err := take()
	if err != nil {
		return s, err
	}
	select {
	case <-ctx.Done():
		return s, ctx.Err()
	case <-p.done:
		return s, fmt.Errorf("trafgen ended early: %v: %s", p.err, strings.TrimSpace(p.out.String()))
	case <-time.After(dur):
	}
	b, err := take()
	if err != nil {
		return s, err
	}
	// Frames in flight at the second reading (in the bridge, the director)
	// count as lost; at these rates they are a few hundred.
	s = floodSample{sent: b.tx - a.tx, recv: b.rx - a.rx, secs: b.at.Sub(a.at).Seconds(), busy: b.busy - a.busy, udrCPU: b.pc - a.pc}
	if out := p.stop(syscall.SIGINT); p.err != nil && !strings.Contains(p.err.Error(), "signal") && !strings.Contains(p.err.Error(), "exit status 130") {
		return s, fmt.Errorf("trafgen: %v: %s", p.err, strings.TrimSpace(out))
	}
	return s, nil
}
