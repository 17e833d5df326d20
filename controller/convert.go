package controller

import (
	"github.com/sdnoc/sdnoc/actuators/bgp"
	"github.com/sdnoc/sdnoc/collectors/probes"
	"github.com/sdnoc/sdnoc/decisions"
	"github.com/sdnoc/sdnoc/topologies"
)

// network turns the topology into what the decision engine needs.
func network(t *topologies.Topology) decisions.Network {
	var nw decisions.Network
	for _, p := range t.PoPs {
		for _, l := range p.Links {
			isp := l.ISP
			if isp == "" {
				isp = l.Name // links of one ISP are often named after it in every PoP
			}
			nw.Links = append(nw.Links, decisions.Link{ID: t.LinkID(p.Name, l.Name), PoP: p.Name, ISP: isp, Thresholds: thresholds(l.Thresholds),
				Capacity: l.Capacity, Congestion: decisions.Congestion{TargetPct: l.Thresholds.CongestionPct,
					ExitPct: l.Thresholds.CongestionExitPct, RestoreHeadroom: l.Thresholds.RestoreHeadroomPct}})
		}
	}
	for _, p := range t.Prefixes {
		nw.Prefixes = append(nw.Prefixes, decisions.Prefix{Prefix: p.Prefix, Links: p.Publish})
	}
	nw.Limits = decisions.Limits{MaxWithdrawals: t.Thresholds.MaxWithdrawals, WithdrawalWindow: t.Thresholds.WithdrawalWindow}
	return nw
}

func thresholds(t topologies.Thresholds) decisions.Thresholds {
	return decisions.Thresholds{
		LossPct: t.LossPct, LossWindow: t.LossWindow, RTT: t.RTT, Jitter: t.Jitter,
		Enter: t.Enter, Exit: t.Exit, HoldDown: t.HoldDown, DownAfter: t.DownAfter,
		StaleAfter: t.StaleAfter, MinProbes: t.MinProbes,
	}
}

// probeConfig gives every link its own sender bound to the link's local
// address, so each probe leaves through its own ISP.
func probeConfig(t *topologies.Topology) probes.Config {
	c := probes.DefaultConfig()
	c.Interval, c.Timeout, c.Window = t.Probes.Interval, t.Probes.Timeout, t.Probes.Window
	for _, p := range t.PoPs {
		for _, l := range p.Links {
			lc := probes.LinkConfig{ID: t.LinkID(p.Name, l.Name), Local: l.Local.String()}
			for _, tg := range l.ProbeTargets {
				lc.Targets = append(lc.Targets, tg.String())
			}
			c.Links = append(c.Links, lc)
		}
	}
	return c
}

// speakerConfig returns the one BGP speaker of the controller: one GoBGP
// server per ISP link, each with its PoP's router ID and ASN. One speaker
// for every PoP lets all servers start before any session (GoBGP v3.37.0
// shares selection settings between servers; see bgp.Speaker.Start).
func speakerConfig(t *topologies.Topology) bgp.Config {
	c := bgp.DefaultConfig()
	c.HoldTime, c.KeepaliveInterval, c.ConnectRetry = t.BGP.HoldTime, t.BGP.Keepalive, t.BGP.ConnectRetry
	c.GracefulRestartTime = t.BGP.GracefulRestart
	for _, p := range t.PoPs {
		for _, l := range p.Links {
			n := bgp.Neighbor{
				Name: t.LinkID(p.Name, l.Name), Address: l.Neighbor.String(), Port: l.NeighborPort,
				PeerASN: l.PeerASN, LocalAddress: l.Local.String(), ListenPort: int32(l.ListenPort),
				ASN: p.Speaker.ASN, RouterID: p.Speaker.RouterID.String(),
			}
			if l.NextHopV4.IsValid() {
				n.NextHopV4 = l.NextHopV4.String()
			}
			if l.NextHopV6.IsValid() {
				n.NextHopV6 = l.NextHopV6.String()
			}
			c.Neighbors = append(c.Neighbors, n)
		}
	}
	return c
}
