package ipvssync

import (
	"encoding/binary"
	"errors"
	"net/netip"
)

// Errors for which the kernel's backup drops a whole message
// (ip_vs_process_message, ip_vs_process_message_v0, and the negative
// returns of ip_vs_proc_sync_conn). They are fixed values: Decode does
// not allocate for them.
var (
	ErrShort        = errors.New("ipvssync: message shorter than the 4-byte header")
	ErrSize         = errors.New("ipvssync: size field differs from the datagram length")
	ErrVersion      = errors.New("ipvssync: byte 0 is 0 (no version 0 connections) but the header is not version 1 with a zero spare field")
	ErrTruncated    = errors.New("ipvssync: connection record past the end of the message")
	ErrRecordVer    = errors.New("ipvssync: connection record version (top 4 bits of ver_size) is not 0")
	ErrRecordType   = errors.New("ipvssync: connection record type is neither 0 (IPv4) nor has bit 0 set (IPv6)")
	ErrRecordSize   = errors.New("ipvssync: connection record size smaller than its fixed part for its family")
	ErrOption       = errors.New("ipvssync: option header or data past the end of its record, or of length 0")
	ErrOptionSeq    = errors.New("ipvssync: SEQ_DATA option not 24 bytes long, or twice in a record")
	ErrOptionPEData = errors.New("ipvssync: PE_DATA option twice in a record")
	ErrOptionPEName = errors.New("ipvssync: PE_NAME option longer than 16 bytes, or twice in a record")
)

// Reasons for which the kernel's backup drops one record and goes on with
// the next (the positive returns of ip_vs_proc_sync_conn, the continues of
// ip_vs_process_message_v0). Decode leaves such a record out and counts it
// in Message.Skipped.
var (
	ErrSkipOption   = errors.New("ipvssync: record with an unknown mandatory option")
	ErrSkipProtocol = errors.New("ipvssync: record of a protocol IPVS does not know")
	ErrSkipState    = errors.New("ipvssync: record with a state out of its protocol's range")
	ErrSkipPE       = errors.New("ipvssync: record with persistence engine data, and udr has no persistence engine")
)

// Message is a decoded sync message.
type Message struct {
	Version uint8 // 0 or Version1
	SyncID  uint8
	// Conns are the records the kernel's backup would apply, in order.
	Conns []Conn
	// Skipped counts the records it would drop alone; SkipReason is the
	// reason of the last one (one of the ErrSkip* values).
	Skipped    int
	SkipReason error
}

// Decode parses one datagram and appends its connections to dst. See
// DecodeMessage.
func Decode(b []byte, dst []Conn) (syncid uint8, conns []Conn, err error) {
	m, err := DecodeMessage(b, dst)
	return m.SyncID, m.Conns, err
}

// DecodeMessage parses one datagram, version 1 or version 0, as the
// kernel's backup does (ip_vs_process_message), and appends its
// connections to dst. It does not check the sync ID (that is the
// receiver's configuration). It never panics, and it appends at most one
// Conn per 24 bytes of b.
//
// On an error (one of the Err* values above), m.Conns holds the records
// before the bad one: the kernel has applied those when it stops; udr's
// Receiver drops the whole message. Bytes after the last record are
// ignored, as the kernel ignores them. The Flags of each Conn are as on
// the wire; a kernel backup keeps only FlagBackupMask of them.
func DecodeMessage(b []byte, dst []Conn) (m Message, err error) {
	m.Conns = dst
	if len(b) < HeaderLenV0 {
		return m, ErrShort
	}
	m.SyncID = b[hSyncID]
	if int(binary.BigEndian.Uint16(b[hSize:])) != len(b) {
		return m, ErrSize
	}
	if b[hReserved] != 0 {
		return decodeV0(b, m)
	}
	// ip_vs_process_message: version 1 is reserved == 0, version ==
	// SYNC_PROTO_VER, spare == 0; anything else goes to the version 0
	// parser, which finds nr_conns (byte 0) = 0 and does nothing.
	if len(b) < HeaderLen || b[hVersion] != Version1 || b[hSpare] != 0 || b[hSpare+1] != 0 {
		return m, ErrVersion
	}
	m.Version = Version1
	next := HeaderLen
	for range int(b[hNrConns]) {
		p := next
		if p+ConnLenV4 > len(b) {
			return m, ErrTruncated
		}
		verSize := binary.BigEndian.Uint16(b[p+2:])
		size := int(verSize & sverMask)
		end := p + size
		if end > len(b) {
			return m, ErrTruncated
		}
		if verSize>>sverShift != 0 {
			return m, ErrRecordVer
		}
		c, skip, err := decodeRecord(b[p], b[p:end])
		if err != nil {
			return m, err
		}
		if skip != nil {
			m.Skipped++
			m.SkipReason = skip
		} else {
			m.Conns = append(m.Conns, c)
		}
		next = p + (size+3)&^3 // 32-bit alignment of the next record
	}
	return m, nil
}

// decodeRecord parses one v1 record r (exactly its size bytes, which may
// be fewer than the type byte typ) as ip_vs_proc_sync_conn does: err drops
// the message, skip drops the record.
func decodeRecord(typ byte, r []byte) (c Conn, skip, err error) {
	var fixed int
	switch {
	case typ&stypeInet6 != 0:
		fixed = ConnLenV6
	case typ == 0:
		fixed = ConnLenV4
	default:
		return c, nil, ErrRecordType
	}
	if fixed > len(r) {
		return c, nil, ErrRecordSize
	}
	// Optional parameters: type, length, data.
	var seen uint8
	for p := fixed; p < len(r); {
		if p+2 > len(r) {
			return c, nil, ErrOption
		}
		ptype, plen := r[p], int(r[p+1])
		p += 2
		if plen == 0 || p+plen > len(r) {
			return c, nil, ErrOption
		}
		switch ptype &^ optFParam {
		case optSeqData:
			if plen != SeqOptionsLen || seen&(1<<optSeqData) != 0 {
				return c, nil, ErrOptionSeq
			}
			seen |= 1 << optSeqData
		case optPEData:
			// IP_VS_PEDATA_MAXLEN is 255: any 8-bit length fits.
			if seen&(1<<optPEData) != 0 {
				return c, nil, ErrOptionPEData
			}
			seen |= 1 << optPEData
		case optPEName:
			if plen > peNameMaxLen || seen&(1<<optPEName) != 0 {
				return c, nil, ErrOptionPEName
			}
			seen |= 1 << optPEName
		default:
			if ptype&optFParam == 0 {
				// The kernel stops at this option: what follows in the
				// record is not checked.
				return c, ErrSkipOption, nil
			}
		}
		p += plen
	}
	c = Conn{
		Protocol: r[1],
		Flags:    binary.BigEndian.Uint32(r[4:]),
		State:    binary.BigEndian.Uint16(r[8:]),
		Fwmark:   binary.BigEndian.Uint32(r[16:]),
		Timeout:  binary.BigEndian.Uint32(r[20:]),
	}
	cport, vport, dport := binary.BigEndian.Uint16(r[10:]), binary.BigEndian.Uint16(r[12:]), binary.BigEndian.Uint16(r[14:])
	var ca, va, da netip.Addr
	if fixed == ConnLenV6 {
		ca = netip.AddrFrom16([16]byte(r[24:40]))
		va = netip.AddrFrom16([16]byte(r[40:56]))
		da = netip.AddrFrom16([16]byte(r[56:72]))
	} else {
		ca = netip.AddrFrom4([4]byte(r[24:28]))
		va = netip.AddrFrom4([4]byte(r[28:32]))
		da = netip.AddrFrom4([4]byte(r[32:36]))
	}
	c.Client, c.VIP, c.Dest = netip.AddrPortFrom(ca, cport), netip.AddrPortFrom(va, vport), netip.AddrPortFrom(da, dport)
	if skip := checkState(&c); skip != nil {
		return c, skip, nil
	}
	// ip_vs_conn_fill_param_sync: PE data needs a persistence engine
	// named by PE_NAME and loaded; udr has none (PE_NAME alone is ignored).
	if seen&(1<<optPEData) != 0 {
		return c, ErrSkipPE, nil
	}
	return c, nil, nil
}

// checkState drops, as ip_vs_proc_sync_conn and ip_vs_process_message_v0
// do, a connection (not a template) of a protocol IPVS has no handler for
// (ip_vs_proto_get) or in a state beyond its protocol's num_states. A
// template's state is not checked (the kernel only logs it).
func checkState(c *Conn) error {
	if c.Flags&FlagTemplate != 0 {
		return nil
	}
	n := numStates(c.Protocol)
	if n == 0 {
		return ErrSkipProtocol
	}
	if int(c.State) >= n {
		return ErrSkipState
	}
	return nil
}

// numStates is the num_states of the kernel's IPVS protocol handlers, 0
// for a protocol without one.
func numStates(proto uint8) int {
	switch proto {
	case 6: // TCP: IP_VS_TCP_S_LAST
		return 11
	case 17: // UDP: IP_VS_UDP_S_LAST
		return 1
	case 132: // SCTP: IP_VS_SCTP_S_LAST
		return 14
	case 50, 51: // ESP, AH (ip_vs_proto_ah_esp.c)
		return 1
	}
	return 0
}

// decodeV0 parses a version 0 message as ip_vs_process_message_v0: a
// 4-byte header (nr_conns, syncid, size), then 24-byte IPv4 records, each
// followed by 24 bytes of sequence options when its flags have
// FlagSeqMask. Version 0 has neither timeouts nor firewall marks (0 here:
// the kernel takes the timeout from its state table, 180 s for templates).
func decodeV0(b []byte, m Message) (Message, error) {
	p := HeaderLenV0
	for range int(b[hReserved]) {
		if p+ConnLenV0 > len(b) {
			return m, ErrTruncated
		}
		r := b[p : p+ConnLenV0]
		c := Conn{
			Protocol: r[1],
			Client:   netip.AddrPortFrom(netip.AddrFrom4([4]byte(r[8:12])), binary.BigEndian.Uint16(r[2:])),
			VIP:      netip.AddrPortFrom(netip.AddrFrom4([4]byte(r[12:16])), binary.BigEndian.Uint16(r[4:])),
			Dest:     netip.AddrPortFrom(netip.AddrFrom4([4]byte(r[16:20])), binary.BigEndian.Uint16(r[6:])),
			Flags:    uint32(binary.BigEndian.Uint16(r[20:])),
			State:    binary.BigEndian.Uint16(r[22:]),
		}
		p += ConnLenV0
		if c.Flags&FlagSeqMask != 0 {
			p += SeqOptionsLen
			if p > len(b) {
				return m, ErrTruncated
			}
		}
		if skip := checkState(&c); skip != nil {
			m.Skipped++
			m.SkipReason = skip
			continue
		}
		m.Conns = append(m.Conns, c)
	}
	return m, nil
}
