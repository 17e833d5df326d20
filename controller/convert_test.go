package controller

import (
	"testing"

	"github.com/sdnoc/sdnoc/topologies"
)

// TestNetworkCarriesCongestion: the engine gets each link's capacity and
// its congestion levels, including a per-link override.
func TestNetworkCarriesCongestion(t *testing.T) {
	topo, err := topologies.Parse("t.yaml", []byte(`
pops:
  - name: ams
    speaker: { router_id: 198.18.0.1, asn: 65000 }
    links:
      - { name: isp1, peer_asn: 64501, neighbor: 198.18.1.2, local: 198.18.1.1, capacity: 10G, probe_targets: [198.18.9.1] }
      - { name: isp2, peer_asn: 64502, neighbor: 198.18.2.2, local: 198.18.2.1, capacity: 40G, probe_targets: [198.18.9.2],
          thresholds: { congestion_pct: 75, congestion_exit_pct: 60 } }
prefixes:
  - prefix: 198.51.100.0/24
`))
	if err != nil {
		t.Fatal(err)
	}
	nw := network(topo)
	a, b := nw.Links[0], nw.Links[1]
	if a.Capacity != 10e9 || a.Congestion.TargetPct != 90 || a.Congestion.ExitPct != 80 || a.Congestion.RestoreHeadroom != 10 {
		t.Errorf("ams/isp1 = %+v; want 10G and the default levels", a)
	}
	if b.Capacity != 40e9 || b.Congestion.TargetPct != 75 || b.Congestion.ExitPct != 60 {
		t.Errorf("ams/isp2 = %+v; want 40G and its own levels", b)
	}
}
