package netlab

import (
	"fmt"
	"net/netip"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"go.yaml.in/yaml/v3"

	"github.com/sdnoc/sdnoc/lab/frr"
	"github.com/sdnoc/sdnoc/topologies"
)

// containerlab.yml at the repository root describes the lab for
// containerlab; these tests hold it to the plan NewPlan derives from
// lab.yaml, so that neither changes without the other.

const repoRoot = "../.."

// clabTopology is the part of a containerlab topology file the lab uses.
type clabTopology struct {
	Name     string `yaml:"name"`
	Topology struct {
		Nodes map[string]clabNode `yaml:"nodes"`
		Links []struct {
			Endpoints []string `yaml:"endpoints"`
		} `yaml:"links"`
	} `yaml:"topology"`
}

type clabNode struct {
	Kind  string   `yaml:"kind"`
	Image string   `yaml:"image"`
	Binds []string `yaml:"binds"`
	Exec  []string `yaml:"exec"`
}

// clabLab is containerlab.yml with, per node, the repository files bound
// into it, by their path in the container.
type clabLab struct {
	clabTopology
	files map[string]map[string]string
}

func loadContainerlab(t *testing.T) clabLab {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(repoRoot, "containerlab.yml"))
	if err != nil {
		t.Fatal(err)
	}
	var c clabLab
	if err := yaml.Unmarshal(b, &c.clabTopology); err != nil {
		t.Fatalf("containerlab.yml: %v", err)
	}
	c.files = map[string]map[string]string{}
	for name, n := range c.Topology.Nodes {
		c.files[name] = map[string]string{}
		for _, bind := range n.Binds {
			parts := strings.Split(bind, ":")
			if len(parts) < 2 {
				t.Fatalf("node %s: bind %q is not HOST:CONTAINER[:MODE]", name, bind)
			}
			host, ctr := parts[0], parts[1]
			if host == "sdnoc" {
				continue // the binary, built before deploying
			}
			// Relative host paths are relative to the topology file.
			path := filepath.Join(repoRoot, host)
			fi, err := os.Stat(path)
			if err != nil {
				t.Fatalf("node %s: bind %q: %v", name, bind, err)
			}
			if !fi.IsDir() {
				c.files[name][ctr] = readFile(t, path)
				continue
			}
			entries, err := os.ReadDir(path)
			if err != nil {
				t.Fatal(err)
			}
			for _, e := range entries {
				c.files[name][ctr+"/"+e.Name()] = readFile(t, filepath.Join(path, e.Name()))
			}
		}
	}
	return c
}

func readFile(t *testing.T, path string) string {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// clabProblems returns every way c differs from the lab of p.
func clabProblems(p *Plan, c clabLab) []string {
	var out []string
	bad := func(format string, args ...any) { out = append(out, fmt.Sprintf(format, args...)) }

	// Nodes: the plan's namespaces.
	var want, got []string
	for _, ns := range p.Namespaces() {
		want = append(want, strings.TrimPrefix(ns, p.Prefix))
	}
	for name, n := range c.Topology.Nodes {
		got = append(got, name)
		if n.Kind != "linux" || n.Image == "" {
			bad("node %s: kind %q, image %q; want kind linux and an image", name, n.Kind, n.Image)
		}
	}
	slices.Sort(want)
	slices.Sort(got)
	if !slices.Equal(got, want) {
		bad("nodes %v, want the plan's namespaces %v", got, want)
	}

	// Links: every veth build.go creates, and no other.
	link := func(a, b string) string {
		if a > b {
			a, b = b, a
		}
		return a + " -- " + b
	}
	wantLinks := map[string]bool{}
	for _, isp := range p.ISPs {
		wantLinks[link(isp.Name+":inet", "internet:"+isp.Name)] = true
	}
	for _, pop := range p.PoPs {
		for _, l := range pop.Links {
			wantLinks[link(pop.Name+":"+l.Name, l.ISP+":"+pop.Name)] = true
			wantLinks[link(pop.Name+":s-"+l.Name, "sdnoc:"+ifName(pop.Name, l.Name))] = true
		}
		wantLinks[link(pop.Name+":mgmt", "sdnoc:m-"+pop.Name)] = true
	}
	gotLinks := map[string]bool{}
	for i, l := range c.Topology.Links {
		if len(l.Endpoints) != 2 {
			bad("links[%d]: %d endpoints, want 2", i, len(l.Endpoints))
			continue
		}
		k := link(l.Endpoints[0], l.Endpoints[1])
		if gotLinks[k] {
			bad("link %s appears twice", k)
		}
		gotLinks[k] = true
		if !wantLinks[k] {
			bad("link %s is not one of the plan's", k)
		}
	}
	for k := range wantLinks {
		if !gotLinks[k] {
			bad("no link %s", k)
		}
	}

	// Commands: each wanted one a part of some exec command of its node.
	run := func(node string, want ...string) {
		n, ok := c.Topology.Nodes[node]
		if !ok {
			return // reported with the nodes
		}
		for _, w := range want {
			found := false
			for _, e := range n.Exec {
				if strings.Contains(strings.Join(strings.Fields(e), " "), w) {
					found = true
					break
				}
			}
			if !found {
				bad("node %s: no exec command runs %q", node, w)
			}
		}
	}
	addr := func(node, dev string, a netip.Prefix) {
		if a.IsValid() {
			run(node, fmt.Sprintf("ip addr add %s dev %s", a, dev))
		}
	}
	host := func(a netip.Addr) netip.Prefix { return netip.PrefixFrom(a, a.BitLen()) }
	for _, isp := range p.ISPs {
		addr(isp.Name, "inet", isp.Addr4)
		addr(isp.Name, "inet", isp.Addr6)
		addr("internet", isp.Name, isp.InternetAddr4)
		addr("internet", isp.Name, isp.InternetAddr6)
	}
	for _, tg := range p.Targets {
		addr("internet", "lo", host(tg))
	}
	run("internet", "sdnoc reflector --listen 0.0.0.0:862")
	for pi, pop := range p.PoPs {
		to := netip.AddrPortFrom(pop.MgmtPeer.Addr(), collectorPort).String()
		for i, l := range pop.Links {
			br, sdIf := "br-"+l.Name, ifName(pop.Name, l.Name)
			run(pop.Name, "ip link add "+br+" type bridge", "ip link set "+l.Name+" master "+br,
				"ip link set s-"+l.Name+" master "+br, "ip link set "+br+" up")
			addr(pop.Name, br, l.Border)
			addr(pop.Name, br, l.Border6)
			addr(l.ISP, pop.Name, l.Neighbor)
			addr(l.ISP, pop.Name, l.ISP6)
			addr("sdnoc", sdIf, l.Local)
			run("sdnoc", fmt.Sprintf("ip rule add from %s table %d", l.Local.Addr(), l.Table),
				fmt.Sprintf("ip route add default via %s dev %s table %d", l.Neighbor.Addr(), sdIf, l.Table))
			if bps := p.Topology.PoPs[pi].Links[i].Capacity; bps > 0 {
				run(l.ISP, fmt.Sprintf("tc qdisc replace dev %s root tbf rate %dbit", pop.Name, bps))
			}
			switch pop.Exporter {
			case "softflowd":
				run(pop.Name, fmt.Sprintf("softflowd -i %d:%s -n %s", l.IfIndex, l.Name, to))
			case "pmacctd":
				conf := "/etc/pmacct/" + l.Name + ".conf"
				run(pop.Name, "pmacctd -f "+conf)
				body, ok := c.files[pop.Name][conf]
				if !ok {
					bad("node %s: no file %s bound", pop.Name, conf)
				}
				for _, w := range []string{"pcap_interface: " + l.Name, "sfprobe_receiver[sf]: " + to,
					"sfprobe_agentip[sf]: " + pop.Mgmt.Addr().String(), fmt.Sprintf("sfprobe_ifindex[sf]: %d", l.IfIndex)} {
					if ok && !slices.Contains(strings.Split(body, "\n"), w) {
						bad("node %s: %s lacks %q", pop.Name, conf, w)
					}
				}
			default:
				bad("pop %s: exporter %q unknown to this test", pop.Name, pop.Exporter)
			}
		}
		if pop.Exporter == "softflowd" {
			run(pop.Name, "LD_PRELOAD=/usr/local/lib/pcap_immediate.so softflowd")
		}
		for _, a := range pop.Edge {
			addr(pop.Name, "lo", host(a))
			if a.Is4() {
				run(pop.Name, "iperf3 -s -D -B "+a.String())
			}
		}
		addr(pop.Name, "mgmt", pop.Mgmt)
		addr("sdnoc", "m-"+pop.Name, pop.MgmtPeer)
		run(pop.Name, "ip route replace default via "+pop.ReturnVia4.String(),
			"sdnoc gnmi-agent --listen "+netip.AddrPortFrom(pop.Mgmt.Addr(), 9339).String())
		for _, ap := range pop.Proxies {
			run(pop.Name, "sdnoc edge serve", "--admin "+ap.String())
		}
		if pop.ReturnVia6.IsValid() {
			run(pop.Name, "ip -6 route replace default via "+pop.ReturnVia6.String())
		}
	}
	run("sdnoc", "sdnoc daemon --config /etc/sdnoc/lab.yaml", "--listen 127.0.0.1:9470")
	if sd, ok := c.Topology.Nodes["sdnoc"]; ok && !slices.Contains(sd.Binds, "topologies/examples/lab.yaml:/etc/sdnoc/lab.yaml:ro") {
		bad("node sdnoc: lab.yaml is not bound to /etc/sdnoc/lab.yaml")
	}

	// Routers: bgpd's configuration as lab/frr writes it, but for where
	// it logs.
	routers := []frr.Config{p.Internet}
	for _, isp := range p.ISPs {
		routers = append(routers, isp.Router)
	}
	for _, r := range routers {
		files := c.files[r.Name]
		conf, ok := files["/etc/frr/frr.conf"]
		if !ok {
			bad("node %s: no /etc/frr/frr.conf bound", r.Name)
			continue
		}
		if d := files["/etc/frr/daemons"]; !slices.Contains(strings.Split(d, "\n"), "bgpd=yes") {
			bad("node %s: /etc/frr/daemons does not start bgpd", r.Name)
		}
		want, got := frrLines(r.BGPConfig()), frrLines(conf)
		for i := range max(len(want), len(got)) {
			var w, g string
			if i < len(want) {
				w = want[i]
			}
			if i < len(got) {
				g = got[i]
			}
			if w != g {
				bad("node %s: frr.conf line %d is %q, want %q (as frr.Config.BGPConfig of the plan)", r.Name, i+1, g, w)
				break
			}
		}
	}
	return out
}

// frrLines returns the lines of an FRR configuration but the log ones.
func frrLines(conf string) []string {
	var out []string
	for l := range strings.Lines(conf) {
		if l = strings.TrimRight(l, "\n"); !strings.HasPrefix(l, "log ") {
			out = append(out, l)
		}
	}
	return out
}

func TestContainerlabMatchesPlan(t *testing.T) {
	p, err := NewPlan(labTopology(t), "x-")
	if err != nil {
		t.Fatal(err)
	}
	c := loadContainerlab(t)
	for _, pr := range clabProblems(p, c) {
		t.Error(pr)
	}
	// The exporters' shim, built into sdnoc-lab-host from this file.
	if got := readFile(t, filepath.Join(repoRoot, "lab/containerlab/pcap_immediate.c")); got != PcapShim {
		t.Errorf("lab/containerlab/pcap_immediate.c differs from PcapShim")
	}
}

// TestContainerlabCatchesChanges changes lab.yaml's topology and expects
// containerlab.yml to be found stale, naming the change.
func TestContainerlabCatchesChanges(t *testing.T) {
	c := loadContainerlab(t)
	for _, tc := range []struct {
		name   string
		change func(top *topologies.Topology)
		want   string
	}{
		{"local", func(top *topologies.Topology) { top.PoPs[0].Links[0].Local = netip.MustParseAddr("198.18.12.4") }, "198.18.12.4"},
		{"neighbor", func(top *topologies.Topology) { top.PoPs[1].Links[1].Neighbor = netip.MustParseAddr("198.18.21.5") }, "198.18.21.5"},
		{"next hop", func(top *topologies.Topology) { top.PoPs[1].Links[2].NextHopV4 = netip.MustParseAddr("198.18.23.6") }, "198.18.23.6"},
		{"next hop v6", func(top *topologies.Topology) {
			top.PoPs[0].Links[1].NextHopV6 = netip.MustParseAddr("2001:db8:ff11::7")
		}, "2001:db8:ff11::7"},
		{"probe target", func(top *topologies.Topology) {
			top.PoPs[1].Links[0].ProbeTargets[0] = netip.MustParseAddrPort("198.19.99.1:862")
		}, "198.19.99.1"},
		{"management", func(top *topologies.Topology) {
			r := &top.PoPs[0].Routers[0]
			r.FlowExporter, r.GNMI = netip.MustParseAddr("198.18.250.10"), "198.18.250.10:9339"
			top.PoPs[0].EdgeProxies = []string{"198.18.250.10:9480"}
		}, "198.18.250.10"},
		{"ifindex", func(top *topologies.Topology) { top.PoPs[1].Links[0].IfIndex = 42 }, "42"},
		{"peer asn", func(top *topologies.Topology) {
			for pi := range top.PoPs {
				top.PoPs[pi].Links[2].PeerASN = 64510
			}
		}, "64510"},
		{"speaker asn", func(top *topologies.Topology) { top.PoPs[1].Speaker.ASN = 65001 }, "65001"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			top := labTopology(t)
			tc.change(top)
			p, err := NewPlan(top, "x-")
			if err != nil {
				t.Fatal(err)
			}
			probs := clabProblems(p, c)
			if !slices.ContainsFunc(probs, func(s string) bool { return strings.Contains(s, tc.want) }) {
				t.Errorf("containerlab.yml passes after changing the %s to %s; problems: %q", tc.name, tc.want, probs)
			}
		})
	}
}
