package admin

import (
	"fmt"
	"io"
)

// Version is what `ipvsadm -v` prints: ipvsadm 1.31's version line
// (ipvsadm.c version(): IPVSADM_VERSION, IPVS_OPTION_PROCESSING "popt",
// and the IPVS version of the kernel headers, 1.2.1).
const Version = "ipvsadm v1.31 2019/12/24 (compiled with popt and IPVS v1.2.1)"

// ipvsVersion is the IPVS version the listing header names
// (IP_VS_VERSION_CODE 0x010201, include/uapi/linux/ip_vs.h).
const ipvsVersion = "1.2.1"

// tryHelp is ipvsadm's tryhelp_exit text, which ends the command with
// status 255 (and a restore with it).
const tryHelp = "Try `ipvsadm -h' or 'ipvsadm --help' for more information."

// Lists that ipvsadm's Makefile compiles into its help text (the files
// SCHEDULERS and PE_LIST of ipvsadm 1.31).
const (
	helpSchedulers = "rr|wrr|lc|wlc|lblc|lblcr|dh|sh|sed|nq|fo|ovf|mh"
	helpPEList     = "sip"
)

// writeUsage writes ipvsadm 1.31's usage_exit text for program name prog,
// byte for byte: the version line, then the usage, commands and options.
func writeUsage(w io.Writer, prog string) {
	fmt.Fprintln(w, Version)
	fmt.Fprintf(w, "Usage:\n"+
		"  %[1]s -A|E virtual-service [-s scheduler] [-p [timeout]] [-M netmask] [--pe persistence_engine] [-b sched-flags]\n"+
		"  %[1]s -D virtual-service\n"+
		"  %[1]s -C\n"+
		"  %[1]s -R\n"+
		"  %[1]s -S [-n]\n"+
		"  %[1]s -a|e virtual-service -r server-address [options]\n"+
		"  %[1]s -d virtual-service -r server-address\n"+
		"  %[1]s -L|l [virtual-service] [options]\n"+
		"  %[1]s -Z [virtual-service]\n"+
		"  %[1]s --set tcp tcpfin udp\n"+
		"  %[1]s --start-daemon {master|backup} [daemon-options]\n"+
		"  %[1]s --stop-daemon {master|backup}\n"+
		"  %[1]s -h\n\n", prog)
	io.WriteString(w, "Commands:\n"+
		"Either long or short options are allowed.\n"+
		"  --add-service     -A        add virtual service with options\n"+
		"  --edit-service    -E        edit virtual service with options\n"+
		"  --delete-service  -D        delete virtual service\n"+
		"  --clear           -C        clear the whole table\n"+
		"  --restore         -R        restore rules from stdin\n"+
		"  --save            -S        save rules to stdout\n"+
		"  --add-server      -a        add real server with options\n"+
		"  --edit-server     -e        edit real server with options\n"+
		"  --delete-server   -d        delete real server\n"+
		"  --list            -L|-l     list the table\n"+
		"  --zero            -Z        zero counters in a service or all services\n"+
		"  --set tcp tcpfin udp        set connection timeout values\n"+
		"  --start-daemon              start connection sync daemon\n"+
		"  --stop-daemon               stop connection sync daemon\n"+
		"  --help            -h        display this help message\n\n")
	io.WriteString(w, "virtual-service:\n"+
		"  --tcp-service|-t  service-address   service-address is host[:port]\n"+
		"  --udp-service|-u  service-address   service-address is host[:port]\n"+
		"  --sctp-service    service-address   service-address is host[:port]\n"+
		"  --fwmark-service|-f fwmark          fwmark is an integer greater than zero\n"+
		"\n")
	io.WriteString(w, "Options:\n"+
		"  --ipv6         -6                   fwmark entry uses IPv6\n"+
		"  --scheduler    -s scheduler         one of "+helpSchedulers+",\n"+
		"                                      the default scheduler is wlc.\n"+
		"  --pe            engine              alternate persistence engine may be "+helpPEList+",\n"+
		"                                      not set by default.\n"+
		"  --persistent   -p [timeout]         persistent service\n"+
		"  --netmask      -M netmask           persistent granularity mask\n"+
		"  --real-server  -r server-address    server-address is host (and port)\n"+
		"  --gatewaying   -g                   gatewaying (direct routing) (default)\n"+
		"  --ipip         -i                   ipip encapsulation (tunneling)\n"+
		"  --masquerading -m                   masquerading (NAT)\n"+
		"  --tun-type      type                one of ipip|gue|gre,\n"+
		"                                      the default tunnel type is ipip.\n"+
		"  --tun-port      port                tunnel destination port\n"+
		"  --tun-nocsum                        tunnel encapsulation without checksum\n"+
		"  --tun-csum                          tunnel encapsulation with checksum\n"+
		"  --tun-remcsum                       tunnel encapsulation with remote checksum\n"+
		"  --weight       -w weight            capacity of real server\n"+
		"  --u-threshold  -x uthreshold        upper threshold of connections\n"+
		"  --l-threshold  -y lthreshold        lower threshold of connections\n"+
		"  --connection   -c                   output of current IPVS connections\n"+
		"  --timeout                           output of timeout (tcp tcpfin udp)\n"+
		"  --daemon                            output of daemon information\n"+
		"  --stats                             output of statistics information\n"+
		"  --rate                              output of rate information\n"+
		"  --exact                             expand numbers (display exact values)\n"+
		"  --thresholds                        output of thresholds information\n"+
		"  --persistent-conn                   output of persistent connection info\n"+
		"  --tun-info                          output of tunnel information\n"+
		"  --nosort                            disable sorting output of service/server entries\n"+
		"  --sort                              does nothing, for backwards compatibility\n"+
		"  --ops          -o                   one-packet scheduling\n"+
		"  --numeric      -n                   numeric output of addresses and ports\n"+
		"  --sched-flags  -b flags             scheduler flags (comma-separated)\n")
	io.WriteString(w, "Daemon Options:\n"+
		"  --syncid sid                        syncid for connection sync (default=255)\n"+
		"  --sync-maxlen length                Max sync message length (default=1472)\n"+
		"  --mcast-interface interface         multicast interface for connection sync\n"+
		"  --mcast-group address               IPv4/IPv6 group (default=224.0.0.81)\n"+
		"  --mcast-port port                   UDP port (default=8848)\n"+
		"  --mcast-ttl ttl                     Multicast TTL (default=1)\n")
}
