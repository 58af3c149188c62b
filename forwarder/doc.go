// Package forwarder is udr's data plane: the per-frame pipeline of a
// direct-routing director and the I/O backends that feed it.
//
// A Pipeline takes one Ethernet frame and the time it arrived and returns
// a Verdict: forward (the frame rewritten in place: destination MAC = the
// chosen real server's, source MAC = the director's, every other byte
// unchanged), reply (an ARP reply or neighbor advertisement built in the
// worker's scratch buffer), or a drop whose reason is counted.
//
// A Worker is the one loop that moves frames: it reads a batch from a
// Conn, runs the connection timers that are due, decides every frame,
// writes the batch and the control frames queued for it; on an idle link
// it wakes for the next timer. udr run gives it the
// AF_PACKET PacketConn, udr replay a capture (package capture), tests the
// channel fake of package forwardertest, so udr replay reproduces exactly
// what udr run does. The worker does no control work: announcements and
// probes reach it on a bounded queue, the verdicts the control plane acts
// on leave it as events, and its counters are atomics.
//
// Configuration reaches the pipeline as a compiled, immutable Table behind
// an atomic pointer; a change compiles a new Table and swaps it in, so the
// packet path never takes a lock. Process does not allocate. A Pipeline is
// one worker's state and is not safe for concurrent use; the connection
// table it owns is that worker's too. The live state shared between
// workers and the control plane (connection counts, statistics, neighbour
// MACs) is atomic.
//
// Connection sync (sync.go) follows the kernel's sync daemon, protocol
// version 1: while it is on (Workers.EnableSync), each worker queues a
// fixed-size record for each connection its packets make due
// (ip_vs_sync_conn_needed: the 3rd, 53rd, 103rd... packet, or a change to
// a closing TCP state) and for the template that controls it, on a bounded
// single-producer single-consumer queue that never blocks it
// (Workers.DrainSync takes them); off, it costs one atomic load per batch.
// Records from another director go into the table of the worker the
// fanout gives their client (Workers.InsertSynced, through Worker.Do),
// bound and counted as ip_vs_bind_dest counts a synced connection: in
// ActiveConn or InActConn by the activity flag it was sent with. Such an
// entry is not sent again until packets of its own arrive here, and its
// packets then go on through the state machine to the server it had,
// whatever the scheduler. Workers.DumpSync lists every entry for a peer
// that (re)started.
package forwarder
