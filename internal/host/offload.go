//go:build linux

package host

import (
	"errors"
	"fmt"
	"unsafe"

	"golang.org/x/sys/unix"
)

// Offloads are the interface offloads that change the size of the frames
// an AF_PACKET socket sees or sends.
type Offloads struct {
	GRO bool // generic receive offload: merges received TCP segments
	LRO bool // large receive offload: the NIC merges them
	GSO bool // generic segmentation offload (local senders)
	TSO bool // TCP segmentation offload (local senders)
}

// ethFlagLRO is ETH_FLAG_LRO in the ETHTOOL_GFLAGS word
// (include/uapi/linux/ethtool.h); x/sys/unix does not define it.
const ethFlagLRO = 1 << 15

// ethtoolValue is struct ethtool_value (include/uapi/linux/ethtool.h).
type ethtoolValue struct {
	cmd  uint32
	data uint32
}

// ifreqData is struct ifreq with its ifr_data member, the pointer that
// SIOCETHTOOL reads.
type ifreqData struct {
	name [unix.IFNAMSIZ]byte
	data unsafe.Pointer
	_    [24 - unsafe.Sizeof(uintptr(0))]byte // ifreq's union is 24 bytes
}

// offload names one offload and its legacy ethtool get/set commands.
type offload struct {
	name     string
	get, set uint32
	flag     uint32 // for LRO: the bit in the GFLAGS/SFLAGS word
	field    func(*Offloads) *bool
}

var offloads = []offload{
	{name: "gro", get: unix.ETHTOOL_GGRO, set: unix.ETHTOOL_SGRO, field: func(o *Offloads) *bool { return &o.GRO }},
	{name: "lro", get: unix.ETHTOOL_GFLAGS, set: unix.ETHTOOL_SFLAGS, flag: ethFlagLRO, field: func(o *Offloads) *bool { return &o.LRO }},
	{name: "tso", get: unix.ETHTOOL_GTSO, set: unix.ETHTOOL_STSO, field: func(o *Offloads) *bool { return &o.TSO }},
	{name: "gso", get: unix.ETHTOOL_GGSO, set: unix.ETHTOOL_SGSO, field: func(o *Offloads) *bool { return &o.GSO }},
}

// GetOffloads reads the offloads of ifname through the SIOCETHTOOL ioctl.
// An offload the driver does not report (EOPNOTSUPP) reads as off.
func GetOffloads(ifname string) (Offloads, error) {
	fd, err := ethtoolSocket()
	if err != nil {
		return Offloads{}, err
	}
	defer unix.Close(fd)
	var o Offloads
	for _, off := range offloads {
		v, err := ethtool(fd, ifname, off.get, 0)
		if errors.Is(err, unix.EOPNOTSUPP) {
			continue
		}
		if err != nil {
			return Offloads{}, fmt.Errorf("get %s of %s: %w", off.name, ifname, err)
		}
		*off.field(&o) = isOn(off, v)
	}
	return o, nil
}

// DisableOffloads turns GRO, LRO, TSO and GSO off on ifname, as
// `ethtool -K ifname gro off lro off tso off gso off` does but without the
// ethtool binary, and returns the names of the offloads it changed (for the
// caller to log). Without them, the socket could receive merged frames
// larger than the MTU, which cannot be forwarded. It is idempotent.
func DisableOffloads(ifname string) (changed []string, err error) {
	fd, err := ethtoolSocket()
	if err != nil {
		return nil, err
	}
	defer unix.Close(fd)
	for _, off := range offloads {
		v, err := ethtool(fd, ifname, off.get, 0)
		if errors.Is(err, unix.EOPNOTSUPP) {
			continue
		}
		if err != nil {
			return changed, fmt.Errorf("get %s of %s: %w", off.name, ifname, err)
		}
		if !isOn(off, v) {
			continue
		}
		nv := uint32(0)
		if off.flag != 0 {
			nv = v &^ off.flag
		}
		if _, err := ethtool(fd, ifname, off.set, nv); err != nil {
			return changed, fmt.Errorf("turn %s off on %s: %w", off.name, ifname, err)
		}
		changed = append(changed, off.name)
	}
	return changed, nil
}

// setOffload turns one offload on or off; tests use it to prepare an
// interface.
func setOffload(ifname, name string, on bool) error {
	fd, err := ethtoolSocket()
	if err != nil {
		return err
	}
	defer unix.Close(fd)
	for _, off := range offloads {
		if off.name != name {
			continue
		}
		v := uint32(0)
		if on {
			v = 1
		}
		if off.flag != 0 {
			cur, err := ethtool(fd, ifname, off.get, 0)
			if err != nil {
				return err
			}
			v = cur &^ off.flag
			if on {
				v |= off.flag
			}
		}
		_, err := ethtool(fd, ifname, off.set, v)
		return err
	}
	return fmt.Errorf("offload %q: unknown", name)
}

func isOn(off offload, v uint32) bool {
	if off.flag != 0 {
		return v&off.flag != 0
	}
	return v != 0
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

// ethtool issues one ethtool_value command on ifname and returns the value
// the kernel wrote back.
func ethtool(fd int, ifname string, cmd, data uint32) (uint32, error) {
	if len(ifname) == 0 || len(ifname) >= unix.IFNAMSIZ {
		return 0, fmt.Errorf("interface name %q: want 1-%d bytes", ifname, unix.IFNAMSIZ-1)
	}
	v := ethtoolValue{cmd: cmd, data: data}
	var ifr ifreqData
	copy(ifr.name[:], ifname)
	ifr.data = unsafe.Pointer(&v)
	_, _, errno := unix.Syscall(unix.SYS_IOCTL, uintptr(fd), unix.SIOCETHTOOL, uintptr(unsafe.Pointer(&ifr)))
	if errno != 0 {
		return 0, errno
	}
	return v.data, nil
}
