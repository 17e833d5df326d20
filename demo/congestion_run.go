package demo

import (
	"context"
	"fmt"
	"math"
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/sdnoc/sdnoc/lab/loopback"
)

// runCongestion plays the congestion scenario: a flash crowd fills isp1,
// sdnoc moves the fewest prefixes off it, the crowd leaves, they return.
func runCongestion(ctx context.Context, cfg Config) (*Report, error) {
	r := &runner{cfg: cfg, start: time.Now()}
	var specs []loopback.LinkSpec
	for i := range congestionCapacity {
		specs = append(specs, loopback.LinkSpec{Name: fmt.Sprintf("isp%d", i+1), PeerASN: uint32(64501 + i)})
	}
	l, err := loopback.StartLab(ctx, cfg.Base, 65000, specs, cfg.Log)
	if err != nil {
		return nil, fmt.Errorf("start the loopback lab: %w", err)
	}
	r.lab = l
	defer l.Stop(context.WithoutCancel(ctx))
	dir, err := os.MkdirTemp("", "sdnoc-demo-")
	if err != nil {
		return nil, fmt.Errorf("demo directory: %w", err)
	}
	defer os.RemoveAll(dir)
	sysfs := filepath.Join(dir, "br1-sys-class-net")
	if err := prepareSysfs(sysfs); err != nil {
		return nil, fmt.Errorf("br1's interfaces: %w", err)
	}
	agent, err := startGNMI(ctx, cfg.Base, sysfs)
	if err != nil {
		return nil, fmt.Errorf("br1's gNMI agent: %w", err)
	}
	defer agent.Stop(context.WithoutCancel(ctx))
	topo, err := congestionTopology(l, cfg.Base, agent.Addr().String())
	if err != nil {
		return nil, err
	}
	r.topo = topo
	for _, lk := range topo.PoPs[0].Links {
		r.links = append(r.links, topo.LinkID("demo", lk.Name))
	}
	for _, p := range topo.Prefixes {
		r.prefixes = append(r.prefixes, p.Prefix)
	}
	r.report = Report{Scenario: ScenarioCongestion, Thresholds: topo.PoPs[0].Links[0].Thresholds, Probes: topo.Probes,
		Topology: topo.Name, Links: r.links, Prefixes: r.prefixes}

	if err := r.startController(ctx, topo, dir); err != nil {
		return nil, err
	}
	defer r.ctl.Stop(context.WithoutCancel(ctx))

	br1, err := exporterConn(cfg.Base, 11)
	if err != nil {
		return nil, fmt.Errorf("br1's exporter socket: %w", err)
	}
	defer br1.Close()
	br2, err := exporterConn(cfg.Base, 12)
	if err != nil {
		return nil, fmt.Errorf("br2's exporter socket: %w", err)
	}
	defer br2.Close()
	tr := &traffic{lab: l, prefixes: r.prefixes, sysfs: sysfs, br1: br1, br2: br2,
		collect: r.ctl.FlowAddr().(*net.UDPAddr), factor: 1,
		rx: make([]float64, len(l.ISPs)), sfCarry: make([]float64, len(r.prefixes))}
	for range l.ISPs {
		tr.rates = append(tr.rates, make([]float64, len(r.prefixes)))
	}
	tctx, stopTraffic := context.WithCancel(ctx)
	var wg sync.WaitGroup
	wg.Go(func() { tr.run(tctx) })
	defer func() { stopTraffic(); wg.Wait() }()

	r.line(Line{Kind: "start", Text: fmt.Sprintf("sdnoc speaker AS65000, ISP links %s of %s; br1 reports isp1+isp2 over gNMI and IPFIX, br2 reports isp3 over sFlow (1:%d); congested above %.0f%% for %v, clear below %.0f%% for %v",
		strings.Join(r.links, ", "), capacities(), sflowRate, r.report.Thresholds.CongestionPct, r.report.Thresholds.Enter,
		r.report.Thresholds.CongestionExitPct, r.report.Thresholds.Exit)})
	r.congestionScenario(ctx, tr)
	if err := tr.failure(); err != nil {
		r.step(Step{Name: "traffic", Expected: "the simulated routers report every tick", Observed: err.Error()}, time.Now())
	}
	return r.finish(), nil
}

func capacities() string {
	s := make([]string, len(congestionCapacity))
	for i, c := range congestionCapacity {
		s[i] = fmt.Sprintf("%g Gbit/s", float64(c)/1e9)
	}
	return strings.Join(s, ", ")
}

// failure is the first error the traffic loop met, if any.
func (t *traffic) failure() error {
	t.mu.Lock()
	defer t.mu.Unlock()
	return t.err
}

// utilisation reads the engine's view of every link: -1 when unknown.
func (r *runner) utilisation() []float64 {
	st := r.ctl.Status()
	out := make([]float64, len(r.links))
	for i := range out {
		out[i] = -1
	}
	for _, s := range st {
		if i := slices.Index(r.links, s.Link); i >= 0 {
			out[i] = s.Utilisation
		}
	}
	return out
}

func utilString(links []string, u []float64) string {
	s := make([]string, len(u))
	for i, v := range u {
		if v < 0 {
			s[i] = links[i] + " unknown"
		} else {
			s[i] = fmt.Sprintf("%s %.0f%%", links[i], v)
		}
	}
	return strings.Join(s, ", ")
}

func (r *runner) congestionScenario(ctx context.Context, tr *traffic) {
	th := r.report.Thresholds
	settle := 20 * time.Second
	isp1 := r.lab.ISPs[0]
	stranded := func(rs [][]netip.Prefix) []netip.Prefix {
		var out []netip.Prefix
		for _, p := range r.prefixes {
			in := false
			for _, rt := range rs {
				in = in || slices.Contains(rt, p)
			}
			if !in {
				out = append(out, p)
			}
		}
		return out
	}

	// 1. Every prefix everywhere, every link measured as it is.
	began := time.Now()
	_, rs, ok := r.waitFor(ctx, settle, func(rs [][]netip.Prefix) bool {
		for _, rt := range rs {
			if !r.full(rt) {
				return false
			}
		}
		return r.measuredRight(tr)
	})
	r.step(Step{Name: "all measured", Expected: "every prefix in every ISP's RIB; every link's utilisation, as sdnoc sees it (gNMI for isp1/isp2, sFlow for isp3), within 3 points of the traffic sent",
		Observed: r.ribSummary(rs) + "; seen " + utilString(r.links, r.utilisation()) + "; sent " + utilString(r.links, sentUtil(tr)), Passed: ok}, began)
	if !ok {
		return
	}

	// 2. A flash crowd fills isp1.
	began = time.Now()
	r.line(Line{Kind: "impair", Link: r.links[0], Text: fmt.Sprintf("flash crowd: every prefix's demand × %.1f", hotFactor)})
	tr.setFactor(hotFactor)
	time.Sleep(2 * trafficTick) // the traffic model has applied it
	hot := tr.linkRates()
	want := minimalMove(hot[0], r.prefixes, congestionCapacity[0], th.CongestionPct)
	var strandedSeen []netip.Prefix
	took, _, ok := r.waitFor(ctx, settle, func(rs [][]netip.Prefix) bool {
		strandedSeen = append(strandedSeen, stranded(rs)...)
		return len(r.prefixes)-countIn(rs[0], r.prefixes) >= len(want)
	})
	// Let the move settle (flows drain, nothing more moves), then judge.
	time.Sleep(th.Enter + 2*time.Second)
	rs, _ = r.ribs(ctx)
	gone := missing(rs[0], r.prefixes)
	r.report.MoveLatencyMS = ms(took)
	r.report.Moved, r.report.ExpectedMoved = gone, want
	after := r.utilisation()
	under := after[0] >= 0 && after[0] <= th.CongestionPct
	othersOK := true
	for i := 1; i < len(after); i++ {
		othersOK = othersOK && after[i] >= 0 && after[i] <= th.CongestionPct
	}
	strandedSeen = append(strandedSeen, stranded(rs)...)
	r.step(Step{Name: "isp1 fills",
		Expected: fmt.Sprintf("the fewest prefixes (%s) leave %s's RIB, isp1 falls under %.0f%%, the others stay under it, nothing stranded",
			prefixList(want), isp1.Name, th.CongestionPct),
		Observed: fmt.Sprintf("gone from %s after %v: %s; %s; stranded: %d", isp1.Name, took.Round(time.Millisecond),
			prefixList(gone), utilString(r.links, after), len(strandedSeen)),
		Passed: ok && slices.Equal(gone, want) && under && othersOK && len(strandedSeen) == 0}, began)
	if !ok {
		return
	}

	// 3. The crowd leaves: the moved prefixes return.
	began = time.Now()
	r.line(Line{Kind: "heal", Link: r.links[0], Text: "flash crowd over: demand back to normal"})
	tr.setFactor(1)
	took, rs, ok = r.waitFor(ctx, settle+th.Exit+th.HoldDown, func(rs [][]netip.Prefix) bool {
		strandedSeen = append(strandedSeen, stranded(rs)...)
		return r.full(rs[0])
	})
	r.report.BackLatencyMS = ms(took)
	early := took < th.Exit
	r.step(Step{Name: "isp1 cools", Expected: fmt.Sprintf("every moved prefix back in %s's RIB once it has room, no sooner than exit (%v); nothing stranded", isp1.Name, th.Exit),
		Observed: fmt.Sprintf("%s after %v; %s; stranded: %d", r.ribSummary(rs), took.Round(time.Millisecond), utilString(r.links, r.utilisation()), len(strandedSeen)),
		Passed:   ok && !early && len(strandedSeen) == 0}, began)
}

func countIn(rt, ps []netip.Prefix) int {
	n := 0
	for _, p := range ps {
		if slices.Contains(rt, p) {
			n++
		}
	}
	return n
}

// missing returns the prefixes of ps not in rt, sorted.
func missing(rt, ps []netip.Prefix) []netip.Prefix {
	var out []netip.Prefix
	for _, p := range ps {
		if !slices.Contains(rt, p) {
			out = append(out, p)
		}
	}
	slices.SortFunc(out, func(a, b netip.Prefix) int { return a.Addr().Compare(b.Addr()) })
	return out
}

// sentUtil is each link's utilisation as the traffic model sends it.
func sentUtil(tr *traffic) []float64 {
	rates := tr.linkRates()
	out := make([]float64, len(rates))
	for i, rs := range rates {
		for _, v := range rs {
			out[i] += v
		}
		out[i] = 100 * out[i] / float64(congestionCapacity[i])
	}
	return out
}

// measuredRight reports whether sdnoc sees every link's utilisation
// within 3 percentage points of what is sent.
func (r *runner) measuredRight(tr *traffic) bool {
	seen, sent := r.utilisation(), sentUtil(tr)
	for i := range seen {
		if seen[i] < 0 || math.Abs(seen[i]-sent[i]) > 3 {
			return false
		}
	}
	return true
}
