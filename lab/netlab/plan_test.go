package netlab

import (
	"net/netip"
	"strings"
	"testing"

	"github.com/sdnoc/sdnoc/topologies"
)

func labTopology(t *testing.T) *topologies.Topology {
	t.Helper()
	top, err := topologies.LoadOptions{}.Load("../../topologies/examples/lab.yaml")
	if err != nil {
		t.Fatal(err)
	}
	return top
}

func TestPlanOfTheLab(t *testing.T) {
	p, err := NewPlan(labTopology(t), "sdnoc-lab-")
	if err != nil {
		t.Fatal(err)
	}
	if len(p.ISPs) != 3 || len(p.PoPs) != 2 || len(p.Targets) != 18 {
		t.Fatalf("%d ISPs, %d PoPs, %d targets; want 3, 2, 18", len(p.ISPs), len(p.PoPs), len(p.Targets))
	}
	want := []string{"sdnoc-lab-internet", "sdnoc-lab-sdnoc", "sdnoc-lab-isp1", "sdnoc-lab-isp2", "sdnoc-lab-isp3", "sdnoc-lab-pop1", "sdnoc-lab-pop2"}
	if got := p.Namespaces(); strings.Join(got, " ") != strings.Join(want, " ") {
		t.Fatalf("namespaces %v, want %v", got, want)
	}
	pop, l, ok := p.Link("pop2/isp3")
	if !ok || l.Border.Addr() != netip.MustParseAddr("198.18.23.3") || l.ISP6.Addr() != netip.MustParseAddr("2001:db8:ff23::2") || l.IfIndex != 23 {
		t.Fatalf("pop2/isp3 = %+v", l)
	}
	if pop.Exporter != "pmacctd" || p.PoPs[0].Exporter != "softflowd" || pop.MgmtPeer.Addr() != netip.MustParseAddr("198.18.250.5") {
		t.Fatalf("pop2 = %+v", pop)
	}
	// Every PoP holds an address in every edge prefix (6 in lab.yaml).
	if pop.ReturnVia4 != netip.MustParseAddr("198.18.23.2") || len(pop.Edge) != 6 || pop.Edge[2] != netip.MustParseAddr("203.0.113.1") ||
		len(pop.Proxies) != 1 || pop.Proxies[0].String() != "198.18.250.6:9480" {
		t.Fatalf("pop2 returns via %v, edge %v", pop.ReturnVia4, pop.Edge)
	}
	isp2 := p.ISPs[1]
	if isp2.Name != "isp2" || isp2.Addr4.Addr() != netip.MustParseAddr("198.18.102.2") {
		t.Fatalf("ISPs[1] = %+v; want isp2 on 198.18.102.2", isp2)
	}
	cfg := isp2.Router.BGPConfig()
	for _, w := range []string{"router bgp 64502", "neighbor 198.18.12.1 remote-as 65000", "neighbor 198.18.22.1 remote-as 65000",
		"neighbor 198.18.102.1 remote-as 64999", "network 198.18.12.0/29", "network 198.18.22.0/29"} {
		if !strings.Contains(cfg, w) {
			t.Errorf("isp2's config lacks %q:\n%s", w, cfg)
		}
	}
	// isp2 comes first in the file: the internet prefers it.
	for _, n := range p.Internet.Neighbors {
		want := map[string]uint32{"isp2": 300, "isp1": 200, "isp3": 100}[n.Description]
		if n.LocalPref != want {
			t.Errorf("internet's local-pref for %s = %d, want %d", n.Description, n.LocalPref, want)
		}
	}
	if in := p.Internet.BGPConfig(); !strings.Contains(in, "network 198.19.0.0/16") {
		t.Errorf("internet config:\n%s", in)
	}
}

func TestPlanRefusesNonLab(t *testing.T) {
	top := labTopology(t)
	top.PoPs[0].Links[0].NextHopV4 = netip.MustParseAddr("198.18.99.3")
	top.PoPs[1].Links[0].ProbeTargets[0] = netip.MustParseAddrPort("198.18.1.1:862")
	top.PoPs[1].Links[2].PeerASN = 64999
	_, err := NewPlan(top, "x-")
	for _, want := range []string{"pops[0].links[0]: local 198.18.12.1, neighbor 198.18.12.2 and next_hop_v4 198.18.99.3 must be three addresses of one /29",
		"pops[1].links[0].probe_targets: 198.18.1.1 is outside 198.19.0.0/16", "pops[1].links[2].peer_asn: 64999, but isp3 is AS64503"} {
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("NewPlan() = %v; want %q", err, want)
		}
	}
}
