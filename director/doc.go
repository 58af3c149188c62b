// Package director runs udr on a live interface: it checks the host, opens
// the AF_PACKET socket with its filter and MAC memberships, and hands it to
// one forwarder.Worker, which alone moves frames. Beside the worker, a
// control loop announces the VIPs, probes the real servers for their MACs
// and logs (rate-limited) what the worker's events report, queueing the
// frames it builds for the worker; the director follows the kernel's
// neighbour table, lists connections in steps the worker runs between
// batches, and swaps in a new compiled table on Reload without disturbing
// the connections to servers that remain.
//
// A stopping director leaves its connection table to the next one (package
// handoff): in a state file once its workers have stopped (SaveState), or
// over the control socket to a director started with TakeOver, which takes
// it before its own workers start and before the VIPs are announced.
package director
