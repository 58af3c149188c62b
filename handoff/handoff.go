package handoff

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
	"io"
	"io/fs"
	"net/netip"
	"os"
	"path/filepath"
	"time"

	"github.com/udr-lb/udr/conntrack"
	"github.com/udr-lb/udr/dest"
	"github.com/udr-lb/udr/sched"
)

// Version is the format version Encode writes and Decode reads.
const Version = 1

// Record sizes.
const (
	HeaderSize   = 48
	ServiceSize  = 44
	DestSize     = 40
	NeighborSize = 24
	EntrySize    = 52
)

// Limits on the counts a header may give, beyond the file size.
const (
	MaxServices  = 1 << 20
	MaxDests     = dest.MaxServers
	MaxNeighbors = dest.MaxServers
	MaxEntries   = 1 << 28
)

const magic = "UDRSTATE"

var castagnoli = crc32.MakeTable(crc32.Castagnoli)

// Errors Decode wraps, for callers that say what was wrong.
var (
	ErrMagic    = errors.New("not a udr state file")
	ErrVersion  = errors.New("unsupported state file version")
	ErrSize     = errors.New("state file size does not match its header")
	ErrChecksum = errors.New("state file checksum mismatch")
	ErrRecord   = errors.New("invalid record in state file")
)

// State is what one udr hands to the next.
type State struct {
	// Saved is when the state was written; the loader takes the time
	// since then off every entry's time left.
	Saved     time.Time
	Services  []Service
	Dests     []dest.Key
	Neighbors []Neighbor
	Entries   []Entry
}

// Neighbor is a real server's MAC, so that the next udr forwards to it
// before it has asked again.
type Neighbor struct {
	Addr netip.Addr
	MAC  [6]byte
}

// Service is the position of a service's scheduler.
type Service struct {
	Proto     uint8
	Addr      netip.Addr
	Port      uint16
	Scheduler string // an IPVS scheduler name, at most 8 bytes
	// Digest identifies the server list Position is an index into.
	Digest   uint64
	Position uint64
}

// Entry is one connection or persistence template.
type Entry struct {
	Key conntrack.Key
	// Dest is the index in State.Dests of the entry's real server.
	Dest  uint32
	Left  time.Duration // time left before it expires, in milliseconds
	State conntrack.State
	Flags conntrack.Flags
	// Netmask is conntrack.Entry.Netmask.
	Netmask uint8
}

// allFlags are the conntrack flags a record may carry.
const allFlags = conntrack.FlagTemplate | conntrack.FlagActive | conntrack.FlagControlled |
	conntrack.FlagAllPorts | conntrack.FlagRearmed

// maxLeft is the longest time left a record holds.
const maxLeft = time.Duration(1<<32-1) * time.Millisecond

// Encode returns s in the file format. It fails on a value the format
// cannot hold: a scheduler name longer than 8 bytes, an entry's Dest out of
// range, too many records.
func Encode(s *State) ([]byte, error) {
	if len(s.Services) > MaxServices || len(s.Dests) > MaxDests || len(s.Neighbors) > MaxNeighbors || len(s.Entries) > MaxEntries {
		return nil, fmt.Errorf("encode state: %d services, %d real servers, %d neighbours, %d entries: too many",
			len(s.Services), len(s.Dests), len(s.Neighbors), len(s.Entries))
	}
	size := HeaderSize + ServiceSize*len(s.Services) + DestSize*len(s.Dests) + NeighborSize*len(s.Neighbors) + EntrySize*len(s.Entries)
	b := make([]byte, size)
	le := binary.LittleEndian
	copy(b, magic)
	le.PutUint16(b[8:], Version)
	le.PutUint16(b[10:], HeaderSize)
	le.PutUint64(b[16:], uint64(s.Saved.UnixNano()))
	le.PutUint32(b[24:], uint32(len(s.Services)))
	le.PutUint32(b[28:], uint32(len(s.Dests)))
	le.PutUint32(b[32:], uint32(len(s.Entries)))
	le.PutUint32(b[36:], uint32(len(s.Neighbors)))
	off := HeaderSize
	for i := range s.Services {
		v := &s.Services[i]
		if len(v.Scheduler) > 8 || !sched.Valid(v.Scheduler) {
			return nil, fmt.Errorf("encode state: service %d: scheduler %q", i, v.Scheduler)
		}
		r := b[off : off+ServiceSize]
		r[0] = v.Proto
		le.PutUint16(r[2:], v.Port)
		a := v.Addr.As16()
		copy(r[4:20], a[:])
		copy(r[20:28], v.Scheduler)
		le.PutUint64(r[28:], v.Digest)
		le.PutUint64(r[36:], v.Position)
		off += ServiceSize
	}
	for i := range s.Dests {
		d := &s.Dests[i]
		r := b[off : off+DestSize]
		r[0] = d.Proto
		le.PutUint16(r[2:], d.VIP.Port())
		a := d.VIP.Addr().As16()
		copy(r[4:20], a[:])
		le.PutUint16(r[20:], d.Real.Port())
		a = d.Real.Addr().As16()
		copy(r[24:40], a[:])
		off += DestSize
	}
	for i := range s.Neighbors {
		n := &s.Neighbors[i]
		r := b[off : off+NeighborSize]
		a := n.Addr.As16()
		copy(r[0:16], a[:])
		copy(r[16:22], n.MAC[:])
		off += NeighborSize
	}
	for i := range s.Entries {
		e := &s.Entries[i]
		if int(e.Dest) >= len(s.Dests) {
			return nil, fmt.Errorf("encode state: entry %d: real server %d of %d", i, e.Dest, len(s.Dests))
		}
		r := b[off : off+EntrySize]
		copy(r[0:16], e.Key.Client[:])
		copy(r[16:32], e.Key.VIP[:])
		le.PutUint16(r[32:], e.Key.CPort)
		le.PutUint16(r[34:], e.Key.VPort)
		r[36] = e.Key.Proto
		if e.Key.Template {
			r[37] = 1
		}
		r[38] = uint8(e.State)
		r[39] = uint8(e.Flags)
		r[40] = e.Netmask
		le.PutUint32(r[44:], e.Dest)
		left := min(max(e.Left, 0), maxLeft)
		le.PutUint32(r[48:], uint32(left/time.Millisecond))
		off += EntrySize
	}
	le.PutUint32(b[40:], checksum(b))
	return b, nil
}

// checksum is the CRC-32C of the header's first 40 bytes and the body.
func checksum(b []byte) uint32 {
	c := crc32.Update(0, castagnoli, b[:40])
	return crc32.Update(c, castagnoli, b[HeaderSize:])
}

// header is what the first HeaderSize bytes say.
type header struct {
	saved                               time.Time
	services, dests, neighbors, entries uint32
	sum                                 uint32
}

// bodySize returns the body size h's counts give.
func (h *header) bodySize() uint64 {
	return uint64(h.services)*ServiceSize + uint64(h.dests)*DestSize + uint64(h.neighbors)*NeighborSize + uint64(h.entries)*EntrySize
}

// parseHeader checks the magic, the version and the counts' limits.
func parseHeader(b []byte) (header, error) {
	if len(b) < HeaderSize {
		if len(b) < len(magic) || string(b[:len(magic)]) != magic {
			return header{}, ErrMagic
		}
		return header{}, fmt.Errorf("%w: %d bytes, shorter than the %d-byte header", ErrSize, len(b), HeaderSize)
	}
	if string(b[:len(magic)]) != magic {
		return header{}, ErrMagic
	}
	le := binary.LittleEndian
	if v := le.Uint16(b[8:]); v != Version {
		return header{}, fmt.Errorf("%w: %d, this udr reads %d", ErrVersion, v, Version)
	}
	if hs := le.Uint16(b[10:]); hs != HeaderSize {
		return header{}, fmt.Errorf("%w: header size %d, want %d", ErrRecord, hs, HeaderSize)
	}
	if le.Uint32(b[12:]) != 0 || le.Uint32(b[44:]) != 0 {
		return header{}, fmt.Errorf("%w: reserved header bytes set", ErrRecord)
	}
	h := header{
		saved:     time.Unix(0, int64(le.Uint64(b[16:]))),
		services:  le.Uint32(b[24:]),
		dests:     le.Uint32(b[28:]),
		entries:   le.Uint32(b[32:]),
		neighbors: le.Uint32(b[36:]),
		sum:       le.Uint32(b[40:]),
	}
	if h.services > MaxServices || h.dests > MaxDests || h.neighbors > MaxNeighbors || h.entries > MaxEntries {
		return header{}, fmt.Errorf("%w: %d services, %d real servers, %d neighbours, %d entries: over the limits", ErrRecord, h.services, h.dests, h.neighbors, h.entries)
	}
	return h, nil
}

// Decode parses a state file. Any fault is an error wrapping ErrMagic,
// ErrVersion, ErrSize, ErrChecksum or ErrRecord; nothing is allocated
// before the size has been checked against the header.
func Decode(b []byte) (*State, error) {
	h, err := parseHeader(b)
	if err != nil {
		return nil, err
	}
	if want := HeaderSize + h.bodySize(); uint64(len(b)) != want {
		return nil, fmt.Errorf("%w: %d bytes, the header gives %d services, %d real servers, %d neighbours and %d entries: %d bytes",
			ErrSize, len(b), h.services, h.dests, h.neighbors, h.entries, want)
	}
	if got := checksum(b); got != h.sum {
		return nil, fmt.Errorf("%w: computed %08x, stored %08x", ErrChecksum, got, h.sum)
	}
	le := binary.LittleEndian
	s := &State{
		Saved:    h.saved,
		Services: make([]Service, h.services),
		Dests:    make([]dest.Key, h.dests),
		Entries:  make([]Entry, h.entries),
	}
	if h.neighbors > 0 {
		s.Neighbors = make([]Neighbor, h.neighbors)
	}
	off := HeaderSize
	for i := range s.Services {
		r := b[off : off+ServiceSize]
		name := string(bytes.TrimRight(r[20:28], "\x00"))
		if !sched.Valid(name) {
			return nil, fmt.Errorf("%w: service %d: scheduler %q", ErrRecord, i, name)
		}
		if r[1] != 0 {
			return nil, fmt.Errorf("%w: service %d: reserved byte set", ErrRecord, i)
		}
		s.Services[i] = Service{
			Proto:     r[0],
			Port:      le.Uint16(r[2:]),
			Addr:      netip.AddrFrom16([16]byte(r[4:20])).Unmap(),
			Scheduler: name,
			Digest:    le.Uint64(r[28:]),
			Position:  le.Uint64(r[36:]),
		}
		off += ServiceSize
	}
	for i := range s.Dests {
		r := b[off : off+DestSize]
		if r[1] != 0 || r[22] != 0 || r[23] != 0 {
			return nil, fmt.Errorf("%w: real server %d: reserved bytes set", ErrRecord, i)
		}
		vip := netip.AddrFrom16([16]byte(r[4:20])).Unmap()
		rip := netip.AddrFrom16([16]byte(r[24:40])).Unmap()
		s.Dests[i] = dest.Key{
			Proto: r[0],
			VIP:   netip.AddrPortFrom(vip, le.Uint16(r[2:])),
			Real:  netip.AddrPortFrom(rip, le.Uint16(r[20:])),
		}
		off += DestSize
	}
	for i := range s.Neighbors {
		r := b[off : off+NeighborSize]
		if r[22] != 0 || r[23] != 0 {
			return nil, fmt.Errorf("%w: neighbour %d: reserved bytes set", ErrRecord, i)
		}
		s.Neighbors[i] = Neighbor{Addr: netip.AddrFrom16([16]byte(r[0:16])).Unmap(), MAC: [6]byte(r[16:22])}
		off += NeighborSize
	}
	for i := range s.Entries {
		r := b[off : off+EntrySize]
		e := Entry{
			Key: conntrack.Key{
				Client: [16]byte(r[0:16]),
				VIP:    [16]byte(r[16:32]),
				CPort:  le.Uint16(r[32:]),
				VPort:  le.Uint16(r[34:]),
				Proto:  r[36],
			},
			State:   conntrack.State(r[38]),
			Flags:   conntrack.Flags(r[39]),
			Netmask: r[40],
			Dest:    le.Uint32(r[44:]),
			Left:    time.Duration(le.Uint32(r[48:])) * time.Millisecond,
		}
		switch {
		case r[37] > 1:
			return nil, fmt.Errorf("%w: entry %d: template byte %d", ErrRecord, i, r[37])
		case e.Flags&^allFlags != 0:
			return nil, fmt.Errorf("%w: entry %d: flags %#x", ErrRecord, i, e.Flags)
		case (r[37] == 1) != (e.Flags&conntrack.FlagTemplate != 0):
			return nil, fmt.Errorf("%w: entry %d: template byte and flag disagree", ErrRecord, i)
		case e.State > conntrack.StateAssured:
			return nil, fmt.Errorf("%w: entry %d: state %d", ErrRecord, i, e.State)
		case e.Dest >= h.dests:
			return nil, fmt.Errorf("%w: entry %d: real server %d of %d", ErrRecord, i, e.Dest, h.dests)
		case r[41] != 0 || r[42] != 0 || r[43] != 0:
			return nil, fmt.Errorf("%w: entry %d: reserved bytes set", ErrRecord, i)
		}
		e.Key.Template = r[37] == 1
		s.Entries[i] = e
		off += EntrySize
	}
	return s, nil
}

// Write stores s in path atomically: it writes path.tmp (mode 0600),
// syncs it, renames it over path and syncs the directory. It refuses to
// replace a file that is not a state file (a path given by mistake: the
// rules, the config), or anything but a regular file.
func Write(path string, s *State) error {
	if err := replaceable(path); err != nil {
		return err
	}
	b, err := Encode(s)
	if err != nil {
		return err
	}
	tmp := path + ".tmp"
	f, err := os.OpenFile(tmp, os.O_WRONLY|os.O_CREATE|os.O_TRUNC, 0o600)
	if err != nil {
		return fmt.Errorf("write state: %w", err)
	}
	_, err = f.Write(b)
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Rename(tmp, path)
	}
	if err != nil {
		os.Remove(tmp)
		return fmt.Errorf("write state: %w", err)
	}
	if dir, err := os.Open(filepath.Dir(path)); err == nil {
		dir.Sync()
		dir.Close()
	}
	return nil
}

// replaceable checks that path is missing, empty, or a state file.
func replaceable(path string) error {
	fi, err := os.Lstat(path)
	if errors.Is(err, fs.ErrNotExist) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("write state: %w", err)
	}
	if !fi.Mode().IsRegular() {
		return fmt.Errorf("write state: %s exists and is not a regular file: not replaced", path)
	}
	if fi.Size() == 0 {
		return nil
	}
	f, err := os.Open(path)
	if err != nil {
		return fmt.Errorf("write state: %w", err)
	}
	defer f.Close()
	head := make([]byte, len(magic))
	if n, _ := io.ReadFull(f, head); n < len(magic) || string(head) != magic {
		return fmt.Errorf("write state: %s exists and is not a udr state file: not replaced", path)
	}
	return nil
}

// Read reads and decodes the state file at path. It checks the file's
// size against its header before reading the body, so that a header
// claiming more than the file holds costs nothing. Anything but a regular
// file is refused with ErrMagic.
func Read(path string) (*State, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return nil, err
	}
	if !fi.Mode().IsRegular() {
		return nil, fmt.Errorf("%s: %w: not a regular file", path, ErrMagic)
	}
	hb := make([]byte, HeaderSize)
	n, err := io.ReadFull(f, hb)
	if err != nil && !errors.Is(err, io.ErrUnexpectedEOF) && !errors.Is(err, io.EOF) {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	h, err := parseHeader(hb[:n])
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	want := HeaderSize + h.bodySize()
	if uint64(fi.Size()) != want {
		return nil, fmt.Errorf("%s: %w: %d bytes, the header gives %d", path, ErrSize, fi.Size(), want)
	}
	b := make([]byte, want)
	copy(b, hb)
	if _, err := io.ReadFull(f, b[HeaderSize:]); err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	s, err := Decode(b)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	return s, nil
}
