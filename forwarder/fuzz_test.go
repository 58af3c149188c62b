package forwarder

import (
	"bytes"
	"errors"
	"io"
	"net/netip"
	"os"
	"path/filepath"
	"slices"
	"testing"

	"github.com/gopacket/gopacket/pcapgo"

	"github.com/udr-lb/udr/internal/udrtest"
)

// fuzzRules has a service of every kind the pipeline treats differently:
// TCP rr, UDP, persistent, port 0, stateless sh, IPv6, and a persistent
// FTP service (lblcr), which takes TCP to ports 20 and 1024 and up.
const fuzzRules = `-A -t 192.0.2.100:80 -s rr
-a -t 192.0.2.100:80 -r 192.0.2.11:80 -g -w 1
-a -t 192.0.2.100:80 -r 192.0.2.12:80 -g -w 1
-A -u 192.0.2.100:53 -s wlc
-a -u 192.0.2.100:53 -r 192.0.2.11:53 -g -w 1
-A -t 192.0.2.100:443 -s sh -b sh-port
-a -t 192.0.2.100:443 -r 192.0.2.11:443 -g -w 1
-A -t 192.0.2.100:0 -s wrr -p 300
-a -t 192.0.2.100:0 -r 192.0.2.12:0 -g -w 1
-A -t [2001:db8::100]:80 -s rr
-a -t [2001:db8::100]:80 -r [2001:db8::11]:80 -g -w 1
-A -t [2001:db8::100]:21 -s lblcr -p 60
-a -t [2001:db8::100]:21 -r [2001:db8::11]:21 -g -w 1
`

// FuzzPipeline feeds arbitrary frames to the pipeline. It must never panic,
// a forwarded frame must differ from its input in the MAC addresses only,
// a reply must be a whole Ethernet frame, and a frame judged malformed must
// not change a real server's MAC (neighbour learning validates as the
// responder does). The corpus is every frame of
// the golden captures in testdata/pcaps, plus the hand-made seeds below.
func FuzzPipeline(f *testing.F) {
	h := newHarness(f, fuzzRules, 4096)
	h.neigh.Set(rs6, rs6MAC)
	rips := []netip.Addr{udrtest.RS1, udrtest.RS2, rs6}
	addSeeds(f, h)
	buf := make([]byte, 0, 9216)
	f.Fuzz(func(t *testing.T, frame []byte) {
		var before [3][6]byte
		for i, a := range rips {
			before[i], _ = h.neigh.Lookup(a)
		}
		in := append(buf[:0], frame...)
		v, out := h.p.Process(in, epoch)
		if v == VerdictMalformed {
			for i, a := range rips {
				if after, _ := h.neigh.Lookup(a); after != before[i] {
					t.Fatalf("malformed frame changed the MAC of %s from %x to %x:\n%x", a, before[i], after, frame)
				}
			}
		}
		switch v {
		case VerdictForward:
			if !bytes.Equal(out[12:], frame[12:]) {
				t.Fatalf("forwarded frame changed beyond its MACs:\nin  %x\nout %x", frame, out)
			}
			if d := h.p.Decision(); d.Dest == 0 {
				t.Fatalf("forward without a real server")
			}
		case VerdictReply, VerdictNoBackend:
			if v == VerdictNoBackend && out == nil {
				break
			}
			if len(out) < 42 {
				t.Fatalf("reply of %d bytes", len(out))
			}
		default:
			if out != nil {
				t.Fatalf("verdict %v with a frame", v)
			}
		}
	})
}

func addSeeds(f *testing.F, h *harness) {
	vmac := h.vmac[:]
	eth := udrtest.Eth{Src: udrtest.ClientMAC, Dst: vmac}
	// A SYN to each service kind, a mid-stream ACK for the stateless sh
	// service, and a tagged ARP request.
	f.Add(udrtest.TCP(eth, client(40000), vip80, udrtest.SYN, nil))
	f.Add(udrtest.TCP(eth, client(40000), vip80, udrtest.ACK, []byte("GET / HTTP/1.1\r\n\r\n")))
	f.Add(udrtest.UDP(eth, client(5353), vip53, []byte("query")))
	f.Add(udrtest.TCP(eth, client(40001), netip.AddrPortFrom(udrtest.VIP, 443), udrtest.ACK, nil))
	f.Add(udrtest.TCP(eth, client(40002), netip.AddrPortFrom(udrtest.VIP, 8080), udrtest.SYN, nil))
	f.Add(udrtest.ARPRequest(udrtest.Eth{Src: udrtest.ClientMAC, Dst: []byte{0xff, 0xff, 0xff, 0xff, 0xff, 0xff}, VLAN: 7}, udrtest.Client, udrtest.VIP))
	// Neighbour learning: a valid advertisement and ARP reply for real
	// servers, and the malformed ones that must teach nothing.
	f.Add(naFrame(rs6, poisonMAC, true, nil))
	f.Add(naFrame(rs6, poisonMAC, false, func(ip []byte) { ip[7] = 3 }))
	f.Add(arpFrame(2, poisonMAC, udrtest.RS1, nil))
	f.Add(arpFrame(2, [6]byte{0x01, 0, 0x5e, 0, 0, 1}, udrtest.RS2, nil))
	// Truncations of a SYN at every header boundary.
	syn := udrtest.TCP(eth, client(40003), vip80, udrtest.SYN, nil)
	for _, n := range []int{0, 13, 14, 33, 34, 53} {
		f.Add(slices.Clone(syn[:n]))
	}
	paths, _ := filepath.Glob("../testdata/pcaps/*.in.pcap")
	for _, path := range paths {
		if err := addCapture(f, path); err != nil {
			f.Fatalf("%s: %v", path, err)
		}
	}
}

func addCapture(f *testing.F, path string) error {
	fd, err := os.Open(path)
	if err != nil {
		return err
	}
	defer fd.Close()
	src, err := pcapgo.NewReader(fd)
	if err != nil {
		return err
	}
	for {
		data, _, err := src.ReadPacketData()
		if errors.Is(err, io.EOF) {
			return nil
		}
		if err != nil {
			return err
		}
		f.Add(slices.Clone(data))
	}
}
