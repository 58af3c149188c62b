package ipvssync

import (
	"encoding/binary"
	"errors"
	"net/netip"
)

// Version1 is the version byte of a version 1 message (SYNC_PROTO_VER).
const Version1 = 1

// Sizes on the wire, from the kernel's structures (ip_vs_sync.c).
const (
	HeaderLen     = 8  // struct ip_vs_sync_mesg
	HeaderLenV0   = 4  // struct ip_vs_sync_mesg_v0
	ConnLenV4     = 36 // struct ip_vs_sync_v4
	ConnLenV6     = 72 // struct ip_vs_sync_v6
	ConnLenV0     = 24 // struct ip_vs_sync_conn_v0 (SIMPLE_CONN_SIZE)
	SeqOptionsLen = 24 // struct ip_vs_sync_conn_options: in_seq, out_seq

	// DefaultMaxLen is the kernel's default sync_maxlen: an Ethernet MTU
	// less the IPv4 and UDP headers (1500 - 28).
	DefaultMaxLen = 1472
	// maxMsgLen is what the 16-bit size field can hold.
	maxMsgLen = 0xffff
	// maxConns is what the 8-bit nr_conns field can hold.
	maxConns = 0xff
)

// DefaultPort is the sync daemon's UDP port (IP_VS_SYNC_PORT).
const DefaultPort = 8848

// DefaultTTL is the multicast TTL (or hop limit) of the sync daemon's
// messages: 1, the segment only (set_mcast_ttl's default).
const DefaultTTL = 1

// DefaultGroup is the sync daemon's IPv4 multicast group (IP_VS_SYNC_GROUP,
// 224.0.0.81).
var DefaultGroup = netip.AddrFrom4([4]byte{224, 0, 0, 81})

// Connection flags as on the wire (include/uapi/linux/ip_vs.h, include/net/ip_vs.h).
const (
	FlagFwdMask   = 0x0007 // IP_VS_CONN_F_FWD_MASK: the forwarding method
	FlagMasq      = 0x0000 // IP_VS_CONN_F_MASQ
	FlagLocalNode = 0x0001 // IP_VS_CONN_F_LOCALNODE
	FlagTunnel    = 0x0002 // IP_VS_CONN_F_TUNNEL
	FlagDRoute    = 0x0003 // IP_VS_CONN_F_DROUTE: direct routing, udr's method
	FlagBypass    = 0x0004 // IP_VS_CONN_F_BYPASS
	FlagSync      = 0x0020 // IP_VS_CONN_F_SYNC: the entry came from a sync message
	FlagHashed    = 0x0040 // IP_VS_CONN_F_HASHED: local, masked off by the sender
	FlagNoOutput  = 0x0080 // IP_VS_CONN_F_NOOUTPUT: no output packets (DR, TUN)
	FlagInactive  = 0x0100 // IP_VS_CONN_F_INACTIVE: not established
	FlagOutSeq    = 0x0200 // IP_VS_CONN_F_OUT_SEQ
	FlagInSeq     = 0x0400 // IP_VS_CONN_F_IN_SEQ
	FlagSeqMask   = 0x0600 // IP_VS_CONN_F_SEQ_MASK: sequence adjustment (NAT only)
	FlagNoCPort   = 0x0800 // IP_VS_CONN_F_NO_CPORT: no client port set yet
	FlagTemplate  = 0x1000 // IP_VS_CONN_F_TEMPLATE: a persistence template
	FlagOnePacket = 0x2000 // IP_VS_CONN_F_ONE_PACKET: never synced

	// FlagBackupMask is IP_VS_CONN_F_BACKUP_MASK: the bits a kernel backup
	// takes from a v1 record (it then adds FlagSync).
	FlagBackupMask = FlagFwdMask | FlagNoOutput | FlagInactive | FlagSeqMask | FlagNoCPort | FlagTemplate
	// FlagBackupUpdMask is IP_VS_CONN_F_BACKUP_UPD_MASK: the bits a kernel
	// backup updates on an entry it already has.
	FlagBackupUpdMask = FlagInactive | FlagSeqMask
)

// Template states (IP_VS_CTPL_S_*); a connection's State is its protocol's
// state number (IP_VS_TCP_S_* for TCP, IP_VS_UDP_S_NORMAL = 0 for UDP).
const (
	TemplateNone    = 0 // IP_VS_CTPL_S_NONE
	TemplateAssured = 1 // IP_VS_CTPL_S_ASSURED
)

// Record fields (ip_vs_sync.c).
const (
	stypeInet6 = 1 << 0 // STYPE_F_INET6: bit 0 of the record type
	sverShift  = 12     // SVER_SHIFT: record version in the top 4 bits of ver_size
	sverMask   = 0x0fff // SVER_MASK: record size in the low 12 bits

	optSeqData = 1      // IPVS_OPT_SEQ_DATA
	optPEData  = 2      // IPVS_OPT_PE_DATA
	optPEName  = 3      // IPVS_OPT_PE_NAME
	optFParam  = 1 << 6 // IPVS_OPT_F_PARAM: an option a receiver may ignore

	peNameMaxLen = 16 // IP_VS_PENAME_MAXLEN
)

// Conn is one connection or template of a sync message (struct
// ip_vs_sync_v4 / ip_vs_sync_v6; struct ip_vs_sync_conn_v0 for version 0).
type Conn struct {
	Protocol uint8  // IPPROTO_TCP, IPPROTO_UDP, ...
	Flags    uint32 // Flag* bits as on the wire
	// State is the kernel's state number: IP_VS_TCP_S_* for TCP (udr's
	// conntrack.State uses the same numbers), 0 for UDP, TemplateNone or
	// TemplateAssured for a template.
	State uint16
	// Client, VIP and Dest are all IPv4 or all IPv6. A template is keyed
	// as ip_vs_sched_persist builds it, Client being the client's address
	// masked with the persistence netmask, port 0:
	//	persistent port:  <protocol, client:0, VIP:vport, dest:dport>
	//	port-zero service: <protocol, client:0, VIP:0, dest:0>
	//	fwmark service:   <IPPROTO_IP (0), client:0, mark:0, dest:0>
	// where mark is the address whose first 4 bytes are the firewall mark
	// (0.0.0.42 for mark 42; 0:2a:: for IPv6).
	Client, VIP, Dest netip.AddrPort
	Fwmark            uint32
	Timeout           uint32 // seconds; 0 in version 0 messages
}

// IsTemplate reports whether c is a persistence template.
func (c *Conn) IsTemplate() bool { return c.Flags&FlagTemplate != 0 }

// Is6 reports whether c is an IPv6 connection.
func (c *Conn) Is6() bool { return c.Client.Addr().Is6() }

var (
	errConnAddr      = errors.New("ipvssync: connection with an invalid or zoned address")
	errConnFamily    = errors.New("ipvssync: connection mixes IPv4 and IPv6 addresses")
	errConnOnePacket = errors.New("ipvssync: one-packet connections are not synced (ip_vs_sync_conn)")
	errConnSeq       = errors.New("ipvssync: sequence-adjusted connections (IP_VS_CONN_F_SEQ_MASK) need SEQ_DATA, which a DR director does not keep")
)

// Check reports why c cannot be encoded: an invalid or zoned address, a mix
// of families, FlagOnePacket (the kernel never syncs those), or FlagSeqMask
// (its SEQ_DATA option carries NAT sequence deltas that DR does not have).
func (c *Conn) Check() error {
	a, v, d := c.Client.Addr(), c.VIP.Addr(), c.Dest.Addr()
	if !a.IsValid() || !v.IsValid() || !d.IsValid() || a.Zone() != "" || v.Zone() != "" || d.Zone() != "" {
		return errConnAddr
	}
	if a.Is4() != v.Is4() || a.Is4() != d.Is4() {
		return errConnFamily
	}
	if c.Flags&FlagOnePacket != 0 {
		return errConnOnePacket
	}
	if c.Flags&FlagSeqMask != 0 {
		return errConnSeq
	}
	return nil
}

// recordLen is the size of c's v1 record; udr sends no options, so it is
// the fixed part.
func (c *Conn) recordLen() int {
	if c.Is6() {
		return ConnLenV6
	}
	return ConnLenV4
}

// Header offsets (struct ip_vs_sync_mesg).
const (
	hReserved = 0 // v0: nr_conns
	hSyncID   = 1
	hSize     = 2
	hNrConns  = 4
	hVersion  = 5
	hSpare    = 6
)

// AppendHello appends to b a valid version 1 message with no connections.
// A kernel backup accepts it and does nothing; udr sends one when it
// starts, and a udr that receives one sends the sender its whole table.
func AppendHello(b []byte, syncid uint8) []byte {
	return appendHeader(b, syncid)
}

func appendHeader(b []byte, syncid uint8) []byte {
	// ip_vs_sync_buff_create: reserved 0, version SYNC_PROTO_VER, size of
	// the header, nr_conns 0, spare 0.
	return append(b, 0, syncid, 0, HeaderLen, 0, Version1, 0, 0)
}

// appendRecord appends c's record, as ip_vs_sync_conn writes it for
// version 1: no options (udr has no sequence data and no persistence
// engine data), so no padding either (36 and 72 are multiples of 4).
func appendRecord(b []byte, c *Conn) []byte {
	n := c.recordLen()
	var typ uint8
	if n == ConnLenV6 {
		typ = stypeInet6
	}
	b = append(b, typ, c.Protocol)
	b = binary.BigEndian.AppendUint16(b, uint16(n)&sverMask) // record version 0
	b = binary.BigEndian.AppendUint32(b, c.Flags&^FlagHashed)
	b = binary.BigEndian.AppendUint16(b, c.State)
	b = binary.BigEndian.AppendUint16(b, c.Client.Port())
	b = binary.BigEndian.AppendUint16(b, c.VIP.Port())
	b = binary.BigEndian.AppendUint16(b, c.Dest.Port())
	b = binary.BigEndian.AppendUint32(b, c.Fwmark)
	b = binary.BigEndian.AppendUint32(b, c.Timeout)
	if n == ConnLenV6 {
		for _, a := range [3]netip.Addr{c.Client.Addr(), c.VIP.Addr(), c.Dest.Addr()} {
			a16 := a.As16()
			b = append(b, a16[:]...)
		}
		return b
	}
	for _, a := range [3]netip.Addr{c.Client.Addr(), c.VIP.Addr(), c.Dest.Addr()} {
		a4 := a.As4()
		b = append(b, a4[:]...)
	}
	return b
}

// Encoder builds version 1 messages of at most MaxLen bytes, as the kernel
// master fills its sync buffers (ip_vs_sync_conn): connections are added
// in order, and a message is finished when the next connection does not
// fit. It keeps two buffers, so a finished message stays valid until the
// Encoder returns the next one; after the first messages, Add and Flush do
// not allocate. An Encoder is not safe for concurrent use.
type Encoder struct {
	// SyncID is written in each message, read when the message is started.
	SyncID uint8
	// MaxLen is the largest message in bytes (the kernel's sync_maxlen,
	// ipvsadm --sync-maxlen); 0 means DefaultMaxLen, and more than 65535
	// means 65535. As in the kernel, a connection larger than MaxLen
	// allows still goes, alone in its message.
	MaxLen int

	bufs [2][]byte
	cur  int // index in bufs of the message being filled
}

func (e *Encoder) maxLen() int {
	switch {
	case e.MaxLen <= 0:
		return DefaultMaxLen
	case e.MaxLen > maxMsgLen:
		return maxMsgLen
	}
	return e.MaxLen
}

// Add adds c to the pending message. When c does not fit in it (MaxLen
// bytes, or 255 connections: unlike the kernel, which lets the 8-bit
// count wrap with a very large sync_maxlen), Add returns that message as
// full and starts the next one with c. ok is false, and nothing changes,
// when c cannot be encoded (c.Check() says why). full stays valid until
// the Encoder returns another message.
func (e *Encoder) Add(c *Conn) (full []byte, ok bool) {
	if c.Check() != nil {
		return nil, false
	}
	n := c.recordLen()
	b := e.bufs[e.cur]
	if len(b) > 0 && (len(b)+n > e.maxLen() || b[hNrConns] == maxConns) {
		full = b
		e.cur ^= 1
		b = e.bufs[e.cur]
	}
	if len(b) == 0 {
		if want := max(e.maxLen(), HeaderLen+n); cap(b) < want {
			b = make([]byte, 0, want)
		}
		b = appendHeader(b[:0], e.SyncID)
	}
	b = appendRecord(b, c)
	b[hNrConns]++
	binary.BigEndian.PutUint16(b[hSize:], uint16(len(b)))
	e.bufs[e.cur] = b
	if full != nil {
		e.bufs[e.cur^1] = full[:0] // emptied, not overwritten until the next swap
	}
	return full, true
}

// Flush returns the pending message, nil if there is none, and starts a
// new one. The message stays valid until the Encoder returns another one.
func (e *Encoder) Flush() []byte {
	b := e.bufs[e.cur]
	if len(b) == 0 {
		return nil
	}
	e.bufs[e.cur] = b[:0]
	e.cur ^= 1
	return b
}

// Pending reports the number of connections in the pending message.
func (e *Encoder) Pending() int {
	b := e.bufs[e.cur]
	if len(b) == 0 {
		return 0
	}
	return int(b[hNrConns])
}
