package decisions

import (
	"fmt"
	"net/netip"
	"slices"
	"testing"
	"time"
)

// TestNoiseNeverWithdraws: 1 % random loss on every link of a PoP for a
// simulated hour, with the default thresholds, withdraws nothing
// (invariant 3), for twenty seeds (60 link-hours).
func TestNoiseNeverWithdraws(t *testing.T) {
	if testing.Short() {
		t.Skip("simulates 60 link-hours")
	}
	th := DefaultThresholds()
	for seed := range uint64(20) {
		e := onePoP(t, th, DefaultLimits())
		s := newSim(e, seed, "pop1/isp1", "pop1/isp2", "pop1/isp3")
		for _, l := range s.links {
			l.loss = 0.01
		}
		s.run(time.Hour)
		if n := countWithdrawals(s.decisions); n != 0 {
			t.Fatalf("seed %d: 1%% noise for an hour caused %d withdrawals", seed, n)
		}
	}
}

// TestNoiseWithdrawalRate bounds how often 1 % noise withdraws a link over
// 120 link-hours on other seeds: about once per 60 link-hours is what the
// defaults give at 30 probes/s (see DefaultThresholds); more means the
// engine got noisier.
func TestNoiseWithdrawalRate(t *testing.T) {
	if testing.Short() {
		t.Skip("simulates 120 link-hours")
	}
	th := DefaultThresholds()
	n := 0
	for seed := uint64(1000); seed < 1040; seed++ {
		e := onePoP(t, th, Limits{MaxWithdrawals: 1000, WithdrawalWindow: time.Minute})
		s := newSim(e, seed, "pop1/isp1", "pop1/isp2", "pop1/isp3")
		for _, l := range s.links {
			l.loss = 0.01
		}
		s.run(time.Hour)
		n += countWithdrawals(s.decisions)
	}
	t.Logf("1%% noise: %d false withdrawals in 120 link-hours", n)
	if n > 3 {
		t.Fatalf("1%% noise caused %d withdrawals in 120 link-hours; the defaults give about 2", n)
	}
}

// TestFivePercentDetected measures, in virtual time, how long 5 % loss
// takes to withdraw a link with the default thresholds.
func TestFivePercentDetected(t *testing.T) {
	th := DefaultThresholds()
	var took []time.Duration
	for seed := uint64(100); seed < 140; seed++ {
		e := onePoP(t, th, DefaultLimits())
		s := newSim(e, seed, "pop1/isp1", "pop1/isp2", "pop1/isp3")
		s.run(15 * time.Second)
		s.link("pop1/isp2").loss = 0.05
		start, n0 := s.now, len(s.decisions)
		s.run(time.Minute)
		var at time.Time
		for _, d := range s.decisions[n0:] {
			for _, c := range d.Changes {
				if c.Withdrawn && c.Link == "pop1/isp2" && at.IsZero() {
					at = d.At
				}
			}
		}
		if at.IsZero() {
			t.Fatalf("seed %d: 5%% loss not detected within a minute", seed)
		}
		took = append(took, at.Sub(start))
	}
	slices.Sort(took)
	p50, p90 := took[len(took)/2], took[len(took)*9/10]
	t.Logf("5%% loss -> withdrawn: min %v, p50 %v, p90 %v, max %v (%d runs)", took[0], p50, p90, took[len(took)-1], len(took))
	if p50 > 15*time.Second {
		t.Fatalf("median detection %v exceeds 15 s", p50)
	}
}

// bigNetwork is the benchmark's synthetic network: pops × links, prefixes
// anycast from every link of a third of the PoPs, or from every PoP.
func bigNetwork(pops, links, prefixes int) Network {
	nw := Network{Limits: Limits{MaxWithdrawals: 1 << 20, WithdrawalWindow: time.Minute}}
	th := DefaultThresholds()
	var ids [][]string
	for p := range pops {
		var row []string
		for l := range links {
			id := fmt.Sprintf("pop%d/isp%d", p, l)
			nw.Links = append(nw.Links, Link{ID: id, PoP: fmt.Sprintf("pop%d", p), Thresholds: th})
			row = append(row, id)
		}
		ids = append(ids, row)
	}
	for i := range prefixes {
		a := netip.AddrFrom4([4]byte{100, byte(64 + i>>16), byte(i >> 8), byte(i)})
		var on []string
		for p := range pops {
			if i%4 == 0 || p%3 == i%3 {
				on = append(on, ids[p]...)
			}
		}
		nw.Prefixes = append(nw.Prefixes, Prefix{Prefix: netip.PrefixFrom(a, 32), Links: on})
	}
	return nw
}

// BenchmarkStep is one decision step for 50 PoPs × 20 links × 20,000
// prefixes with samples arriving on every link and some links degraded,
// one PoP entirely, so the never-strand path runs too.
func BenchmarkStep(b *testing.B) {
	nw := bigNetwork(50, 20, 20000)
	e, err := New(nw, Snapshot{})
	if err != nil {
		b.Fatal(err)
	}
	now := t0
	feed := func(lossy func(i int) bool) {
		now = now.Add(500 * time.Millisecond)
		for i, l := range nw.Links {
			s := Sample{Link: l.ID, End: now, Known: true, Sent: 15, Received: 15, RTTAvg: 20 * time.Millisecond}
			if lossy(i) {
				s.Received, s.Lost = 9, 6
			}
			if err := e.Observe(s); err != nil {
				b.Fatal(err)
			}
		}
	}
	settle := func() {
		for _, in := range e.Step(now).Intents {
			if err := e.Confirm(in); err != nil {
				b.Fatal(err)
			}
		}
	}
	// Baseline: everything announced; then pop0 entirely and every 7th
	// link elsewhere degrade and are withdrawn.
	for range 30 {
		feed(func(int) bool { return false })
		settle()
	}
	lossy := func(i int) bool { return i < 20 || i%7 == 0 }
	for range 30 {
		feed(lossy)
		settle()
	}
	st := e.Status()
	withdrawn := 0
	for _, s := range st {
		if s.Withdrawn {
			withdrawn++
		}
	}
	if withdrawn < 150 {
		b.Fatalf("only %d links withdrawn; the benchmark would not exercise the planner", withdrawn)
	}
	b.ReportAllocs()
	for b.Loop() {
		feed(lossy)
		d := e.Step(now)
		if len(d.Intents) != 0 {
			b.Fatalf("steady state produced %d intents", len(d.Intents))
		}
	}
	b.ReportMetric(float64(len(nw.Links)), "links")
	b.ReportMetric(float64(withdrawn), "withdrawn")
}

// BenchmarkStepTransition is the worst step: 100 links degrade at once
// and their prefixes are withdrawn (about 1 million (prefix, link) intents).
func BenchmarkStepTransition(b *testing.B) {
	nw := bigNetwork(50, 20, 20000)
	b.ReportAllocs()
	var intents int
	for b.Loop() {
		b.StopTimer()
		e, err := New(nw, Snapshot{})
		if err != nil {
			b.Fatal(err)
		}
		now := t0
		for i := range 30 {
			now = now.Add(500 * time.Millisecond)
			for j, l := range nw.Links {
				s := Sample{Link: l.ID, End: now, Known: true, Sent: 15, Received: 15}
				if i >= 20 && j%10 == 0 {
					s.Received, s.Lost = 9, 6
				}
				_ = e.Observe(s)
			}
			if i < 29 {
				for _, in := range e.Step(now).Intents {
					_ = e.Confirm(in)
				}
			}
		}
		b.StartTimer()
		d := e.Step(now)
		intents = 0
		for _, in := range d.Intents {
			intents += len(in.Prefixes)
		}
	}
	b.ReportMetric(float64(intents), "prefix-intents")
}

// BenchmarkStepCongestion is one step at 50 PoPs × 20 links × 20,000
// prefixes with congestion planning: every link reports its ingress and
// its 200 busiest prefixes, and one link in each PoP runs over target.
func BenchmarkStepCongestion(b *testing.B) {
	nw := bigNetwork(50, 20, 20000)
	for i := range nw.Links {
		nw.Links[i].Capacity = 100e9
		nw.Links[i].Congestion = DefaultCongestion()
	}
	e, err := New(nw, Snapshot{})
	if err != nil {
		b.Fatal(err)
	}
	// Each link's top prefixes: the configured ones it carries, 200 of them.
	tops := make([]map[netip.Prefix]float64, len(nw.Links))
	for i := range nw.Links {
		tops[i] = map[netip.Prefix]float64{}
	}
	for pi, p := range nw.Prefixes {
		for _, id := range p.Links {
			li := e.byID[id]
			if len(tops[li]) < 200 {
				tops[li][p.Prefix] = float64(1+pi%97) * 1e8
			}
		}
	}
	now := t0
	step := func(hot bool) Decision {
		now = now.Add(500 * time.Millisecond)
		for i, l := range nw.Links {
			in := 50e9
			if hot && i%20 == 0 {
				in = 99e9
			}
			_ = e.ObserveLoad(Load{Link: l.ID, End: now, Known: true, InBps: in})
			_ = e.ObservePrefixLoad(PrefixLoad{Link: l.ID, End: now, Rates: tops[i]})
		}
		d := e.Step(now)
		for _, in := range d.Intents {
			_ = e.Confirm(in)
		}
		return d
	}
	for range 10 {
		step(false)
	}
	moved := 0
	for range 10 {
		moved += len(moves([]Decision{step(true)}, false))
	}
	if moved == 0 {
		b.Fatal("no prefix moved: the benchmark would not exercise the planner")
	}
	b.ReportAllocs()
	for b.Loop() {
		step(true)
	}
	b.ReportMetric(float64(moved), "moved")
}
