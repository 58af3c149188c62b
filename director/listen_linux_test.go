//go:build linux

package director_test

import (
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/udr-lb/udr/director"
)

// TestListenControlLeavesOtherFiles checks that ListenControl never
// removes what is at its path unless it is a stale socket: a regular file
// (a config given as --control by mistake), a directory and a symbolic
// link stay as they were, and the error says what is there.
func TestListenControlLeavesOtherFiles(t *testing.T) {
	dir := t.TempDir()
	file := filepath.Join(dir, "udr.yaml")
	const content = "interface: eth0\n"
	if err := os.WriteFile(file, []byte(content), 0o644); err != nil {
		t.Fatal(err)
	}
	sub := filepath.Join(dir, "sub")
	if err := os.Mkdir(sub, 0o755); err != nil {
		t.Fatal(err)
	}
	link := filepath.Join(dir, "link")
	if err := os.Symlink(file, link); err != nil {
		t.Fatal(err)
	}
	for _, tt := range []struct{ path, want string }{
		{file, "a regular file is there, not a socket"},
		{sub, "a directory is there, not a socket"},
		{link, "a symbolic link is there, not a socket"},
	} {
		before, err := os.Lstat(tt.path)
		if err != nil {
			t.Fatal(err)
		}
		ln, err := director.ListenControl(tt.path)
		if err == nil {
			ln.Close()
			t.Errorf("ListenControl(%s) over %s: no error, want %q", tt.path, tt.want[:strings.Index(tt.want, " is")], tt.want)
		} else if !strings.Contains(err.Error(), tt.want) || !strings.Contains(err.Error(), tt.path) {
			t.Errorf("ListenControl(%s): %v, want an error naming the path and %q", tt.path, err, tt.want)
		}
		after, err := os.Lstat(tt.path)
		if err != nil {
			t.Errorf("after ListenControl(%s): %v: the file was removed", tt.path, err)
			continue
		}
		if !os.SameFile(before, after) || before.Mode() != after.Mode() {
			t.Errorf("after ListenControl(%s): the file changed: %v, was %v", tt.path, after.Mode(), before.Mode())
		}
	}
	if got, err := os.ReadFile(file); err != nil || string(got) != content {
		t.Errorf("the regular file after ListenControl: %q, %v; want %q", got, err, content)
	}
}

// TestListenControlStaleSocket checks that a socket nothing listens on (a
// daemon that died left it) is replaced, and that a live one is refused
// and left serving.
func TestListenControlStaleSocket(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "udr.sock")

	// Live: another daemon serves path.
	other, err := net.Listen("unix", path)
	if err != nil {
		t.Fatal(err)
	}
	if ln, err := director.ListenControl(path); err == nil {
		ln.Close()
		t.Errorf("ListenControl(%s) over a live socket: no error, want \"another udr is listening\"", path)
	} else if !strings.Contains(err.Error(), "another udr is listening") {
		t.Errorf("ListenControl(%s) over a live socket: %v, want \"another udr is listening\"", path, err)
	}
	if c, err := net.Dial("unix", path); err != nil {
		t.Errorf("the other daemon's socket after ListenControl: %v", err)
	} else {
		c.Close()
	}

	// Stale: the other daemon died without removing its socket.
	other.(*net.UnixListener).SetUnlinkOnClose(false)
	other.Close()
	if fi, err := os.Lstat(path); err != nil || fi.Mode().Type() != os.ModeSocket {
		t.Fatalf("the stale socket: %v, %v", fi, err)
	}
	ln, err := director.ListenControl(path)
	if err != nil {
		t.Fatalf("ListenControl(%s) over a stale socket: %v", path, err)
	}
	fi, err := os.Lstat(path)
	if err != nil || fi.Mode().Perm() != 0o600 {
		t.Errorf("the new socket: %v, %v; want mode 0600", fi, err)
	}
	go func() {
		if c, err := ln.Accept(); err == nil {
			c.Close()
		}
	}()
	if c, err := net.Dial("unix", path); err != nil {
		t.Errorf("dial the new socket: %v", err)
	} else {
		c.Close()
	}
	ln.Close()
	if _, err := os.Lstat(path); !os.IsNotExist(err) {
		t.Errorf("after Close the socket is still there: %v", err)
	}
	if left, _ := filepath.Glob(filepath.Join(dir, ".udr-sock-*")); len(left) > 0 {
		t.Errorf("binding directories left: %q", left)
	}
}
