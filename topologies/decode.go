package topologies

import (
	"fmt"
	"slices"
	"strconv"
	"strings"
)

// The raw types hold a topology as written, every scalar as text ("" when
// absent), so that decoding (the shape of the file) and conversion (the
// meaning of each value) report their problems separately, with paths.
type (
	rawTopology struct {
		Name                    string
		PoPs                    []rawPoP
		Prefixes                []rawPrefix
		Thresholds, Probes, BGP map[string]string // key -> value, set keys only
		Flow, Telemetry         map[string]string
	}
	rawPoP struct {
		Name, RouterID, ASN string
		Links               []rawLink
		Routers             []rawRouter
		EdgeProxies         []string
	}
	rawLink struct {
		Name, ISP, PeerASN, Neighbor, NeighborPort, Local, ListenPort string
		NextHopV4, NextHopV6, Capacity                                string
		Router, Interface, IfIndex                                    string
		ProbeTargets                                                  []string
		Thresholds                                                    map[string]string
	}
	rawPrefix struct {
		Prefix  string
		Publish []string
	}
)

// The keys allowed in each mapping of the schema.
var (
	topKeys     = []string{"name", "pops", "prefixes", "thresholds", "probes", "bgp", "flow", "telemetry"}
	popKeys     = []string{"name", "speaker", "links", "routers", "edge_proxies"}
	speakerKeys = []string{"router_id", "asn"}
	linkKeys    = []string{"name", "isp", "peer_asn", "neighbor", "neighbor_port", "local", "listen_port",
		"next_hop_v4", "next_hop_v6", "capacity", "probe_targets", "thresholds", "router", "interface", "ifindex"}
	prefixKeys = []string{"prefix", "publish"}
)

// decode walks the tree viper read and returns it as a rawTopology,
// reporting unknown keys and values of the wrong shape.
func decode(e *errList, doc map[string]any) rawTopology {
	d := decoder{e}
	var raw rawTopology
	top := d.mapping("", doc, "topology", topKeys)
	raw.Name = d.scalar("name", top["name"])
	for i, v := range d.list("pops", top["pops"], "PoPs") {
		raw.PoPs = append(raw.PoPs, d.pop(fmt.Sprintf("pops[%d]", i), v))
	}
	for i, v := range d.list("prefixes", top["prefixes"], "prefixes") {
		path := fmt.Sprintf("prefixes[%d]", i)
		m := d.mapping(path, v, "prefix (prefix, publish)", prefixKeys)
		raw.Prefixes = append(raw.Prefixes, rawPrefix{
			Prefix:  d.scalar(path+".prefix", m["prefix"]),
			Publish: d.scalars(path+".publish", m["publish"], "PoP names or link IDs (\"pop/link\")"),
		})
	}
	raw.Thresholds = d.section("thresholds", top["thresholds"], fieldKeys(thresholdFields))
	raw.Probes = d.section("probes", top["probes"], fieldKeys(probeFields))
	raw.BGP = d.section("bgp", top["bgp"], fieldKeys(bgpFields))
	raw.Flow = d.section("flow", top["flow"], fieldKeys(flowFields))
	raw.Telemetry = d.section("telemetry", top["telemetry"], fieldKeys(telemetryFields))
	return raw
}

type decoder struct{ e *errList }

func (d decoder) pop(path string, v any) rawPoP {
	m := d.mapping(path, v, "PoP (name, speaker, links, routers, edge_proxies)", popKeys)
	sp := d.mapping(path+".speaker", m["speaker"], "speaker (router_id, asn)", speakerKeys)
	p := rawPoP{
		Name:     d.scalar(path+".name", m["name"]),
		RouterID: d.scalar(path+".speaker.router_id", sp["router_id"]),
		ASN:      d.scalar(path+".speaker.asn", sp["asn"]),
	}
	for j, lv := range d.list(path+".links", m["links"], "links") {
		p.Links = append(p.Links, d.link(fmt.Sprintf("%s.links[%d]", path, j), lv))
	}
	for j, rv := range d.list(path+".routers", m["routers"], "routers") {
		p.Routers = append(p.Routers, d.router(fmt.Sprintf("%s.routers[%d]", path, j), rv))
	}
	p.EdgeProxies = d.scalars(path+".edge_proxies", m["edge_proxies"], "admin addresses such as 198.18.1.10:9480")
	return p
}

func (d decoder) link(path string, v any) rawLink {
	m := d.mapping(path, v, "link", linkKeys)
	s := func(key string) string { return d.scalar(path+"."+key, m[key]) }
	return rawLink{
		Name:         s("name"),
		ISP:          s("isp"),
		PeerASN:      s("peer_asn"),
		Neighbor:     s("neighbor"),
		NeighborPort: s("neighbor_port"),
		Local:        s("local"),
		ListenPort:   s("listen_port"),
		NextHopV4:    s("next_hop_v4"),
		NextHopV6:    s("next_hop_v6"),
		Capacity:     s("capacity"),
		ProbeTargets: d.scalars(path+".probe_targets", m["probe_targets"], "addresses such as 198.18.9.1:862"),
		Thresholds:   d.section(path+".thresholds", m["thresholds"], fieldKeys(thresholdFields)),
		Router:       s("router"),
		Interface:    s("interface"),
		IfIndex:      s("ifindex"),
	}
}

// mapping returns v as a mapping and reports its keys that are not in keys.
// It returns nil, which reads as a mapping with no keys, if v is absent or
// not a mapping.
func (d decoder) mapping(path string, v any, what string, keys []string) map[string]any {
	if v == nil {
		return nil
	}
	m, ok := v.(map[string]any)
	if !ok {
		d.e.fail(path, "want a mapping of %s keys, got %s", what, describe(v))
		return nil
	}
	unknown := make([]string, 0, len(m))
	for k := range m {
		if !slices.Contains(keys, k) {
			unknown = append(unknown, k)
		}
	}
	slices.Sort(unknown)
	for _, k := range unknown {
		d.e.add(keyPath(path, k), "unknown key%s", suggest(k, keys, "; the keys here are "+strings.Join(keys, ", ")))
	}
	return m
}

// section returns the scalar keys of a thresholds, probes or bgp mapping.
func (d decoder) section(path string, v any, keys []string) map[string]string {
	m := d.mapping(path, v, path[strings.LastIndex(path, ".")+1:], keys)
	out := make(map[string]string, len(m))
	for _, k := range keys {
		if s := d.scalar(keyPath(path, k), m[k]); s != "" {
			out[k] = s
		}
	}
	return out
}

// list returns v as a list; nil if it is absent or not a list.
func (d decoder) list(path string, v any, what string) []any {
	if v == nil {
		return nil
	}
	l, ok := v.([]any)
	if !ok {
		d.e.fail(path, "want a list of %s, got %s; write one item a line, each after \"- \"", what, describe(v))
		return nil
	}
	return l
}

// scalars returns v as a list of scalars.
func (d decoder) scalars(path string, v any, what string) []string {
	if v == nil {
		return nil
	}
	l, ok := v.([]any)
	if !ok {
		fix := ""
		if _, isMap := v.(map[string]any); !isMap {
			fix = fmt.Sprintf("; write it in brackets, such as [%s]", d.scalar(path, v))
		}
		d.e.fail(path, "want a list of %s, got %s%s", what, describe(v), fix)
		return nil
	}
	out := make([]string, 0, len(l))
	for i, item := range l {
		out = append(out, d.scalar(fmt.Sprintf("%s[%d]", path, i), item))
	}
	return out
}

// scalar returns v as text: "" if absent, numbers as written in decimal.
func (d decoder) scalar(path string, v any) string {
	switch v := v.(type) {
	case nil:
		return ""
	case string:
		return v
	case int:
		return strconv.Itoa(v)
	case int64:
		return strconv.FormatInt(v, 10)
	case uint64:
		return strconv.FormatUint(v, 10)
	case float64:
		// 'f', so that 1e9 reads as 1000000000 where a whole number is due.
		return strconv.FormatFloat(v, 'f', -1, 64)
	case bool:
		return strconv.FormatBool(v)
	case map[string]any, []any:
		d.e.fail(path, "want a single value, got %s", describe(v))
		return ""
	}
	return fmt.Sprint(v)
}

// describe names the shape of a decoded value for messages.
func describe(v any) string {
	switch v := v.(type) {
	case map[string]any:
		return "a mapping"
	case []any:
		return "a list"
	case string:
		return strconv.Quote(v)
	}
	return fmt.Sprint(v)
}

// keyPath appends key k to path; keys other than letters, digits, '_' and
// '-' are quoted, so that a path always reads back unambiguously and on one line.
func keyPath(path, k string) string {
	plain := k != ""
	for _, r := range k {
		if !(r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || r == '_' || r == '-') {
			plain = false
			break
		}
	}
	if !plain {
		k = strconv.Quote(k)
	}
	if path == "" {
		return k
	}
	return path + "." + k
}
