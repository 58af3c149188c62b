package main

import (
	"fmt"
	"io"

	"github.com/udr-lb/udr/config"
)

// runConfig is `udr config check FILE`: validate a udr.yaml without
// running anything.
func runConfig(args []string, stdout, stderr io.Writer) error {
	if len(args) != 2 || args[0] != "check" {
		return usageErrorf("config: usage: udr config check FILE")
	}
	summary, err := config.Check(args[1])
	if err != nil {
		return &exitError{code: 1, err: err}
	}
	fmt.Fprintln(stdout, summary)
	return nil
}
