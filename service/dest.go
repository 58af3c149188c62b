package service

import (
	"net/netip"

	"github.com/udr-lb/udr/dest"
)

// DestKey returns the name under which the registry of live state
// (dest.Registry) knows real server d of service k.
func (k Key) DestKey(d Dest) dest.Key {
	return dest.Key{Proto: uint8(k.Proto), VIP: netip.AddrPortFrom(k.Addr, k.Port), Real: d.AddrPort()}
}

// KeyOf returns the service of real server k.
func KeyOf(k dest.Key) Key {
	return Key{Proto: Proto(k.Proto), Addr: k.VIP.Addr(), Port: k.VIP.Port()}
}
