package topologies

import (
	"errors"
	"fmt"
	"math/big"
	"net/netip"
	"slices"
	"strconv"
	"strings"
)

// Defaults of the link keys that have one.
const (
	defaultNeighborPort = 179
	defaultListenPort   = -1 // only connect out
)

// convert turns the raw topology into a typed one, applying defaults and
// reporting values that don't parse. The result may be invalid; problems()
// checks it.
func (raw rawTopology) convert(e *errList) *Topology {
	t := &Topology{Name: raw.Name}
	const deflt = "or delete the key for the default (%s)"
	t.Probes = convertSection(e, "probes", raw.Probes, DefaultProbes(), probeFields, deflt)
	t.BGP = convertSection(e, "bgp", raw.BGP, DefaultBGP(), bgpFields, deflt)
	t.Thresholds = convertSection(e, "thresholds", raw.Thresholds, DefaultThresholds(), thresholdFields, deflt)
	t.Flow = convertSection(e, "flow", raw.Flow, DefaultFlow(), flowFields, deflt)
	t.Telemetry = convertSection(e, "telemetry", raw.Telemetry, DefaultTelemetry(), telemetryFields, deflt)
	for i, rp := range raw.PoPs {
		t.PoPs = append(t.PoPs, rp.convert(e, fmt.Sprintf("pops[%d]", i), t.Thresholds))
	}
	t.Prefixes = raw.convertPrefixes(e)
	return t
}

// convertSection parses the keys set in raw over base. hint ends each
// message, with the value the key would have without it.
func convertSection[T any](e *errList, path string, raw map[string]string, base T, fs []field[T], hint string) T {
	out := base
	for _, f := range fs {
		s, ok := raw[f.key]
		if !ok {
			continue
		}
		if msg := setField(f.at(&out), s); msg != "" {
			e.fail(path+"."+f.key, "%s, "+hint, msg, fieldValue(fs, base, f.key))
		}
	}
	return out
}

func (rp rawPoP) convert(e *errList, path string, global Thresholds) PoP {
	p := PoP{Name: rp.Name}
	p.Speaker.RouterID = parseAddr(e, path+".speaker.router_id", rp.RouterID,
		"is not an IPv4 address; write the speaker's BGP identifier in dotted form, such as 198.18.0.1")
	p.Speaker.ASN = parseASN(e, path+".speaker.asn", rp.ASN)
	for j, rl := range rp.Links {
		p.Links = append(p.Links, rl.convert(e, fmt.Sprintf("%s.links[%d]", path, j), global))
	}
	for j, rr := range rp.Routers {
		p.Routers = append(p.Routers, rr.convert(e, fmt.Sprintf("%s.routers[%d]", path, j)))
	}
	seen := map[netip.AddrPort]bool{}
	for k, s := range rp.EdgeProxies {
		at := fmt.Sprintf("%s.edge_proxies[%d]", path, k)
		ap, err := netip.ParseAddrPort(s)
		switch {
		case err != nil || ap.Port() == 0:
			e.fail(at, "%q is not IP:port; write the proxy's admin address, such as 198.18.1.10:9480 (no names: a DNS outage must not stop a drain)", s)
		case seen[ap]:
			e.fail(at, "%s is listed twice; remove one", s)
		default:
			seen[ap] = true
			p.EdgeProxies = append(p.EdgeProxies, ap.String())
		}
	}
	return p
}

func (rl rawLink) convert(e *errList, path string, global Thresholds) Link {
	const anyIP = "is not an IP address; write an IPv4 or IPv6 address such as 198.18.0.1"
	l := Link{
		Name:         rl.Name,
		ISP:          rl.ISP,
		PeerASN:      parseASN(e, path+".peer_asn", rl.PeerASN),
		Neighbor:     parseAddr(e, path+".neighbor", rl.Neighbor, anyIP),
		NeighborPort: parseInt(e, path+".neighbor_port", rl.NeighborPort, defaultNeighborPort, "write a port from 1 to 65535, or delete the key for the default (179)"),
		Local:        parseAddr(e, path+".local", rl.Local, anyIP),
		ListenPort:   parseInt(e, path+".listen_port", rl.ListenPort, defaultListenPort, "write -1 to only connect out (the default), or a port from 1 to 65535"),
		NextHopV4:    parseAddr(e, path+".next_hop_v4", rl.NextHopV4, "is not an IP address; write an IPv4 address such as 198.18.1.1, or delete the key"),
		NextHopV6:    parseAddr(e, path+".next_hop_v6", rl.NextHopV6, "is not an IP address; write an IPv6 address such as 2001:db8::1, or delete the key"),
		Thresholds:   convertSection(e, path+".thresholds", rl.Thresholds, global, thresholdFields, "or delete the key to use the global value (%s)"),
		Router:       rl.Router,
		Interface:    rl.Interface,
		IfIndex:      parseIfIndex(e, path+".ifindex", rl.IfIndex),
	}
	if rl.Capacity != "" {
		c, msg := parseCapacity(rl.Capacity)
		if msg != "" {
			e.fail(path+".capacity", "%s", msg)
		}
		l.Capacity = c
	}
	for k, s := range rl.ProbeTargets {
		// A target that does not parse stays as a zero placeholder, so that
		// the indexes in later messages match the file.
		ap, msg := parseTarget(s)
		if msg != "" {
			e.fail(fmt.Sprintf("%s.probe_targets[%d]", path, k), "%s", msg)
		}
		l.ProbeTargets = append(l.ProbeTargets, ap)
	}
	return l
}

// parseAddr parses an address; "" is the zero Addr, which validation
// reports as missing where an address is required.
func parseAddr(e *errList, path, s, fix string) netip.Addr {
	if s == "" {
		return netip.Addr{}
	}
	a, err := netip.ParseAddr(s)
	if err != nil {
		e.fail(path, "%q %s", s, fix)
	}
	return a
}

func parseASN(e *errList, path, s string) uint32 {
	if s == "" {
		return 0
	}
	n, err := strconv.ParseUint(s, 10, 32)
	switch {
	case err == nil && n == 0:
		e.fail(path, "0 is not a usable AS number; write 1 to 4294967294, such as 64500")
	case err == nil:
		return uint32(n)
	case len(s) > 2 && strings.EqualFold(s[:2], "AS"):
		if n, err := strconv.ParseUint(s[2:], 10, 32); err == nil {
			e.fail(path, "%q is not an AS number; write it without the AS: %d", s, n)
			break
		}
		fallthrough
	default:
		e.fail(path, "%q is not an AS number; write a number from 1 to 4294967294, such as 64500", s)
	}
	return 0
}

func parseInt(e *errList, path, s string, deflt int, fix string) int {
	if s == "" {
		return deflt
	}
	n, err := strconv.Atoi(s)
	if err != nil {
		e.fail(path, "%q is not a whole number; %s", s, fix)
		return deflt
	}
	return n
}

// capacityUnits are the SI multipliers a capacity may end with.
var capacityUnits = map[byte]uint64{'k': 1e3, 'K': 1e3, 'M': 1e6, 'G': 1e9, 'T': 1e12}

// parseCapacity parses a bit rate: a decimal number of bit/s, optionally
// followed by k (or K), M, G or T, powers of 1000: 10G, 2.5G, 100M,
// 1000000000. It refuses units ("10 Gbps"), suggesting the accepted form,
// and zero. It returns the problem with its fix, or "".
func parseCapacity(s string) (uint64, string) {
	n, ok := capacity(s)
	switch {
	case ok && n == 0:
		return 0, fmt.Sprintf("%q is not a usable capacity; write the link's capacity in bit/s, such as 10G", s)
	case ok:
		return n, ""
	}
	const fix = "write a whole number of bit/s, optionally followed by k, M, G or T (powers of 1000), such as 10G or 2.5G"
	// Forgive nothing, but recognise the usual spellings in the fix.
	t := strings.Join(strings.Fields(s), "")
	for _, unit := range []string{"bit/s", "bps", "b/s", "bit", "b"} {
		if u, ok := strings.CutSuffix(t, unit); ok {
			t = u
			break
		}
	}
	if _, ok := capacity(t); ok && t != s {
		return 0, fmt.Sprintf("%q is not a capacity; write %s (bit/s, with k, M, G or T as powers of 1000)", s, t)
	}
	return 0, fmt.Sprintf("%q is not a capacity; %s", s, fix)
}

// capacity parses s as parseCapacity describes; ok is false if s is not of
// that form, or not a whole number of bit/s, or above 2^64-1.
func capacity(s string) (uint64, bool) {
	num, mult := s, uint64(1)
	if n := len(s); n > 0 {
		if m, ok := capacityUnits[s[n-1]]; ok {
			num, mult = s[:n-1], m
		}
	}
	if !decimal(num) || len(num) > 32 {
		return 0, false
	}
	r, ok := new(big.Rat).SetString(num)
	if !ok {
		return 0, false
	}
	r.Mul(r, new(big.Rat).SetUint64(mult))
	if !r.IsInt() || !r.Num().IsUint64() {
		return 0, false
	}
	return r.Num().Uint64(), true
}

// decimal reports whether s is digits with at most one '.' between digits.
func decimal(s string) bool {
	whole, frac, dot := strings.Cut(s, ".")
	return digits(whole) && (!dot || digits(frac))
}

func digits(s string) bool {
	if s == "" {
		return false
	}
	for i := range len(s) {
		if s[i] < '0' || s[i] > '9' {
			return false
		}
	}
	return true
}

// parseTarget parses a probe target: an address and port ("198.18.9.1:862",
// "[2001:db8::1]:862") or an address alone, which gets DefaultProbePort.
// IPv6 takes brackets either way, so that "2001:db8::1:862" can't be read
// as two different things.
func parseTarget(s string) (netip.AddrPort, string) {
	if s == "" {
		return netip.AddrPort{}, ""
	}
	if ap, err := netip.ParseAddrPort(s); err == nil {
		return ap, ""
	}
	if a, err := netip.ParseAddr(s); err == nil {
		if a.Is4() {
			return netip.AddrPortFrom(a, DefaultProbePort), ""
		}
		return netip.AddrPort{}, fmt.Sprintf("%q needs brackets, so that its port can't be confused with the address; write [%s] or [%s]:%d", s, s, s, DefaultProbePort)
	}
	if inner, ok := strings.CutPrefix(s, "["); ok {
		if inner, ok := strings.CutSuffix(inner, "]"); ok {
			if a, err := netip.ParseAddr(inner); err == nil && a.Is6() {
				return netip.AddrPortFrom(a, DefaultProbePort), ""
			}
		}
	}
	return netip.AddrPort{}, fmt.Sprintf("%q is not an address with an optional port; write an IP address, such as 198.18.9.1:862 or [2001:db8::1]:862 (the port defaults to 862)", s)
}

// convertPrefixes parses the prefixes and resolves where each is published.
func (raw rawTopology) convertPrefixes(e *errList) []Prefix {
	r := newResolver(raw.PoPs)
	interned := make(map[string][]string)
	intern := func(ids []string) []string {
		key := strings.Join(ids, " ")
		if s, ok := interned[key]; ok {
			return s
		}
		interned[key] = ids
		return ids
	}
	all := intern(r.all)
	var out []Prefix
	for i, rp := range raw.Prefixes {
		path := fmt.Sprintf("prefixes[%d]", i)
		p := Prefix{Prefix: parsePrefix(e, path+".prefix", rp.Prefix)}
		if len(rp.Publish) == 0 {
			if len(all) == 0 {
				// No links at all, which pops reports; "publish: empty"
				// would only say it again.
				e.markFailed(path + ".publish")
			}
			p.Publish = all
			out = append(out, p)
			continue
		}
		set := make(map[string]bool)
		for k, ref := range rp.Publish {
			ids, msg := r.resolve(ref)
			if msg != "" {
				e.fail(fmt.Sprintf("%s.publish[%d]", path, k), "%s", msg)
				e.markFailed(path + ".publish") // don't also call the list empty
				continue
			}
			for _, id := range ids {
				set[id] = true
			}
		}
		if len(set) > 0 {
			ids := make([]string, 0, len(set))
			for id := range set {
				ids = append(ids, id)
			}
			slices.Sort(ids)
			p.Publish = intern(ids)
		}
		out = append(out, p)
	}
	return out
}

func parsePrefix(e *errList, path, s string) netip.Prefix {
	if s == "" {
		return netip.Prefix{}
	}
	p, err := netip.ParsePrefix(s)
	switch {
	case err == nil && p != p.Masked():
		e.fail(path, "%s has host bits set; write %s", p, p.Masked())
	case err == nil:
		return p
	default:
		if a, err := netip.ParseAddr(s); err == nil {
			e.fail(path, "%q has no length; write the address and its length, such as %s/%d", s, a, a.BitLen())
			break
		}
		e.fail(path, "%q is not a prefix; write an address and length, such as 198.51.100.0/24", s)
	}
	return netip.Prefix{}
}

// resolver turns publish references (a PoP name, or a link ID "pop/link")
// into link IDs.
type resolver struct {
	pops  []string            // PoP names, in file order
	links map[string][]string // PoP name -> its link IDs, in file order
	all   []string            // every link ID, sorted
}

func newResolver(pops []rawPoP) resolver {
	r := resolver{links: make(map[string][]string)}
	for _, p := range pops {
		if _, dup := r.links[p.Name]; dup {
			continue // reported by validation; the first PoP of a name wins
		}
		ids := make([]string, 0, len(p.Links))
		for _, l := range p.Links {
			ids = append(ids, p.Name+"/"+l.Name)
		}
		r.pops = append(r.pops, p.Name)
		r.links[p.Name] = ids
		r.all = append(r.all, ids...)
	}
	slices.Sort(r.all)
	r.all = slices.Compact(r.all)
	return r
}

// resolve returns the link IDs ref stands for, or the problem with its fix.
func (r resolver) resolve(ref string) ([]string, string) {
	if ref == "" {
		return nil, "empty; write a PoP name or a link ID (\"pop/link\")"
	}
	if pop, _, ok := strings.Cut(ref, "/"); ok {
		ids, known := r.links[pop]
		switch {
		case !known:
			return nil, fmt.Sprintf("no PoP named %q%s", pop, suggest(pop, r.pops, "; the PoPs are "+names(r.pops)))
		case slices.Contains(ids, ref):
			return []string{ref}, ""
		}
		return nil, fmt.Sprintf("no link %q%s", ref, suggest(ref, ids, "; the links of "+pop+" are "+names(ids)))
	}
	if ids, ok := r.links[ref]; ok {
		return ids, ""
	}
	var ids []string
	for _, id := range r.all {
		if _, link, _ := strings.Cut(id, "/"); link == ref {
			ids = append(ids, id)
		}
	}
	if len(ids) > 0 {
		return nil, fmt.Sprintf("no PoP named %q; to publish on a link, write its ID: %s", ref, strings.Join(ids, " or "))
	}
	return nil, fmt.Sprintf("no PoP named %q%s", ref, suggest(ref, r.pops, "; the PoPs are "+names(r.pops)))
}

// names lists a few names for a message.
func names(ns []string) string {
	const most = 8
	if len(ns) > most {
		return strings.Join(ns[:most], ", ") + fmt.Sprintf(" and %d more", len(ns)-most)
	}
	if len(ns) == 0 {
		return "none"
	}
	return strings.Join(ns, ", ")
}

// ParseRate parses a bit rate as capacities are written (10G, 2.5M,
// 500k, 1000000): for commands that take one.
func ParseRate(s string) (uint64, error) {
	n, msg := parseCapacity(s)
	if msg != "" {
		return 0, errors.New(msg)
	}
	return n, nil
}
