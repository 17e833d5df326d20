package flow

import (
	"net/netip"
	"testing"
)

func TestParseHeader(t *testing.T) {
	ipv4 := func(proto byte, frag uint16) []byte {
		return []byte{
			0x45, 0, 0, 40, 0, 0, byte(frag >> 8), byte(frag), 64, proto, 0, 0,
			192, 0, 2, 1, 198, 51, 100, 7,
			0x01, 0xbb, 0xc3, 0x50, // ports 443 > 50000
		}
	}
	eth := func(etype ...byte) []byte {
		return append([]byte{2, 0, 0, 0, 0, 1, 2, 0, 0, 0, 0, 2}, etype...)
	}
	ipv6 := append([]byte{0x60, 0, 0, 0, 0, 8, 17, 64},
		append(netip.MustParseAddr("2001:db8::1").AsSlice(), netip.MustParseAddr("2001:db8:1::7").AsSlice()...)...)
	ipv6 = append(ipv6, 0, 53, 0x9c, 0x40) // ports 53 > 40000
	v4src, v4dst := netip.MustParseAddr("192.0.2.1"), netip.MustParseAddr("198.51.100.7")
	for _, tt := range []struct {
		name   string
		proto  uint32
		h      []byte
		ok     bool
		dst    netip.Addr
		l4     uint8
		sp, dp uint16
	}{
		{"ethernet ipv4 tcp", 1, append(eth(0x08, 0), ipv4(6, 0)...), true, v4dst, 6, 443, 50000},
		{"802.1Q ipv4 udp", 1, append(eth(0x81, 0, 0, 100, 0x08, 0), ipv4(17, 0)...), true, v4dst, 17, 443, 50000},
		{"QinQ ipv4", 1, append(eth(0x88, 0xa8, 0, 1, 0x81, 0, 0, 2, 0x08, 0), ipv4(6, 0)...), true, v4dst, 6, 443, 50000},
		{"ipv4 later fragment: no ports", 1, append(eth(0x08, 0), ipv4(6, 185)...), true, v4dst, 6, 0, 0},
		{"ipv4 icmp: no ports", 11, ipv4(1, 0), true, v4dst, 1, 0, 0},
		{"raw ipv6 udp", 12, ipv6, true, netip.MustParseAddr("2001:db8:1::7"), 17, 53, 40000},
		{"ethernet ipv6", 1, append(eth(0x86, 0xdd), ipv6...), true, netip.MustParseAddr("2001:db8:1::7"), 17, 53, 40000},
		{"arp", 1, append(eth(0x08, 0x06), make([]byte, 28)...), false, netip.Addr{}, 0, 0, 0},
		{"ipv4 cut", 1, append(eth(0x08, 0), ipv4(6, 0)[:19]...), false, netip.Addr{}, 0, 0, 0},
		{"ipv4 without ports", 11, ipv4(6, 0)[:20], true, v4dst, 6, 0, 0},
		{"version 6 in an ipv4 ethertype", 1, append(eth(0x08, 0), ipv6...), false, netip.Addr{}, 0, 0, 0},
		{"ethernet cut", 1, eth(0x08), false, netip.Addr{}, 0, 0, 0},
		{"unknown header protocol", 99, ipv4(6, 0), false, netip.Addr{}, 0, 0, 0},
	} {
		var r Record
		ok := parseHeader(tt.proto, tt.h, &r)
		if ok != tt.ok {
			t.Errorf("%s: ok = %v, want %v", tt.name, ok, tt.ok)
			continue
		}
		if ok && (r.Dst != tt.dst || r.Proto != tt.l4 || r.SrcPort != tt.sp || r.DstPort != tt.dp) {
			t.Errorf("%s: %+v; want dst %s proto %d ports %d > %d", tt.name, r, tt.dst, tt.l4, tt.sp, tt.dp)
		}
		if ok && tt.dst.Is4() && r.Src != v4src {
			t.Errorf("%s: src %s", tt.name, r.Src)
		}
	}
}
