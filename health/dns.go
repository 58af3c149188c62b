package health

import (
	"encoding/binary"
	"errors"
	"fmt"
	"strings"
)

// DNS message layout (RFC 1035 §4.1).
const (
	dnsHeaderLen = 12
	dnsFlagQR    = 0x8000 // response
	dnsFlagRD    = 0x0100 // recursion desired
	dnsOpcode    = 0x7800
	dnsClassIN   = 1
	maxNameLen   = 255 // RFC 1035 §2.3.4, in wire form
	maxLabelLen  = 63
)

// buildQuery returns a standard query (RD set, one question of class IN)
// for name and qtype with the given ID.
func buildQuery(id uint16, name string, qtype uint16) ([]byte, error) {
	q := make([]byte, dnsHeaderLen, dnsHeaderLen+len(name)+6)
	binary.BigEndian.PutUint16(q[0:], id)
	binary.BigEndian.PutUint16(q[2:], dnsFlagRD)
	binary.BigEndian.PutUint16(q[4:], 1) // QDCOUNT
	q, err := appendName(q, name)
	if err != nil {
		return nil, err
	}
	q = binary.BigEndian.AppendUint16(q, qtype)
	return binary.BigEndian.AppendUint16(q, dnsClassIN), nil
}

// appendName appends name in wire form: length-prefixed labels and the
// root's empty label. A trailing dot is optional; "." is the root.
func appendName(b []byte, name string) ([]byte, error) {
	if name == "" {
		return nil, errors.New("empty name")
	}
	start := len(b)
	if name != "." {
		for _, label := range strings.Split(strings.TrimSuffix(name, "."), ".") {
			if label == "" {
				return nil, fmt.Errorf("label \"\": want 1..%d bytes", maxLabelLen)
			}
			if len(label) > maxLabelLen {
				return nil, fmt.Errorf("a label of %d bytes: want 1..%d bytes", len(label), maxLabelLen)
			}
			b = append(b, byte(len(label)))
			b = append(b, label...)
		}
	}
	b = append(b, 0)
	if len(b)-start > maxNameLen {
		return nil, fmt.Errorf("%d bytes in wire form, want at most %d", len(b)-start, maxNameLen)
	}
	return b, nil
}

// checkResponse accepts a well-formed DNS header that answers query id: QR
// set, standard query opcode, the same ID.
func checkResponse(m []byte, id uint16) error {
	if len(m) < dnsHeaderLen {
		return fmt.Errorf("dns response of %d bytes, shorter than a header", len(m))
	}
	if got := binary.BigEndian.Uint16(m[0:]); got != id {
		return fmt.Errorf("dns response id %#04x, want %#04x", got, id)
	}
	flags := binary.BigEndian.Uint16(m[2:])
	if flags&dnsFlagQR == 0 {
		return errors.New("dns message is a query, not a response")
	}
	if flags&dnsOpcode != 0 {
		return fmt.Errorf("dns response opcode %d, want 0 (query)", flags&dnsOpcode>>11)
	}
	return nil
}
