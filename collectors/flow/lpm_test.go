package flow

import (
	"encoding/binary"
	"fmt"
	"math/rand/v2"
	"net/netip"
	"testing"
)

func TestPrefixTable(t *testing.T) {
	prefixes := []netip.Prefix{
		netip.MustParsePrefix("198.51.100.0/24"),
		netip.MustParsePrefix("198.51.100.128/25"),
		netip.MustParsePrefix("198.51.100.200/32"),
		netip.MustParsePrefix("10.0.0.0/8"),
		netip.MustParsePrefix("0.0.0.0/0"),
		netip.MustParsePrefix("2001:db8::/32"),
		netip.MustParsePrefix("2001:db8:1::/48"),
		netip.MustParsePrefix("2001:db8:1:0:8000::/65"),
		netip.MustParsePrefix("2001:db8:1::1/128"),
	}
	tab := newPrefixTable(prefixes)
	for _, tt := range []struct {
		addr string
		want string // "" for no match
	}{
		{"198.51.100.1", "198.51.100.0/24"},
		{"198.51.100.127", "198.51.100.0/24"},
		{"198.51.100.128", "198.51.100.128/25"},
		{"198.51.100.200", "198.51.100.200/32"},
		{"198.51.100.201", "198.51.100.128/25"},
		{"10.255.0.1", "10.0.0.0/8"},
		{"203.0.113.1", "0.0.0.0/0"},
		{"::ffff:198.51.100.1", "198.51.100.0/24"},
		{"2001:db8:2::1", "2001:db8::/32"},
		{"2001:db8:1::2", "2001:db8:1::/48"},
		{"2001:db8:1::1", "2001:db8:1::1/128"},
		{"2001:db8:1:0:8000::1", "2001:db8:1:0:8000::/65"},
		{"2001:db8:1:0:7fff::1", "2001:db8:1::/48"},
		{"2001:db9::1", ""},
	} {
		i, ok := tab.lookup(netip.MustParseAddr(tt.addr))
		got := ""
		if ok {
			got = prefixes[i].String()
		}
		if got != tt.want {
			t.Errorf("lookup(%s) = %q, want %q", tt.addr, got, tt.want)
		}
	}
	if _, ok := tab.lookup(netip.Addr{}); ok {
		t.Error("lookup(zero Addr) matched")
	}
}

// TestPrefixTableRandom checks the table against a linear scan.
func TestPrefixTableRandom(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	prefixes := randomPrefixes(rng, 2000)
	tab := newPrefixTable(prefixes)
	for range 20000 {
		a := randomAddr(rng, rng.IntN(2) == 0)
		want, wantOK := -1, false
		for i, p := range prefixes {
			if p.Contains(a) && (!wantOK || p.Bits() > prefixes[want].Bits()) {
				want, wantOK = i, true
			}
		}
		got, ok := tab.lookup(a)
		if ok != wantOK || (ok && got != want) {
			t.Fatalf("lookup(%s) = %d, %v; want %d, %v", a, got, ok, want, wantOK)
		}
	}
}

// randomPrefixes returns n distinct prefixes, half IPv4 (/8 to /32),
// half IPv6 (/16 to /128), clustered so that they nest.
func randomPrefixes(rng *rand.Rand, n int) []netip.Prefix {
	seen := make(map[netip.Prefix]bool)
	var out []netip.Prefix
	for len(out) < n {
		v4 := len(out)%2 == 0
		var p netip.Prefix
		if v4 {
			p = netip.PrefixFrom(randomAddr(rng, true), 8+rng.IntN(25)).Masked()
		} else {
			p = netip.PrefixFrom(randomAddr(rng, false), 16+rng.IntN(113)).Masked()
		}
		if !seen[p] {
			seen[p] = true
			out = append(out, p)
		}
	}
	return out
}

// randomAddr returns an address in 198.0.0.0/8 or 2001:db8::/32, so that
// random prefixes nest.
func randomAddr(rng *rand.Rand, v4 bool) netip.Addr {
	if v4 {
		var b [4]byte
		binary.BigEndian.PutUint32(b[:], 198<<24|rng.Uint32()>>8)
		return netip.AddrFrom4(b)
	}
	var b [16]byte
	binary.BigEndian.PutUint64(b[:], 0x20010db8<<32|rng.Uint64()>>32)
	binary.BigEndian.PutUint64(b[8:], rng.Uint64())
	return netip.AddrFrom16(b)
}

// BenchmarkPrefixTable looks up random addresses among 20,000 prefixes
// with the lengths an edge announces (/20 to /24, /32 to /48).
func BenchmarkPrefixTable(b *testing.B) {
	rng := rand.New(rand.NewPCG(3, 4))
	var prefixes []netip.Prefix
	seen := make(map[netip.Prefix]bool)
	for len(prefixes) < 20000 {
		v4 := len(prefixes)%2 == 0
		var p netip.Prefix
		if v4 {
			p = netip.PrefixFrom(randomAddr(rng, true), 20+rng.IntN(5)).Masked()
		} else {
			p = netip.PrefixFrom(randomAddr(rng, false), 32+rng.IntN(17)).Masked()
		}
		if !seen[p] {
			seen[p] = true
			prefixes = append(prefixes, p)
		}
	}
	tab := newPrefixTable(prefixes)
	for _, v4 := range []bool{true, false} {
		addrs := make([]netip.Addr, 1024)
		for i := range addrs {
			addrs[i] = randomAddr(rng, v4)
		}
		b.Run(fmt.Sprintf("v4=%v", v4), func(b *testing.B) {
			b.ReportAllocs()
			var i, hits int
			for b.Loop() {
				if _, ok := tab.lookup(addrs[i%len(addrs)]); ok {
					hits++
				}
				i++
			}
			b.ReportMetric(float64(hits)/float64(i), "hit-ratio")
		})
	}
}
