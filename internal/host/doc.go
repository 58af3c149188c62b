// Package host is udr's glue to the Linux host it runs on, through netlink,
// /proc/sys and ethtool ioctls, acting on the network namespace of the
// calling thread.
//
// For a real server (LVS-DR "RS") it puts each VIP on lo as a /32 or /128
// and silences ARP for it (net.ipv4.conf.{all,lo}.arp_ignore=1,
// arp_announce=2, as the LVS-HOWTO and kernel
// Documentation/networking/ip-sysctl.rst prescribe): SetupRealServer is
// idempotent, CheckRealServer reports each requirement with the exact shell
// command that fixes it, TeardownRealServer undoes it. For the director it
// reads an interface's index, MAC and MTU, the local addresses (a VIP must
// not be one of them), the forwarding switches, and turns off the receive
// and segmentation offloads (GRO, LRO, GSO, TSO) that would hand udr frames
// larger than the MTU. Nothing here is on the packet path; errors name the
// interface, address or sysctl concerned.
package host
