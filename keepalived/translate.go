package keepalived

import (
	"errors"
	"fmt"
	"net/netip"
	"strings"
	"time"
)

// Options are what a keepalived.conf does not say.
type Options struct {
	// Interface is the director's interface (udr.yaml's interface); ""
	// writes a placeholder that udr run refuses.
	Interface string
}

// PlaceholderInterface is the interface written when Options gives none.
const PlaceholderInterface = "CHANGE-ME"

// Result is a keepalived.conf translated.
type Result struct {
	YAML string // udr.yaml
	// Notice names, in one line, the blocks skipped (global_defs,
	// vrrp_*, ...); "" when there were none.
	Notice string
	// Warnings are about what keepalived itself ignores, or what udr
	// does not do exactly as keepalived would, each "file:line: ...".
	Warnings []string
}

// Import reads the keepalived.conf at path (Parse) and translates it.
func Import(path string, opt Options) (*Result, error) {
	stmts, warnings, err := Parse(path)
	if err != nil {
		return nil, err
	}
	r, err := Translate(stmts, path, opt)
	if r != nil {
		r.Warnings = append(warnings, r.Warnings...)
	}
	return r, err
}

// Limits of the translation.
const (
	MaxServices = 4096  // services written, group ranges expanded
	MaxServers  = 65536 // real servers written, over all services
	maxTimer    = time.Hour
)

// Defaults of keepalived's checkers (keepalived.conf(5)).
const (
	defaultDelayLoop      = 60 * time.Second
	defaultConnectTimeout = 5 * time.Second
	defaultRetry          = 1
	defaultMiscRetry      = 0
	defaultDelayRetry     = time.Second
	minRetryInterval      = 100 * time.Millisecond
	defaultDNSPort        = 53
	defaultDNSName        = "."
	defaultDNSType        = "SOA"
)

// skippedBlocks are the top-level keywords of keepalived.conf that are not
// about the virtual servers: VRRP, BFD, global settings. They are skipped
// with one notice.
var skippedBlocks = map[string]bool{
	"global_defs": true, "vrrp_script": true, "vrrp_sync_group": true, "vrrp_instance": true,
	"vrrp_track_process": true, "vrrp_track_file": true, "track_file": true, "track_process": true,
	"static_ipaddress": true, "static_routes": true, "static_rules": true, "linkbeat_interfaces": true,
	"garp_group": true, "bfd_instance": true, "SSL": true, "net_namespace": true,
	"net_namespace_ipvs": true, "instance": true, "use_pid_dir": true, "namespace_with_ipsets": true,
}

type translator struct {
	opt      Options
	source   string
	errs     []error
	warnings []string
	skipped  []string
	groups   map[string]*Stmt
	out      []service
	nservers int // real servers of out
}

type service struct {
	st          *Stmt
	proto       string
	addr        netip.Addr
	port        uint16
	scheduler   string
	flags       []string
	persistence bool
	timeout     uint32
	netmask     int // -1: the default
	onePacket   bool
	servers     []server
	sorry       *sorryServer
	quorum      int64 // 0: none written (keepalived's default 1)
	hysteresis  int64
}

type sorryServer struct {
	st      *Stmt
	addr    netip.Addr
	port    uint16 // as written
	inhibit bool
}

type server struct {
	st     *Stmt
	addr   netip.Addr
	weight int
	upper  uint32
	lower  uint32
	check  *check
}

func (t *translator) errorf(st *Stmt, format string, args ...any) {
	t.errs = append(t.errs, fmt.Errorf("%s: "+format, append([]any{st.At()}, args...)...))
}

func (t *translator) warnf(st *Stmt, format string, args ...any) {
	t.warnings = append(t.warnings, fmt.Sprintf("%s: "+format, append([]any{st.At()}, args...)...))
}

// Translate turns the statements of a keepalived.conf (Parse), named
// source, into udr.yaml. Every problem is reported, joined, each naming
// its file and line; on error the Result holds the warnings only.
func Translate(stmts []*Stmt, source string, opt Options) (*Result, error) {
	t := &translator{opt: opt, source: source, groups: make(map[string]*Stmt)}
	var vss []*Stmt
	for _, st := range stmts {
		kw := st.Keyword()
		switch {
		case skippedBlocks[kw] || strings.HasPrefix(kw, "vrrp_"):
			t.skipped = append(t.skipped, fmt.Sprintf("%s (%s)", kw, st.At()))
		case kw == "virtual_server_group":
			t.group(st)
		case kw == "virtual_server":
			vss = append(vss, st)
		default:
			t.errorf(st, "%s: unknown keyword", kw)
		}
	}
	for _, st := range vss {
		if len(t.out) > MaxServices || t.nservers > MaxServers {
			break
		}
		t.virtualServer(st)
	}
	if len(t.out) > MaxServices {
		t.errs = append(t.errs, fmt.Errorf("%s: more than %d services: udr reads no more", source, MaxServices))
	}
	if t.nservers > MaxServers {
		t.errs = append(t.errs, fmt.Errorf("%s: more than %d real servers over all services: udr reads no more", source, MaxServers))
	}
	r := &Result{Warnings: t.warnings}
	if len(t.skipped) > 0 {
		r.Notice = fmt.Sprintf("%s: skipped %s: udr takes only the virtual servers of a keepalived.conf (VRRP stays keepalived's: see udr run --standby)",
			source, strings.Join(t.skipped, ", "))
	}
	if len(t.errs) > 0 {
		return r, errors.Join(t.errs...)
	}
	r.YAML = t.yaml()
	return r, nil
}
