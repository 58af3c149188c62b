//go:build !linux

package main

import (
	"errors"
	"io"
)

var errLinuxOnly = errors.New("needs Linux: AF_PACKET sockets, netlink and network namespaces")

func runDirector([]string, io.Writer, io.Writer) error   { return errLinuxOnly }
func runDemo([]string, io.Writer, io.Writer) error       { return errLinuxOnly }
func runRealServer([]string, io.Writer, io.Writer) error { return errLinuxOnly }
func runAdmin([]string, io.Writer, io.Writer) error      { return errLinuxOnly }
func runStatus([]string, io.Writer, io.Writer) error     { return errLinuxOnly }
