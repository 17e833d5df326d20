package frr

import (
	"context"
	"fmt"
	"math/rand/v2"
	"net/netip"
	"os"
	"os/exec"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/sdnoc/sdnoc/lab/netns/netnstest"
)

func TestBGPConfig(t *testing.T) {
	c := Config{Name: "isp1", Dir: "/x", ASN: 64501, RouterID: netip.MustParseAddr("198.18.0.2"),
		Neighbors: []Neighbor{{Address: netip.MustParseAddr("198.18.1.1"), ASN: 65000, Description: "pop1 edge"},
			{Address: netip.MustParseAddr("198.18.2.1"), ASN: 64999, LocalPref: 300}},
		Networks: []netip.Prefix{netip.MustParsePrefix("198.19.0.0/16"), netip.MustParsePrefix("2001:db8:ffff::/48")}}
	if err := c.Validate(); err != nil {
		t.Fatal(err)
	}
	got := c.BGPConfig()
	for _, want := range []string{
		"router bgp 64501\n bgp router-id 198.18.0.2\n",
		" no bgp ebgp-requires-policy\n", " no bgp default ipv4-unicast\n", " bgp graceful-restart\n", " timers bgp 3 9\n",
		" neighbor 198.18.1.1 remote-as 65000\n", " neighbor 198.18.1.1 description pop1 edge\n",
		" address-family ipv4 unicast\n  network 198.19.0.0/16\n  neighbor 198.18.1.1 activate\n",
		" address-family ipv6 unicast\n  network 2001:db8:ffff::/48\n  neighbor 198.18.1.1 activate\n",
		"route-map lp1 permit 10\n set local-preference 300\n", "  neighbor 198.18.2.1 route-map lp1 in\n",
	} {
		if !strings.Contains(got, want) {
			t.Errorf("config lacks %q:\n%s", want, got)
		}
	}
	bad := Config{Name: "a b", Neighbors: []Neighbor{{}}}
	err := bad.Validate()
	for _, want := range []string{"name:", "dir:", "asn:", "router_id:", "neighbors[0]:"} {
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("Validate() = %v; want %q", err, want)
		}
	}
}

func TestParseRoutes(t *testing.T) {
	b, err := os.ReadFile("testdata/show-bgp-ipv4-unicast.json")
	if err != nil {
		t.Fatal(err)
	}
	tab, err := ParseRoutes(b)
	if err != nil {
		t.Fatal(err)
	}
	p := netip.MustParsePrefix("198.51.100.0/24")
	if len(tab[p]) != 1 || !tab[p][0].Best || tab[p][0].Peer != netip.MustParseAddr("198.18.1.1") || tab[p][0].NextHop != netip.MustParseAddr("198.18.1.1") {
		t.Fatalf("198.51.100.0/24 = %+v", tab[p])
	}
	if got := From(tab, netip.MustParseAddr("198.18.1.1")); !slices.Equal(got, []netip.Prefix{p}) {
		t.Fatalf("From(peer) = %v", got)
	}
	if !slices.Equal(tab[p][0].ASPath, []uint32{65000}) {
		t.Fatalf("AS path = %v, want [65000]", tab[p][0].ASPath)
	}
	if _, err := ParseRoutes([]byte(`{"routes": {"not a prefix": []}}`)); err == nil {
		t.Fatal("a bad prefix parsed")
	}
	tab, err = ParseRoutes([]byte(`{"routes": {"192.0.2.0/24": [{"valid": true, "path": "65000 65000 65000 {64512,64513}"}]}}`))
	if err != nil || !slices.Equal(tab[netip.MustParsePrefix("192.0.2.0/24")][0].ASPath, []uint32{65000, 65000, 65000}) {
		t.Fatalf("prepended path = %+v, %v", tab, err)
	}
}

func TestParseNeighbors(t *testing.T) {
	b, err := os.ReadFile("testdata/show-bgp-neighbors.json")
	if err != nil {
		t.Fatal(err)
	}
	ss, err := ParseNeighbors(b)
	if err != nil {
		t.Fatal(err)
	}
	s, ok := ss[netip.MustParseAddr("198.18.1.1")]
	if !ok || s.State != "Established" || s.UpdatesRecv == 0 || s.PrefixesRecv != 2 {
		t.Fatalf("neighbour 198.18.1.1 = %+v (%v)", s, ok)
	}
}

// lab is the test's two namespaces joined by a veth.
type lab struct{ a, b string }

func needRoot(t *testing.T) {
	t.Helper()
	if os.Geteuid() != 0 {
		netnstest.Unavailable(t, "needs root for network namespaces")
	}
	if _, err := os.Stat(bgpdBin); err != nil {
		netnstest.Unavailable(t, "FRR is not installed (%v): run lab/install.sh as root", err)
	}
}

func ip(t *testing.T, args ...string) {
	t.Helper()
	if out, err := exec.Command("ip", args...).CombinedOutput(); err != nil {
		t.Fatalf("ip %s: %v: %s", strings.Join(args, " "), err, out)
	}
}

// newLab makes two namespaces, a and b, with 198.18.1.1/30 and
// 198.18.1.2/30 on a veth between them; the namespaces (and so the veth)
// go away at cleanup, even when the test fails.
func newLab(t *testing.T) lab {
	t.Helper()
	id := rand.Uint32()
	l := lab{fmt.Sprintf("sdnoc-t-frra-%08x", id), fmt.Sprintf("sdnoc-t-frrb-%08x", id)}
	for _, ns := range []string{l.a, l.b} {
		ip(t, "netns", "add", ns)
		t.Cleanup(func() { _ = exec.Command("ip", "netns", "del", ns).Run() })
		ip(t, "-n", ns, "link", "set", "lo", "up")
	}
	ip(t, "link", "add", "veth-a", "netns", l.a, "type", "veth", "peer", "name", "veth-b", "netns", l.b)
	ip(t, "-n", l.a, "addr", "add", "198.18.1.1/30", "dev", "veth-a")
	ip(t, "-n", l.b, "addr", "add", "198.18.1.2/30", "dev", "veth-b")
	ip(t, "-n", l.a, "link", "set", "veth-a", "up")
	ip(t, "-n", l.b, "link", "set", "veth-b", "up")
	return l
}

// TestRoutersPeer runs two real FRR routers in namespaces: a originates
// an IPv4 and an IPv6 prefix over one IPv4 session, b learns both.
func TestRoutersPeer(t *testing.T) {
	needRoot(t)
	l := newLab(t)
	ctx, cancel := context.WithTimeout(t.Context(), 60*time.Second)
	defer cancel()
	a4, b4 := netip.MustParseAddr("198.18.1.1"), netip.MustParseAddr("198.18.1.2")
	p4, p6 := netip.MustParsePrefix("198.51.100.0/24"), netip.MustParsePrefix("2001:db8:100::/48")
	ra, err := Start(ctx, Config{Name: "edge", Dir: netnstest.Dir(t), Namespace: l.a, ASN: 65000, RouterID: a4,
		Neighbors: []Neighbor{{Address: b4, ASN: 64501}}, Networks: []netip.Prefix{p4, p6}})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = ra.Stop(context.Background()) })
	rb, err := Start(ctx, Config{Name: "isp1", Dir: netnstest.Dir(t), Namespace: l.b, ASN: 64501, RouterID: b4,
		Neighbors: []Neighbor{{Address: a4, ASN: 65000, Description: "edge"}}})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = rb.Stop(context.Background()) })
	if _, err := Start(ctx, Config{Name: "isp1", Dir: rb.cfg.Dir, Namespace: l.b, ASN: 64501, RouterID: b4}); err == nil {
		t.Fatal("a second start over a running router was not refused")
	}

	var got []netip.Prefix
	for ctx.Err() == nil {
		tab, err := rb.Table(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if got = From(tab, a4); len(got) == 2 {
			break
		}
		time.Sleep(100 * time.Millisecond)
	}
	if !slices.Equal(got, []netip.Prefix{p4, p6}) {
		t.Fatalf("isp1 learnt %v from the edge, want %v and %v", got, p4, p6)
	}
	ss, err := rb.Sessions(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if s := ss[a4]; s.State != "Established" || s.PrefixesRecv != 2 || s.UpdatesRecv == 0 {
		t.Fatalf("isp1's session with the edge = %+v", s)
	}
	if os.Getenv("SDNOC_FRR_CAPTURE") != "" { // refresh testdata from the real router
		for file, cmd := range map[string]string{"show-bgp-ipv4-unicast.json": "show bgp ipv4 unicast json", "show-bgp-neighbors.json": "show bgp neighbors json"} {
			b, _ := rb.VTY(ctx, cmd)
			_ = os.WriteFile("testdata/"+file, b, 0o644)
		}
	}
	if err := ra.Stop(ctx); err != nil {
		t.Fatal(err)
	}
	if ra.Running() {
		t.Fatal("edge still runs after Stop")
	}
}
