// Package admin is ipvsadm's command line, emulated exactly, and its use
// against udr's running director.
//
// ParseCommand reads one ipvsadm command line exactly as ipvsadm 1.31 does
// (popt's option handling, the C parsing quirks of inet_aton and strtol,
// the same options, defaults and messages, byte for byte, with ipvsadm's
// exit statuses). Apply changes a service.Config as the kernel's
// ip_vs_ctl.c would (its checks, its order, its errors as *KernelError, new
// real servers at the head of the list). ParseRules reads `ipvsadm -S -n`
// rule files with every faulty line reported by file and line, and
// WriteRules prints a Config exactly as `ipvsadm -S -n` would. udr forwards
// by direct routing only, so NAT, tunneling, firewall-mark and SCTP
// services are refused with a message of udr's own.
//
// Run takes an ipvsadm 1.31 argument list (and stdin for -R), carries it out
// through a Backend (Apply for -A -E -D -C -a -e -d --set -Z, Edit for -R,
// State for the listings), and returns exactly what ipvsadm would write on stdout and
// stderr and the status it would exit with — listings byte for byte
// (ipvsadm.c print_title, print_service_entry, print_largenum, list_conn,
// with its sort order, its name resolution unless -n through an injectable
// Resolver, and its column cuts), its fail() messages with status 2, the
// kernel's messages with status 255, and 1 for a failed listing. udr adds a
// one-line warning on stderr when direct routing ignored a real server port,
// -j/--json (the Listing document), and '#' comments in -R input; the sync
// daemon commands go to a DaemonBackend, and any other Backend answers them
// as a director without a sync daemon. -R differs
// from ipvsadm on purpose: its lines are all checked, on an Editor over the
// running table, before any is applied, and are applied as one change or,
// when any fails, not at all (see Editor, Backend.Edit). Run keeps no
// state between calls and is safe for concurrent use when its Backend is;
// a listing asks the Backend for one consistent State.
package admin
