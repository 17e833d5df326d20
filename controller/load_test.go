package controller

import (
	"net/netip"
	"testing"
	"time"

	"github.com/sdnoc/sdnoc/topologies"
)

// TestLoadConfigs: links land on their router's exporter and gNMI target;
// only links of a router without gNMI take their load from flows.
func TestLoadConfigs(t *testing.T) {
	topo, err := topologies.Parse("t.yaml", []byte(`
flow: { listen: "127.0.0.1:0", window: 5s, sockets: 2 }
telemetry: { interval: 200ms }
pops:
  - name: ams
    speaker: { router_id: 198.18.0.1, asn: 65000 }
    routers:
      - { name: ams-br1, gnmi: "127.0.0.1:9339", gnmi_tls: insecure, flow_exporter: 127.0.0.11 }
      - { name: ams-br2, flow_exporter: 127.0.0.12, flow_sampling_rate: 100 }
    links:
      - { name: isp1, peer_asn: 64501, neighbor: 198.18.1.2, local: 198.18.1.1, capacity: 10G, probe_targets: [198.18.9.1],
          router: ams-br1, interface: eth1, ifindex: 3 }
      - { name: isp2, peer_asn: 64502, neighbor: 198.18.2.2, local: 198.18.2.1, capacity: 1G, probe_targets: [198.18.9.2],
          router: ams-br2, ifindex: 7 }
      - { name: isp3, peer_asn: 64503, neighbor: 198.18.3.2, local: 198.18.3.1, capacity: 1G, probe_targets: [198.18.9.3] }
prefixes:
  - prefix: 198.51.100.0/24
  - prefix: 2001:db8:1::/48
`))
	if err != nil {
		t.Fatal(err)
	}
	fc, links, ok := flowConfig(topo)
	if !ok {
		t.Fatal("flowConfig: not ok with two exporters")
	}
	if err := fc.Validate(); err != nil {
		t.Fatalf("flow config invalid: %v", err)
	}
	if fc.Listen != "127.0.0.1:0" || fc.Window != 5*time.Second || fc.Sockets != 2 || len(fc.Prefixes) != 2 {
		t.Errorf("flow config = %+v", fc)
	}
	if len(fc.Exporters) != 2 || fc.Exporters[0].Interfaces[3] != "ams/isp1" || fc.Exporters[1].Interfaces[7] != "ams/isp2" ||
		fc.Exporters[1].SamplingRate != 100 || fc.Exporters[1].Address != netip.MustParseAddr("127.0.0.12") {
		t.Errorf("exporters = %+v", fc.Exporters)
	}
	want := []flowLink{
		{id: "ams/isp1", exporter: netip.MustParseAddr("127.0.0.11"), utilisation: false},
		{id: "ams/isp2", exporter: netip.MustParseAddr("127.0.0.12"), utilisation: true},
	}
	if len(links) != len(want) || links[0] != want[0] || links[1] != want[1] {
		t.Errorf("flow links = %+v, want %+v", links, want)
	}
	tc, ok := telemetryConfig(topo)
	if !ok {
		t.Fatal("telemetryConfig: not ok with a gNMI router")
	}
	if err := tc.Validate(); err != nil {
		t.Fatalf("telemetry config invalid: %v", err)
	}
	if len(tc.Routers) != 1 || tc.Interval != 200*time.Millisecond {
		t.Fatalf("telemetry = %+v", tc)
	}
	r := tc.Routers[0]
	if !r.Insecure || r.SkipVerify || len(r.Links) != 1 || r.Links["ams/isp1"].Interface != "eth1" ||
		r.Links["ams/isp1"].Capacity != 10e9 || r.Links["ams/isp1"].Neighbor != netip.MustParseAddr("198.18.1.2") {
		t.Errorf("router = %+v", r)
	}
}
