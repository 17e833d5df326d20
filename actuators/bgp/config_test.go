package bgp

import (
	"net/netip"
	"strings"
	"testing"
	"time"
)

func validConfig() Config {
	c := DefaultConfig()
	c.RouterID = "198.18.0.1"
	c.ASN = 65000
	c.Neighbors = []Neighbor{{Name: "pop1/isp1", Address: "198.18.0.2", PeerASN: 64501, LocalAddress: "198.18.0.1"}}
	return c
}

var validateTests = []struct {
	name  string
	edit  func(*Config)
	wants []string // substrings of the error, one per expected problem; none: valid
}{
	{"defaults", func(*Config) {}, nil},
	{"zero timers take defaults", func(c *Config) {
		c.HoldTime, c.KeepaliveInterval, c.ConnectRetry, c.GracefulRestartTime = 0, 0, 0, 0
	}, nil},
	{"short hold time, keepalive defaults to a third", func(c *Config) { c.HoldTime, c.KeepaliveInterval = 9*time.Second, 0 }, nil},
	{"ipv6 link", func(c *Config) {
		c.Neighbors[0].Address, c.Neighbors[0].LocalAddress, c.Neighbors[0].NextHopV4 = "2001:db8::2", "2001:db8::1", "198.18.0.1"
	}, nil},
	{"mapped v6 next hop", func(c *Config) { c.Neighbors[0].NextHopV6 = "::ffff:198.18.0.1" }, nil},
	{"listen", func(c *Config) { c.Neighbors[0].ListenPort = 11179 }, nil},
	{"router id v6", func(c *Config) { c.RouterID = "2001:db8::1" }, []string{"router_id:"}},
	{"no asn", func(c *Config) { c.ASN = 0 }, []string{"asn: missing"}},
	{"no neighbours", func(c *Config) { c.Neighbors = nil }, []string{"neighbors: empty"}},
	{"everything wrong in a neighbour", func(c *Config) {
		c.Neighbors[0] = Neighbor{Address: "isp", Port: 70000, LocalAddress: "x", ListenPort: -2, NextHopV4: "2001:db8::1", NextHopV6: "198.18.0.1"}
	}, []string{
		"neighbors[0].name: missing", "neighbors[0].address:", "neighbors[0].port:", "neighbors[0].peer_asn: missing",
		"neighbors[0].local_address:", "neighbors[0].listen_port:", "neighbors[0].next_hop_v4:", "neighbors[0].next_hop_v6:",
	}},
	{"mixed families", func(c *Config) { c.Neighbors[0].Address = "2001:db8::2" }, []string{"not the same IP version"}},
	{"v6 local needs v4 next hop", func(c *Config) {
		c.Neighbors[0].Address, c.Neighbors[0].LocalAddress = "2001:db8::2", "2001:db8::1"
	}, []string{"neighbors[0].next_hop_v4: missing"}},
	{"mapped neighbour address", func(c *Config) { c.Neighbors[0].Address = "::ffff:198.18.0.2" }, []string{"neighbors[0].address:"}},
	{"duplicate names", func(c *Config) { c.Neighbors = append(c.Neighbors, c.Neighbors[0]) }, []string{`neighbors[1].name: "pop1/isp1" is also neighbors[0]`}},
	{"timers", func(c *Config) {
		c.HoldTime, c.KeepaliveInterval, c.ConnectRetry, c.GracefulRestartTime = 2*time.Second, 1500*time.Millisecond, -time.Second, 2*time.Hour
	}, []string{"hold_time: 2s is outside", "keepalive_interval: 1.5s is not a whole number",
		"connect_retry: -1s is outside", "graceful_restart_time: 2h0m0s is outside"}},
	{"keepalive not below hold time", func(c *Config) { c.HoldTime, c.KeepaliveInterval = 9*time.Second, 9*time.Second },
		[]string{"keepalive_interval: 9s is not below hold_time 9s; use a third of it, e.g. 3s"}},
}

func TestValidate(t *testing.T) {
	for _, tt := range validateTests {
		t.Run(tt.name, func(t *testing.T) {
			c := validConfig()
			tt.edit(&c)
			err := c.Validate()
			if len(tt.wants) == 0 {
				if err != nil {
					t.Fatalf("Validate() = %v, want nil", err)
				}
				return
			}
			if err == nil {
				t.Fatalf("Validate() = nil, want %q", tt.wants)
			}
			lines := strings.Split(err.Error(), "\n")
			if len(lines) != len(tt.wants) {
				t.Errorf("Validate() gave %d problems, want %d:\n%v", len(lines), len(tt.wants), err)
			}
			for _, w := range tt.wants {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("Validate() = %v\nwant it to contain %q", err, w)
				}
			}
		})
	}
}

func TestNeighborDefaults(t *testing.T) {
	c := validConfig()
	c.Neighbors = append(c.Neighbors,
		Neighbor{Name: "v6", Address: "2001:DB8::2", PeerASN: 1, LocalAddress: "2001:db8:0::1", NextHopV4: "198.18.0.1"})
	c.HoldTime, c.KeepaliveInterval = 9*time.Second, 0
	d := c.withDefaults()
	want := []Neighbor{
		{Name: "pop1/isp1", Address: "198.18.0.2", Port: 179, PeerASN: 64501, LocalAddress: "198.18.0.1", ListenPort: -1,
			NextHopV4: "198.18.0.1", NextHopV6: "::ffff:198.18.0.1"},
		{Name: "v6", Address: "2001:db8::2", Port: 179, PeerASN: 1, LocalAddress: "2001:db8::1", ListenPort: -1,
			NextHopV4: "198.18.0.1", NextHopV6: "2001:db8::1"},
	}
	for i := range want {
		if d.Neighbors[i] != want[i] {
			t.Errorf("neighbour %d with defaults = %+v\nwant %+v", i, d.Neighbors[i], want[i])
		}
	}
	if d.KeepaliveInterval != 3*time.Second {
		t.Errorf("keepalive default = %v, want a third of 9s", d.KeepaliveInterval)
	}
	if c.Neighbors[0].Port != 0 {
		t.Error("withDefaults changed the caller's neighbours")
	}
}

// FuzzValidate feeds neighbour fields as they come from a config file: a
// config that passes Validate must yield next hops GoBGP can encode, and a
// speaker New accepts.
func FuzzValidate(f *testing.F) {
	for _, tt := range validateTests {
		c := validConfig()
		tt.edit(&c)
		if len(c.Neighbors) == 0 {
			continue
		}
		n := c.Neighbors[0]
		f.Add(c.RouterID, n.Address, n.LocalAddress, n.NextHopV4, n.NextHopV6, n.Port, n.ListenPort)
	}
	f.Fuzz(func(t *testing.T, routerID, addr, local, nh4, nh6 string, port int, listen int32) {
		c := validConfig()
		c.RouterID = routerID
		c.Neighbors[0] = Neighbor{Name: "n", Address: addr, Port: port, PeerASN: 1, LocalAddress: local, ListenPort: listen, NextHopV4: nh4, NextHopV6: nh6}
		if c.Validate() != nil {
			return
		}
		d := c.withDefaults().Neighbors[0]
		for _, s := range []string{d.Address, d.LocalAddress, d.NextHopV4, d.NextHopV6} {
			if _, err := netip.ParseAddr(s); err != nil {
				t.Fatalf("valid config gave unparsable address %q: %+v", s, d)
			}
		}
		if a := netip.MustParseAddr(d.NextHopV4); !a.Is4() {
			t.Fatalf("next_hop_v4 %s is not IPv4", a)
		}
		if a := netip.MustParseAddr(d.NextHopV6); !a.Is6() {
			t.Fatalf("next_hop_v6 %s is not IPv6", a)
		}
		for _, p := range []netip.Prefix{pfxA, pfxV6} {
			if _, err := newPath(p, (&link{n: d}).nextHop(p)); err != nil {
				t.Fatalf("newPath(%s) with %+v: %v", p, d, err)
			}
		}
		if _, err := New(c, Deps{}); err != nil {
			t.Fatalf("New() = %v after Validate() = nil", err)
		}
	})
}
