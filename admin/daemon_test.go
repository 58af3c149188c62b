package admin

import (
	"bytes"
	"encoding/json"
	"net/netip"
	"testing"
)

// plainBackend is a Backend that runs no sync daemon.
type plainBackend struct{ Backend }

func TestDaemonCommandsWithoutDaemonBackend(t *testing.T) {
	b := plainBackend{newFakeBackend()}
	for _, c := range []struct {
		args   []string
		stderr string
		code   int
	}{
		{[]string{"--start-daemon", "master"}, errStartDaemon + "\n", ExitUsage},
		{[]string{"--stop-daemon", "backup"}, "No daemon is running\n", ExitKernel},
		{[]string{"-L", "--daemon"}, "", ExitOK},
	} {
		var out, errb bytes.Buffer
		if code := Run(c.args, b, nil, &out, &errb, Options{Resolver: fakeResolver{}}); code != c.code || out.Len() != 0 || errb.String() != c.stderr {
			t.Errorf("%v: exit %d, stdout %q, stderr %q; want %d, nothing, %q", c.args, code, out.String(), errb.String(), c.code, c.stderr)
		}
	}
}

func TestCompleteDaemon(t *testing.T) {
	group := netip.MustParseAddr("224.0.0.81")
	for _, c := range []struct {
		in   Daemon
		mtu  int
		want Daemon
	}{
		// A master's default ignores the MTU (1500 at most); a backup's
		// takes it, 1500 at least.
		{Daemon{State: "master"}, 9000, Daemon{State: "master", SyncMaxLen: 1472, McastGroup: group, McastPort: 8848, McastTTL: 1}},
		{Daemon{State: "backup"}, 9000, Daemon{State: "backup", SyncMaxLen: 8972, McastGroup: group, McastPort: 8848, McastTTL: 1}},
		{Daemon{State: "backup"}, 1280, Daemon{State: "backup", SyncMaxLen: 1472, McastGroup: group, McastPort: 8848, McastTTL: 1}},
		{Daemon{State: "master", SyncMaxLen: 1}, 1500, Daemon{State: "master", SyncMaxLen: 1, McastGroup: group, McastPort: 8848, McastTTL: 1}},
		{Daemon{State: "master", SyncMaxLen: 65535, McastGroup: netip.MustParseAddr("ff02::81"), McastPort: 9, McastTTL: 2}, 1500,
			Daemon{State: "master", SyncMaxLen: 65535 - 48, McastGroup: netip.MustParseAddr("ff02::81"), McastPort: 9, McastTTL: 2}},
	} {
		if got := CompleteDaemon(c.in, c.mtu); got != c.want {
			t.Errorf("CompleteDaemon(%+v, %d) = %+v, want %+v", c.in, c.mtu, got, c.want)
		}
	}
}

func TestDaemonsInJSON(t *testing.T) {
	b := newFakeBackend()
	run := func(args ...string) string {
		var out, errb bytes.Buffer
		if code := Run(args, b, nil, &out, &errb, Options{Resolver: fakeResolver{}}); code != 0 {
			t.Fatalf("%v: exit %d: %s", args, code, errb.String())
		}
		return out.String()
	}
	var l Listing
	if err := json.Unmarshal([]byte(run("-L", "-n", "-j")), &l); err != nil || l.SyncDaemons != nil {
		t.Fatalf("no daemon: sync_daemons %v (%v), want none", l.SyncDaemons, err)
	}
	run("--start-daemon", "backup", "--syncid", "3")
	run("--start-daemon", "master")
	if err := json.Unmarshal([]byte(run("-L", "-n", "-j")), &l); err != nil {
		t.Fatal(err)
	}
	want := []DaemonEntry{
		{State: "master", Interface: "eth0", SyncID: 0, MaxLen: 1472, Group: DefaultSyncGroup, Port: 8848, TTL: 1},
		{State: "backup", Interface: "eth0", SyncID: 3, MaxLen: 1472, Group: DefaultSyncGroup, Port: 8848, TTL: 1},
	}
	if len(l.SyncDaemons) != 2 || l.SyncDaemons[0] != want[0] || l.SyncDaemons[1] != want[1] {
		t.Errorf("sync_daemons %+v, want %+v", l.SyncDaemons, want)
	}
}
