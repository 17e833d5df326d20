// Package netlab builds the lab: a real PoP network on one machine, in
// network namespaces, from a topology file. The ISPs are FRR routers, a
// shared "internet" namespace holds the probe reflectors and the traffic
// sources, each PoP's border namespace holds the edge prefixes, the edge
// service, the flow exporters and a gNMI agent, and sdnoc runs in a
// namespace of its own that sits on every ISP link, as a controller on the
// peering LAN does.
//
// What a topology must say for the lab (beyond what sdnoc itself needs)
// is checked by NewPlan and written in lab/README.md.
package netlab

import (
	"errors"
	"fmt"
	"net/netip"
	"slices"
	"strings"

	"github.com/sdnoc/sdnoc/lab/frr"
	"github.com/sdnoc/sdnoc/topologies"
)

// Lab-wide constants: the internet's AS and where its hosts live.
const (
	InternetASN = 64999
	// ProbeRange holds every probe target: the internet namespace
	// originates it, so every ISP can reach it and return the replies.
	linkBits = 29 // each PoP-ISP link: ISP .2, sdnoc .1, border next hop .3
)

// ProbeRange holds every probe target of a lab topology.
var ProbeRange = netip.MustParsePrefix("198.19.0.0/16")

// Plan is the lab derived from a topology: every namespace, link,
// address and router, before anything is created.
type Plan struct {
	Prefix   string // namespace names start with it
	Topology *topologies.Topology
	ISPs     []ISP
	PoPs     []PoP
	Internet frr.Config
	// Targets are the probe targets, on the internet's loopback.
	Targets []netip.Addr
}

// ISP is one ISP: a namespace with an FRR router, a link to every PoP it
// serves and one to the internet.
type ISP struct {
	Name   string // the links' isp key, e.g. "isp1"
	ASN    uint32
	Router frr.Config
	// Internet side: the ISP's and the internet's addresses on their link.
	Addr4, InternetAddr4 netip.Prefix
	Addr6, InternetAddr6 netip.Prefix
}

// PoP is one PoP's border namespace and its links.
type PoP struct {
	Name     string
	Links    []Link
	Edge     []netip.Addr // one address in each edge prefix, on lo
	Mgmt     netip.Prefix // the border's management address (gNMI, flow export source)
	MgmtPeer netip.Prefix // sdnoc's end of the management link
	Exporter string       // "softflowd" or "pmacctd"
	// Proxies are the admin addresses of the PoP's edge proxies, all on
	// the border's management address (one proxy process each).
	Proxies []netip.AddrPort
	// ReturnVia is the ISP address the border's default route uses.
	ReturnVia4, ReturnVia6 netip.Addr
}

// Link is one PoP-ISP link: a /29 shared by the ISP, sdnoc's speaker and
// the border (the next hop sdnoc announces), bridged in the border.
type Link struct {
	ID      string // "pop/link"
	Name    string // the link's name in its PoP, e.g. "isp1"
	ISP     string
	IfIndex uint32 // of the border's ISP-facing port; 0: the kernel's choice
	Table   int    // sdnoc's policy routing table for probes from Local
	// Addresses on the link's subnet.
	Neighbor, Local, Border netip.Prefix
	// IPv6: the border's next hop and the ISP's address, when the link
	// announces IPv6 prefixes.
	Border6, ISP6 netip.Prefix
}

// NewPlan checks that t describes a lab and derives it. prefix starts
// every namespace name.
func NewPlan(t *topologies.Topology, prefix string) (*Plan, error) {
	p := &Plan{Prefix: prefix, Topology: t}
	var errs []error
	bad := func(format string, args ...any) { errs = append(errs, fmt.Errorf(format, args...)) }
	isps := map[string]int{}
	table := 100
	for pi, pop := range t.PoPs {
		pp := PoP{Name: pop.Name, Exporter: "softflowd"}
		if pi%2 == 1 {
			pp.Exporter = "pmacctd"
		}
		var mgmt netip.Addr
		for _, r := range pop.Routers {
			if r.FlowExporter.IsValid() {
				mgmt = r.FlowExporter
			}
			if r.GNMI != "" && r.FlowExporter.IsValid() {
				if ap, err := netip.ParseAddrPort(r.GNMI); err != nil || ap.Addr() != r.FlowExporter {
					bad("pops[%d].routers: %s's gnmi %s must be on its flow_exporter address %s: the lab runs both on the border's management address", pi, r.Name, r.GNMI, r.FlowExporter)
				}
			}
		}
		if !mgmt.Is4() || mgmt.As4()[3]%4 != 2 {
			bad("pops[%d]: the lab needs a router with an IPv4 flow_exporter ending in .4n+2 (e.g. 198.18.250.2): it is the border's management address, sdnoc's is the one before it", pi)
		} else {
			pp.Mgmt = netip.PrefixFrom(mgmt, 30)
			pp.MgmtPeer = netip.PrefixFrom(mgmt.Prev(), 30)
		}
		for k, a := range pop.EdgeProxies {
			ap, err := netip.ParseAddrPort(a)
			if err != nil || !pp.Mgmt.IsValid() || ap.Addr() != pp.Mgmt.Addr() {
				bad("pops[%d].edge_proxies[%d]: %s: the lab runs a PoP's edge proxies on its border's management address (%s), reachable from sdnoc; write %s:PORT",
					pi, k, a, pp.Mgmt.Addr(), pp.Mgmt.Addr())
				continue
			}
			pp.Proxies = append(pp.Proxies, ap)
		}
		for li, l := range pop.Links {
			at := fmt.Sprintf("pops[%d].links[%d]", pi, li)
			if l.ISP == "" || !validName(l.ISP) {
				bad("%s.isp: %q: the lab names each ISP's namespace after it; write a-z, 0-9 and '-', e.g. isp1", at, l.ISP)
				continue
			}
			if k, ok := isps[l.ISP]; ok && p.ISPs[k].ASN != l.PeerASN {
				bad("%s.peer_asn: %d, but %s is AS%d on another link: one ISP, one AS", at, l.PeerASN, l.ISP, p.ISPs[k].ASN)
			} else if !ok {
				isps[l.ISP] = len(p.ISPs)
				p.ISPs = append(p.ISPs, ISP{Name: l.ISP, ASN: l.PeerASN})
			}
			if !l.Local.Is4() || !l.Neighbor.Is4() || !l.NextHopV4.Is4() {
				bad("%s: the lab needs IPv4 local, neighbor and next_hop_v4 (the border's address) on one /29", at)
				continue
			}
			sub := netip.PrefixFrom(l.Local, linkBits).Masked()
			if !sub.Contains(l.Neighbor) || !sub.Contains(l.NextHopV4) || l.Local == l.NextHopV4 || l.Neighbor == l.NextHopV4 {
				bad("%s: local %s, neighbor %s and next_hop_v4 %s must be three addresses of one /29", at, l.Local, l.Neighbor, l.NextHopV4)
				continue
			}
			table++
			lk := Link{ID: t.LinkID(pop.Name, l.Name), Name: l.Name, ISP: l.ISP, IfIndex: l.IfIndex, Table: table,
				Neighbor: netip.PrefixFrom(l.Neighbor, linkBits), Local: netip.PrefixFrom(l.Local, linkBits),
				Border: netip.PrefixFrom(l.NextHopV4, linkBits)}
			if l.NextHopV6.IsValid() {
				lk.Border6 = netip.PrefixFrom(l.NextHopV6, 64)
				lk.ISP6 = netip.PrefixFrom(nthAddr(netip.PrefixFrom(l.NextHopV6, 64).Masked(), 2), 64)
				if lk.ISP6.Addr() == l.NextHopV6 {
					bad("%s.next_hop_v6: %s is the address the lab gives the ISP (::2 of its /64); use another, e.g. ::3", at, l.NextHopV6)
				}
			}
			for _, tg := range l.ProbeTargets {
				if !ProbeRange.Contains(tg.Addr()) {
					bad("%s.probe_targets: %s is outside %s, where the lab's internet holds the reflectors", at, tg.Addr(), ProbeRange)
				} else if !slices.Contains(p.Targets, tg.Addr()) {
					p.Targets = append(p.Targets, tg.Addr())
				}
			}
			pp.Links = append(pp.Links, lk)
		}
		if n := len(pp.Links); n > 0 {
			last := pop.Links[len(pop.Links)-1]
			pp.ReturnVia4 = last.Neighbor
			pp.ReturnVia6 = pp.Links[n-1].ISP6.Addr()
		}
		// Every PoP serves every edge prefix, as an edge network's PoPs do:
		// traffic that a playbook or sdnoc shifts to another PoP is served
		// there, not looped back to the internet by its default route.
		for _, pf := range t.Prefixes {
			pp.Edge = append(pp.Edge, pf.Prefix.Masked().Addr().Next())
		}
		p.PoPs = append(p.PoPs, pp)
	}
	if len(errs) > 0 {
		return nil, fmt.Errorf("%s is not a lab topology:\n%w", t.Source, errors.Join(errs...))
	}
	// Addresses go by name (isp1 on 198.18.101.0/30, ...); preference
	// by order of appearance.
	rank := make(map[string]int, len(p.ISPs))
	for i, isp := range p.ISPs {
		rank[isp.Name] = i
	}
	slices.SortFunc(p.ISPs, func(a, b ISP) int { return strings.Compare(a.Name, b.Name) })
	p.routers(rank)
	return p, nil
}

// routers writes the FRR configuration of every ISP and the internet.
func (p *Plan) routers(rank map[string]int) {
	p.Internet = frr.Config{Name: "internet", ASN: InternetASN, RouterID: netip.MustParseAddr("198.18.254.100"),
		Networks: []netip.Prefix{ProbeRange}}
	for k := range p.ISPs {
		isp := &p.ISPs[k]
		n := byte(k + 1)
		isp.Addr4 = netip.PrefixFrom(netip.AddrFrom4([4]byte{198, 18, 100 + n, 2}), 30)
		isp.InternetAddr4 = netip.PrefixFrom(netip.AddrFrom4([4]byte{198, 18, 100 + n, 1}), 30)
		isp.Addr6 = netip.PrefixFrom(netip.AddrFrom16([16]byte{0x20, 0x01, 0x0d, 0xb8, 0xfe, 0, 0, n, 15: 2}), 64)
		isp.InternetAddr6 = netip.PrefixFrom(netip.AddrFrom16([16]byte{0x20, 0x01, 0x0d, 0xb8, 0xfe, 0, 0, n, 15: 1}), 64)
		isp.Router = frr.Config{Name: isp.Name, ASN: isp.ASN, RouterID: netip.AddrFrom4([4]byte{198, 18, 254, n}),
			Neighbors: []frr.Neighbor{{Address: isp.InternetAddr4.Addr(), ASN: InternetASN, Description: "internet"}}}
		// The internet prefers the ISPs in the order the topology first
		// names them, so that traffic to a prefix takes a known ISP and
		// moves to the next when withdrawn.
		p.Internet.Neighbors = append(p.Internet.Neighbors, frr.Neighbor{Address: isp.Addr4.Addr(), ASN: isp.ASN,
			Description: isp.Name, LocalPref: uint32(max(300-100*rank[isp.Name], 50))})
		// Its links too, so that the borders (whose way back is one ISP)
		// reach any of the internet's addresses.
		p.Internet.Networks = append(p.Internet.Networks, isp.InternetAddr4.Masked(), isp.InternetAddr6.Masked())
		for pi, pop := range p.PoPs {
			for _, l := range pop.Links {
				if l.ISP != isp.Name {
					continue
				}
				isp.Router.Neighbors = append(isp.Router.Neighbors, frr.Neighbor{Address: l.Local.Addr(),
					ASN: p.Topology.PoPs[pi].Speaker.ASN, Description: "sdnoc " + l.ID})
				// The link's subnet, so the internet returns probe
				// replies through the ISP they crossed.
				isp.Router.Networks = append(isp.Router.Networks, l.Local.Masked())
			}
		}
	}
}

// NS returns the full namespace name of a lab part: "internet", "sdnoc",
// an ISP's or a PoP's name.
func (p *Plan) NS(name string) string { return p.Prefix + name }

// Namespaces returns every namespace of the lab, in build order.
func (p *Plan) Namespaces() []string {
	out := []string{p.NS("internet"), p.NS("sdnoc")}
	for _, isp := range p.ISPs {
		out = append(out, p.NS(isp.Name))
	}
	for _, pop := range p.PoPs {
		out = append(out, p.NS(pop.Name))
	}
	return out
}

// Link returns the link of ID id.
func (p *Plan) Link(id string) (PoP, Link, bool) {
	for _, pop := range p.PoPs {
		for _, l := range pop.Links {
			if l.ID == id {
				return pop, l, true
			}
		}
	}
	return PoP{}, Link{}, false
}

func nthAddr(p netip.Prefix, n int) netip.Addr {
	a := p.Addr()
	for range n {
		a = a.Next()
	}
	return a
}

func validName(s string) bool {
	if s == "" || len(s) > 10 {
		return false
	}
	for _, r := range s {
		if !(r >= 'a' && r <= 'z' || r >= '0' && r <= '9' || r == '-') {
			return false
		}
	}
	return true
}
