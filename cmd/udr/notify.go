//go:build linux

package main

import (
	"net"
	"os"
)

// sdNotify tells systemd about the daemon's state (sd_notify(3)) when it
// runs under a Type=notify unit, which sets NOTIFY_SOCKET; otherwise it
// does nothing.
func sdNotify(state string) error {
	path := os.Getenv("NOTIFY_SOCKET")
	if path == "" {
		return nil
	}
	if path[0] == '@' {
		path = "\x00" + path[1:] // an abstract socket
	}
	c, err := net.DialUnix("unixgram", nil, &net.UnixAddr{Name: path, Net: "unixgram"})
	if err != nil {
		return err
	}
	defer c.Close()
	_, err = c.Write([]byte(state))
	return err
}
