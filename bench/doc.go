// Package bench holds udr's benchmarks: the per-frame pipeline as Go
// benchmarks (go test -bench . ./bench), and the network-namespace
// benchmark of a live director. The command netbench (./bench/netbench)
// measures udr against the kernel's own DR path and HAProxy. Results are
// in README.md beside this file.
package bench
