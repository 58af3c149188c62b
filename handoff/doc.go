// Package handoff is the file in which a stopping udr hands its connection
// table and its schedulers' positions to the udr that starts after it, so
// that the connections it forwards carry on across a restart (udr run
// --state FILE). It owns the format only: what goes in comes from the
// director's workers after they stopped, and what comes out is checked
// against the new rules by the director.
//
// # Format, version 1
//
// All integers are little-endian. A file is a 48-byte header followed by
// four arrays of fixed-size records:
//
//	off  size  field
//	0    8     magic "UDRSTATE"
//	8    2     version (1)
//	10   2     header size (48)
//	12   4     reserved, 0
//	16   8     saved: when the file was written, Unix nanoseconds
//	24   4     services: number of service records (44 bytes each)
//	28   4     dests: number of real server records (40 bytes each)
//	32   4     entries: number of entry records (52 bytes each)
//	36   4     neighbours: number of neighbour records (24 bytes each)
//	40   4     CRC-32C (Castagnoli) of bytes 0..39 and of the whole body
//	44   4     reserved, 0
//
// A service record is the position of a scheduler that has one (rr, wrr):
// protocol (1), 0 (1), port (2), address (16, IPv4 v4-mapped), scheduler
// name (8, zero-padded), digest of its server list (8), position (8). The
// director applies a position only to a service that still has the same
// scheduler over the same servers (same digest).
//
// A real server record: protocol (1), 0 (1), virtual port (2), virtual
// address (16), real port (2), 0 (2), real address (16): dest.Key, the
// service a connection was scheduled by and the server it went to.
//
// A neighbour record is a real server's MAC, so that the next udr
// forwards to it before it has asked: address (16), MAC (6), 0 (2).
//
// The records come in that order: services, real servers, neighbours,
// entries. An entry record is one connection or persistence template
// (conntrack.Key and conntrack.Entry): client address (16), virtual
// address (16), client port (2), virtual port (2), protocol (1), template
// (1: 0 or 1), state (1, conntrack.State), flags (1, conntrack.Flags),
// netmask (1), 0 (3), real server record index (4), time left in
// milliseconds (4, at most 2^32-1: about 49 days). A template's count of
// the connections it controls is not stored: the loader rebuilds it from
// the connections it takes.
//
// # Reading bad files
//
// Decode refuses, with an error that says which, a file with another magic
// or version, a size that is not exactly what the header's counts give, a
// checksum that does not match, or a record that no udr could have written
// (an unknown scheduler, state or flag, an index out of range). It never
// allocates more than the input's size allows: the counts are checked
// against the size before anything is allocated. Write replaces the file
// atomically: FILE.tmp is written, synced and renamed over FILE.
package handoff
