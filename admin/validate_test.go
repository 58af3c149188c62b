package admin

import (
	"errors"
	"strings"
	"testing"
)

// TestRefusedAddresses checks that udr refuses, on the ipvsadm command
// line and in rules files, the VIPs it cannot serve and real servers it
// cannot forward to, each with a message naming the address and why.
func TestRefusedAddresses(t *testing.T) {
	for _, tt := range []struct {
		args []string
		want string
	}{
		{[]string{"-A", "-t", "0.0.0.0:80"}, "udr cannot serve VIP 0.0.0.0: it is the unspecified address"},
		{[]string{"-A", "-t", "[::]:80"}, "udr cannot serve VIP ::: it is the unspecified address"},
		{[]string{"-A", "-t", "255.255.255.255:80"}, "udr cannot serve VIP 255.255.255.255: it is the broadcast address"},
		{[]string{"-A", "-u", "224.0.0.251:5353"}, "udr cannot serve VIP 224.0.0.251: it is a multicast address"},
		{[]string{"-A", "-u", "[ff02::fb]:5353"}, "udr cannot serve VIP ff02::fb: it is a multicast address"},
		{[]string{"-A", "-t", "127.0.0.1:80"}, "udr cannot serve VIP 127.0.0.1: it is a loopback address"},
		{[]string{"-A", "-t", "[::1]:80"}, "udr cannot serve VIP ::1: it is a loopback address"},
		{[]string{"-E", "-t", "127.0.0.2:80", "-s", "wrr"}, "udr cannot serve VIP 127.0.0.2: it is a loopback address"},
		{[]string{"-a", "-t", "192.0.2.100:80", "-r", "192.0.2.100"}, "real server 192.0.2.100 is the VIP itself"},
		{[]string{"-a", "-t", "[2001:db8::100]:80", "-r", "[2001:db8::100]:80"}, "real server 2001:db8::100 is the VIP itself"},
		{[]string{"-e", "-t", "192.0.2.100:80", "-r", "192.0.2.100:80", "-w", "2"}, "real server 192.0.2.100 is the VIP itself"},
		{[]string{"-a", "-t", "192.0.2.100:80", "-r", "127.0.0.1"}, "real server 127.0.0.1 is a loopback address"},
	} {
		_, err := ParseCommand(tt.args)
		var ue *UsageError
		if !errors.As(err, &ue) || ue.Code != ExitUsage || !strings.HasPrefix(ue.Msg, tt.want) {
			t.Errorf("ipvsadm %s: %v, want a usage error (exit status 2) starting %q", strings.Join(tt.args, " "), err, tt.want)
		}
	}
	for _, ok := range [][]string{
		{"-A", "-t", "192.0.2.100:80"},
		{"-A", "-t", "[2001:db8::100]:80"},
		{"-a", "-t", "192.0.2.100:80", "-r", "192.0.2.11"},
		{"-D", "-t", "0.0.0.0:80"}, // deleting what cannot exist: the kernel's ESRCH
	} {
		if _, err := ParseCommand(ok); err != nil {
			t.Errorf("ipvsadm %s: %v", strings.Join(ok, " "), err)
		}
	}

	rules := "-A -t 0.0.0.0:80 -s rr\n" +
		"-A -t 192.0.2.100:80 -s rr\n" +
		"-a -t 192.0.2.100:80 -r 192.0.2.100:80 -g -w 1\n" +
		"-A -u [ff05::1:3]:547 -s rr\n"
	_, _, err := ParseRules(strings.NewReader(rules), "rules")
	want := "rules:1: -A -t 0.0.0.0:80: udr cannot serve VIP 0.0.0.0: it is the unspecified address, which no client sends to\n" +
		"rules:3: -a -t 192.0.2.100:80 -r 192.0.2.100:80: real server 192.0.2.100 is the VIP itself: a real server has an address of its own and holds the VIP on lo\n" +
		"rules:4: -A -u [ff05::1:3]:547: udr cannot serve VIP ff05::1:3: it is a multicast address; a VIP is a unicast address that udr answers ARP/NDP for"
	if err == nil || err.Error() != want {
		t.Errorf("ParseRules: %v\nwant:\n%s", err, want)
	}
}
