// Package capture reads and writes packet captures (pcap and pcapng,
// Ethernet link type) as a forwarder.Conn, and replays a capture through
// the same forwarder.Worker that udr run uses.
//
// A Conn returns one frame per ReadBatch, and its Time is that frame's
// time stamp: the worker reads its clock once per batch, so a batch of one
// gives every frame its own time, as it had on the wire, and a replay
// reproduces the connection timers the capture implies. Frames written are
// stamped with the time of the frame last read (the one that caused them)
// and, in pcapng, may carry a comment (udr replay's explanation). The same
// input gives byte-identical output.
//
// This package holds udr's only use of gopacket outside tests: the
// forwarder stays free of it.
package capture
