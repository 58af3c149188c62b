package udr
import (
 _ "github.com/gopacket/gopacket"
 _ "github.com/gopacket/gopacket/layers"
 _ "github.com/gopacket/gopacket/pcapgo"
 _ "github.com/mdlayher/packet"
 _ "github.com/mdlayher/arp"
 _ "github.com/mdlayher/ndp"
 _ "github.com/vishvananda/netlink"
 _ "github.com/vishvananda/netns"
 _ "golang.org/x/sys/unix"
 _ "golang.org/x/net/bpf"
 _ "github.com/google/go-cmp/cmp"
)

