// Package service is udr's model of the IPVS virtual server table:
// services (protocol, virtual address and port, scheduler and its flags,
// persistence), their real servers in the kernel's list order, the
// connection timeouts, and how ipvsadm formats and sorts them (addresses as
// glibc's inet_ntop prints them, services and real servers in ipvsadm's
// listing order). A Config is not safe for concurrent use: Clone it, change
// the clone, then publish the clone. Changing a Config as ipvsadm commands
// do is package admin's; reading one from udr.yaml is package config's; the
// live per-server state the packet path shares is package dest's. The
// package imports the standard library and dest only.
package service
