//go:build !linux

package main

import (
	"fmt"
	"os"
)

func main() {
	fmt.Fprintln(os.Stderr, "netbench: network namespaces need Linux")
	os.Exit(1)
}
