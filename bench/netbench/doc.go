// Command netbench measures udr's data path against the kernel's, in network
// namespaces it builds and always removes (also on an error or Ctrl-C). Run
// as root, from anywhere in the module:
//
//	go run ./bench/netbench                       # 3 repetitions × 5 s, every mode
//	go run ./bench/netbench -reps 1 -dur 2s -mode udp -readme ''
//
// The lab: a generator, a director and two sinks (real servers with the
// VIP on lo, as `udr realserver setup` leaves them) on one bridge; every
// address is an RFC 5737 one. Each repetition runs every case once, in turn
// (interleaved), so that the ratios of one repetition share the machine's
// state of that moment:
//
//   - wire: the generator sends straight to the sinks;
//   - kernel-dr: an nftables netdev ingress chain in the director sets the
//     destination MAC by a flow hash over the sinks, the source MAC, and
//     forwards the frame out again (`fwd`), as nftlb does;
//   - udr: the `udr run` binary built from this tree, in the director, with
//     one DR service over the sinks; once per I/O backend (`--io`) and worker
//     count (`--workers`) that the binary offers (see ioBackends and
//     workerCounts); each udr flood runs once more at half the rate it
//     reached, where it should lose nothing;
//   - raw-<io> (floods only, one per I/O backend, before that backend's udr
//     cases): udr's ceiling on this kernel, the same sockets and batches
//     with no decision. netbench starts itself again in the director
//     (`netbench -raw-forward`, raw.go) as a forwarder with no pipeline:
//     the socket `udr run` opens (forwarder.ListenGroup, the same
//     ConnConfig: the VIP filter, the backend, PACKET_QDISC_BYPASS), read
//     and written with the Worker's calls in its batches, each IPv4 frame
//     given a sink's MAC by a hash of its source address and the
//     director's MAC. Its CPU time is measured as udr's; the × raw column
//     compares each udr case with the raw case of its backend. It stops on
//     SIGTERM, and by itself past a hard time limit. The short mode runs
//     only raw-ring-v2 (the default backend's).
//
// Modes udp and tcp flood 64-byte frames from 10,240 flows (source
// addresses in 198.51.100.0/24 and 203.0.113.0/24; tcp alternates a SYN and
// an ACK of each flow) with trafgen (Debian's netsniff-ng) at full speed,
// bounded by a frame count and by the case's duration; the sinks count the
// frames at their interfaces and drop them at ingress. Mode http runs wrk
// (32 connections) from the generator to nginx on the sinks through udr,
// kernel-dr and HAProxy in TCP mode in the director, for a small page and a
// 1 MiB page.
//
// The table (medians over the repetitions; ratios are taken within each
// repetition, then their median) goes to standard output and, unless
// -readme is empty, into bench/README.md between its netbench markers.
// With -profile DIR every udr run writes a CPU profile of itself there
// (UDR_CPUPROFILE), named after its case and numbered in the order of the
// progress log: `go tool pprof udr DIR/udr-ring-v2-w1-0.pprof`.
//
// It needs trafgen, nft, wrk, nginx and haproxy:
//
//	apt-get install -y netsniff-ng nftables wrk nginx-light haproxy
package main
