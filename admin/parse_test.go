package admin

import (
	"errors"
	"net/netip"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/udr-lb/udr/service"
)

var addrCmp = cmp.Comparer(func(a, b netip.Addr) bool { return a == b })

var (
	vip  = netip.MustParseAddr("192.0.2.100")
	rip1 = netip.MustParseAddr("192.0.2.11")
	vip6 = netip.MustParseAddr("2001:db8::100")
)

func tcp(a netip.Addr, port uint16) service.Key {
	return service.Key{Proto: service.TCP, Addr: a, Port: port}
}

func TestParseCommand(t *testing.T) {
	svc := func(k service.Key, sched string) service.Service {
		return service.Service{Key: k, Scheduler: sched, Netmask: k.Addr.BitLen()}
	}
	tests := []struct {
		name string
		args []string
		want Command
	}{
		{
			name: "no arguments lists",
			args: []string{},
			want: Command{Op: OpList, Service: service.Service{Netmask: 32}, Dest: service.Dest{Weight: 1}},
		},
		{
			name: "add service",
			args: words("-A -t 192.0.2.100:80 -s wrr"),
			want: Command{Op: OpAddService, Options: OptService | OptScheduler,
				Service: svc(tcp(vip, 80), "wrr"), Dest: service.Dest{Weight: 1}},
		},
		{
			name: "scheduler defaults to wlc",
			args: words("-A -t 192.0.2.100:80"),
			want: Command{Op: OpAddService, Options: OptService,
				Service: svc(tcp(vip, 80), "wlc"), Dest: service.Dest{Weight: 1}},
		},
		{
			name: "empty scheduler is wlc",
			args: []string{"-E", "-t", "192.0.2.100:80", "-s", ""},
			want: Command{Op: OpEditService, Options: OptService | OptScheduler,
				Service: svc(tcp(vip, 80), "wlc"), Dest: service.Dest{Weight: 1}},
		},
		{
			name: "bundled command and option, -p last without value",
			args: words("-At 192.0.2.100:80 -p"),
			want: Command{Op: OpAddService, Options: OptService | OptPersistent,
				Service: service.Service{Key: tcp(vip, 80), Scheduler: "wlc", Persistent: true, Timeout: 360, Netmask: 32},
				Dest:    service.Dest{Weight: 1}},
		},
		{
			name: "-p before an option has no value",
			args: words("-A -t 192.0.2.100:80 -p -s rr"),
			want: Command{Op: OpAddService, Options: OptService | OptPersistent | OptScheduler,
				Service: service.Service{Key: tcp(vip, 80), Scheduler: "rr", Persistent: true, Timeout: 360, Netmask: 32},
				Dest:    service.Dest{Weight: 1}},
		},
		{
			name: "port 0 persistent with a mask",
			args: words("-A -t 192.0.2.100:0 -p 600 -M 255.255.255.0"),
			want: Command{Op: OpAddService, Options: OptService | OptPersistent | OptNetmask,
				Service: service.Service{Key: tcp(vip, 0), Scheduler: "wlc", Persistent: true, Timeout: 600, Netmask: 24},
				Dest:    service.Dest{Weight: 1}},
		},
		{
			name: "ipv6 with prefix mask and sh flags",
			args: words("-A -u [2001:db8::100]:53 -p -M 64 -s sh -b sh-fallback,sh-port"),
			want: Command{Op: OpAddService, Options: OptService | OptPersistent | OptNetmask | OptScheduler | OptSchedFlags,
				Service: service.Service{Key: service.Key{Proto: service.UDP, Addr: vip6, Port: 53}, Scheduler: "sh", Flags: service.SchedFlag1 | service.SchedFlag2,
					Persistent: true, Timeout: 360, Netmask: 64},
				Dest: service.Dest{Weight: 1}},
		},
		{
			name: "-M before an ipv6 -t is overwritten by /128",
			args: words("-A -M 64 -p -t [2001:db8::100]:80"),
			want: Command{Op: OpAddService, Options: OptService | OptPersistent | OptNetmask,
				Service: service.Service{Key: tcp(vip6, 80), Scheduler: "wlc", Persistent: true, Timeout: 360, Netmask: 128},
				Dest:    service.Dest{Weight: 1}},
		},
		{
			name: "long options with = and one packet udp",
			args: words("--add-service --udp-service=192.0.2.100:53 --scheduler=mh --sched-flags mh-port --ops"),
			want: Command{Op: OpAddService, Options: OptService | OptScheduler | OptSchedFlags | OptOnePacket,
				Service: service.Service{Key: service.Key{Proto: service.UDP, Addr: vip, Port: 53}, Scheduler: "mh", Flags: service.SchedFlag2, OnePacket: true, Netmask: 32},
				Dest:    service.Dest{Weight: 1}},
		},
		{
			name: "inet_aton single number address",
			args: words("-A -t 3221226084:80"),
			want: Command{Op: OpAddService, Options: OptService,
				Service: svc(tcp(vip, 80), "wlc"), Dest: service.Dest{Weight: 1}},
		},
		{
			name: "flag-3 on any scheduler",
			args: words("-A -t 192.0.2.100:80 -s rr -b flag-1,flag-3"),
			want: Command{Op: OpAddService, Options: OptService | OptScheduler | OptSchedFlags,
				Service: service.Service{Key: tcp(vip, 80), Scheduler: "rr", Flags: service.SchedFlag1 | service.SchedFlag3, Netmask: 32},
				Dest:    service.Dest{Weight: 1}},
		},
		{
			name: "real server port forced to the service port",
			args: words("-a -t 192.0.2.100:80 -r 192.0.2.11:8080 -w 5"),
			want: Command{Op: OpAddServer, Options: OptService | OptServer | OptWeight,
				Service: service.Service{Key: tcp(vip, 80), Netmask: 32},
				Dest:    service.Dest{Addr: rip1, Port: 80, Weight: 5}, AskedPort: 8080, PortForced: true},
		},
		{
			name: "real server without port takes the service port",
			args: words("-a -t 192.0.2.100:80 -r 192.0.2.11 -g"),
			want: Command{Op: OpAddServer, Options: OptService | OptServer | OptForward,
				Service: service.Service{Key: tcp(vip, 80), Netmask: 32},
				Dest:    service.Dest{Addr: rip1, Port: 80, Weight: 1}, AskedPort: 80},
		},
		{
			name: "-r before -t is not a forced port",
			args: words("-a -r 192.0.2.11 -t 192.0.2.100:80"),
			want: Command{Op: OpAddServer, Options: OptService | OptServer,
				Service: service.Service{Key: tcp(vip, 80), Netmask: 32},
				Dest:    service.Dest{Addr: rip1, Port: 80, Weight: 1}, AskedPort: 80},
		},
		{
			name: "attached weight and thresholds",
			args: words("-e -t 192.0.2.100:80 -r 192.0.2.11 -w7 -x=100 -y 50"),
			want: Command{Op: OpEditServer, Options: OptService | OptServer | OptWeight | OptUThreshold | OptLThreshold,
				Service: service.Service{Key: tcp(vip, 80), Netmask: 32},
				Dest:    service.Dest{Addr: rip1, Port: 80, Weight: 7, UThreshold: 100, LThreshold: 50}, AskedPort: 80},
		},
		{
			name: "delete server keeps the asked port",
			args: words("-d -t 192.0.2.100:80 -r 192.0.2.11:8080"),
			want: Command{Op: OpDeleteServer, Options: OptService | OptServer,
				Service: service.Service{Key: tcp(vip, 80), Netmask: 32},
				Dest:    service.Dest{Addr: rip1, Port: 8080, Weight: 1}, AskedPort: 8080},
		},
		{
			name: "ipv6 real server",
			args: words("-a -t [2001:db8::100]:443 -r [2001:db8::11]:443 -w 0"),
			want: Command{Op: OpAddServer, Options: OptService | OptServer | OptWeight,
				Service: service.Service{Key: tcp(vip6, 443), Netmask: 128},
				Dest:    service.Dest{Addr: netip.MustParseAddr("2001:db8::11"), Port: 443}, AskedPort: 443},
		},
		{
			name: "bundled list numeric",
			args: words("-Ln"),
			want: Command{Op: OpList, Options: OptNumeric, Dest: service.Dest{Weight: 1}, Service: service.Service{Netmask: 32}},
		},
		{
			name: "list one service with stats and json",
			args: words("-l -t 192.0.2.100:80 --stats --exact --sort -j"),
			want: Command{Op: OpList, Options: OptService | OptStats | OptExact | OptJSON,
				Service: service.Service{Key: tcp(vip, 80), Netmask: 32}, Dest: service.Dest{Weight: 1}},
		},
		{
			name: "help ignores the rest",
			args: words("-h --bogus"),
			want: Command{Op: OpHelp, Dest: service.Dest{Weight: 1}},
		},
		{
			name: "set timeouts",
			args: words("--set 900 0 300"),
			want: Command{Op: OpSet, Timeouts: service.Timeouts{TCP: 900, UDP: 300}, Dest: service.Dest{Weight: 1}, Service: service.Service{Netmask: 32}},
		},
		{
			name: "options after -- are arguments",
			args: words("--set -- 10 20 30"),
			want: Command{Op: OpSet, Timeouts: service.Timeouts{TCP: 10, TCPFin: 20, UDP: 30}, Dest: service.Dest{Weight: 1}, Service: service.Service{Netmask: 32}},
		},
		{
			name: "zero one service",
			args: words("-Z -t 192.0.2.100:80"),
			want: Command{Op: OpZero, Options: OptService, Service: service.Service{Key: tcp(vip, 80), Netmask: 32}, Dest: service.Dest{Weight: 1}},
		},
		{
			name: "start daemon defaults",
			args: words("--start-daemon=backup --syncid 7"),
			want: Command{Op: OpStartDaemon, Options: OptSyncID, Daemon: Daemon{State: "backup", McastInterface: "eth0", SyncID: 7},
				Dest: service.Dest{Weight: 1}, Service: service.Service{Netmask: 32}},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := ParseCommand(tt.args)
			if err != nil {
				t.Fatalf("ParseCommand(%q): %v", tt.args, err)
			}
			if diff := cmp.Diff(&tt.want, got, addrCmp); diff != "" {
				t.Fatalf("ParseCommand(%q) (-want +got):\n%s", tt.args, diff)
			}
		})
	}
}

func TestParseCommandErrors(t *testing.T) {
	const (
		svc = "-t 192.0.2.100:80"
		rs  = "-a -t 192.0.2.100:80 -r 192.0.2.11"
	)
	tests := []struct {
		name string
		args []string
		msg  string
		code int
	}{
		{"option before command", words("-n -L"), tryHelp, 255},
		{"no option at all", words("foo"), tryHelp, 255},
		{"second command", words("-A " + svc + " -a"), "invalid option `-a'", 2},
		{"help after command", words("-L -h"), "invalid option `-h'", 2},
		{"all-digit host", words("-A -t 80"), "illegal virtual server address[:port] specified", 2},
		{"bad vip", words("-A -t 192.0.2.256:80"), "illegal virtual server address[:port] specified", 2},
		{"bad port", words("-A -t 192.0.2.100:65536"), "illegal virtual server address[:port] specified", 2},
		{"port names not resolved", words("-A -t 192.0.2.100:http"), "illegal virtual server address[:port] specified", 2},
		{"bracketed ipv6 needs a port", words("-A -t [2001:db8::1] -p"), "illegal virtual server address[:port] specified", 2},
		{"ipv6 zone", words("-A -t [fe80::1%eth0]:80"), "illegal virtual server address[:port] specified", 2},
		{"bracketed ipv4 loses its port", words("-A -t [192.0.2.100]:80"), "Zero port specified for non-persistent service", 2},
		{"bad rip", words("-a " + svc + " -r foo"), "illegal real server address[:port] specified", 2},
		{"bad mask", words("-A " + svc + " -p -M 255.255.256.0"), "illegal virtual server persistent mask specified", 2},
		{"ipv6 mask", words("-A -t [2001:db8::1]:80 -p -M 129"), "illegal ipv6 netmask specified", 2},
		{"ipv6 mask 0", words("-A -t [2001:db8::1]:80 -p -M /64"), "illegal ipv6 netmask specified", 2},
		{"weight too big", words(rs + " -w 65536"), "illegal weight specified", 2},
		{"weight negative", words(rs + " -w -1"), "illegal weight specified", 2},
		{"weight not a number", words(rs + " -w 1x"), "illegal weight specified", 2},
		{"u threshold", words(rs + " -x abc"), "illegal u_threshold specified", 2},
		{"l threshold", words(rs + " -y 2147483648"), "illegal l_threshold specified", 2},
		{"-p 0", words("-A " + svc + " -p 0"), "invalid timeout value `0' specified", 2},
		{"-p too long", words("-A " + svc + " -p 2678401"), "invalid timeout value `2678401' specified", 2},
		{"-p=", words("-A " + svc + " -p="), "invalid timeout value `' specified", 2},
		{"bad flag", words("-A " + svc + " -b foo"), "invalid scheduler flag `foo'", 2},
		{"only commas", words("-A " + svc + " -b ,,"), "invalid scheduler flag `,,'", 2},
		{"sh flag on wlc", words("-A " + svc + " -b sh-port"), "incompatible scheduler flag `sh-port'", 2},
		{"mh flag on sh", words("-A " + svc + " -s sh -b sh-port,mh-port"), "incompatible scheduler flag `mh-port'", 2},
		{"ops on tcp", words("-A " + svc + " -o"), "One-Packet Scheduling is only for UDP virtual services", 2},
		{"port 0 not persistent", words("-A -t 192.0.2.100"), "Zero port specified for non-persistent service", 2},
		{"missing -r", words("-a " + svc), "You need to supply the 'real-server' option for the 'add-server' command", 2},
		{"missing service", words("-D"), "You need to supply the 'service-address' option for the 'delete-service' command", 2},
		{"weight on -A", words("-A " + svc + " -w 1"), "Illegal 'weight' option with the 'add-service' command", 2},
		{"flags on -a", words(rs + " -b flag-1"), "Illegal 'sched-flags' option with the 'add-server' command", 2},
		{"json on -A", words("-A " + svc + " -j"), "Illegal 'json' option with the 'add-service' command", 2},
		{"list conflict", words("-L -c " + svc), "The option 'service-address' conflicts with the 'connection' option in the 'list' command", 2},
		{"list options conflict", words("-L -c --stats"), "options conflicts in the list command", 2},
		{"same option twice", words("-A " + svc + " -s rr -s wrr"), "multiple 'scheduler' options specified", 2},
		{"two forwarding methods", words(rs + " -g -g"), "multiple 'forwarding-method' options specified", 2},
		{"set needs three", words("--set 900 120"), "--set option requires 3 timeout values", 2},
		{"set out of range", words("--set 900 120 2678401"), "invalid timeout value `2678401' specified", 2},
		{"extra word", words("--set 900 120 300 5"), "unexpected argument 5", 2},
		{"stray word", words("-A " + svc + " foo"), "unexpected argument foo", 2},
		{"trailing comment", words("-A " + svc + " # web"), "unexpected argument #", 2},
		{"-6 without -f", words("-A -6 " + svc), "-6 used before -f\n", 2},
		{"mixed families", words("-a " + svc + " -r [2001:db8::11]:80"), "Different address family is allowed only for tunneling servers", 2},
		{"tunnel options", words(rs + " --tun-type gue"), "Tunnel options conflict with forward method", 2},
		{"start daemon", words("--start-daemon foo"), "illegal start-daemon parameter specified", 2},
		{"stop daemon", words("--stop-daemon foo"), "illegal start_daemon specified", 2},
		{"syncid", words("--start-daemon master --syncid 300"), "illegal syncid specified", 2},
		{"unknown long option", words("-A " + svc + " --bogus"), "--bogus: unknown option", 255},
		{"unknown short option", words("-Lq"), "-Lq: unknown option", 255},
		{"missing argument", words(rs + " -w"), "-w: missing argument", 255},
		{"unwanted argument", words("-L --numeric=1"), "--numeric=1: option does not take an argument", 255},
		{"fwmark value", words("-A -f 0"), "invalid fwmark value `0' specified", 2},
		{"fwmark refused", words("-A -f 1"), "udr forwards by protocol, address and port: -f (firewall mark services) is not supported", 2},
		{"nat refused", words(rs + " -m"), "udr forwards by direct routing only: -m (masquerading) is not supported", 2},
		{"tunnel refused", words(rs + " --ipip"), "udr forwards by direct routing only: -i (tunneling) is not supported", 2},
		{"sctp refused", words("-A --sctp-service 192.0.2.100:80"), "udr forwards TCP and UDP only: --sctp-service is not supported", 2},
		{"mask not a prefix", words("-A " + svc + " -p -M 255.0.255.0"), "udr supports persistence masks that are a prefix only: -M 255.0.255.0 is not one", 2},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cmd, err := ParseCommand(tt.args)
			var ue *UsageError
			if !errors.As(err, &ue) {
				t.Fatalf("ParseCommand(%q) = %+v, %v; want *UsageError %q", tt.args, cmd, err, tt.msg)
			}
			if ue.Error() != tt.msg || ue.ExitCode() != tt.code {
				t.Fatalf("ParseCommand(%q) error = %q exit %d, want %q exit %d",
					tt.args, ue.Error(), ue.ExitCode(), tt.msg, tt.code)
			}
			if cmd != nil {
				t.Fatalf("ParseCommand(%q) returned a command with its error", tt.args)
			}
		})
	}
}

func TestParseCommandDetail(t *testing.T) {
	tests := []struct {
		args   string
		detail string
	}{
		{"-a -t 192.0.2.100:80 -r 192.0.2.11 -w 70000", "weight 70000 out of range 0..65535"},
		{"-a -t 192.0.2.100:80 -r 192.0.2.11 -w x", `weight "x" is not a number`},
		{"-A -t 192.0.2.100:80 -b sh-port", "sh-port needs -s sh, the scheduler is wlc"},
		{"-A -t 192.0.2.100:80 -p 0", "timeout 0 out of range 1..2678400"},
	}
	for _, tt := range tests {
		_, err := ParseCommand(words(tt.args))
		var ue *UsageError
		if !errors.As(err, &ue) || ue.Detail != tt.detail {
			t.Errorf("ParseCommand(%q) = %#v, want detail %q", tt.args, err, tt.detail)
		}
	}
}

func TestLegalOptionsTable(t *testing.T) {
	// Rows transcribed from ipvsadm.c commands_v_options, one option per
	// column in OPT_ order; udr's json column is checked separately.
	want := map[Op]string{
		OpAddService:    "x x + _ _ _ x x x x x x x x x x x x x x x _ _ _ x x x x x x x x x x",
		OpList:          "_ 1 1 x x x x x x x x x 1 1 _ _ _ _ _ _ _ x x x x x x x _ x x x x x",
		OpAddServer:     "x x + x x x + _ _ _ _ x x x x x x x x x x x x x x x x x x _ _ _ _ _",
		OpStartDaemon:   "x x x x x x x x x x x _ x x x x x x x _ x x x x _ _ _ _ x x x x x x",
		OpZero:          "x x _ x x x x x x x x x x x x x x x x x x x x x x x x x x x x x x x",
		OpSave:          "_ x x x x x x x x x x x x x x x x x x x x x x x x x x x x x x x x x",
		OpStopDaemon:    "x x x x x x x x x x x x x x x x x x x _ x x x x x x x x x x x x x x",
		OpDeleteServer:  "x x + x x x + x x x x x x x x x x x x x x x x x x x x x x x x x x x",
		OpDeleteService: "x x + x x x x x x x x x x x x x x x x x x x x x x x x x x x x x x x",
	}
	for op, row := range want {
		got := strings.ReplaceAll(string(legalOptions[op-1][:numOptions-1]), " ", "_")
		if w := strings.ReplaceAll(row, " ", ""); got != w {
			t.Errorf("%s row = %s, want %s", op, got, w)
		}
	}
	if legalOptions[OpList-1][numOptions-1] != ' ' || legalOptions[OpAddService-1][numOptions-1] != 'x' {
		t.Errorf("json column: -L %q, -A %q; want optional on -L only",
			legalOptions[OpList-1][numOptions-1], legalOptions[OpAddService-1][numOptions-1])
	}
}

func words(s string) []string { return strings.Fields(s) }
