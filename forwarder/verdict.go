package forwarder

// Verdict is what the pipeline decided for one frame. Every verdict has a
// counter in Stats; a frame never produces an error.
type Verdict uint8

// Verdicts. Forward and Reply send a frame; every other verdict is a drop
// whose name says why.
const (
	VerdictForward     Verdict = iota // rewritten and sent to a real server
	VerdictReply                      // answered: ARP reply, neighbor advertisement, ICMP unreachable
	VerdictTruncated                  // shorter than its headers say
	VerdictMalformed                  // bad version, IHL, length fields or checksum
	VerdictNotForUs                   // unicast to another host's MAC (the kernel's PACKET_OTHERHOST)
	VerdictEtherType                  // neither ARP, IPv4 nor IPv6 (or more than one VLAN tag)
	VerdictARPIgnored                 // ARP that needs no answer from udr
	VerdictARPConflict                // another host claims one of udr's VIPs
	VerdictNDPIgnored                 // ICMPv6 neighbor discovery that needs no answer
	VerdictNotVIP                     // IP packet to an address that is not a VIP
	VerdictNoService                  // to a VIP, but no service has its protocol and port
	VerdictProto                      // to a VIP with a protocol other than TCP, UDP or an ICMP error
	VerdictNoConn                     // TCP without SYN (or a RST) and no connection entry
	VerdictNoBackend                  // the scheduler found no available real server
	VerdictNoNeighbor                 // the chosen real server's MAC is not known
	VerdictDestRemoved                // the connection's real server was deleted (expire_nodest_conn=0)
	VerdictTableFull                  // the connection table is full and nothing could be evicted
	VerdictFragment                   // a later IPv4 fragment whose first fragment was not seen
	VerdictICMPNoConn                 // an ICMP error about no tracked connection
	VerdictMulticast                  // an IP packet sent to a broadcast or multicast MAC
	VerdictFTPData                    // from client port 20 (FTP data) with no connection entry: never scheduled
	VerdictStandby                    // to a VIP, or ARP/NDP about one, while the director is in standby (Options.Standby)

	numVerdicts
)

var verdictNames = [numVerdicts]string{
	VerdictForward:     "forward",
	VerdictReply:       "reply",
	VerdictTruncated:   "truncated",
	VerdictMalformed:   "malformed",
	VerdictNotForUs:    "not-for-us",
	VerdictEtherType:   "ethertype",
	VerdictARPIgnored:  "arp-ignored",
	VerdictARPConflict: "arp-conflict",
	VerdictNDPIgnored:  "ndp-ignored",
	VerdictNotVIP:      "not-vip",
	VerdictNoService:   "no-service",
	VerdictProto:       "proto",
	VerdictNoConn:      "no-conn",
	VerdictNoBackend:   "no-backend",
	VerdictNoNeighbor:  "no-neighbor",
	VerdictDestRemoved: "dest-removed",
	VerdictTableFull:   "table-full",
	VerdictFragment:    "fragment",
	VerdictICMPNoConn:  "icmp-no-conn",
	VerdictMulticast:   "multicast",
	VerdictFTPData:     "ftp-data",
	VerdictStandby:     "standby",
}

// String returns the verdict's short name, as summaries and metrics use it.
func (v Verdict) String() string {
	if v < numVerdicts {
		return verdictNames[v]
	}
	return "unknown"
}

// Verdicts returns every verdict in order, for summaries that list them all.
func Verdicts() []Verdict {
	vs := make([]Verdict, numVerdicts)
	for i := range vs {
		vs[i] = Verdict(i)
	}
	return vs
}

// Stats counts a worker's verdicts. The owner sums the workers' Stats.
type Stats struct {
	Verdicts [numVerdicts]uint64
}

// Add adds o to s.
func (s *Stats) Add(o *Stats) {
	for i, n := range o.Verdicts {
		s.Verdicts[i] += n
	}
}
