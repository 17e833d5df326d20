// Package topologies describes the network sdnoc runs: its PoPs, the BGP
// speaker and ISP links of each, the edge prefixes and where they are
// published, and the thresholds, probe pacing and BGP timers. It loads that
// description from YAML (with viper), fills in defaults, and validates it,
// reporting every mistake with the file, the key path and the fix.
//
// The schema is documented in examples/README.md, next to a complete
// example, examples/two-pops.yaml.
package topologies

import (
	"fmt"
	"net/netip"
	"strings"
)

// Topology is a loaded, defaulted and valid network description. Treat it
// as read-only: slices may be shared between its parts.
type Topology struct {
	// Name is a free-text label for the topology; may be empty.
	Name string
	// PoPs are the points of presence, in file order; at least one.
	PoPs []PoP
	// Prefixes are the edge's prefixes, in file order; at least one.
	Prefixes []Prefix
	// Thresholds are the global thresholds; each link carries its own
	// effective copy in Link.Thresholds.
	Thresholds Thresholds
	// Probes is the probe pacing.
	Probes Probes
	// BGP holds the session timers.
	BGP BGP
	// Flow is how the flow collector listens; it runs when a router has
	// a flow_exporter.
	Flow Flow
	// Telemetry is how the gNMI collector samples; it runs when a router
	// has a gnmi target.
	Telemetry Telemetry
	// Source is the file the topology came from, or the name given to
	// Parse; "" for a topology built in code. Errors start with it.
	Source string
}

// PoP is a point of presence: one BGP speaker and its ISP links.
type PoP struct {
	// Name is unique among PoPs, made of a-z, 0-9 and '-'.
	Name string
	// Speaker is sdnoc's BGP speaker in this PoP.
	Speaker Speaker
	// Links are the PoP's ISP links, in file order; at least one.
	Links []Link
	// Routers are the PoP's border routers that report load (gNMI,
	// flows), in file order; may be empty.
	Routers []Router
	// EdgeProxies are the admin addresses (IP:port) of the PoP's edge
	// proxies, which a drain-pop playbook drains; may be empty.
	EdgeProxies []string
}

// Speaker is the identity of a PoP's BGP speaker.
type Speaker struct {
	// RouterID is the BGP identifier, an IPv4 address unique among PoPs.
	RouterID netip.Addr
	// ASN is the edge's AS number: 1 to 4294967294, not 23456 (AS_TRANS).
	ASN uint32
}

// Link is one ISP link of a PoP, with its eBGP session and probe targets.
type Link struct {
	// Name is unique within the PoP, made of a-z, 0-9 and '-'; the link's
	// ID is "pop/name".
	Name string
	// ISP is a free-text name for the ISP; may be empty.
	ISP string
	// PeerASN is the ISP's AS number; it differs from the speaker's (eBGP).
	PeerASN uint32
	// Neighbor is the ISP router's address, unique within the PoP.
	Neighbor netip.Addr
	// NeighborPort is the ISP router's BGP port (default 179).
	NeighborPort int
	// Local is our address on the link, of the same family as Neighbor: the
	// source of the BGP session and of the probes.
	Local netip.Addr
	// ListenPort is the port the speaker accepts this session on, or -1
	// (the default) to only connect out.
	ListenPort int
	// NextHopV4 and NextHopV6 override the next hop announced for IPv4 and
	// IPv6 prefixes on this link; the zero Addr means unset.
	NextHopV4, NextHopV6 netip.Addr
	// Capacity is the link's capacity in bit/s; above 0.
	Capacity uint64
	// ProbeTargets are the addresses probed through this link; at least one.
	ProbeTargets []netip.AddrPort
	// Thresholds are the link's effective thresholds: the global ones with
	// the link's overrides merged key by key.
	Thresholds Thresholds
	// Router names the PoP's router the link lands on, "" for none: its
	// load is then not measured. Interface is the link's interface name
	// on the router (gNMI), IfIndex its SNMP ifIndex (flows); 0 unset.
	Router, Interface string
	IfIndex           uint32
}

// DefaultProbePort is the probe port used when a target leaves it out: the
// STAMP port (RFC 8762 section 4.1.1).
const DefaultProbePort = 862

// Prefix is an edge prefix and the links it is published on.
type Prefix struct {
	// Prefix is canonical: no host bits set.
	Prefix netip.Prefix
	// Publish holds the IDs ("pop/link") of the links the prefix is
	// published on, sorted and never empty. Prefixes published on the same
	// links share one slice.
	Publish []string
}

// LinkID returns the ID of a link, "pop/link", as used in Prefix.Publish,
// in metrics labels and in the decisions and actuators.
func (t *Topology) LinkID(pop, link string) string {
	return pop + "/" + link
}

// Validate checks t as Load does after decoding: names, AS numbers,
// addresses, ports, capacities, probe targets, prefixes and where they are
// published, thresholds, probe pacing and BGP timers. It reports every
// problem, one a line, each starting with t.Source and the key path.
func (t *Topology) Validate() error {
	return joinErrors(t.Source, t.problems(), nil)
}

// problems returns every problem of t, with the path of the key to fix.
func (t *Topology) problems() []fieldError {
	var e errList
	for _, p := range t.Probes.check() {
		e.add("probes."+p.key, "%s, or delete the key for the default (%s)", p.msg, fieldValue(probeFields, DefaultProbes(), p.key))
	}
	for _, p := range t.BGP.check() {
		e.add("bgp."+p.key, "%s, or delete the key for the default (%s)", p.msg, fieldValue(bgpFields, DefaultBGP(), p.key))
	}
	for _, p := range t.Flow.check() {
		e.add("flow."+p.key, "%s, or delete the key for the default (%s)", p.msg, fieldValue(flowFields, DefaultFlow(), p.key))
	}
	for _, p := range t.Telemetry.check() {
		e.add("telemetry."+p.key, "%s, or delete the key for the default (%s)", p.msg, fieldValue(telemetryFields, DefaultTelemetry(), p.key))
	}
	for _, p := range t.Thresholds.check(t.Probes) {
		e.add("thresholds."+p.key, "%s, or delete the key for the default (%s)", p.msg, fieldValue(thresholdFields, DefaultThresholds(), p.key))
	}
	t.checkPoPs(&e)
	t.checkPrefixes(&e)
	return e.errs
}

func (t *Topology) checkPoPs(e *errList) {
	if len(t.PoPs) == 0 {
		e.add("pops", "no PoPs; add at least one PoP with a speaker and links")
		return
	}
	popAt := make(map[string]int)
	routerIDAt := make(map[netip.Addr]int)
	routerAt := make(map[string]string)
	for i, pop := range t.PoPs {
		path := fmt.Sprintf("pops[%d]", i)
		checkName(e, path+".name", pop.Name, "PoP", "ams")
		if j, dup := popAt[pop.Name]; dup && pop.Name != "" {
			e.add(path+".name", "%q is already the name of pops[%d]; PoP names must be unique", pop.Name, j)
		} else {
			popAt[pop.Name] = i
		}

		sp := path + ".speaker"
		switch id := pop.Speaker.RouterID; {
		case !id.IsValid():
			e.add(sp+".router_id", "missing; write the speaker's BGP identifier, a dotted IPv4 address such as 198.18.0.1")
		case !id.Is4():
			e.add(sp+".router_id", "%s is not IPv4; the BGP identifier is 4 bytes: write a dotted IPv4 address such as 198.18.0.1", id)
		case id.IsUnspecified():
			e.add(sp+".router_id", "0.0.0.0 is not a valid BGP identifier; write a nonzero IPv4 address such as 198.18.0.1")
		default:
			if j, dup := routerIDAt[id]; dup {
				e.add(sp+".router_id", "%s is already the router_id of pops[%d]; give each speaker its own", id, j)
			} else {
				routerIDAt[id] = i
			}
		}
		checkASN(e, sp+".asn", pop.Speaker.ASN, "the edge's AS number")

		if len(pop.Links) == 0 {
			e.add(path+".links", "no links; add at least one ISP link")
		}
		linkAt := make(map[string]int)
		neighborAt := make(map[netip.Addr]int)
		for j, l := range pop.Links {
			lp := fmt.Sprintf("%s.links[%d]", path, j)
			checkName(e, lp+".name", l.Name, "link", "isp1")
			if k, dup := linkAt[l.Name]; dup && l.Name != "" {
				e.add(lp+".name", "%q is already the name of %s.links[%d]; link names must be unique within a PoP", l.Name, path, k)
			} else {
				linkAt[l.Name] = j
			}
			if k, dup := neighborAt[l.Neighbor]; dup && l.Neighbor.IsValid() {
				e.add(lp+".neighbor", "%s is already the neighbor of %s.links[%d]; a speaker has one session per neighbor address", l.Neighbor, path, k)
			} else {
				neighborAt[l.Neighbor] = j
			}
			t.checkLink(e, lp, pop, l)
			checkLinkRouter(e, lp, pop, l)
		}
		checkRouters(e, path, pop, routerAt)
		checkIfIndexes(e, path, pop)
	}
}

func (t *Topology) checkLink(e *errList, path string, pop PoP, l Link) {
	checkASN(e, path+".peer_asn", l.PeerASN, "the ISP's AS number")
	if l.PeerASN != 0 && l.PeerASN == pop.Speaker.ASN {
		e.add(path+".peer_asn", "%d is the speaker's own AS number; links are eBGP sessions, so write the ISP's AS number", l.PeerASN)
	}

	nb, lo := l.Neighbor, l.Local
	if !nb.IsValid() {
		e.add(path+".neighbor", "missing; write the ISP router's address on the link, such as 198.18.1.2")
	} else if msg := checkHost(nb); msg != "" {
		e.add(path+".neighbor", "%s", msg)
	}
	if !lo.IsValid() {
		e.add(path+".local", "missing; write our address on the link (the BGP and probe source), such as 198.18.1.1")
	} else if msg := checkHost(lo); msg != "" {
		e.add(path+".local", "%s", msg)
	}
	if nb.IsValid() && lo.IsValid() {
		switch {
		case nb.Is4() != lo.Is4():
			e.add(path+".local", "%s is %s but neighbor %s is %s; write our address on the link in the neighbor's family",
				lo, family(lo), nb, family(nb))
		case nb == lo:
			e.add(path+".local", "%s is also the neighbor; write our own address on the link", lo)
		}
	}
	checkPort(e, path+".neighbor_port", l.NeighborPort, "or delete the key for the default (179)")
	if l.ListenPort != -1 {
		checkPort(e, path+".listen_port", l.ListenPort, "or -1 to only connect out (the default)")
	}
	if a := l.NextHopV4; a.IsValid() {
		if !a.Is4() {
			e.add(path+".next_hop_v4", "%s is not IPv4; write an IPv4 address, or delete the key to announce the session's own", a)
		} else if msg := checkHost(a); msg != "" {
			e.add(path+".next_hop_v4", "%s", msg)
		}
	}
	if a := l.NextHopV6; a.IsValid() {
		if !a.Is6() {
			e.add(path+".next_hop_v6", "%s is not IPv6; write an IPv6 address, or delete the key to announce the session's own", a)
		} else if msg := checkHost(a); msg != "" {
			e.add(path+".next_hop_v6", "%s", msg)
		}
	}
	if l.Capacity == 0 {
		e.add(path+".capacity", "missing; write the link's capacity in bit/s, such as 10G (k, M, G and T are powers of 1000)")
	}

	if len(l.ProbeTargets) == 0 {
		e.add(path+".probe_targets", "none; add at least one target reached through this link, such as [198.18.9.1:862]")
	}
	targetAt := make(map[netip.AddrPort]int)
	for k, ap := range l.ProbeTargets {
		tp := fmt.Sprintf("%s.probe_targets[%d]", path, k)
		switch {
		case !ap.Addr().IsValid():
			e.add(tp, "missing address; write an address and port such as 198.18.9.1:862")
		case checkHost(ap.Addr()) != "":
			e.add(tp, "%s", checkHost(ap.Addr()))
		case ap.Port() == 0:
			e.add(tp, "port 0 is not usable; write a port such as %s, or leave it out for the default (862)",
				netip.AddrPortFrom(ap.Addr(), DefaultProbePort))
		}
		if m, dup := targetAt[ap]; dup {
			e.add(tp, "%s is already listed as %s.probe_targets[%d]; remove one", ap, path, m)
		} else {
			targetAt[ap] = k
		}
	}

	// Report a link's threshold only where the link changes a key the check
	// reads: the rest is the global value, already reported once.
	for _, p := range l.Thresholds.check(t.Probes) {
		for _, key := range p.involves {
			if fieldValue(thresholdFields, l.Thresholds, key) != fieldValue(thresholdFields, t.Thresholds, key) {
				e.add(path+".thresholds."+p.key, "%s, or delete the key to use the global value (%s)",
					p.msg, fieldValue(thresholdFields, t.Thresholds, p.key))
				break
			}
		}
	}
}

func (t *Topology) checkPrefixes(e *errList) {
	if len(t.Prefixes) == 0 {
		e.add("prefixes", "none; add the edge's prefixes, such as - prefix: 198.51.100.0/24")
		return
	}
	links := make(map[string]bool)
	for _, pop := range t.PoPs {
		for _, l := range pop.Links {
			links[t.LinkID(pop.Name, l.Name)] = true
		}
	}
	prefixAt := make(map[netip.Prefix]int)
	published := make(map[string]bool) // PoP names
	// Prefixes on the same links share a slice: check each slice once.
	checked := make(map[*string]int)
	for i, p := range t.Prefixes {
		path := fmt.Sprintf("prefixes[%d]", i)
		switch {
		case !p.Prefix.IsValid():
			e.add(path+".prefix", "missing; write a prefix such as 198.51.100.0/24")
		case p.Prefix.Addr().Zone() != "" || p.Prefix.Addr().Is4In6():
			e.add(path+".prefix", "%s is not a plain IPv4 or IPv6 prefix; write one such as 198.51.100.0/24", p.Prefix)
		case p.Prefix != p.Prefix.Masked():
			e.add(path+".prefix", "%s has host bits set; write %s", p.Prefix, p.Prefix.Masked())
		default:
			if j, dup := prefixAt[p.Prefix]; dup {
				e.add(path+".prefix", "%s is already listed as prefixes[%d]; merge the two entries' publish lists", p.Prefix, j)
			} else {
				prefixAt[p.Prefix] = i
			}
		}
		if len(p.Publish) == 0 {
			e.add(path+".publish", "empty; list the PoPs or links (\"pop/link\") to publish on")
			continue
		}
		if n, ok := checked[&p.Publish[0]]; ok && n == len(p.Publish) {
			continue
		}
		checked[&p.Publish[0]] = len(p.Publish)
		seen := make(map[string]bool, len(p.Publish))
		for k, id := range p.Publish {
			switch {
			case !links[id]:
				e.add(fmt.Sprintf("%s.publish[%d]", path, k), "no link %q; list the ID (\"pop/link\") of a link in pops", id)
			case seen[id]:
				e.add(fmt.Sprintf("%s.publish[%d]", path, k), "%q is listed twice; remove one", id)
			}
			seen[id] = true
			pop, _, _ := strings.Cut(id, "/")
			published[pop] = true
		}
	}
	for i, pop := range t.PoPs {
		if pop.Name != "" && !published[pop.Name] {
			e.add(fmt.Sprintf("pops[%d]", i), "no prefix is published on PoP %q; add it to a prefix's publish list, or leave a publish list out to publish on every PoP", pop.Name)
		}
	}
}

// checkName reports a missing or badly formed PoP or link name.
func checkName(e *errList, path, name, what, example string) {
	if name == "" {
		e.add(path, "missing; name the %s with a-z, 0-9 and '-', such as %q", what, example)
		return
	}
	if !validName(name) {
		e.add(path, "%q is not a valid %s name; use only a-z, 0-9 and '-', such as %q", name, what, fixName(name, example))
	}
}

func validName(s string) bool {
	if s == "" {
		return false
	}
	for _, r := range s {
		if !(r >= 'a' && r <= 'z' || r >= '0' && r <= '9' || r == '-') {
			return false
		}
	}
	return true
}

// fixName turns s into the nearest valid name, for the fix in a message.
func fixName(s, example string) string {
	var b strings.Builder
	for _, r := range strings.ToLower(s) {
		if r >= 'a' && r <= 'z' || r >= '0' && r <= '9' {
			b.WriteRune(r)
		} else if b.Len() > 0 && !strings.HasSuffix(b.String(), "-") {
			b.WriteByte('-')
		}
	}
	if out := strings.TrimSuffix(b.String(), "-"); out != "" {
		return out
	}
	return example
}

// asTrans is the 2-byte placeholder for 4-byte AS numbers (RFC 6793 section 9).
const asTrans = 23456

func checkASN(e *errList, path string, asn uint32, what string) {
	switch asn {
	case 0:
		e.add(path, "missing; write %s, 1 to 4294967294, such as 64500", what)
	case asTrans:
		e.add(path, "23456 is AS_TRANS (RFC 6793), a placeholder for 2-byte speakers; write the real AS number")
	case 4294967295:
		e.add(path, "4294967295 is reserved (RFC 7300); write %s, 1 to 4294967294", what)
	}
}

func checkPort(e *errList, path string, port int, otherwise string) {
	if port < 1 || port > 65535 {
		e.add(path, "%d is not a port; write 1 to 65535, %s", port, otherwise)
	}
}

// checkHost returns what makes a not usable as a host address, or "".
func checkHost(a netip.Addr) string {
	switch {
	case a.Zone() != "":
		return fmt.Sprintf("%s has a zone, which is not supported; write a global or unique-local address", a)
	case a.Is4In6():
		return fmt.Sprintf("%s is an IPv4-mapped IPv6 address; write it as IPv4: %s", a, a.Unmap())
	case a.IsUnspecified():
		return fmt.Sprintf("%s is the unspecified address; write a host address", a)
	case a.IsMulticast():
		return fmt.Sprintf("%s is a multicast address; write a host address", a)
	}
	return ""
}

func family(a netip.Addr) string {
	if a.Is4() {
		return "IPv4"
	}
	return "IPv6"
}
