// Package service is udr's model of the virtual server table — services,
// real servers, timeouts — and its ipvsadm front end: ParseCommand reads one ipvsadm
// command line exactly as ipvsadm 1.31 does (same options, defaults and
// messages, byte for byte, with ipvsadm's exit statuses), Config.Apply
// changes a Config as the kernel's ip_vs_ctl.c would (its checks, its order,
// its errors, new real servers at the head of the list), ParseRules reads
// `ipvsadm -S -n` rule files with every faulty line reported by file and
// line, and WriteRules prints a Config exactly as `ipvsadm -S -n` would. udr
// forwards by direct routing only, so NAT, tunneling, firewall-mark and SCTP
// services are refused with a message of udr's own. A Config is not safe for
// concurrent use: Clone it, Apply to the clone, then publish the clone.
// LoadConfig reads udr.yaml strictly, every problem reported with its file,
// line and field path. The package imports the standard library and
// goccy/go-yaml only.
package service
