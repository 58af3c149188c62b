//go:build linux

package main

import (
	"bufio"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"os"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/udr-lb/udr/internal/checksum"
	"golang.org/x/sys/unix"
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
	sent, recv uint64   // frames the generator sent, the sinks received
	perSink    []uint64 // frames each sink received
	secs       float64  // the measured window
	busy       float64  // the machine's busy CPU seconds in the window
	fwdCPU     float64  // the forwarding process's (udr's, the raw forwarder's) CPU seconds in the window (0: none)
}

func (s floodSample) pps() float64 { return float64(s.recv) / s.secs }

// cpuPerFrame is the machine's busy CPU time per frame received, in
// seconds (0 for no frame).
func (s floodSample) cpuPerFrame() float64 {
	if s.recv == 0 {
		return 0
	}
	return s.busy / float64(s.recv)
}

// A sender puts a flood on the generator's eth0 until stopped.
type sender struct {
	done  <-chan struct{} // closed when it ends by itself
	ended func() string   // why it ended by itself
	stop  func() error    // ends it; why it failed, if it did
}

// trafgen sends the frames of configuration cfg at full speed, at most
// limit of them.
func (t *topo) trafgen(cfg string, limit uint64) (*sender, error) {
	p, err := start("trafgen", t.gen.Command("trafgen", "--dev", "eth0", "--conf", cfg, "--cpus", "1",
		"--num", strconv.FormatUint(limit, 10), "--no-sock-mem", "--notouch-irq", "--no-cpu-stats"))
	if err != nil {
		return nil, err
	}
	return &sender{
		done:  p.done,
		ended: func() string { return fmt.Sprintf("%v: %s", p.err, strings.TrimSpace(p.out.String())) },
		stop: func() error {
			out := p.stop(syscall.SIGINT)
			if p.err != nil && !strings.Contains(p.err.Error(), "signal") && !strings.Contains(p.err.Error(), "exit status 130") {
				return fmt.Errorf("trafgen: %v: %s", p.err, strings.TrimSpace(out))
			}
			return nil
		},
	}, nil
}

// paced sends frames round and round at rate frames per second, at most
// limit of them, from an AF_PACKET socket of its own (trafgen's --rate
// sends far below the rate asked, or nothing, below some 20,000 frames/s
// on this kernel). It catches up every 200 µs: its bursts are small.
func (t *topo) paced(frames [][]byte, rate float64, limit uint64) (*sender, error) {
	var fd int
	err := t.gen.Run(func() error {
		var err error
		fd, err = unix.Socket(unix.AF_PACKET, unix.SOCK_RAW|unix.SOCK_CLOEXEC, 0)
		if err != nil {
			return err
		}
		// Past the generator's qdisc, as trafgen.
		return unix.SetsockoptInt(fd, unix.SOL_PACKET, unix.PACKET_QDISC_BYPASS, 1)
	})
	if err != nil {
		if fd > 0 {
			unix.Close(fd)
		}
		return nil, fmt.Errorf("generator socket: %w", err)
	}
	link, err := t.gen.Netlink().LinkByName("eth0")
	if err != nil {
		unix.Close(fd)
		return nil, err
	}
	to := &unix.SockaddrLinklayer{Ifindex: link.Attrs().Index, Protocol: 0x0008 /* ETH_P_IP, network order */, Halen: 6}
	quit, done := make(chan struct{}), make(chan struct{})
	var sendErr error
	go func() {
		defer close(done)
		defer unix.Close(fd)
		begin := time.Now()
		var sent uint64
		for sent < limit {
			select {
			case <-quit:
				return
			default:
			}
			due := min(limit, uint64(time.Since(begin).Seconds()*rate))
			for ; sent < due; sent++ {
				f := frames[sent%uint64(len(frames))]
				if err := unix.Sendto(fd, f, 0, to); err == unix.ENOBUFS || err == unix.EAGAIN {
					break // the device is busy: try again at the next round
				} else if err != nil {
					sendErr = fmt.Errorf("send: %w", err)
					return
				}
			}
			time.Sleep(200 * time.Microsecond)
		}
	}()
	var once sync.Once
	return &sender{
		done:  done,
		ended: func() string { return fmt.Sprint(sendErr) },
		stop: func() error {
			once.Do(func() { close(quit) })
			<-done
			return sendErr
		},
	}, nil
}

// flood puts a flood on the wire (with trafgen at full speed, or paced at
// rate frames per second when rate is not 0) and measures dur of it, from
// warm after its first frames on: the frames sent, those the sinks
// received, the CPU time. fwdPID, when not 0, is the process whose CPU
// time is measured too.
func (t *topo) flood(ctx context.Context, fl floodConfig, warm, dur time.Duration, rate float64, fwdPID int) (floodSample, error) {
	var s floodSample
	if err := t.settle(ctx); err != nil {
		return s, err
	}
	if err := t.learn(); err != nil {
		return s, err
	}
	tx0, err := t.txPackets()
	if err != nil {
		return s, err
	}
	// The count bounds the run whatever happens to the stop below: 10
	// Mpps for the whole window and 10 s more.
	limit := uint64((warm.Seconds() + dur.Seconds() + 10) * 10e6)
	var snd *sender
	if rate > 0 {
		snd, err = t.paced(fl.frames, rate, limit)
	} else {
		snd, err = t.trafgen(fl.trafgen, limit)
	}
	if err != nil {
		return s, err
	}
	defer snd.stop()
	wait := func(d time.Duration) error {
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-snd.done:
			return fmt.Errorf("the generator ended early: %s", snd.ended())
		case <-time.After(d):
			return nil
		}
	}
	// trafgen parses its configuration first: measure from its first
	// frames on, after the warm-up (the forwarder's first frames touch its
	// memory for the first time, for one).
	deadline := time.Now().Add(30 * time.Second)
	for {
		tx, err := t.txPackets()
		if err != nil {
			return s, err
		}
		if tx > tx0+100 {
			break
		}
		if time.Now().After(deadline) {
			return s, errors.New("no frames from the generator within 30 s")
		}
		if err := wait(10 * time.Millisecond); err != nil {
			return s, err
		}
	}
	if err := wait(warm); err != nil {
		return s, err
	}
	type snap struct {
		at       time.Time
		tx       uint64
		rx       []uint64
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
		if fwdPID != 0 {
			if n.pc, err = procCPU(fwdPID); err != nil {
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
	if err := wait(dur); err != nil {
		return s, err
	}
	b, err := take()
	if err != nil {
		return s, err
	}
	// Frames in flight at the second reading (in the bridge, the director)
	// count as lost; at these rates they are a few hundred.
	s = floodSample{sent: b.tx - a.tx, secs: b.at.Sub(a.at).Seconds(), busy: b.busy - a.busy, fwdCPU: b.pc - a.pc}
	for i := range b.rx {
		s.perSink = append(s.perSink, b.rx[i]-a.rx[i])
		s.recv += b.rx[i] - a.rx[i]
	}
	return s, snd.stop()
}

// settle waits until the sinks receive nothing more for 100 ms (at most
// 10 s): a forwarder left behind by the previous flood may still be
// working through the frames queued in its socket.
func (t *topo) settle(ctx context.Context) error {
	last, err := t.rxPackets()
	if err != nil {
		return err
	}
	for deadline := time.Now().Add(10 * time.Second); time.Now().Before(deadline); {
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(100 * time.Millisecond):
		}
		rx, err := t.rxPackets()
		if err != nil {
			return err
		}
		if slices.Equal(rx, last) {
			return nil
		}
		last = rx
	}
	return errors.New("the sinks still receive frames 10 s after the flood")
}

// floodConfig is one flood: its frames, and the trafgen configuration
// that holds them.
type floodConfig struct {
	frames  [][]byte
	trafgen string
}
