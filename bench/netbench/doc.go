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
//     reached, where it should lose nothing.
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
