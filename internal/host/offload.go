//go:build linux

package host

import (
	"encoding/binary"
	"fmt"
	"slices"
	"strings"
	"unsafe"

	"golang.org/x/sys/unix"
)

// Offloads are the interface offloads that change the size of the frames
// an AF_PACKET socket sees or sends. Each is a group of the interface's
// features (as `ethtool -k` names them) and reads as on when any feature of
// the group is active, as `ethtool -k` shows it.
type Offloads struct {
	GRO bool // generic receive offload: merges received TCP segments (rx-gro, rx-gro-hw, rx-gro-list)
	LRO bool // large receive offload: the NIC merges them (rx-lro)
	GSO bool // generic segmentation offload of local senders (tx-generic-segmentation)
	TSO bool // TCP segmentation offload of local senders (every tx-tcp*-segmentation)
}

// offloadGroup is the Offloads field a feature belongs to, or nil.
func offloadGroup(o *Offloads, feature string) *bool {
	switch {
	case strings.HasPrefix(feature, "rx-gro"):
		return &o.GRO
	case feature == "rx-lro":
		return &o.LRO
	case feature == "tx-generic-segmentation":
		return &o.GSO
	case strings.HasPrefix(feature, "tx-tcp") && strings.HasSuffix(feature, "-segmentation"):
		// tx-tcp-segmentation, tx-tcp6-, tx-tcp-ecn-, tx-tcp-mangleid-,
		// tx-tcp-accecn-segmentation, and any later one: the legacy
		// ETHTOOL_STSO command leaves the newer ones on, and
		// `ethtool -k` then still shows tcp-segmentation-offload on.
		return &o.TSO
	}
	return nil
}

// Constants of include/uapi/linux/ethtool.h that x/sys/unix lacks.
const (
	ethSSFeatures = 4  // ETH_SS_FEATURES: the string set of the feature names
	ethGStringLen = 32 // ETH_GSTRING_LEN
)

// features is an interface's feature words as ETHTOOL_GFEATURES returns
// them, with the features' names.
type features struct {
	names                        []string
	available, requested, active []uint32 // one bit per feature, 32 to a word
	changeable                   func(i int) bool
}

func (f *features) bit(words []uint32, i int) bool { return words[i/32]&(1<<(i%32)) != 0 }

// readFeatures reads the names and the state of ifname's features.
func readFeatures(fd int, ifname string) (*features, error) {
	// ETHTOOL_GSSET_INFO: struct ethtool_sset_info with one data word.
	info := struct {
		cmd, reserved uint32
		mask          uint64
		n             uint32
	}{cmd: unix.ETHTOOL_GSSET_INFO, mask: 1 << ethSSFeatures}
	if err := ethtoolIoctl(fd, ifname, unsafe.Pointer(&info)); err != nil {
		return nil, fmt.Errorf("feature count of %s: %w", ifname, err)
	}
	if info.mask&(1<<ethSSFeatures) == 0 || info.n == 0 || info.n > 4096 {
		return nil, fmt.Errorf("feature count of %s: the kernel gave %d", ifname, info.n)
	}
	n := int(info.n)
	// ETHTOOL_GSTRINGS: struct ethtool_gstrings, then n names.
	buf := make([]byte, 12+n*ethGStringLen)
	binary.NativeEndian.PutUint32(buf[0:], unix.ETHTOOL_GSTRINGS)
	binary.NativeEndian.PutUint32(buf[4:], ethSSFeatures)
	binary.NativeEndian.PutUint32(buf[8:], uint32(n))
	if err := ethtoolIoctl(fd, ifname, unsafe.Pointer(&buf[0])); err != nil {
		return nil, fmt.Errorf("feature names of %s: %w", ifname, err)
	}
	f := &features{names: make([]string, n)}
	for i := range n {
		s := buf[12+i*ethGStringLen : 12+(i+1)*ethGStringLen]
		if j := slices.Index(s, 0); j >= 0 {
			s = s[:j]
		}
		f.names[i] = string(s)
	}
	// ETHTOOL_GFEATURES: struct ethtool_gfeatures, then one block of
	// available, requested, active and never_changed per 32 features.
	words := (n + 31) / 32
	g := make([]uint32, 2+4*words)
	g[0], g[1] = unix.ETHTOOL_GFEATURES, uint32(words)
	if err := ethtoolIoctl(fd, ifname, unsafe.Pointer(&g[0])); err != nil {
		return nil, fmt.Errorf("features of %s: %w", ifname, err)
	}
	for w := range words {
		b := g[2+4*w:]
		f.available = append(f.available, b[0])
		f.requested = append(f.requested, b[1])
		f.active = append(f.active, b[2])
	}
	return f, nil
}

// setFeatures asks for the features named in on and off (ETHTOOL_SFEATURES):
// a feature the driver cannot change is left as it is.
func setFeatures(fd int, ifname string, f *features, on, off []string) error {
	words := len(f.active)
	s := make([]uint32, 2+2*words)
	s[0], s[1] = unix.ETHTOOL_SFEATURES, uint32(words)
	for i, name := range f.names {
		want := slices.Contains(on, name)
		if !want && !slices.Contains(off, name) {
			continue
		}
		if !f.bit(f.available, i) {
			continue // fixed: the kernel would refuse the whole request
		}
		s[2+2*(i/32)] |= 1 << (i % 32) // valid
		if want {
			s[3+2*(i/32)] |= 1 << (i % 32) // requested
		}
	}
	if err := ethtoolIoctl(fd, ifname, unsafe.Pointer(&s[0])); err != nil {
		return fmt.Errorf("set features of %s: %w", ifname, err)
	}
	return nil
}

// Features returns the active state of every feature of ifname, by the
// name `ethtool -k` shows.
func Features(ifname string) (map[string]bool, error) {
	fd, err := ethtoolSocket()
	if err != nil {
		return nil, err
	}
	defer unix.Close(fd)
	f, err := readFeatures(fd, ifname)
	if err != nil {
		return nil, err
	}
	m := make(map[string]bool, len(f.names))
	for i, name := range f.names {
		m[name] = f.bit(f.active, i)
	}
	return m, nil
}

// GetOffloads reads the offloads of ifname through the SIOCETHTOOL ioctl.
func GetOffloads(ifname string) (Offloads, error) {
	m, err := Features(ifname)
	if err != nil {
		return Offloads{}, err
	}
	var o Offloads
	for name, on := range m {
		if p := offloadGroup(&o, name); p != nil && on {
			*p = true
		}
	}
	return o, nil
}

// OffloadChange is what DisableOffloads did to an interface, read back from
// the kernel afterwards, and what Restore undoes.
type OffloadChange struct {
	Iface string
	// Off are the features that were active and are off now: those of
	// the offloads and any the kernel turned off with them.
	Off []string
	// Stuck are the offload features still active: the driver does not
	// let them change. Frames larger than the MTU may still come.
	Stuck []string
	// cleared are the features whose requested bit was set and that
	// DisableOffloads cleared: Restore sets them again.
	cleared []string
}

// Changed reports whether DisableOffloads changed anything to restore.
func (c OffloadChange) Changed() bool { return len(c.cleared) > 0 }

// Cleared returns the features whose requested bit DisableOffloads
// cleared: what Restore sets again.
func (c OffloadChange) Cleared() []string { return slices.Clone(c.cleared) }

// maxAdopted bounds the features Adopt takes: an interface has fewer than
// 100 (ETH_SS_FEATURES), and the list may come from another process.
const maxAdopted = 256

// Adopt makes c restore the features another udr cleared on c.Iface and
// left off for this one, which found them off (a hand-off): the one that
// stops last turns them on again. Names the interface does not have are
// ignored by Restore.
func (c *OffloadChange) Adopt(features []string) {
	for _, f := range features {
		if len(c.cleared) >= maxAdopted {
			return
		}
		if f == "" || slices.Contains(c.cleared, f) {
			continue
		}
		c.cleared = append(c.cleared, f)
		if !slices.Contains(c.Off, f) {
			c.Off = append(c.Off, f)
		}
	}
}

// DisableOffloads turns off the features of GRO, LRO, TSO and GSO on
// ifname, as `ethtool -K ifname gro off lro off tso off gso off` does but
// without the ethtool binary, and reports what is off now and what stayed
// on, as read back from the kernel. Without them, the socket could receive
// merged frames larger than the MTU, which cannot be forwarded. It is
// idempotent: a second call changes nothing and has nothing to restore.
func DisableOffloads(ifname string) (OffloadChange, error) {
	c := OffloadChange{Iface: ifname}
	fd, err := ethtoolSocket()
	if err != nil {
		return c, err
	}
	defer unix.Close(fd)
	before, err := readFeatures(fd, ifname)
	if err != nil {
		return c, err
	}
	var o Offloads
	for i, name := range before.names {
		if offloadGroup(&o, name) != nil && before.bit(before.available, i) && before.bit(before.requested, i) {
			c.cleared = append(c.cleared, name)
		}
	}
	if len(c.cleared) > 0 {
		if err := setFeatures(fd, ifname, before, nil, c.cleared); err != nil {
			return c, err
		}
	}
	after, err := readFeatures(fd, ifname)
	if err != nil {
		return c, err
	}
	for i, name := range after.names {
		was, is := before.bit(before.active, i), after.bit(after.active, i)
		if was && !is {
			c.Off = append(c.Off, name) // any feature: those that depend on an offload too
		}
		if is && offloadGroup(&o, name) != nil {
			c.Stuck = append(c.Stuck, name)
		}
	}
	return c, nil
}

// Restore asks again for the features DisableOffloads turned off and
// returns those active again, read back from the kernel, and those that
// did not come back (the kernel may keep a feature off that another one it
// depends on disables).
func (c OffloadChange) Restore() (on, off []string, err error) {
	if !c.Changed() {
		return nil, nil, nil
	}
	fd, err := ethtoolSocket()
	if err != nil {
		return nil, nil, err
	}
	defer unix.Close(fd)
	f, err := readFeatures(fd, c.Iface)
	if err != nil {
		return nil, nil, err
	}
	if err := setFeatures(fd, c.Iface, f, c.cleared, nil); err != nil {
		return nil, nil, err
	}
	if f, err = readFeatures(fd, c.Iface); err != nil {
		return nil, nil, err
	}
	for i, name := range f.names {
		if !slices.Contains(c.Off, name) {
			continue
		}
		if f.bit(f.active, i) {
			on = append(on, name)
		} else {
			off = append(off, name)
		}
	}
	return on, off, nil
}

// ethtoolNames are the names `ethtool -k` shows for features that it
// shows under their legacy names (ethtool's off_flag_def).
var ethtoolNames = map[string]string{
	"rx-gro":                  "generic-receive-offload",
	"rx-lro":                  "large-receive-offload",
	"tx-generic-segmentation": "generic-segmentation-offload",
	"rx-checksum":             "rx-checksumming",
	"tx-scatter-gather":       "scatter-gather",
	"rx-vlan-hw-parse":        "rx-vlan-offload",
	"tx-vlan-hw-insert":       "tx-vlan-offload",
	"rx-ntuple-filter":        "ntuple-filters",
	"rx-hashing":              "receive-hashing",
}

// EthtoolNames returns features by the names `ethtool -k` shows them with,
// so that a log line can be checked against its output.
func EthtoolNames(features []string) []string {
	out := make([]string, len(features))
	for i, f := range features {
		if n, ok := ethtoolNames[f]; ok {
			f = n
		}
		out[i] = f
	}
	return out
}

// setOffload turns the features of one offload group ("gro", "lro", "tso",
// "gso") on or off; tests use it to prepare an interface.
func setOffload(ifname, group string, on bool) error {
	fd, err := ethtoolSocket()
	if err != nil {
		return err
	}
	defer unix.Close(fd)
	f, err := readFeatures(fd, ifname)
	if err != nil {
		return err
	}
	var o Offloads
	fields := map[string]*bool{"gro": &o.GRO, "lro": &o.LRO, "tso": &o.TSO, "gso": &o.GSO}
	field, ok := fields[group]
	if !ok {
		return fmt.Errorf("offload %q: unknown", group)
	}
	var names []string
	for _, name := range f.names {
		if offloadGroup(&o, name) == field {
			names = append(names, name)
		}
	}
	if on {
		return setFeatures(fd, ifname, f, names, nil)
	}
	return setFeatures(fd, ifname, f, nil, names)
}

// ethtoolSocket opens the socket that carries SIOCETHTOOL requests; any
// socket of the namespace will do.
func ethtoolSocket() (int, error) {
	fd, err := unix.Socket(unix.AF_INET, unix.SOCK_DGRAM|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		return -1, fmt.Errorf("ethtool socket: %w", err)
	}
	return fd, nil
}

// ifreqData is struct ifreq with its ifr_data member, the pointer that
// SIOCETHTOOL reads.
type ifreqData struct {
	name [unix.IFNAMSIZ]byte
	data unsafe.Pointer
	_    [24 - unsafe.Sizeof(uintptr(0))]byte // ifreq's union is 24 bytes
}

// ethtoolIoctl issues one SIOCETHTOOL request on ifname whose command
// structure is at data.
func ethtoolIoctl(fd int, ifname string, data unsafe.Pointer) error {
	if len(ifname) == 0 || len(ifname) >= unix.IFNAMSIZ {
		return fmt.Errorf("interface name %q: want 1-%d bytes", ifname, unix.IFNAMSIZ-1)
	}
	var ifr ifreqData
	copy(ifr.name[:], ifname)
	ifr.data = data
	_, _, errno := unix.Syscall(unix.SYS_IOCTL, uintptr(fd), unix.SIOCETHTOOL, uintptr(unsafe.Pointer(&ifr)))
	if errno != 0 {
		return errno
	}
	return nil
}
