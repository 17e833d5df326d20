package decisions

import (
	"errors"
	"net/netip"
	"slices"
	"strings"
	"testing"
	"time"
)

var twoPoPLinks = []string{"pop1/isp1", "pop1/isp2", "pop1/isp3", "pop2/isp1", "pop2/isp2"}

// twoPoPs has pfxA anycast on every link, pfxB on pop1's links only and
// pfxC on every link; every link is 10 Gbit/s.
func twoPoPs(t *testing.T) *Engine {
	t.Helper()
	nw := Network{Limits: DefaultLimits()}
	for _, id := range twoPoPLinks {
		pop, _, _ := strings.Cut(id, "/")
		_, isp, _ := strings.Cut(id, "/")
		nw.Links = append(nw.Links, Link{ID: id, PoP: pop, ISP: isp, Thresholds: fastThresholds(), Capacity: 10 * gbit, Congestion: DefaultCongestion()})
	}
	nw.Prefixes = []Prefix{{Prefix: pfxA, Links: twoPoPLinks}, {Prefix: pfxB, Links: twoPoPLinks[:3]}, {Prefix: pfxC, Links: twoPoPLinks}}
	e, err := New(nw, Snapshot{})
	if err != nil {
		t.Fatal(err)
	}
	return e
}

func drainPoP1(id string, until time.Time, pfxs ...netip.Prefix) Override {
	o := Override{ID: id, Expires: until, Withdraw: map[string][]netip.Prefix{}}
	for _, l := range twoPoPLinks[:3] {
		o.Withdraw[l] = pfxs
	}
	return o
}

func TestOverrideHoldsAgainstAutomationUntilItExpires(t *testing.T) {
	e := twoPoPs(t)
	s := newSim(e, 1, twoPoPLinks...)
	s.run(5 * time.Second)
	o := Override{ID: "isp2-out", Expires: s.now.Add(time.Minute), Withdraw: map[string][]netip.Prefix{"pop1/isp2": {pfxA, pfxB, pfxC}}}
	if err := e.AddOverride(o); err != nil {
		t.Fatal(err)
	}
	ds := s.run(time.Second)
	ins := intentsFor(ds, Withdraw, "pop1/isp2")
	if len(ins) != 1 || ins[0].Rule != RuleOverride || len(ins[0].Prefixes) != 3 || !strings.Contains(ins[0].Reason, "isp2-out") {
		t.Fatalf("withdraw intents on pop1/isp2 = %+v; want one, rule override, 3 prefixes, naming isp2-out", ins)
	}
	// The link is healthy all along: automation would publish there, and
	// must not while the override holds.
	ds = s.run(50 * time.Second)
	if got := s.published("pop1/isp2"); len(got) != 0 {
		t.Fatalf("pop1/isp2 publishes %v under the override", got)
	}
	if ins := intentsFor(ds, Announce, "pop1/isp2"); len(ins) != 0 {
		t.Fatalf("automation announced on an overridden link: %+v", ins)
	}
	if st := statusOf(e, "pop1/isp2"); !slices.Equal(st.Overrides, []string{"isp2-out"}) {
		t.Fatalf("status overrides = %v", st.Overrides)
	}
	ds = s.run(15 * time.Second)
	var expired []string
	for _, d := range ds {
		expired = append(expired, d.Expired...)
	}
	if !slices.Equal(expired, []string{"isp2-out"}) {
		t.Fatalf("expired = %v, want [isp2-out]", expired)
	}
	if got := s.published("pop1/isp2"); len(got) != 3 {
		t.Fatalf("after expiry pop1/isp2 publishes %v; automation should have put all 3 back", got)
	}
	if len(e.Overrides()) != 0 {
		t.Fatalf("overrides left: %+v", e.Overrides())
	}
}

func TestOverrideRelease(t *testing.T) {
	e := twoPoPs(t)
	s := newSim(e, 2, twoPoPLinks...)
	s.run(5 * time.Second)
	if err := e.AddOverride(drainPoP1("drain", s.now.Add(time.Hour), pfxA, pfxC)); err != nil {
		t.Fatal(err)
	}
	s.run(time.Second)
	for _, l := range twoPoPLinks[:3] {
		if got := s.published(l); !slices.Equal(got, []netip.Prefix{pfxB}) {
			t.Fatalf("%s publishes %v while drained of A and C", l, got)
		}
	}
	if !e.RemoveOverride("drain") || e.RemoveOverride("drain") {
		t.Fatal("RemoveOverride: want true once, then false")
	}
	s.run(time.Second)
	for _, l := range twoPoPLinks[:3] {
		if got := s.published(l); len(got) != 3 {
			t.Fatalf("%s publishes %v after release", l, got)
		}
	}
}

func TestOverrideConflictsRefused(t *testing.T) {
	e := twoPoPs(t)
	until := t0.Add(time.Hour)
	if err := e.AddOverride(drainPoP1("drain", until, pfxA)); err != nil {
		t.Fatal(err)
	}
	o := Override{ID: "isp2-out", Expires: until, Withdraw: map[string][]netip.Prefix{"pop1/isp2": {pfxA, pfxB}}}
	err := e.AddOverride(o)
	if !errors.Is(err, ErrConflict) || !strings.Contains(err.Error(), "drain") || !strings.Contains(err.Error(), pfxA.String()+" on pop1/isp2") {
		t.Fatalf("overlapping override: err = %v; want ErrConflict naming drain and the pair", err)
	}
	if _, err := e.Preview(o); !errors.Is(err, ErrConflict) {
		t.Fatalf("Preview of an overlapping override: err = %v", err)
	}
	if err := e.AddOverride(drainPoP1("drain", until, pfxB)); !errors.Is(err, ErrConflict) {
		t.Fatalf("a second override with the same id: err = %v", err)
	}
	// Not overlapping: fine.
	o.Withdraw["pop1/isp2"] = []netip.Prefix{pfxB}
	if err := e.AddOverride(o); err != nil {
		t.Fatal(err)
	}
	for _, bad := range []Override{
		{ID: "x", Expires: until},
		{ID: "x", Withdraw: map[string][]netip.Prefix{"pop1/isp1": {pfxC}}},
		{ID: "x", Expires: until, Withdraw: map[string][]netip.Prefix{"pop9/isp1": {pfxC}}},
		{ID: "x", Expires: until, Withdraw: map[string][]netip.Prefix{"pop2/isp1": {netip.MustParsePrefix("192.0.2.0/24")}}},
		{ID: "x", Expires: until, Withdraw: map[string][]netip.Prefix{"pop2/isp1": {pfxC}}, Announce: map[string][]netip.Prefix{"pop2/isp1": {pfxC}}},
	} {
		if err := e.AddOverride(bad); err == nil {
			t.Errorf("AddOverride(%+v) accepted", bad)
		}
	}
	if n := len(e.Overrides()); n != 2 {
		t.Fatalf("%d overrides active, want 2", n)
	}
}

// An override that leaves one link of a PoP free does not strand what it
// withdraws when that link degrades: automation keeps the prefixes there.
func TestOverrideNeverStrands(t *testing.T) {
	e := twoPoPs(t)
	s := newSim(e, 3, twoPoPLinks...)
	s.run(5 * time.Second)
	o := Override{ID: "two-out", Expires: s.now.Add(time.Hour), Withdraw: map[string][]netip.Prefix{
		"pop1/isp1": {pfxA, pfxB, pfxC}, "pop1/isp2": {pfxA, pfxB, pfxC}}}
	if err := e.AddOverride(o); err != nil {
		t.Fatal(err)
	}
	s.run(time.Second)
	s.link("pop1/isp3").loss = 0.5
	ds := s.run(30 * time.Second)
	if statusOf(e, "pop1/isp3").State != Degraded {
		t.Fatal("pop1/isp3 did not degrade")
	}
	if got := s.published("pop1/isp3"); len(got) != 3 {
		t.Fatalf("pop1/isp3, the only link no override covers, publishes %v; want all 3 kept", got)
	}
	for _, l := range twoPoPLinks[:2] {
		if got := s.published(l); len(got) != 0 {
			t.Fatalf("%s publishes %v: automation took back a link the override holds", l, got)
		}
	}
	var stranding bool
	for _, d := range ds {
		for _, a := range d.Alerts {
			stranding = stranding || a.Kind == "stranding" && a.Link == "pop1/isp3"
		}
	}
	if !stranding {
		t.Fatal("no stranding alert for pop1/isp3")
	}
}

func TestPreviewRefusesStranding(t *testing.T) {
	e := twoPoPs(t)
	s := newSim(e, 4, twoPoPLinks...)
	s.run(5 * time.Second)
	until := s.now.Add(time.Hour)

	// Draining pop1 of everything strands pfxB, published nowhere else.
	p, err := e.Preview(drainPoP1("drain", until, pfxA, pfxB, pfxC))
	if err != nil {
		t.Fatal(err)
	}
	if len(p.Refusals) != 1 || !strings.Contains(p.Refusals[0], pfxB.String()+" would be published nowhere") {
		t.Fatalf("refusals = %q; want one, for %s published nowhere", p.Refusals, pfxB)
	}
	if len(p.Changes) != 3 {
		t.Fatalf("changes = %+v; want the three pop1 links", p.Changes)
	}

	// Two of pop1's three links taken out while the third is withdrawn by
	// automation strands the prefixes in pop1.
	s.link("pop1/isp3").dark = true
	s.run(10 * time.Second)
	if !statusOf(e, "pop1/isp3").Withdrawn {
		t.Fatal("pop1/isp3 not withdrawn")
	}
	o := Override{ID: "two-out", Expires: until, Withdraw: map[string][]netip.Prefix{"pop1/isp1": {pfxA}, "pop1/isp2": {pfxA}}}
	p, err = e.Preview(o)
	if err != nil {
		t.Fatal(err)
	}
	if len(p.Refusals) != 1 || !strings.Contains(p.Refusals[0], pfxA.String()+" would be stranded in pop1") || !strings.Contains(p.Refusals[0], "pop1/isp3") {
		t.Fatalf("refusals = %q; want %s stranded in pop1 naming pop1/isp3", p.Refusals, pfxA)
	}
	// One link out is fine: isp2 still carries.
	o.Withdraw = map[string][]netip.Prefix{"pop1/isp1": {pfxA}}
	if p, err = e.Preview(o); err != nil || len(p.Refusals) != 0 {
		t.Fatalf("one link out: refusals %q, err %v", p.Refusals, err)
	}
	if want := []Delta{{Link: "pop1/isp1", Withdraw: []netip.Prefix{pfxA}}}; !slices.EqualFunc(p.Changes, want, func(a, b Delta) bool {
		return a.Link == b.Link && slices.Equal(a.Withdraw, b.Withdraw) && len(a.Announce) == len(b.Announce)
	}) {
		t.Fatalf("changes = %+v, want %+v", p.Changes, want)
	}
	if len(e.Overrides()) != 0 {
		t.Fatal("Preview added an override")
	}
}

func TestPreviewProjectsLoad(t *testing.T) {
	e := twoPoPs(t)
	now := t0
	// pop1's links each take 3 Gbit/s of pfxA; pop2's links are at 6 and 4.
	in := map[string]float64{"pop1/isp1": 3 * gbit, "pop1/isp2": 3 * gbit, "pop1/isp3": 3 * gbit, "pop2/isp1": 6 * gbit, "pop2/isp2": 4 * gbit}
	step := func() {
		now = now.Add(500 * time.Millisecond)
		for l, v := range in {
			if err := e.ObserveLoad(Load{Link: l, Source: "test", End: now, Known: true, InBps: v}); err != nil {
				t.Fatal(err)
			}
			if strings.HasPrefix(l, "pop1/") {
				if err := e.ObservePrefixLoad(PrefixLoad{Link: l, End: now, Rates: map[netip.Prefix]float64{pfxA: v}}); err != nil {
					t.Fatal(err)
				}
			}
		}
		for _, i := range e.Step(now).Intents {
			if err := e.Confirm(i); err != nil {
				t.Fatal(err)
			}
		}
	}
	step()
	// 9 Gbit/s leave pop1 for pop2: isp1's and isp2's 3 stay with their
	// ISP (pop2/isp1, pop2/isp2), isp3's has no isp3 in pop2 and splits by
	// capacity, 1.5 each. pop2/isp1 would be at 6+4.5 = 105 %, over 90 %.
	p, err := e.Preview(drainPoP1("drain", now.Add(time.Hour), pfxA))
	if err != nil {
		t.Fatal(err)
	}
	if len(p.Load) != 2 {
		t.Fatalf("load checks = %+v; want pop2's two links", p.Load)
	}
	if l := p.Load[0]; l.Link != "pop2/isp1" || l.MovedBps != 4.5*gbit || l.ProjectedPc != 105 {
		t.Fatalf("pop2/isp1 check = %+v; want 4.5 Gbit/s moved, 105%% projected", l)
	}
	if len(p.Refusals) != 1 || !strings.Contains(p.Refusals[0], "pop2/isp1 would be overloaded") {
		t.Fatalf("refusals = %q; want pop2/isp1 overloaded", p.Refusals)
	}
	// With pop2/isp1 at 2 Gbit/s it fits (65 %).
	in["pop2/isp1"] = 2 * gbit
	step()
	if p, err = e.Preview(drainPoP1("drain", now.Add(time.Hour), pfxA)); err != nil || len(p.Refusals) != 0 {
		t.Fatalf("refusals %q, err %v; want none", p.Refusals, err)
	}
	// Taking pop1/isp1 out: isp1 still has pfxA from pop2, so its
	// traffic comes in there: pop2/isp1 at 2+3 = 50 %.
	o := Override{ID: "isp1-out", Expires: now.Add(time.Hour), Withdraw: map[string][]netip.Prefix{"pop1/isp1": {pfxA}}}
	if p, err = e.Preview(o); err != nil {
		t.Fatal(err)
	}
	if len(p.Load) != 1 || p.Load[0].Link != "pop2/isp1" || p.Load[0].MovedBps != 3*gbit || p.Load[0].ProjectedPc != 50 {
		t.Fatalf("load = %+v; want pop2/isp1 +3 Gbit/s to 50%%", p.Load)
	}
	// pop1/isp3 has no isp3 elsewhere: its share goes to pop1's other two.
	o = Override{ID: "isp3-out", Expires: now.Add(time.Hour), Withdraw: map[string][]netip.Prefix{"pop1/isp3": {pfxA}}}
	if p, err = e.Preview(o); err != nil {
		t.Fatal(err)
	}
	if len(p.Load) != 2 || p.Load[0].Link != "pop1/isp1" || p.Load[0].MovedBps != 1.5*gbit || p.Load[0].ProjectedPc != 45 {
		t.Fatalf("load = %+v; want pop1/isp1 and isp2 each +1.5 Gbit/s to 45%%", p.Load)
	}
}

func statusOf(e *Engine, id string) LinkStatus {
	for _, s := range e.Status() {
		if s.Link == id {
			return s
		}
	}
	return LinkStatus{}
}

func TestPreviewRelease(t *testing.T) {
	e := twoPoPs(t)
	s := newSim(e, 5, twoPoPLinks...)
	s.run(5 * time.Second)
	o := drainPoP1("drain", s.now.Add(time.Hour), pfxA, pfxC)
	o.Announce = map[string][]netip.Prefix{"pop2/isp1": {pfxB}}
	if err := e.AddOverride(o); err != nil {
		t.Fatal(err)
	}
	s.run(time.Second)
	if got := s.published("pop2/isp1"); len(got) != 3 {
		t.Fatalf("pop2/isp1 publishes %v; want A, B (pinned) and C", got)
	}
	p, err := e.PreviewRelease([]string{"drain"})
	if err != nil {
		t.Fatal(err)
	}
	if len(p.Changes) != 4 || p.Changes[0].Link != "pop1/isp1" || !slices.Equal(p.Changes[0].Announce, []netip.Prefix{pfxA, pfxC}) ||
		p.Changes[3].Link != "pop2/isp1" || !slices.Equal(p.Changes[3].Withdraw, []netip.Prefix{pfxB}) {
		t.Fatalf("changes = %+v", p.Changes)
	}
	if _, err := e.PreviewRelease([]string{"nope"}); err == nil {
		t.Fatal("release of an unknown override previewed")
	}
	pubs := e.Publications()
	if len(pubs) != 5 || pubs[0].Link != "pop1/isp1" || !slices.Equal(pubs[0].Desired, []netip.Prefix{pfxB}) || !slices.Equal(pubs[0].Applied, []netip.Prefix{pfxB}) {
		t.Fatalf("publications = %+v", pubs)
	}
}

// An override with a later From holds its pairs against other overrides
// at once but changes the plan only from then.
func TestOverrideFrom(t *testing.T) {
	e := twoPoPs(t)
	s := newSim(e, 6, twoPoPLinks...)
	s.run(5 * time.Second)
	o := Override{ID: "later", From: s.now.Add(5 * time.Second), Expires: s.now.Add(time.Hour),
		Withdraw: map[string][]netip.Prefix{"pop1/isp2": {pfxA}}}
	if err := e.AddOverride(o); err != nil {
		t.Fatal(err)
	}
	dup := o
	dup.ID, dup.From = "dup", time.Time{}
	if err := e.AddOverride(dup); !errors.Is(err, ErrConflict) {
		t.Fatalf("overlap with a pending override: err = %v", err)
	}
	s.run(4 * time.Second)
	if got := s.published("pop1/isp2"); !slices.Contains(got, pfxA) {
		t.Fatalf("pop1/isp2 publishes %v before From; want A still there", got)
	}
	s.run(2 * time.Second)
	if got := s.published("pop1/isp2"); slices.Contains(got, pfxA) || len(got) != 2 {
		t.Fatalf("pop1/isp2 publishes %v after From; want B and C only", got)
	}
}
