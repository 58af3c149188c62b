// Package director runs udr on a live interface: it checks the host, opens
// the AF_PACKET socket with its filter and MAC memberships, runs one
// forwarder.Pipeline worker over batches of frames, announces the VIPs,
// probes the real servers for their MACs, follows the kernel's neighbour
// table, and swaps in a new compiled table on Reload without disturbing
// the connections to servers that remain.
package director
