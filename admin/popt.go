package admin

import "strings"

// This file reproduces the part of popt (poptGetNextOpt, popt 1.18) that
// ipvsadm relies on, so that udr reads a command line as ipvsadm does:
// bundled short options ("-Ln", "-At"), attached arguments ("-w5", "-w=5",
// "--weight=5"), an optional argument that is skipped when the next word
// starts with '-' ("-p -M ..."), "--" ending the options, and words that are
// not options kept aside as "leftovers" wherever they appear.

type argKind uint8

const (
	argNone argKind = iota
	argRequired
	argOptional
)

// optID names an option of ipvsadm's options_table. Short options use
// their letter; the others use ids above the byte range, as ipvsadm's TAG_s.
type optID int

const (
	tagSet optID = 128 + iota
	tagStartDaemon
	tagStopDaemon
	tagMcastInterface
	tagTimeout
	tagDaemon
	tagStats
	tagRate
	tagThresholds
	tagPersistentConn
	tagSort
	tagNoSort
	tagPE
	tagSCTP
	tagMcastGroup
	tagMcastPort
	tagMcastTTL
	tagSyncMaxLen
	tagTunInfo
	tagTunType
	tagTunPort
	tagTunNoCsum
	tagTunCsum
	tagTunRemCsum
	tagSyncID
)

type optDef struct {
	long  string
	short byte
	arg   argKind
	id    optID
}

// optionsTable is ipvsadm's options_table (parse_options), plus udr's -j.
var optionsTable = []optDef{
	{"add-service", 'A', argNone, 'A'},
	{"edit-service", 'E', argNone, 'E'},
	{"delete-service", 'D', argNone, 'D'},
	{"clear", 'C', argNone, 'C'},
	{"list", 'L', argNone, 'L'},
	{"list", 'l', argNone, 'l'},
	{"zero", 'Z', argNone, 'Z'},
	{"add-server", 'a', argNone, 'a'},
	{"edit-server", 'e', argNone, 'e'},
	{"delete-server", 'd', argNone, 'd'},
	{"set", 0, argNone, tagSet},
	{"help", 'h', argNone, 'h'},
	{"version", 'v', argNone, 'v'},
	{"restore", 'R', argNone, 'R'},
	{"save", 'S', argNone, 'S'},
	{"start-daemon", 0, argRequired, tagStartDaemon},
	{"stop-daemon", 0, argRequired, tagStopDaemon},
	{"tcp-service", 't', argRequired, 't'},
	{"udp-service", 'u', argRequired, 'u'},
	{"sctp-service", 0, argRequired, tagSCTP},
	{"fwmark-service", 'f', argRequired, 'f'},
	{"scheduler", 's', argRequired, 's'},
	{"persistent", 'p', argOptional, 'p'},
	{"netmask", 'M', argRequired, 'M'},
	{"real-server", 'r', argRequired, 'r'},
	{"masquerading", 'm', argNone, 'm'},
	{"ipip", 'i', argNone, 'i'},
	{"gatewaying", 'g', argNone, 'g'},
	{"weight", 'w', argRequired, 'w'},
	{"u-threshold", 'x', argRequired, 'x'},
	{"l-threshold", 'y', argRequired, 'y'},
	{"numeric", 'n', argNone, 'n'},
	{"connection", 'c', argNone, 'c'},
	{"mcast-interface", 0, argRequired, tagMcastInterface},
	{"syncid", 0, argRequired, tagSyncID},
	{"timeout", 0, argNone, tagTimeout},
	{"daemon", 0, argNone, tagDaemon},
	{"stats", 0, argNone, tagStats},
	{"rate", 0, argNone, tagRate},
	{"thresholds", 0, argNone, tagThresholds},
	{"persistent-conn", 0, argNone, tagPersistentConn},
	{"nosort", 0, argNone, tagNoSort},
	{"sort", 0, argNone, tagSort},
	{"exact", 'X', argNone, 'X'},
	{"ipv6", '6', argNone, '6'},
	{"ops", 'o', argNone, 'o'},
	{"pe", 0, argRequired, tagPE},
	{"sched-flags", 'b', argRequired, 'b'},
	{"mcast-group", 0, argRequired, tagMcastGroup},
	{"mcast-port", 0, argRequired, tagMcastPort},
	{"mcast-ttl", 0, argRequired, tagMcastTTL},
	{"sync-maxlen", 0, argRequired, tagSyncMaxLen},
	{"tun-info", 0, argNone, tagTunInfo},
	{"tun-type", 0, argRequired, tagTunType},
	{"tun-port", 0, argRequired, tagTunPort},
	{"tun-nocsum", 0, argNone, tagTunNoCsum},
	{"tun-csum", 0, argNone, tagTunCsum},
	{"tun-remcsum", 0, argNone, tagTunRemCsum},
	{"json", 'j', argNone, 'j'},
}

// popt errors and their poptStrerror texts.
type poptErr int

const (
	poptOK poptErr = iota
	poptDone
	poptNoArg
	poptUnwantedArg
	poptBadOpt
)

func (e poptErr) String() string {
	switch e {
	case poptNoArg:
		return "missing argument"
	case poptUnwantedArg:
		return "option does not take an argument"
	case poptBadOpt:
		return "unknown option"
	}
	return "unknown error"
}

// popt walks a command line as poptGetNextOpt does.
type popt struct {
	args      []string
	next      int    // index of the next word
	charArg   string // rest of a bundle of short options; "" when none
	rest      bool   // "--" seen: every later word is a leftover
	leftovers []string
}

// nextOpt returns the next option and its argument (nil when an optional
// argument is absent or the option takes none).
func (p *popt) nextOpt() (*optDef, *string, poptErr) {
	for {
		var opt *optDef
		var longArg *string
		if p.charArg == "" {
			if p.next == len(p.args) {
				return nil, nil, poptDone
			}
			w := p.args[p.next]
			p.next++
			if p.rest || w == "" || w[0] != '-' || w == "-" {
				p.leftovers = append(p.leftovers, w)
				continue
			}
			if w == "--" {
				p.rest = true
				continue
			}
			if w[1] == '-' {
				name, val, eq := strings.Cut(w[2:], "=")
				if opt = findLong(name); opt == nil {
					return nil, nil, poptBadOpt
				}
				if eq {
					longArg = &val
				}
			} else {
				// popt tries a single-dash word as a long option only for
				// options flagged ONEDASH; ipvsadm has none.
				p.charArg = w[1:]
			}
		}
		if p.charArg != "" {
			if opt = findShort(p.charArg[0]); opt == nil {
				p.charArg = ""
				return nil, nil, poptBadOpt
			}
			p.charArg = p.charArg[1:]
		}

		if opt.arg == argNone {
			if longArg != nil || strings.HasPrefix(p.charArg, "=") {
				return nil, nil, poptUnwantedArg
			}
			return opt, nil, poptOK
		}
		switch {
		case longArg != nil:
		case p.charArg != "":
			v := strings.TrimPrefix(p.charArg, "=")
			longArg, p.charArg = &v, ""
		case p.next == len(p.args):
			if opt.arg != argOptional {
				return nil, nil, poptNoArg
			}
		case opt.arg == argOptional && strings.HasPrefix(p.args[p.next], "-"):
		default:
			v := p.args[p.next]
			p.next++
			longArg = &v
		}
		return opt, longArg, poptOK
	}
}

// badOption is poptBadOption: the word that held the offending option.
func (p *popt) badOption() string { return p.args[p.next-1] }

// arg returns the next leftover word, as poptGetArg.
func (p *popt) arg() (string, bool) {
	if len(p.leftovers) == 0 {
		return "", false
	}
	a := p.leftovers[0]
	p.leftovers = p.leftovers[1:]
	return a, true
}

func findLong(name string) *optDef {
	for i := range optionsTable {
		if optionsTable[i].long == name {
			return &optionsTable[i]
		}
	}
	return nil
}

func findShort(c byte) *optDef {
	for i := range optionsTable {
		if c != 0 && optionsTable[i].short == c {
			return &optionsTable[i]
		}
	}
	return nil
}
