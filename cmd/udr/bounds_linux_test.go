//go:build linux

package main

import (
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/udr-lb/udr/admin"
	"github.com/udr-lb/udr/internal/drlab"
	"github.com/udr-lb/udr/internal/netlab"
)

// TestAdminStdinBounded checks that udr admin -R reads at most
// admin.MaxRulesSize bytes of its standard input before it asks the
// daemon anything.
func TestAdminStdinBounded(t *testing.T) {
	in := bytes.NewReader(make([]byte, admin.MaxRulesSize+10))
	var stdout, stderr bytes.Buffer
	err := adminWith([]string{"--control", filepath.Join(t.TempDir(), "none.sock"), "-R"}, in, &stdout, &stderr)
	if err == nil || !strings.Contains(err.Error(), "larger than 67108864 bytes") {
		t.Errorf("udr admin -R with %d bytes on stdin: %v, want an error that they are larger than 67108864 bytes", admin.MaxRulesSize+10, err)
	}
	if n := in.Len(); n != 9 {
		t.Errorf("udr admin -R left %d bytes of its input unread, want 9", n)
	}
}

// TestConfigCheckNested checks that udr config check refuses a udr.yaml of
// 40,000 levels of "[" (80 KB) at once, with exit status 1 and the file
// and line: the YAML parser took more than 6 GB for it.
func TestConfigCheckNested(t *testing.T) {
	path := filepath.Join(t.TempDir(), "udr.yaml")
	if err := os.WriteFile(path, []byte(strings.Repeat("[", 40000)), 0o644); err != nil {
		t.Fatal(err)
	}
	var stdout, stderr bytes.Buffer
	code := run([]string{"udr", "config", "check", path}, &stdout, &stderr)
	want := "udr: " + path + ":1: nested more than 32 levels deep: udr reads no deeper\n"
	if code != 1 || stdout.Len() != 0 || stderr.String() != want {
		t.Errorf("udr config check of 40,000 levels of [: exit status %d, stdout %q, stderr %q; want 1 and %q", code, stdout.String(), stderr.String(), want)
	}
}

// limitedUDR returns bin with its exe replaced by a script that runs it
// with its address space limited to 4 GiB: a daemon that would exhaust the
// machine's memory dies alone instead.
func limitedUDR(t *testing.T, bin udrBinary) udrBinary {
	t.Helper()
	script := filepath.Join(bin.dir, "udr-limited")
	if err := os.WriteFile(script, []byte("#!/bin/sh\nulimit -v 4194304\nexec "+bin.exe+" \"$@\"\n"), 0o755); err != nil {
		t.Fatal(err)
	}
	bin.exe = script
	return bin
}

// TestPrivilegedReloadNestedYAML sends SIGHUP to a running udr whose
// udr.yaml became 40,000 levels of "[" (80 KB; the YAML parser took more
// than 6 GB for it): the reload is refused with the file and line, and the
// daemon keeps its table and keeps forwarding. Then a udr.yaml without
// services: the reload is made, and logged at WARN with what it removed.
func TestPrivilegedReloadNestedYAML(t *testing.T) {
	netlab.Privileged(t)
	bin := buildUDR(t)
	lab := newDaemonLab(t, "nested")
	sock := filepath.Join(bin.dir, "udr.sock")
	conf := filepath.Join(bin.dir, "udr.yaml")
	const web = "  - address: 192.0.2.100\n" +
		"    port: 80\n" +
		"    scheduler: rr\n" +
		"    servers:\n" +
		"      - address: 192.0.2.11\n" +
		"      - address: 192.0.2.12\n"
	if err := os.WriteFile(conf, []byte(reloadConfig(sock, web)), 0o644); err != nil {
		t.Fatal(err)
	}
	d := startDaemon(t, lab, limitedUDR(t, bin), sock, "--config", conf)
	saved := d.mustIpvsadm(t, "-S", "-n")
	client := drlab.HTTPClient(lab.Client, 5*time.Second)
	fetch := func(when string) {
		t.Helper()
		var err error
		for range 20 { // the first requests wait for the servers' MACs
			if _, err = drlab.Get(client, "http://192.0.2.100/"); err == nil {
				return
			}
			time.Sleep(250 * time.Millisecond)
		}
		t.Fatalf("%s: GET http://192.0.2.100/: %v\n%s", when, err, d.log)
	}
	fetch("before the reload")

	if err := os.WriteFile(conf, []byte(strings.Repeat("[", 40000)), 0o644); err != nil {
		t.Fatal(err)
	}
	mark := d.log.len()
	if err := d.cmd.Process.Signal(syscall.SIGHUP); err != nil {
		t.Fatal(err)
	}
	line, err := d.log.wait(mark, "reload failed", daemonEventTimeout, d.exited)
	if err != nil {
		t.Fatalf("after SIGHUP with a nested udr.yaml: %v\n%s", err, d.log)
	}
	if want := conf + ":1: nested more than 32 levels deep"; !strings.Contains(line, want) {
		t.Errorf("log line of the refused reload: %s\nwant it to name %q", line, want)
	}
	for i := range 10 {
		fetch("after the refused reload, request " + string(rune('0'+i)))
	}
	if got := d.mustIpvsadm(t, "-S", "-n"); got != saved {
		t.Errorf("table after the refused reload:\n%s\nwant:\n%s", got, saved)
	}

	// A reload that removes every service is allowed, and logged at WARN
	// with what it removed.
	if err := os.WriteFile(conf, []byte(reloadConfig(sock, "")), 0o644); err != nil {
		t.Fatal(err)
	}
	mark = d.log.len()
	if err := d.cmd.Process.Signal(syscall.SIGHUP); err != nil {
		t.Fatal(err)
	}
	line, err = d.log.wait(mark, "removed every service", daemonEventTimeout, d.exited)
	if err != nil {
		t.Fatalf("after SIGHUP with no services: %v\n%s", err, d.log)
	}
	if !strings.Contains(line, "level=WARN") || !strings.Contains(line, `removed="-t 192.0.2.100:80"`) {
		t.Errorf("log line of the reload that removed every service: %s\nwant WARN and removed=\"-t 192.0.2.100:80\"", line)
	}
	if got := d.mustIpvsadm(t, "-S", "-n"); got != "" {
		t.Errorf("table after the reload with no services:\n%s\nwant none", got)
	}
}
