package demo

import (
	"cmp"
	"context"
	"fmt"
	"math"
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"sync"
	"time"

	"github.com/sdnoc/sdnoc/collectors/flow/flowtest"
	"github.com/sdnoc/sdnoc/gnmiagent"
	"github.com/sdnoc/sdnoc/lab/loopback"
	"github.com/sdnoc/sdnoc/topologies"
)

// The congestion scenario's network: one PoP, three ISPs. Router br1
// carries isp1 and isp2 and reports them over gNMI (utilisation) and
// IPFIX (per-prefix rates); router br2 carries isp3 and reports only
// sFlow, so isp3's utilisation is the sum of its flows.
var (
	congestionCapacity = []uint64{1e9, 2e9, 1e9} // bit/s, isp1..isp3
	// Of each prefix's traffic, the share that arrives through each ISP
	// announcing it: the Internet's preference, renormalised over the
	// ISPs whose RIB holds the prefix.
	congestionWeights = []float64{0.5, 0.3, 0.2}
	// Each prefix's demand at rest, bit/s; the flash crowd multiplies it.
	congestionDemand = []struct {
		prefix string
		bps    float64
	}{
		{"198.51.100.0/25", 220e6}, {"198.51.100.128/25", 210e6}, {"203.0.113.0/24", 200e6},
		{"192.0.2.0/24", 190e6}, {"2001:db8:100::/48", 180e6}, {"2001:db8:200::/48", 100e6},
	}
)

const (
	hotFactor     = 2.2  // the flash crowd: every prefix's demand × this
	frameBytes    = 1500 // the size of every simulated packet
	sflowRate     = 64   // br2 samples 1 packet in this many
	trafficTick   = 50 * time.Millisecond
	templateEvery = time.Second // IPFIX templates are resent this often, as routers do
)

// traffic is the simulated Internet: for each prefix a demand, spread
// over the ISPs whose RIB holds it. It writes what br1's and br2's
// interfaces would count and export: sysfs counters for the gNMI agent,
// IPFIX from br1, sFlow from br2, each from its own loopback address.
type traffic struct {
	lab      *loopback.Lab
	prefixes []netip.Prefix
	sysfs    string
	br1, br2 *net.UDPConn
	collect  *net.UDPAddr

	mu     sync.Mutex
	factor float64
	// per link: bit/s of each prefix as last computed
	rates    [][]float64
	rx       []float64 // per link, bytes received so far
	sfCarry  []float64 // per prefix, sFlow samples owed to isp3
	lastTmpl time.Time
	err      error
}

// prepareSysfs lays out br1's two interfaces as /sys/class/net does.
func prepareSysfs(dir string) error {
	for _, itf := range []string{"isp1", "isp2"} {
		st := filepath.Join(dir, itf, "statistics")
		if err := os.MkdirAll(st, 0o755); err != nil {
			return err
		}
		if err := os.WriteFile(filepath.Join(dir, itf, "operstate"), []byte("up\n"), 0o644); err != nil {
			return err
		}
		for _, f := range []string{"rx_bytes", "tx_bytes", "rx_packets", "tx_packets", "rx_errors", "tx_errors", "rx_dropped", "tx_dropped"} {
			if err := os.WriteFile(filepath.Join(st, f), []byte("0\n"), 0o644); err != nil {
				return err
			}
		}
	}
	return nil
}

// writeCounter replaces a counter file whole, so the agent never reads
// half a number.
func writeCounter(dir, itf, name string, v uint64) error {
	p := filepath.Join(dir, itf, "statistics", name)
	tmp := p + ".tmp"
	if err := os.WriteFile(tmp, []byte(strconv.FormatUint(v, 10)+"\n"), 0o644); err != nil {
		return err
	}
	return os.Rename(tmp, p)
}

// setFactor sets the demand multiplier.
func (t *traffic) setFactor(f float64) {
	t.mu.Lock()
	t.factor = f
	t.mu.Unlock()
}

// linkRates returns, per link, the bit/s of each prefix now.
func (t *traffic) linkRates() [][]float64 {
	t.mu.Lock()
	defer t.mu.Unlock()
	out := make([][]float64, len(t.rates))
	for i := range t.rates {
		out[i] = slices.Clone(t.rates[i])
	}
	return out
}

// run moves traffic every tick until ctx ends.
func (t *traffic) run(ctx context.Context) {
	tick := time.NewTicker(trafficTick)
	defer tick.Stop()
	last := time.Now()
	for {
		select {
		case <-ctx.Done():
			return
		case now := <-tick.C:
			if err := t.tick(ctx, now, now.Sub(last)); err != nil {
				t.mu.Lock()
				t.err = err
				t.mu.Unlock()
			}
			last = now
		}
	}
}

func (t *traffic) tick(ctx context.Context, now time.Time, dt time.Duration) error {
	ribs := make([][]netip.Prefix, len(t.lab.ISPs))
	for i, x := range t.lab.ISPs {
		rt, err := x.Router.Routes(ctx)
		if err != nil {
			return fmt.Errorf("read %s's RIB: %w", x.Name, err)
		}
		ribs[i] = rt
	}
	t.mu.Lock()
	factor := t.factor
	for i := range t.rates {
		clear(t.rates[i])
	}
	for pi, p := range t.prefixes {
		var w float64
		for i := range ribs {
			if slices.Contains(ribs[i], p) {
				w += congestionWeights[i]
			}
		}
		for i := range ribs {
			if w > 0 && slices.Contains(ribs[i], p) {
				t.rates[i][pi] = factor * congestionDemand[pi].bps * congestionWeights[i] / w
			}
		}
	}
	rates := make([][]float64, len(t.rates))
	for i := range t.rates {
		rates[i] = slices.Clone(t.rates[i])
	}
	sendTemplate := now.Sub(t.lastTmpl) >= templateEvery
	if sendTemplate {
		t.lastTmpl = now
	}
	t.mu.Unlock()

	sec := dt.Seconds()
	// br1: isp1 and isp2, counted by the interfaces and exported as IPFIX.
	if sendTemplate {
		if _, err := t.br1.WriteToUDP(flowtest.IPFIXTemplate(1), t.collect); err != nil {
			return fmt.Errorf("br1 template: %w", err)
		}
	}
	var flows []flowtest.Flow
	for i, itf := range []string{"isp1", "isp2"} {
		var bytes float64
		for pi, r := range rates[i] {
			b := r * sec / 8
			if b <= 0 {
				continue
			}
			bytes += b
			flows = append(flows, flowtest.Flow{Src: srcFor(pi), Dst: t.prefixes[pi].Addr().Next(), Proto: 6, SrcPort: 40000, DstPort: 443,
				InIf: uint32(i + 1), Bytes: uint64(b), Packets: uint64(math.Ceil(b / frameBytes))})
		}
		t.rx[i] += bytes
		if err := writeCounter(t.sysfs, itf, "rx_bytes", uint64(t.rx[i])); err != nil {
			return err
		}
		if err := writeCounter(t.sysfs, itf, "rx_packets", uint64(t.rx[i]/frameBytes)); err != nil {
			return err
		}
	}
	for len(flows) > 0 { // a few records a message, as routers do
		n := min(len(flows), 8)
		if _, err := t.br1.WriteToUDP(flowtest.IPFIXData(1, flows[:n]), t.collect); err != nil {
			return fmt.Errorf("br1 data: %w", err)
		}
		flows = flows[n:]
	}
	// br2: isp3, sampled 1 in sflowRate packets. The fractional samples
	// carry over, so the sampled rate matches the simulated one.
	var samples []flowtest.SFlowSample
	for pi, r := range rates[2] {
		t.sfCarry[pi] += r * sec / 8 / frameBytes / sflowRate
		for t.sfCarry[pi] >= 1 {
			t.sfCarry[pi]--
			samples = append(samples, flowtest.SFlowSample{SamplingRate: sflowRate, InIf: 3, Src: srcFor(pi), Dst: t.prefixes[pi].Addr().Next(),
				Proto: 6, SrcPort: 40000, DstPort: 443, FrameLength: frameBytes})
		}
	}
	agent := netip.MustParseAddr(t.br2.LocalAddr().(*net.UDPAddr).IP.String())
	for len(samples) > 0 {
		n := min(len(samples), 32)
		if _, err := t.br2.WriteToUDP(flowtest.SFlowV5(agent, samples[:n]), t.collect); err != nil {
			return fmt.Errorf("br2 sflow: %w", err)
		}
		samples = samples[n:]
	}
	return nil
}

// srcFor is a client address of the right family for prefix index pi.
func srcFor(pi int) netip.Addr {
	if netip.MustParsePrefix(congestionDemand[pi].prefix).Addr().Is6() {
		return netip.MustParseAddr("2001:db8:ffff::1")
	}
	return netip.MustParseAddr("198.18.200.1")
}

// minimalMove is what a planner that moves the fewest prefixes must take
// off link i: the largest first until the rest fits under the target.
func minimalMove(rates []float64, prefixes []netip.Prefix, capacity uint64, targetPct float64) []netip.Prefix {
	type pr struct {
		p netip.Prefix
		r float64
	}
	var all []pr
	var sum float64
	for pi, r := range rates {
		all = append(all, pr{prefixes[pi], r})
		sum += r
	}
	slices.SortFunc(all, func(a, b pr) int { return cmp.Compare(b.r, a.r) })
	target := targetPct / 100 * float64(capacity)
	var out []netip.Prefix
	for _, x := range all {
		if sum <= target {
			break
		}
		out = append(out, x.p)
		sum -= x.r
	}
	slices.SortFunc(out, func(a, b netip.Prefix) int { return a.Addr().Compare(b.Addr()) })
	return out
}

// congestionTopology is the scenario's network on the lab's addresses.
func congestionTopology(l *loopback.Lab, base byte, gnmiAddr string) (*topologies.Topology, error) {
	th := DemoThresholds()
	// Longer than the flow window (2s): by the time a link is judged
	// congested, the per-prefix rates describe the flash crowd, not the
	// calm before it.
	th.Enter = 3 * time.Second
	t := &topologies.Topology{
		Name: "demo-congestion", Thresholds: th, Probes: topologies.DefaultProbes(), BGP: topologies.DefaultBGP(),
		Flow:      topologies.Flow{Listen: fmt.Sprintf("127.%d.0.1:0", base), Window: 2 * time.Second, TemplateTTL: time.Minute, Sockets: 1},
		Telemetry: topologies.Telemetry{Interval: 500 * time.Millisecond},
	}
	t.BGP.ConnectRetry, t.BGP.HoldTime, t.BGP.Keepalive = time.Second, 9*time.Second, 3*time.Second
	pop := topologies.PoP{Name: "demo", Speaker: topologies.Speaker{RouterID: netip.MustParseAddr("198.18.0.1"), ASN: 65000},
		Routers: []topologies.Router{
			{Name: "br1", GNMI: gnmiAddr, GNMITLS: topologies.TLSInsecure, FlowExporter: netip.AddrFrom4([4]byte{127, base, 0, 11})},
			{Name: "br2", GNMITLS: topologies.TLSVerify, FlowExporter: netip.AddrFrom4([4]byte{127, base, 0, 12})},
		}}
	for i, x := range l.ISPs {
		lk := topologies.Link{Name: x.Name, ISP: fmt.Sprintf("Transit %c", 'A'+i), PeerASN: uint32(64501 + i),
			Neighbor: x.Neighbor.Addr(), NeighborPort: int(x.Neighbor.Port()), Local: x.Local, ListenPort: -1,
			Capacity: congestionCapacity[i], ProbeTargets: x.Targets(), Thresholds: th, IfIndex: uint32(i + 1)}
		if i < 2 {
			lk.Router, lk.Interface = "br1", x.Name
		} else {
			lk.Router = "br2"
		}
		pop.Links = append(pop.Links, lk)
	}
	t.PoPs = []topologies.PoP{pop}
	var all []string
	for _, lk := range pop.Links {
		all = append(all, t.LinkID(pop.Name, lk.Name))
	}
	for _, d := range congestionDemand {
		t.Prefixes = append(t.Prefixes, topologies.Prefix{Prefix: netip.MustParsePrefix(d.prefix), Publish: all})
	}
	if err := t.Validate(); err != nil {
		return nil, fmt.Errorf("congestion demo topology: %w", err)
	}
	return t, nil
}

// startGNMI serves br1's interfaces from dir over real gRPC.
func startGNMI(ctx context.Context, base byte, dir string) (*gnmiagent.Agent, error) {
	cfg := gnmiagent.DefaultConfig()
	cfg.Listen = fmt.Sprintf("127.%d.0.20:0", base)
	cfg.SysfsRoot, cfg.BGPCommand = dir, nil
	a, err := gnmiagent.New(cfg, gnmiagent.Deps{})
	if err != nil {
		return nil, err
	}
	if err := a.Start(ctx); err != nil {
		return nil, err
	}
	return a, nil
}

// exporterConn is a UDP socket bound to a router's exporter address.
func exporterConn(base, host byte) (*net.UDPConn, error) {
	return net.ListenUDP("udp4", &net.UDPAddr{IP: net.IPv4(127, base, 0, host)})
}
