// Package director runs udr on a live interface: it checks the host, opens
// the AF_PACKET socket with its filter and MAC memberships, and hands it to
// one forwarder.Worker, which alone moves frames. Beside the worker, a
// control loop announces the VIPs, probes the real servers for their MACs
// and logs (rate-limited) what the worker's events report, queueing the
// frames it builds for the worker; the director follows the kernel's
// neighbour table, lists connections in steps the worker runs between
// batches, and swaps in a new compiled table on Reload without disturbing
// the connections to servers that remain.
package director
