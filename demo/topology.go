package demo

import (
	"fmt"
	"net/netip"
	"time"

	"github.com/sdnoc/sdnoc/lab/loopback"
	"github.com/sdnoc/sdnoc/topologies"
)

// builtin is the demo's own network: one PoP, three ISPs, two IPv4 and one
// IPv6 prefix published on every link.
func builtin() *topologies.Topology {
	t := &topologies.Topology{
		Name:       "demo",
		Thresholds: topologies.DefaultThresholds(),
		Probes:     topologies.DefaultProbes(),
		BGP:        topologies.DefaultBGP(),
		Flow:       topologies.DefaultFlow(),
		Telemetry:  topologies.DefaultTelemetry(),
	}
	pop := topologies.PoP{Name: "demo", Speaker: topologies.Speaker{RouterID: netip.MustParseAddr("198.18.0.1"), ASN: 65000}}
	for i, name := range []string{"isp1", "isp2", "isp3"} {
		pop.Links = append(pop.Links, topologies.Link{Name: name, ISP: fmt.Sprintf("Transit %c", 'A'+i),
			PeerASN: uint32(64501 + i), Capacity: 10_000_000_000})
	}
	t.PoPs = []topologies.PoP{pop}
	for _, p := range []string{"198.51.100.0/24", "203.0.113.0/24", "2001:db8:100::/48"} {
		t.Prefixes = append(t.Prefixes, topologies.Prefix{Prefix: netip.MustParsePrefix(p)})
	}
	return t
}

// DemoThresholds are the shortened thresholds the demo runs with so that
// the whole scenario fits in well under a minute. They keep the shape of
// the defaults: loss over a window, enter shorter than exit, hold-down.
func DemoThresholds() topologies.Thresholds {
	t := topologies.DefaultThresholds()
	t.LossWindow = 3 * time.Second
	t.Enter = time.Second
	t.Exit = 3 * time.Second
	t.HoldDown = 2 * time.Second
	t.StaleAfter = 2 * time.Second
	return t
}

// fitToLab returns a copy of pop from src placed on the lab: every link's
// addresses, port and probe targets point at the lab's ISPs; prefixes are
// those published in the PoP, on its links.
func fitToLab(src *topologies.Topology, pop topologies.PoP, l *loopback.Lab, th *topologies.Thresholds) (*topologies.Topology, error) {
	t := &topologies.Topology{Name: src.Name + " (demo on loopback)", Probes: src.Probes, BGP: src.BGP, Thresholds: src.Thresholds,
		Flow: topologies.DefaultFlow(), Telemetry: topologies.DefaultTelemetry()}
	if th != nil {
		t.Thresholds = *th
	}
	// Short BGP timers: the demo's sessions should come up in a second.
	t.BGP.ConnectRetry, t.BGP.HoldTime, t.BGP.Keepalive = time.Second, 9*time.Second, 3*time.Second
	p := topologies.PoP{Name: pop.Name, Speaker: pop.Speaker}
	ids := map[string]bool{}
	for i, lk := range pop.Links {
		x := l.ISPs[i]
		lk.Local, lk.Neighbor, lk.NeighborPort, lk.ListenPort = x.Local, x.Neighbor.Addr(), int(x.Neighbor.Port()), -1
		lk.NextHopV4, lk.NextHopV6 = netip.Addr{}, netip.Addr{}
		// The file's routers are not on loopback; the degradation demo
		// needs no load.
		lk.Router, lk.Interface, lk.IfIndex = "", "", 0
		lk.ProbeTargets = x.Targets()
		if th != nil {
			lk.Thresholds = *th
		}
		p.Links = append(p.Links, lk)
		ids[t.LinkID(pop.Name, lk.Name)] = true
	}
	t.PoPs = []topologies.PoP{p}
	// Every prefix the PoP publishes is published on all of its links in
	// the demo, so the scenario's expectations hold for each of them.
	all := make([]string, 0, len(p.Links))
	for _, lk := range p.Links {
		all = append(all, t.LinkID(p.Name, lk.Name))
	}
	for _, pf := range src.Prefixes {
		in := len(pf.Publish) == 0 // the built-in topology: everywhere
		for _, id := range pf.Publish {
			in = in || ids[id]
		}
		if in {
			t.Prefixes = append(t.Prefixes, topologies.Prefix{Prefix: pf.Prefix, Publish: all})
		}
	}
	if err := t.Validate(); err != nil {
		return nil, fmt.Errorf("demo topology: %w", err)
	}
	return t, nil
}
