// Package admin is ipvsadm's command line against udr's running director:
// Run takes an ipvsadm 1.31 argument list (and stdin for -R), carries it out
// through a Backend (Apply for -A -E -D -C -a -e -d --set -Z, State for the
// listings), and returns exactly what ipvsadm would write on stdout and
// stderr and the status it would exit with — listings byte for byte
// (ipvsadm.c print_title, print_service_entry, print_largenum, list_conn,
// with its sort order, its name resolution unless -n through an injectable
// Resolver, and its column cuts), its fail() messages with status 2, the
// kernel's messages with status 255, and 1 for a failed listing. udr adds a
// one-line warning on stderr when direct routing ignored a real server port,
// -j/--json (the Listing document), and '#' comments in -R input; the sync
// daemon commands answer as a director without a sync daemon. Run keeps no
// state between calls and is safe for concurrent use when its Backend is;
// a listing asks the Backend for one consistent State.
package admin
