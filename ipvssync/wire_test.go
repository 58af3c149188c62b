package ipvssync

import (
	"bytes"
	"encoding/hex"
	"errors"
	"net/netip"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
)

// unhex turns an annotated hex dump into bytes: on each line, what follows
// "//" is a comment, and spaces are ignored.
func unhex(t testing.TB, dump string) []byte {
	t.Helper()
	var sb strings.Builder
	for line := range strings.SplitSeq(dump, "\n") {
		if i := strings.Index(line, "//"); i >= 0 {
			line = line[:i]
		}
		sb.WriteString(strings.Join(strings.Fields(line), ""))
	}
	b, err := hex.DecodeString(sb.String())
	if err != nil {
		t.Fatalf("bad hex dump: %v", err)
	}
	return b
}

var (
	// An established DR TCP connection, as the kernel has it: flags
	// IP_VS_CONN_F_DROUTE|NOOUTPUT, plus HASHED, which the sender masks.
	tcp4 = Conn{
		Protocol: 6,
		Flags:    FlagDRoute | FlagNoOutput | FlagHashed,
		State:    1, // IP_VS_TCP_S_ESTABLISHED
		Client:   netip.MustParseAddrPort("198.51.100.7:40000"),
		VIP:      netip.MustParseAddrPort("192.0.2.1:80"),
		Dest:     netip.MustParseAddrPort("192.0.2.11:80"),
		Timeout:  900,
	}
	// A UDP connection over IPv6 on a firewall-mark service.
	udp6 = Conn{
		Protocol: 17,
		Flags:    FlagDRoute | FlagNoOutput,
		State:    0, // IP_VS_UDP_S_NORMAL
		Client:   netip.MustParseAddrPort("[2001:db8::7]:5353"),
		VIP:      netip.MustParseAddrPort("[2001:db8:1::1]:53"),
		Dest:     netip.MustParseAddrPort("[2001:db8:2::11]:53"),
		Fwmark:   0x2a,
		Timeout:  300,
	}
	// A persistence template of a port-0 persistent service: client port
	// 0, VIP port 0 (ip_vs_sched_persist), template flag.
	tpl4 = Conn{
		Protocol: 6,
		Flags:    FlagTemplate | FlagDRoute | FlagNoOutput,
		State:    TemplateNone,
		Client:   netip.MustParseAddrPort("198.51.100.7:0"),
		VIP:      netip.MustParseAddrPort("192.0.2.1:0"),
		Dest:     netip.MustParseAddrPort("192.0.2.11:0"),
		Timeout:  360,
	}
	// The template of a persistent firewall-mark service, netmask /24:
	// protocol IPPROTO_IP, the mark as VIP address (ip_vs_sched_persist).
	tplMark = Conn{
		Protocol: 0,
		Flags:    FlagTemplate | FlagDRoute | FlagNoOutput,
		State:    TemplateNone,
		Client:   netip.MustParseAddrPort("198.51.100.0:0"),
		VIP:      netip.MustParseAddrPort("0.0.0.42:0"),
		Dest:     netip.MustParseAddrPort("192.0.2.11:0"),
		Fwmark:   42,
		Timeout:  300,
	}
	// An assured IPv6 template of a port-443 persistent service.
	tpl6 = Conn{
		Protocol: 6,
		Flags:    FlagTemplate | FlagDRoute | FlagNoOutput,
		State:    TemplateAssured,
		Client:   netip.MustParseAddrPort("[2001:db8::7]:0"),
		VIP:      netip.MustParseAddrPort("[2001:db8:1::1]:443"),
		Dest:     netip.MustParseAddrPort("[2001:db8:2::11]:443"),
		Timeout:  300,
	}
)

// The golden messages, built by hand from struct ip_vs_sync_mesg (8 bytes),
// struct ip_vs_sync_v4 (36) and struct ip_vs_sync_v6 (72), all big-endian.
const (
	hdrTCP4 = `
00          // reserved: 0 (a v0 receiver reads nr_conns 0)
05          // syncid 5
00 2c       // size 44 = 8 + 36
01          // nr_conns 1
01          // version 1
00 00       // spare`
	recTCP4 = `
00          // type 0: IPv4
06          // protocol TCP
00 24       // ver_size: version 0, size 36
00 00 00 83 // flags DROUTE|NOOUTPUT (HASHED 0x40 masked off)
00 01       // state 1 ESTABLISHED
9c 40       // cport 40000
00 50       // vport 80
00 50       // dport 80
00 00 00 00 // fwmark 0
00 00 03 84 // timeout 900 s
c6 33 64 07 // caddr 198.51.100.7
c0 00 02 01 // vaddr 192.0.2.1
c0 00 02 0b // daddr 192.0.2.11`
	hdrUDP6 = `
00 05 00 50 // reserved 0, syncid 5, size 80 = 8 + 72
01 01 00 00 // nr_conns 1, version 1, spare 0`
	recUDP6 = `
01          // type 1: STYPE_F_INET6
11          // protocol UDP
00 48       // ver_size: version 0, size 72
00 00 00 83 // flags DROUTE|NOOUTPUT
00 00       // state 0 NORMAL
14 e9       // cport 5353
00 35       // vport 53
00 35       // dport 53
00 00 00 2a // fwmark 42
00 00 01 2c // timeout 300 s
20 01 0d b8 00 00 00 00 00 00 00 00 00 00 00 07 // caddr 2001:db8::7
20 01 0d b8 00 01 00 00 00 00 00 00 00 00 00 01 // vaddr 2001:db8:1::1
20 01 0d b8 00 02 00 00 00 00 00 00 00 00 00 11 // daddr 2001:db8:2::11`
	hdrTpl4 = `
00 05 00 2c // reserved 0, syncid 5, size 44
01 01 00 00 // nr_conns 1, version 1, spare 0`
	recTpl4 = `
00 06 00 24 // type IPv4, protocol TCP, size 36
00 00 10 83 // flags TEMPLATE|DROUTE|NOOUTPUT
00 00       // state IP_VS_CTPL_S_NONE
00 00       // cport 0
00 00       // vport 0 (port-0 persistent service)
00 00       // dport 0
00 00 00 00 // fwmark 0
00 00 01 68 // timeout 360 s
c6 33 64 07 // caddr 198.51.100.7
c0 00 02 01 // vaddr 192.0.2.1
c0 00 02 0b // daddr 192.0.2.11`
	msgTplMark = `
00 05 00 2c // reserved 0, syncid 5, size 44
01 01 00 00 // nr_conns 1, version 1, spare 0
00 00 00 24 // type IPv4, protocol 0 (IPPROTO_IP), size 36
00 00 10 83 // flags TEMPLATE|DROUTE|NOOUTPUT
00 00       // state IP_VS_CTPL_S_NONE
00 00 00 00 // cport 0, vport 0
00 00       // dport 0
00 00 00 2a // fwmark 42
00 00 01 2c // timeout 300 s
c6 33 64 00 // caddr 198.51.100.0 (client masked with /24)
00 00 00 2a // vaddr: the mark, 0.0.0.42
c0 00 02 0b // daddr 192.0.2.11`
	hdrTpl6 = `
00 05 00 50 // reserved 0, syncid 5, size 80
01 01 00 00 // nr_conns 1, version 1, spare 0`
	recTpl6 = `
01 06 00 48 // type IPv6, protocol TCP, size 72
00 00 10 83 // flags TEMPLATE|DROUTE|NOOUTPUT
00 01       // state IP_VS_CTPL_S_ASSURED
00 00       // cport 0
01 bb       // vport 443
01 bb       // dport 443
00 00 00 00 // fwmark 0
00 00 01 2c // timeout 300 s
20 01 0d b8 00 00 00 00 00 00 00 00 00 00 00 07 // caddr 2001:db8::7
20 01 0d b8 00 01 00 00 00 00 00 00 00 00 00 01 // vaddr 2001:db8:1::1
20 01 0d b8 00 02 00 00 00 00 00 00 00 00 00 11 // daddr 2001:db8:2::11`
	hdrAll = `
00 05 00 e0 // reserved 0, syncid 5, size 224 = 8 + 36 + 36 + 72 + 72
04 01 00 00 // nr_conns 4, version 1, spare 0`
)

type golden struct {
	name  string
	conns []Conn
	dump  string
}

func goldens() []golden {
	return []golden{
		{"tcp4", []Conn{tcp4}, hdrTCP4 + recTCP4},
		{"udp6", []Conn{udp6}, hdrUDP6 + recUDP6},
		{"template4", []Conn{tpl4}, hdrTpl4 + recTpl4},
		{"template6", []Conn{tpl6}, hdrTpl6 + recTpl6},
		{"fwmark template", []Conn{tplMark}, msgTplMark},
		// The controlled connection, then its template, as ip_vs_sync_conn
		// goes from cp to cp->control.
		{"several", []Conn{tcp4, tpl4, udp6, tpl6}, hdrAll + recTCP4 + recTpl4 + recUDP6 + recTpl6},
	}
}

// wireConns is what a receiver gets back: the flags without HASHED.
func wireConns(cs []Conn) []Conn {
	out := make([]Conn, len(cs))
	for i, c := range cs {
		c.Flags &^= FlagHashed
		out[i] = c
	}
	return out
}

func TestGolden(t *testing.T) {
	for _, g := range goldens() {
		t.Run(g.name, func(t *testing.T) {
			want := unhex(t, g.dump)
			e := Encoder{SyncID: 5}
			for i := range g.conns {
				if full, ok := e.Add(&g.conns[i]); full != nil || !ok {
					t.Fatalf("Add(%d) = %x, %v; want nil, true", i, full, ok)
				}
			}
			got := e.Flush()
			if !bytes.Equal(got, want) {
				t.Fatalf("encoded:\n%s\nwant:\n%s", hex.Dump(got), hex.Dump(want))
			}
			if e.Flush() != nil {
				t.Fatalf("second Flush not nil")
			}
			m, err := DecodeMessage(want, nil)
			if err != nil {
				t.Fatalf("DecodeMessage: %v", err)
			}
			if m.Version != Version1 || m.SyncID != 5 || m.Skipped != 0 {
				t.Fatalf("DecodeMessage = version %d syncid %d skipped %d, want 1 5 0", m.Version, m.SyncID, m.Skipped)
			}
			if diff := cmp.Diff(wireConns(g.conns), m.Conns, cmp.Comparer(func(a, b netip.AddrPort) bool { return a == b })); diff != "" {
				t.Fatalf("decoded conns (-want +got):\n%s", diff)
			}
		})
	}
}

func TestHello(t *testing.T) {
	want := unhex(t, `00 07 00 08 00 01 00 00 // reserved 0, syncid 7, size 8, nr_conns 0, version 1, spare 0`)
	got := AppendHello(nil, 7)
	if !bytes.Equal(got, want) {
		t.Fatalf("AppendHello = %x, want %x", got, want)
	}
	syncid, conns, err := Decode(got, nil)
	if err != nil || syncid != 7 || len(conns) != 0 {
		t.Fatalf("Decode(hello) = %d, %v, %v; want 7, [], nil", syncid, conns, err)
	}
}

// A version 0 message (ip_vs_sync_conn_v0): the kernel's backup still
// accepts it.
const v0Message = `
01 05 00 34 // nr_conns 1, syncid 5, size 52 = 4 + 24 + 24
00          // reserved
06          // protocol TCP
9c 40       // cport 40000
00 50       // vport 80
00 50       // dport 80
c6 33 64 07 // caddr 198.51.100.7
c0 00 02 01 // vaddr 192.0.2.1
c0 00 02 0b // daddr 192.0.2.11
06 83       // flags IN_SEQ|OUT_SEQ|DROUTE|NOOUTPUT: options follow
00 01       // state ESTABLISHED
00 00 00 01 00 00 00 02 00 00 00 03 // in_seq: init_seq, delta, previous_delta
00 00 00 04 00 00 00 05 00 00 00 06 // out_seq`

func TestDecodeV0(t *testing.T) {
	b := unhex(t, v0Message)
	m, err := DecodeMessage(b, nil)
	if err != nil {
		t.Fatal(err)
	}
	want := Conn{Protocol: 6, Flags: 0x0683, State: 1, Client: tcp4.Client, VIP: tcp4.VIP, Dest: tcp4.Dest}
	if m.Version != 0 || m.SyncID != 5 || len(m.Conns) != 1 || m.Conns[0] != want {
		t.Fatalf("DecodeMessage(v0) = %+v, want version 0 syncid 5 conns [%+v]", m, want)
	}
}

func TestEncoderSplits(t *testing.T) {
	// (1472 - 8) / 36 = 40 IPv4 records fit in a default message.
	var e Encoder
	c := tcp4
	var msgs [][]byte
	for i := range 100 {
		c.Client = netip.AddrPortFrom(c.Client.Addr(), uint16(1000+i))
		full, ok := e.Add(&c)
		if !ok {
			t.Fatal("Add refused a valid conn")
		}
		if full != nil {
			msgs = append(msgs, bytes.Clone(full))
		}
	}
	msgs = append(msgs, bytes.Clone(e.Flush()))
	wantN := []int{40, 40, 20}
	if len(msgs) != len(wantN) {
		t.Fatalf("%d messages, want %d", len(msgs), len(wantN))
	}
	port := uint16(1000)
	for i, msg := range msgs {
		if len(msg) > DefaultMaxLen {
			t.Errorf("message %d: %d bytes > %d", i, len(msg), DefaultMaxLen)
		}
		_, conns, err := Decode(msg, nil)
		if err != nil || len(conns) != wantN[i] {
			t.Fatalf("message %d: %d conns, %v; want %d", i, len(conns), err, wantN[i])
		}
		for _, c := range conns {
			if c.Client.Port() != port {
				t.Fatalf("message %d: client port %d, want %d (order kept)", i, c.Client.Port(), port)
			}
			port++
		}
	}
}

func TestEncoderLimits(t *testing.T) {
	// 255 records at most, whatever MaxLen allows.
	e := Encoder{MaxLen: 1 << 20}
	c := tcp4
	n := 0
	for {
		full, _ := e.Add(&c)
		n++
		if full != nil {
			if full[hNrConns] != 255 || len(full) != HeaderLen+255*ConnLenV4 {
				t.Fatalf("full message: nr_conns %d, %d bytes", full[hNrConns], len(full))
			}
			break
		}
		if n > 300 {
			t.Fatal("no message after 300 conns")
		}
	}
	// A MaxLen too small for one record: each goes alone, as the kernel's
	// ip_vs_sync_buff_create sizes its buffer max(len + 8, sync_maxlen).
	e = Encoder{MaxLen: 20}
	if full, _ := e.Add(&c); full != nil {
		t.Fatal("first Add returned a message")
	}
	full, _ := e.Add(&c)
	if len(full) != HeaderLen+ConnLenV4 {
		t.Fatalf("small MaxLen: message of %d bytes, want %d", len(full), HeaderLen+ConnLenV4)
	}
	// The returned message stays intact while the next one fills.
	keep := bytes.Clone(full)
	e.Add(&c)
	if !bytes.Equal(full, keep) {
		t.Fatal("full message overwritten by the next Add")
	}
}

func TestEncoderRefuses(t *testing.T) {
	mixed := tcp4
	mixed.Dest = netip.MustParseAddrPort("[2001:db8::11]:80")
	one := tcp4
	one.Flags |= FlagOnePacket
	seq := tcp4
	seq.Flags |= FlagInSeq
	zone := udp6
	zone.Client = netip.AddrPortFrom(zone.Client.Addr().WithZone("eth0"), 1)
	for name, c := range map[string]Conn{"mixed families": mixed, "one packet": one, "seq": seq, "zero": {}, "zone": zone} {
		var e Encoder
		if full, ok := e.Add(&c); ok || full != nil {
			t.Errorf("%s: Add = %x, %v; want nil, false", name, full, ok)
		}
		if c.Check() == nil {
			t.Errorf("%s: Check = nil", name)
		}
		if e.Flush() != nil {
			t.Errorf("%s: refused conn left a message", name)
		}
	}
}

func TestEncoderAddAllocs(t *testing.T) {
	e := Encoder{MaxLen: 65535}
	c := tcp4
	e.Add(&c) // allocates the buffer
	allocs := testing.AllocsPerRun(200, func() {
		if full, _ := e.Add(&c); full != nil {
			t.Fatal("message full")
		}
	})
	if allocs != 0 {
		t.Fatalf("Add allocs = %v, want 0", allocs)
	}
}

func TestDecodeAllocs(t *testing.T) {
	b := unhex(t, hdrAll+recTCP4+recTpl4+recUDP6+recTpl6)
	dst := make([]Conn, 0, 8)
	allocs := testing.AllocsPerRun(200, func() {
		if _, _, err := Decode(b, dst[:0]); err != nil {
			t.Fatal(err)
		}
	})
	if allocs != 0 {
		t.Fatalf("Decode allocs = %v, want 0", allocs)
	}
	bad := bytes.Clone(b)
	bad[hVersion] = 2
	allocs = testing.AllocsPerRun(200, func() { Decode(bad, dst[:0]) })
	if allocs != 0 {
		t.Fatalf("Decode(bad) allocs = %v, want 0", allocs)
	}
}

func TestDecodeErrors(t *testing.T) {
	one := unhex(t, hdrTCP4+recTCP4)
	six := unhex(t, hdrUDP6+recUDP6)
	// with returns a copy of b with the bytes at off replaced, and the
	// size field fixed to the length when fix is set.
	with := func(b []byte, off int, v ...byte) []byte {
		c := bytes.Clone(b)
		copy(c[off:], v)
		return c
	}
	resize := func(b []byte, n int) []byte {
		c := make([]byte, n)
		copy(c, b)
		c[hSize], c[hSize+1] = byte(n>>8), byte(n)
		return c
	}
	// withOpts appends options to the single IPv4 record of one.
	withOpts := func(opts ...byte) []byte {
		c := resize(one, len(one)+len(opts))
		copy(c[len(one):], opts)
		size := ConnLenV4 + len(opts)
		c[HeaderLen+2], c[HeaderLen+3] = byte(size>>8), byte(size)
		return c
	}
	seq := append([]byte{optSeqData, SeqOptionsLen}, make([]byte, SeqOptionsLen)...)
	tests := []struct {
		name string
		b    []byte
		err  error // nil: accepted
		skip error // the record is skipped for this reason
	}{
		{"empty", nil, ErrShort, nil},
		{"3 bytes", one[:3], ErrShort, nil},
		{"size too big", with(one, hSize, 0, 45), ErrSize, nil},
		{"size too small", with(one, hSize, 0, 43), ErrSize, nil},
		{"datagram cut", one[:40], ErrSize, nil},
		{"version 2", with(one, hVersion, 2), ErrVersion, nil},
		{"version 0 with reserved 0", with(one, hVersion, 0), ErrVersion, nil},
		{"spare", with(one, hSpare+1, 1), ErrVersion, nil},
		{"hello cut to 4", resize(AppendHello(nil, 0), 4), ErrVersion, nil},
		{"nr_conns past the end", with(one, hNrConns, 2), ErrTruncated, nil},
		{"record size past the end", with(one, HeaderLen+2, 0, 40), ErrTruncated, nil},
		{"record version 1", with(one, HeaderLen+2, 0x10, 36), ErrRecordVer, nil},
		{"record type 2", with(one, HeaderLen, 2), ErrRecordType, nil},
		{"record size 0", with(one, HeaderLen+2, 0, 0), ErrRecordSize, nil},
		{"record size 35", with(one, HeaderLen+2, 0, 35), ErrRecordSize, nil},
		{"IPv6 type in an IPv4-sized record", with(resize(one, 80), HeaderLen, 1), ErrRecordSize, nil},
		{"IPv6 type 3 is IPv6", with(six, HeaderLen, 3), nil, nil},
		{"one option byte", withOpts(optSeqData), ErrOption, nil},
		{"option length 0", withOpts(0x41, 0), ErrOption, nil},
		{"option past the record", withOpts(0x41, 3, 0), ErrOption, nil},
		{"seq option", withOpts(seq...), nil, nil},
		{"seq option short", withOpts(optSeqData, 4, 0, 0, 0, 0), ErrOptionSeq, nil},
		{"seq option twice", withOpts(append(bytes.Clone(seq), seq...)...), ErrOptionSeq, nil},
		{"PE data twice", withOpts(optPEData, 1, 0, optPEData, 1, 0), ErrOptionPEData, nil},
		{"PE name too long", withOpts(append([]byte{optPEName, 17}, make([]byte, 17)...)...), ErrOptionPEName, nil},
		{"PE name alone", withOpts(optPEName, 3, 's', 'i', 'p'), nil, nil},
		{"PE data", withOpts(optPEData, 1, 0, optPEName, 3, 's', 'i', 'p'), nil, ErrSkipPE},
		{"optional unknown option", withOpts(0x45, 2, 0, 0), nil, nil},
		{"mandatory unknown option", withOpts(5, 2, 0, 0, 0xff), nil, ErrSkipOption},
		{"unknown protocol", with(one, HeaderLen+1, 47), nil, ErrSkipProtocol},
		{"TCP state 11", with(one, HeaderLen+8, 0, 11), nil, ErrSkipState},
		{"UDP state 1", with(six, HeaderLen+8, 0, 1), nil, ErrSkipState},
		{"template state 5 kept", with(unhex(t, hdrTpl4+recTpl4), HeaderLen+8, 0, 5), nil, nil},
		{"trailing bytes ignored", resize(one, 50), nil, nil},
		{"v0 cut", resize(unhex(t, v0Message), 40), ErrTruncated, nil},
		{"v0 options cut", resize(unhex(t, v0Message), 51), ErrTruncated, nil},
		{"v0 unknown protocol", with(unhex(t, v0Message), 5, 47), nil, ErrSkipProtocol},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			m, err := DecodeMessage(tt.b, nil)
			if !errors.Is(err, tt.err) {
				t.Fatalf("err = %v, want %v", err, tt.err)
			}
			if err != nil {
				return
			}
			if tt.skip != nil {
				if m.Skipped != 1 || m.SkipReason != tt.skip || len(m.Conns) != 0 {
					t.Fatalf("skipped %d (%v), %d conns; want 1 (%v), 0", m.Skipped, m.SkipReason, len(m.Conns), tt.skip)
				}
				return
			}
			if m.Skipped != 0 || len(m.Conns) != 1 {
				t.Fatalf("skipped %d (%v), %d conns; want 0, 1", m.Skipped, m.SkipReason, len(m.Conns))
			}
		})
	}
}

// TestDecodePadding: a record whose size is not a multiple of 4 (a record
// with options) is followed by padding to 4 bytes, as ip_vs_sync_conn
// pads before the next record and ip_vs_process_message skips it.
func TestDecodePadding(t *testing.T) {
	b := unhex(t, `
00 05 00 5c // reserved 0, syncid 5, size 92 = 8 + 39 + 1 (pad) + 36 + 8
02 01 00 00 // nr_conns 2, version 1, spare 0
00 06 00 27 // type IPv4, TCP, size 39 = 36 + 3
00 00 00 83 00 01 9c 40 00 50 00 50 00 00 00 00 00 00 03 84
c6 33 64 07 c0 00 02 01 c0 00 02 0b
45 01 ff    // an unknown optional parameter: IPVS_OPT_F_PARAM|5, length 1
00          // pad`)
	rec2 := unhex(t, recTCP4)
	rec2[11] = 0x41 // cport 40001
	b = append(b[:HeaderLen+40], rec2...)
	b = append(b, 0, 0, 0, 0, 0, 0, 0, 0) // trailing bytes, ignored
	b[hSize], b[hSize+1] = 0, byte(len(b))
	_, conns, err := Decode(b, nil)
	if err != nil || len(conns) != 2 || conns[1].Client.Port() != 40001 {
		t.Fatalf("Decode = %+v, %v; want 2 conns, the second from port 40001", conns, err)
	}
	// Without the padding, the second record starts one byte early.
	nopad := append(bytes.Clone(b[:HeaderLen+39]), b[HeaderLen+40:]...)
	nopad[hSize], nopad[hSize+1] = 0, byte(len(nopad))
	if _, conns, err := Decode(nopad, nil); err == nil && len(conns) == 2 && conns[1].Client.Port() == 40001 {
		t.Fatal("Decode read a record at an unaligned offset")
	}
}
