package netns

import (
	"net/netip"
	"slices"
	"testing"
)

func TestNewPrefix(t *testing.T) {
	tests := []struct {
		prefix string
		ok     bool
	}{
		{TestPrefix, true},
		{"sdnoc-lab-", true},
		{"", false},
		{"sdnoc", false},   // no trailing dash: names would run together
		{"Sdnoc-", false},  // uppercase
		{"sd noc-", false}, // space
		{"-sdnoc-", false},
		{"sdnoc-0123456789-abcdefghij-", false}, // too long
	}
	for _, tt := range tests {
		_, err := New(tt.prefix, nil)
		if (err == nil) != tt.ok {
			t.Errorf("New(%q) error = %v; want ok = %v", tt.prefix, err, tt.ok)
		}
	}
}

func TestHosts(t *testing.T) {
	a, b := Hosts(netip.MustParsePrefix("198.18.4.8/30"))
	if a != netip.MustParsePrefix("198.18.4.9/30") || b != netip.MustParsePrefix("198.18.4.10/30") {
		t.Errorf("Hosts(198.18.4.8/30) = %v, %v; want 198.18.4.9/30, 198.18.4.10/30", a, b)
	}
}

func TestRandomSubnet(t *testing.T) {
	seen := make(map[netip.Prefix]bool)
	for range 1000 {
		p := randomSubnet()
		if p.Bits() != 30 || p != p.Masked() || !LabRange().Contains(p.Addr()) {
			t.Fatalf("randomSubnet() = %v; want a /30 in %v", p, LabRange())
		}
		seen[p] = true
	}
	// 1000 draws from 32768: a few repeats at most.
	if len(seen) < 950 {
		t.Errorf("1000 draws gave %d distinct subnets; not random", len(seen))
	}
}

func TestRootAddrs(t *testing.T) {
	out := []byte(`1: lo    inet 127.0.0.1/8 scope host lo\       valid_lft forever preferred_lft forever
1: lo    inet6 ::1/128 scope host \       valid_lft forever preferred_lft forever
2: eth0    inet 192.0.2.2/24 brd 192.0.2.255 scope global eth0\       valid_lft forever preferred_lft forever
7: sdnoc1a2b3c4d    inet 198.18.0.5/30 scope global sdnoc1a2b3c4d\       valid_lft forever preferred_lft forever
`)
	want := []netip.Prefix{
		netip.MustParsePrefix("127.0.0.0/8"), netip.MustParsePrefix("::1/128"),
		netip.MustParsePrefix("192.0.2.0/24"), netip.MustParsePrefix("198.18.0.4/30"),
	}
	if got := rootAddrs(out); !slices.Equal(got, want) {
		t.Errorf("rootAddrs() = %v; want %v", got, want)
	}
}

func TestStaleNames(t *testing.T) {
	list := []byte(`sdnoc-t-100-ab12-border (id: 3)
sdnoc-t-200-cd34-border (id: 2)
sdnoc-t-100-ab12-isp1
sdnoc-t-x-isp1
sdnoc-lab-100-ab12-isp1
isp1 (id: 0)
`)
	alive := func(pid int) bool { return pid == 200 }
	got := staleNames(list, TestPrefix, alive)
	want := []string{"sdnoc-t-100-ab12-border", "sdnoc-t-100-ab12-isp1"}
	if !slices.Equal(got, want) {
		t.Errorf("staleNames() = %v; want %v", got, want)
	}
}
