package topologies

import (
	"errors"
	"fmt"
	"io/fs"
	"net/netip"
	"os"
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"
)

// baseDoc is a small valid topology; the error cases edit it.
const baseDoc = `name: test
pops:
  - name: ams
    speaker: {router_id: 198.18.0.1, asn: 64500}
    links:
      - name: isp1
        peer_asn: 64501
        neighbor: 198.18.1.2
        local: 198.18.1.1
        capacity: 10G
        probe_targets: [198.19.1.1:862]
      - name: isp2
        peer_asn: 64502
        neighbor: 198.18.2.2
        local: 198.18.2.1
        capacity: 1G
        probe_targets: [198.19.2.1]
  - name: fra
    speaker: {router_id: 198.18.0.2, asn: 64500}
    links:
      - name: isp3
        peer_asn: 64503
        neighbor: 198.18.3.2
        local: 198.18.3.1
        capacity: 10G
        probe_targets: ["[2001:db8:9::1]:862"]
prefixes:
  - prefix: 198.51.100.0/24
  - prefix: 203.0.113.0/24
    publish: [ams]
`

// edit applies old -> new replacements to doc, each of which must match.
func edit(tb testing.TB, doc string, pairs ...string) string {
	tb.Helper()
	for i := 0; i+1 < len(pairs); i += 2 {
		if !strings.Contains(doc, pairs[i]) {
			tb.Fatalf("edit: %q is not in the document", pairs[i])
		}
		doc = strings.Replace(doc, pairs[i], pairs[i+1], 1)
	}
	return doc
}

// parseTests are bad files: each gives the edits to baseDoc (or a whole
// doc) and every line the error must have, in order.
var parseTests = []struct {
	name  string
	doc   string   // used instead of baseDoc when set
	edits []string // old, new, old, new...
	want  []string
}{
	{
		name:  "unknown key with suggestion",
		edits: []string{"neighbor: 198.18.2.2", "neigbor: 198.18.2.2"},
		want: []string{
			`t.yaml: pops[0].links[1].neigbor: unknown key; did you mean "neighbor"?`,
			`t.yaml: pops[0].links[1].neighbor: missing; write the ISP router's address on the link, such as 198.18.1.2`,
		},
	},
	{
		name:  "keys in upper case",
		edits: []string{"name: test", "Name: test", "    speaker:", "    Speaker:", "        local: 198.18.1.1", "        local: 198.18.1.1\n        LOCAL: 198.18.1.9"},
		want: []string{
			`t.yaml: Name: keys are lower case; write "name"`,
			`t.yaml: pops[0].Speaker: keys are lower case; write "speaker"`,
			`t.yaml: pops[0].links[0].LOCAL: keys are lower case; write "local"`,
		},
	},
	{
		name:  "unknown top-level key lists the keys",
		edits: []string{"name: test", "whatever: test"},
		want:  []string{`t.yaml: whatever: unknown key; the keys here are name, pops, prefixes, thresholds, probes, bgp`},
	},
	{
		name:  "unknown link threshold key",
		edits: []string{"capacity: 1G", "capacity: 1G\n        thresholds: {los_pct: 2}"},
		want:  []string{`t.yaml: pops[0].links[1].thresholds.los_pct: unknown key; did you mean "loss_pct"?`},
	},
	{
		name:  "edge proxies",
		edits: []string{"    speaker: {router_id: 198.18.0.1, asn: 64500}", "    speaker: {router_id: 198.18.0.1, asn: 64500}\n    edge_proxies: [198.18.9.1, \"proxy:9480\", 198.18.9.2:9480, 198.18.9.2:9480]"},
		want: []string{
			`t.yaml: pops[0].edge_proxies[0]: "198.18.9.1" is not IP:port; write the proxy's admin address, such as 198.18.1.10:9480`,
			`t.yaml: pops[0].edge_proxies[1]: "proxy:9480" is not IP:port`,
			`t.yaml: pops[0].edge_proxies[3]: 198.18.9.2:9480 is listed twice; remove one`,
		},
	},
	{
		name:  "neighbor not an IP",
		edits: []string{"neighbor: 198.18.3.2", "neighbor: 10.0.0.300"},
		want:  []string{`t.yaml: pops[1].links[0].neighbor: "10.0.0.300" is not an IP address; write an IPv4 or IPv6 address such as 198.18.0.1`},
	},
	{
		name:  "neighbor missing",
		edits: []string{"        neighbor: 198.18.1.2\n", ""},
		want:  []string{`t.yaml: pops[0].links[0].neighbor: missing; write the ISP router's address`},
	},
	{
		name:  "family mismatch",
		edits: []string{"local: 198.18.3.1", "local: 2001:db8:3::1"},
		want:  []string{`t.yaml: pops[1].links[0].local: 2001:db8:3::1 is IPv6 but neighbor 198.18.3.2 is IPv4; write our address on the link in the neighbor's family`},
	},
	{
		name:  "local equals neighbor",
		edits: []string{"local: 198.18.3.1", "local: 198.18.3.2"},
		want:  []string{`t.yaml: pops[1].links[0].local: 198.18.3.2 is also the neighbor; write our own address on the link`},
	},
	{
		name:  "duplicate neighbor",
		edits: []string{"neighbor: 198.18.2.2", "neighbor: 198.18.1.2"},
		want:  []string{`t.yaml: pops[0].links[1].neighbor: 198.18.1.2 is already the neighbor of pops[0].links[0]; a speaker has one session per neighbor address`},
	},
	{
		name:  "router id IPv6",
		edits: []string{"router_id: 198.18.0.2", "router_id: 2001:db8::2"},
		want:  []string{`t.yaml: pops[1].speaker.router_id: 2001:db8::2 is not IPv4; the BGP identifier is 4 bytes: write a dotted IPv4 address such as 198.18.0.1`},
	},
	{
		name:  "router id not an address",
		edits: []string{"router_id: 198.18.0.2", "router_id: fra1"},
		want:  []string{`t.yaml: pops[1].speaker.router_id: "fra1" is not an IPv4 address; write the speaker's BGP identifier in dotted form, such as 198.18.0.1`},
	},
	{
		name:  "router id duplicate",
		edits: []string{"router_id: 198.18.0.2", "router_id: 198.18.0.1"},
		want:  []string{`t.yaml: pops[1].speaker.router_id: 198.18.0.1 is already the router_id of pops[0]; give each speaker its own`},
	},
	{
		name:  "asn is AS_TRANS",
		edits: []string{"asn: 64500}\n    links:\n      - name: isp3", "asn: 23456}\n    links:\n      - name: isp3"},
		want:  []string{`t.yaml: pops[1].speaker.asn: 23456 is AS_TRANS (RFC 6793), a placeholder for 2-byte speakers; write the real AS number`},
	},
	{
		name:  "asn zero and too large",
		edits: []string{"peer_asn: 64501", "peer_asn: 0", "peer_asn: 64502", "peer_asn: 4294967296"},
		want: []string{
			`t.yaml: pops[0].links[0].peer_asn: 0 is not a usable AS number; write 1 to 4294967294, such as 64500`,
			`t.yaml: pops[0].links[1].peer_asn: "4294967296" is not an AS number; write a number from 1 to 4294967294, such as 64500`,
		},
	},
	{
		name:  "asn with AS prefix",
		edits: []string{"peer_asn: 64503", "peer_asn: AS64503"},
		want:  []string{`t.yaml: pops[1].links[0].peer_asn: "AS64503" is not an AS number; write it without the AS: 64503`},
	},
	{
		name:  "iBGP session refused",
		edits: []string{"peer_asn: 64502", "peer_asn: 64500"},
		want:  []string{`t.yaml: pops[0].links[1].peer_asn: 64500 is the speaker's own AS number; links are eBGP sessions, so write the ISP's AS number`},
	},
	{
		name:  "bad PoP name",
		edits: []string{"name: fra", "name: Fra_1"},
		want:  []string{`t.yaml: pops[1].name: "Fra_1" is not a valid PoP name; use only a-z, 0-9 and '-', such as "fra-1"`},
	},
	{
		name:  "duplicate PoP name",
		edits: []string{"name: fra", "name: ams"},
		want:  []string{`t.yaml: pops[1].name: "ams" is already the name of pops[0]; PoP names must be unique`},
	},
	{
		name:  "duplicate link name",
		edits: []string{"name: isp2", "name: isp1"},
		want:  []string{`t.yaml: pops[0].links[1].name: "isp1" is already the name of pops[0].links[0]; link names must be unique within a PoP`},
	},
	{
		name: "no links",
		edits: []string{`    links:
      - name: isp3
        peer_asn: 64503
        neighbor: 198.18.3.2
        local: 198.18.3.1
        capacity: 10G
        probe_targets: ["[2001:db8:9::1]:862"]
`, "    links: []\n"},
		want: []string{
			`t.yaml: pops[1]: no prefix is published on PoP "fra"`,
			`t.yaml: pops[1].links: no links; add at least one ISP link`,
		},
	},
	{
		name: "no pops and no prefixes",
		doc:  "name: empty\n",
		want: []string{
			`t.yaml: pops: no PoPs; add at least one PoP with a speaker and links`,
			`t.yaml: prefixes: none; add the edge's prefixes`,
		},
	},
	{
		name: "empty file",
		doc:  "# nothing but a comment\n",
		want: []string{`t.yaml: pops: no PoPs`, `t.yaml: prefixes: none`},
	},
	{
		name: "pops not a list",
		doc:  "pops: {name: ams}\nprefixes: [{prefix: 198.51.100.0/24}]\n",
		want: []string{`t.yaml: pops: want a list of PoPs, got a mapping; write one item a line, each after "- "`},
	},
	{
		name:  "scalar where a mapping is due",
		edits: []string{"name: test", "name: test\nbgp: 90s"},
		want:  []string{`t.yaml: bgp: want a mapping of bgp keys, got "90s"`},
	},
	{
		name: "YAML syntax",
		doc:  "pops: [\n",
		want: []string{`t.yaml: not valid YAML: yaml: line 1: did not find expected node content`},
	},
	{
		name: "top level is a list",
		doc:  "- name: ams\n",
		want: []string{`t.yaml: not valid YAML: the top level must be a mapping of keys (name, pops, prefixes, thresholds, probes, bgp, flow, telemetry)`},
	},
	{
		name:  "capacity with units, zero, missing",
		edits: []string{"capacity: 10G", "capacity: 10 Gbps", "capacity: 1G", "capacity: 0", "        capacity: 10G\n", ""},
		want: []string{
			`t.yaml: pops[0].links[0].capacity: "10 Gbps" is not a capacity; write 10G (bit/s, with k, M, G or T as powers of 1000)`,
			`t.yaml: pops[0].links[1].capacity: "0" is not a usable capacity; write the link's capacity in bit/s, such as 10G`,
			`t.yaml: pops[1].links[0].capacity: missing; write the link's capacity in bit/s, such as 10G`,
		},
	},
	{
		name:  "ports",
		edits: []string{"local: 198.18.1.1", "local: 198.18.1.1\n        neighbor_port: 70000\n        listen_port: 0"},
		want: []string{
			`t.yaml: pops[0].links[0].listen_port: 0 is not a port; write 1 to 65535, or -1 to only connect out (the default)`,
			`t.yaml: pops[0].links[0].neighbor_port: 70000 is not a port; write 1 to 65535, or delete the key for the default (179)`,
		},
	},
	{
		name:  "next hops of the wrong family",
		edits: []string{"local: 198.18.1.1", "local: 198.18.1.1\n        next_hop_v4: 2001:db8::1\n        next_hop_v6: 198.18.1.1"},
		want: []string{
			`t.yaml: pops[0].links[0].next_hop_v4: 2001:db8::1 is not IPv4; write an IPv4 address, or delete the key`,
			`t.yaml: pops[0].links[0].next_hop_v6: 198.18.1.1 is not IPv6; write an IPv6 address, or delete the key`,
		},
	},
	{
		name:  "probe targets",
		edits: []string{"probe_targets: [198.19.1.1:862]", `probe_targets: [198.19.1.1:0, "2001:db8::1", 198.19.2.1:862, 198.19.2.1, probe.example]`},
		want: []string{
			`t.yaml: pops[0].links[0].probe_targets[0]: port 0 is not usable; write a port such as 198.19.1.1:862, or leave it out for the default (862)`,
			`t.yaml: pops[0].links[0].probe_targets[1]: "2001:db8::1" needs brackets, so that its port can't be confused with the address; write [2001:db8::1] or [2001:db8::1]:862`,
			`t.yaml: pops[0].links[0].probe_targets[3]: 198.19.2.1:862 is already listed as pops[0].links[0].probe_targets[2]; remove one`,
			`t.yaml: pops[0].links[0].probe_targets[4]: "probe.example" is not an address with an optional port; write an IP address`,
		},
	},
	{
		name:  "no probe targets",
		edits: []string{"probe_targets: [198.19.2.1]", "probe_targets: []"},
		want:  []string{`t.yaml: pops[0].links[1].probe_targets: none; add at least one target reached through this link, such as [198.18.9.1:862]`},
	},
	{
		name:  "prefix with host bits, duplicate, no length",
		edits: []string{"- prefix: 203.0.113.0/24", "- prefix: 203.0.113.1/24\n  - prefix: 198.51.100.0/24\n  - prefix: 192.0.2.1"},
		want: []string{
			`t.yaml: prefixes[1].prefix: 203.0.113.1/24 has host bits set; write 203.0.113.0/24`,
			`t.yaml: prefixes[2].prefix: 198.51.100.0/24 is already listed as prefixes[0]; merge the two entries' publish lists`,
			`t.yaml: prefixes[3].prefix: "192.0.2.1" has no length; write the address and its length, such as 192.0.2.1/32`,
		},
	},
	{
		name:  "publish references",
		edits: []string{"publish: [ams]", "publish: [am, ams/isp4, isp3, nowhere]"},
		want: []string{
			`t.yaml: prefixes[1].publish[0]: no PoP named "am"; did you mean "ams"?`,
			`t.yaml: prefixes[1].publish[1]: no link "ams/isp4"; did you mean "ams/isp1"?`,
			`t.yaml: prefixes[1].publish[2]: no PoP named "isp3"; to publish on a link, write its ID: fra/isp3`,
			`t.yaml: prefixes[1].publish[3]: no PoP named "nowhere"; the PoPs are ams, fra`,
		},
	},
	{
		name:  "PoP with no prefix",
		edits: []string{"- prefix: 198.51.100.0/24", "- prefix: 198.51.100.0/24\n    publish: [ams/isp1]"},
		want:  []string{`t.yaml: pops[1]: no prefix is published on PoP "fra"; add it to a prefix's publish list, or leave a publish list out to publish on every PoP`},
	},
	{
		name: "congestion levels",
		edits: []string{"name: test", `name: test
thresholds:
  congestion_pct: 85
  congestion_exit_pct: 95
  restore_headroom_pct: -5`},
		want: []string{
			`t.yaml: thresholds.congestion_exit_pct: 95 is not above 0 and at most congestion_pct (85); write a lower level, such as 75, or delete the key for the default (80)`,
			`t.yaml: thresholds.restore_headroom_pct: -5 is negative; write 0 or more, or delete the key for the default (10)`,
		},
	},
	{
		name:  "congestion target out of range",
		edits: []string{"name: test", "name: test\nthresholds:\n  congestion_pct: 120"},
		want:  []string{`t.yaml: thresholds.congestion_pct: 120 is out of range; write a percentage above 0 and at most 100, or delete the key for the default (90)`},
	},
	{
		name: "thresholds out of range",
		edits: []string{"name: test", `name: test
thresholds:
  loss_pct: 101
  loss_window: 200ms
  enter: 0s
  stale_after: 500ms
  max_withdrawals: 0`},
		want: []string{
			`t.yaml: thresholds.enter: 0s is not above 0; write a duration above 0, or delete the key for the default (3s)`,
			`t.yaml: thresholds.loss_pct: 101 is out of range; write a percentage above 0 and at most 100, or delete the key for the default (3.5)`,
			`t.yaml: thresholds.loss_window: 200ms is shorter than probes.window (500ms); write at least 500ms, or delete the key for the default (12s)`,
			`t.yaml: thresholds.max_withdrawals: 0 is below 1; write 1 or more, or delete the key for the default (4)`,
			// 200ms / 100ms = 2 probes, far below min_probes 20.
			`t.yaml: thresholds.min_probes: 20 can never be reached: loss_window (200ms) holds at most 2 probes at probes.interval (100ms); write 2 or less, or lengthen loss_window, or delete the key for the default (20)`,
			`t.yaml: thresholds.stale_after: 500ms is not longer than probes.window (500ms); write a longer duration, or delete the key for the default (3s)`,
		},
	},
	{
		name:  "thresholds that don't parse",
		edits: []string{"name: test", "name: test\nthresholds: {loss_pct: 3%, loss_window: 10, min_probes: many}"},
		want: []string{
			`t.yaml: thresholds.loss_pct: "3%" is not a number; write 3 without the % sign, or delete the key for the default (3.5)`,
			`t.yaml: thresholds.loss_window: "10" is not a duration; write a Go duration such as 10s, 250ms or 10m, or delete the key for the default (12s)`,
			`t.yaml: thresholds.min_probes: "many" is not a whole number; write a number such as 20, or delete the key for the default (20)`,
		},
	},
	{
		name:  "link threshold override out of range",
		edits: []string{"capacity: 1G", "capacity: 1G\n        thresholds: {loss_pct: 0, down_after: 50ms}"},
		want: []string{
			`t.yaml: pops[0].links[1].thresholds.down_after: 50ms is not longer than probes.interval (100ms); write a longer duration, or delete the key to use the global value (1s)`,
			`t.yaml: pops[0].links[1].thresholds.loss_pct: 0 is out of range; write a percentage above 0 and at most 100, or delete the key to use the global value (3.5)`,
		},
	},
	{
		name:  "probes",
		edits: []string{"name: test", "name: test\nprobes: {interval: 0s, window: 1s, timeout: -1s}"},
		want: []string{
			`t.yaml: probes.interval: 0s is below 1ms, which would flood the links; write 1ms or more, or delete the key for the default (100ms)`,
			`t.yaml: probes.timeout: -1s is not above 0; write a duration above 0, or delete the key for the default (500ms)`,
		},
	},
	{
		name:  "bgp timers",
		edits: []string{"name: test", "name: test\nbgp: {hold_time: 2s, keepalive: 1500ms, connect_retry: 0s, graceful_restart: 5000s}"},
		want: []string{
			`t.yaml: bgp.connect_retry: 0s is not above 0; write a duration above 0, or delete the key for the default (5s)`,
			`t.yaml: bgp.graceful_restart: 1h23m20s is out of range; write 0 to disable graceful restart, or up to 4095s (RFC 4724 section 3), or delete the key for the default (2m)`,
			`t.yaml: bgp.hold_time: 2s is not allowed; write 0 (no keepalives) or at least 3s (RFC 4271 section 4.2), or delete the key for the default (1m30s)`,
			`t.yaml: bgp.keepalive: 1.5s is not a whole number of seconds, which is all BGP carries; write e.g. 2s, or delete the key for the default (30s)`,
		},
	},
	{
		name:  "keepalive not below hold time",
		edits: []string{"name: test", "name: test\nbgp: {keepalive: 90s}"},
		want:  []string{`t.yaml: bgp.keepalive: 1m30s is not between 0 and hold_time (1m30s); write a third of hold_time, 30s, or delete the key for the default (30s)`},
	},
}

func TestParseErrors(t *testing.T) {
	for _, tt := range parseTests {
		t.Run(tt.name, func(t *testing.T) {
			doc := tt.doc
			if doc == "" {
				doc = edit(t, baseDoc, tt.edits...)
			}
			top, err := Parse("t.yaml", []byte(doc))
			if err == nil {
				t.Fatalf("Parse() = %+v, nil; want an error", top)
			}
			if top != nil {
				t.Errorf("Parse() returned a Topology with the error %v", err)
			}
			lines := strings.Split(err.Error(), "\n")
			if len(lines) != len(tt.want) {
				t.Fatalf("Parse() error has %d lines, want %d:\n%v", len(lines), len(tt.want), err)
			}
			for i, want := range tt.want {
				if !strings.Contains(lines[i], want) {
					t.Errorf("line %d:\n got %s\nwant %s", i, lines[i], want)
				}
			}
		})
	}
}

func TestParseReportsEveryError(t *testing.T) {
	doc := edit(t, baseDoc,
		"neighbor: 198.18.3.2", "neighbor: 10.0.0.300",
		"capacity: 1G", "capacity: fast",
		"publish: [ams]", "publish: [frankfurt]",
	)
	_, err := Parse("three.yaml", []byte(doc))
	want := `three.yaml: pops[0].links[1].capacity: "fast" is not a capacity; write a whole number of bit/s, optionally followed by k, M, G or T (powers of 1000), such as 10G or 2.5G
three.yaml: pops[1].links[0].neighbor: "10.0.0.300" is not an IP address; write an IPv4 or IPv6 address such as 198.18.0.1
three.yaml: prefixes[1].publish[0]: no PoP named "frankfurt"; the PoPs are ams, fra`
	if err == nil || err.Error() != want {
		t.Fatalf("Parse() error:\n%v\nwant:\n%s", err, want)
	}
}

func TestLoadExample(t *testing.T) {
	top, err := LoadOptions{}.Load("examples/two-pops.yaml")
	if err != nil {
		t.Fatal(err)
	}
	if top.Source != "examples/two-pops.yaml" || top.Name != "example-two-pops" {
		t.Errorf("Source, Name = %q, %q", top.Source, top.Name)
	}
	var ids []string
	for _, p := range top.PoPs {
		for _, l := range p.Links {
			ids = append(ids, top.LinkID(p.Name, l.Name))
		}
	}
	wantIDs := []string{"ams/transit1", "ams/transit2", "ams/ix", "fra/transit1", "fra/transit3", "fra/peering"}
	if !slices.Equal(ids, wantIDs) {
		t.Errorf("link IDs = %v, want %v", ids, wantIDs)
	}
	all := []string{"ams/ix", "ams/transit1", "ams/transit2", "fra/peering", "fra/transit1", "fra/transit3"}
	wantPublish := map[string][]string{
		"198.51.100.0/24":   all,
		"2001:db8:100::/48": all,
		"203.0.113.0/24":    {"ams/ix", "ams/transit1", "ams/transit2"},
		"2001:db8:200::/48": {"ams/transit1", "fra/peering", "fra/transit1", "fra/transit3"},
	}
	if len(top.Prefixes) != len(wantPublish) {
		t.Fatalf("%d prefixes, want %d", len(top.Prefixes), len(wantPublish))
	}
	for _, p := range top.Prefixes {
		if want := wantPublish[p.Prefix.String()]; !slices.Equal(p.Publish, want) {
			t.Errorf("%s published on %v, want %v", p.Prefix, p.Publish, want)
		}
	}
	fra := top.PoPs[1]
	if got := fra.Links[1].Capacity; got != 2_500_000_000 {
		t.Errorf("fra/transit3 capacity = %d, want 2.5G", got)
	}
	if got := top.PoPs[0].Links[0].ProbeTargets; !slices.Equal(got, []netip.AddrPort{
		netip.MustParseAddrPort("198.19.1.1:862"), netip.MustParseAddrPort("198.19.1.2:862"), netip.MustParseAddrPort("198.19.1.3:862"),
	}) {
		t.Errorf("ams/transit1 probe targets = %v", got)
	}
	ix := top.PoPs[0].Links[2].Thresholds
	if ix.LossPct != 3.5 || ix.RTT != 20*time.Millisecond || ix.Jitter != 5*time.Millisecond || ix.LossWindow != 15*time.Second {
		t.Errorf("ams/ix thresholds = %+v, want the overrides merged over the defaults", ix)
	}
	if err := top.Validate(); err != nil {
		t.Errorf("Validate() of a loaded topology: %v", err)
	}
}

func TestDefaults(t *testing.T) {
	top, err := Parse("t.yaml", []byte(baseDoc))
	if err != nil {
		t.Fatal(err)
	}
	if top.Thresholds != DefaultThresholds() || top.Probes != DefaultProbes() || top.BGP != DefaultBGP() {
		t.Errorf("sections = %+v %+v %+v, want the defaults", top.Thresholds, top.Probes, top.BGP)
	}
	l := top.PoPs[0].Links[1]
	if l.NeighborPort != 179 || l.ListenPort != -1 || l.NextHopV4.IsValid() || l.NextHopV6.IsValid() || l.Thresholds != DefaultThresholds() {
		t.Errorf("link defaults = %+v", l)
	}
	if got := l.ProbeTargets; len(got) != 1 || got[0] != netip.MustParseAddrPort("198.19.2.1:862") {
		t.Errorf("probe target without a port = %v, want port 862", got)
	}
	if l.Capacity != 1_000_000_000 {
		t.Errorf("capacity = %d, want 1G", l.Capacity)
	}
}

func TestLinkThresholdsMerge(t *testing.T) {
	doc := edit(t, baseDoc,
		"name: test", "name: test\nthresholds: {loss_window: 20s, rtt: 100ms}",
		"capacity: 1G", "capacity: 1G\n        thresholds: {loss_pct: 1, rtt: 0s}",
	)
	top, err := Parse("t.yaml", []byte(doc))
	if err != nil {
		t.Fatal(err)
	}
	global := DefaultThresholds()
	global.LossWindow = 20 * time.Second
	global.RTT = 100 * time.Millisecond
	if top.Thresholds != global {
		t.Errorf("global thresholds = %+v, want %+v", top.Thresholds, global)
	}
	link := global
	link.LossPct = 1
	link.RTT = 0
	if got := top.PoPs[0].Links[1].Thresholds; got != link {
		t.Errorf("overriding link = %+v, want %+v", got, link)
	}
	if got := top.PoPs[0].Links[0].Thresholds; got != global {
		t.Errorf("other link = %+v, want the global %+v", got, global)
	}
}

// envMap is a lookup over a fixed map, as LoadOptions.Env takes.
func envMap(m map[string]string) func(string) (string, bool) {
	return func(k string) (string, bool) { v, ok := m[k]; return v, ok }
}

func TestEnvOverrides(t *testing.T) {
	doc := edit(t, baseDoc,
		"name: test", "name: test\nthresholds: {loss_pct: 2}",
		"capacity: 1G", "capacity: 1G\n        thresholds: {loss_pct: 1}",
	)
	opts := LoadOptions{Env: envMap(map[string]string{
		"SDNOC_THRESHOLDS_LOSS_PCT": "5",    // over the file's 2
		"SDNOC_PROBES_INTERVAL":     "50ms", // the file has no probes section
		"SDNOC_BGP_KEEPALIVE":       "",     // empty: ignored
		"SDNOC_PROBES":              "x",    // not a scalar key: ignored
	})}
	top, err := opts.Parse("t.yaml", []byte(doc))
	if err != nil {
		t.Fatal(err)
	}
	if top.Thresholds.LossPct != 5 || top.Probes.Interval != 50*time.Millisecond || top.BGP.Keepalive != 30*time.Second {
		t.Errorf("loss_pct, interval, keepalive = %v, %v, %v; want 5, 50ms, 30s",
			top.Thresholds.LossPct, top.Probes.Interval, top.BGP.Keepalive)
	}
	if got := top.PoPs[0].Links[0].Thresholds.LossPct; got != 5 {
		t.Errorf("link without override: loss_pct = %v, want the global 5", got)
	}
	if got := top.PoPs[0].Links[1].Thresholds.LossPct; got != 1 {
		t.Errorf("link with override: loss_pct = %v, want its own 1", got)
	}

	bad := LoadOptions{Env: envMap(map[string]string{"SDNOC_PROBES_INTERVAL": "fast"})}
	_, err = bad.Parse("t.yaml", []byte(baseDoc))
	want := `t.yaml: probes.interval (set by SDNOC_PROBES_INTERVAL): "fast" is not a duration; write a Go duration such as 10s, 250ms or 10m, or delete the key for the default (100ms)`
	if err == nil || err.Error() != want {
		t.Errorf("bad variable: %v\nwant %s", err, want)
	}
}

func TestLoadReadsEnvironmentParseDoesNot(t *testing.T) {
	t.Setenv("SDNOC_THRESHOLDS_MIN_PROBES", "7")
	path := t.TempDir() + "/t.yaml"
	if err := os.WriteFile(path, []byte(baseDoc), 0o600); err != nil {
		t.Fatal(err)
	}
	top, err := Load(path)
	if err != nil {
		t.Fatal(err)
	}
	if top.Thresholds.MinProbes != 7 || top.Source != path {
		t.Errorf("Load: min_probes = %d, Source = %q; want 7, %q", top.Thresholds.MinProbes, top.Source, path)
	}
	top, err = Parse("t.yaml", []byte(baseDoc))
	if err != nil {
		t.Fatal(err)
	}
	if top.Thresholds.MinProbes != 20 {
		t.Errorf("Parse: min_probes = %d, want the default 20: Parse reads no environment", top.Thresholds.MinProbes)
	}
}

func TestLoadMissingFile(t *testing.T) {
	_, err := LoadOptions{}.Load(t.TempDir() + "/nope.yaml")
	if !errors.Is(err, fs.ErrNotExist) || !strings.HasPrefix(err.Error(), "read topology: open ") {
		t.Errorf("Load() error = %v, want a wrapped not-exist error", err)
	}
}

func TestParseIsDeterministic(t *testing.T) {
	for _, tt := range parseTests {
		doc := tt.doc
		if doc == "" {
			doc = edit(t, baseDoc, tt.edits...)
		}
		_, err1 := Parse("t.yaml", []byte(doc))
		_, err2 := Parse("t.yaml", []byte(doc))
		if err1.Error() != err2.Error() {
			t.Errorf("%s: two parses disagree:\n%v\n%v", tt.name, err1, err2)
		}
	}
	a, _ := Parse("t.yaml", []byte(baseDoc))
	b, _ := Parse("t.yaml", []byte(baseDoc))
	if !reflect.DeepEqual(a, b) {
		t.Errorf("two parses of the same file differ")
	}
}

func TestValidateBuiltInCode(t *testing.T) {
	top, err := Parse("", []byte(baseDoc))
	if err != nil {
		t.Fatal(err)
	}
	top.Source = ""
	// A link built in code without thresholds: every zero value that the
	// checks refuse is reported at the link, not at the global section.
	top.PoPs[1].Links[0].Thresholds = Thresholds{}
	top.Prefixes[0].Publish = []string{"ams/isp1", "fra/isp9"}
	err = top.Validate()
	if err == nil {
		t.Fatal("Validate() = nil, want errors")
	}
	for _, want := range []string{
		"topology: pops[1].links[0].thresholds.loss_pct: 0 is out of range",
		"topology: pops[1].links[0].thresholds.enter: 0s is not above 0",
		"topology: pops[1].links[0].thresholds.min_probes: 0 is below 1",
		`topology: prefixes[0].publish[1]: no link "fra/isp9"`,
	} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("Validate() error lacks %q:\n%v", want, err)
		}
	}
	if strings.Contains(err.Error(), "topology: thresholds.") {
		t.Errorf("global thresholds reported though they are fine:\n%v", err)
	}
}

var capacityTests = []struct {
	in      string
	want    uint64
	wantErr string // substring; "" for success
}{
	{"10G", 10_000_000_000, ""},
	{"2.5G", 2_500_000_000, ""},
	{"100M", 100_000_000, ""},
	{"1000000000", 1_000_000_000, ""},
	{"100k", 100_000, ""},
	{"100K", 100_000, ""},
	{"1.5T", 1_500_000_000_000, ""},
	{"18446744073709551615", 18446744073709551615, ""},
	{"10 Gbps", 0, `"10 Gbps" is not a capacity; write 10G (`},
	{"10Gbit/s", 0, `write 10G (`},
	{"100Mb", 0, `write 100M (`},
	{"0", 0, `"0" is not a usable capacity`},
	{"0G", 0, `"0G" is not a usable capacity`},
	{"-1", 0, `"-1" is not a capacity; write a whole number of bit/s`},
	{"1.5", 0, "is not a capacity"},           // not whole bit/s
	{"1.0000000001G", 0, "is not a capacity"}, // not whole bit/s
	{"18446744073709551616", 0, "is not a capacity"},
	{"20000000T", 0, "is not a capacity"},
	{"10g", 0, "is not a capacity"}, // SI: g is not a prefix
	{"1e9", 0, "is not a capacity"},
	{".5G", 0, "is not a capacity"},
	{"G", 0, "is not a capacity"},
	{"", 0, "is not a capacity"},
}

func TestParseCapacity(t *testing.T) {
	for _, tt := range capacityTests {
		got, msg := parseCapacity(tt.in)
		if got != tt.want || (tt.wantErr == "") != (msg == "") || !strings.Contains(msg, tt.wantErr) {
			t.Errorf("parseCapacity(%q) = %d, %q; want %d, %q", tt.in, got, msg, tt.want, tt.wantErr)
		}
	}
}

func TestReadmeListsEnvironment(t *testing.T) {
	readme, err := os.ReadFile("examples/README.md")
	if err != nil {
		t.Fatal(err)
	}
	for _, key := range envKeys() {
		row := "| `" + EnvVar(key) + "` | `" + key + "` |"
		if !strings.Contains(string(readme), row) {
			t.Errorf("README.md lacks the row %s", row)
		}
	}
	for _, th := range fieldKeys(thresholdFields) {
		d := DefaultThresholds()
		row := "| `" + th + "` | " + fieldValue(thresholdFields, d, th) + " |"
		if !strings.Contains(string(readme), row) {
			t.Errorf("README.md lacks the default row %s", row)
		}
	}
}

func TestLevenshtein(t *testing.T) {
	for _, tt := range []struct {
		a, b string
		want int
	}{{"", "", 0}, {"neigbor", "neighbor", 1}, {"ams", "fra", 3}, {"kitten", "sitting", 3}, {"", "abc", 3}} {
		if got := levenshtein(tt.a, tt.b); got != tt.want {
			t.Errorf("levenshtein(%q, %q) = %d, want %d", tt.a, tt.b, got, tt.want)
		}
	}
}

func BenchmarkParseExample(b *testing.B) {
	data, err := os.ReadFile("examples/two-pops.yaml")
	if err != nil {
		b.Fatal(err)
	}
	b.ReportAllocs()
	for b.Loop() {
		if _, err := Parse("two-pops.yaml", data); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "files/s")
}

// largeDoc is a topology at the size DESIGN.md plans for: 50 PoPs of 20
// links, 10,000 prefixes, half anycast and half on one PoP.
func largeDoc(pops, links, prefixes int) []byte {
	var b strings.Builder
	b.WriteString("pops:\n")
	for p := range pops {
		fmt.Fprintf(&b, "  - name: pop%d\n    speaker: {router_id: 198.18.%d.1, asn: 64500}\n    links:\n", p, p)
		for l := range links {
			fmt.Fprintf(&b, "      - {name: isp%d, peer_asn: %d, neighbor: 198.19.%d.%d, local: 198.18.%d.%d, capacity: 10G, probe_targets: [198.19.255.%d]}\n",
				l, 64501+l, p, 2*l+2, p, 2*l+3, l+1)
		}
	}
	b.WriteString("prefixes:\n")
	for i := range prefixes {
		fmt.Fprintf(&b, "  - prefix: 10.%d.%d.0/24\n", i/256, i%256)
		if i%2 == 1 {
			fmt.Fprintf(&b, "    publish: [pop%d]\n", i%pops)
		}
	}
	return []byte(b.String())
}

func BenchmarkParseLarge(b *testing.B) {
	data := largeDoc(50, 20, 10_000)
	b.ReportAllocs()
	for b.Loop() {
		top, err := Parse("large.yaml", data)
		if err != nil {
			b.Fatal(err)
		}
		if len(top.Prefixes) != 10_000 {
			b.Fatalf("%d prefixes", len(top.Prefixes))
		}
	}
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "files/s")
	b.ReportMetric(float64(len(data)), "bytes/file")
}
