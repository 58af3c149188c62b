// Package bench holds udr's benchmarks: the per-frame pipeline as Go
// benchmarks (go test -bench . ./bench), and the network-namespace
// benchmark of a live director. Results are in README.md beside this file.
package bench
