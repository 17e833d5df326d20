package decisions

import (
	"math"
	"net/netip"
	"strings"
	"testing"
	"time"
)

const gbit = 1e9

var cpfx = []netip.Prefix{
	netip.MustParsePrefix("198.51.100.0/24"),
	netip.MustParsePrefix("203.0.113.0/24"),
	netip.MustParsePrefix("192.0.2.0/24"),
	netip.MustParsePrefix("2001:db8:100::/48"),
	netip.MustParsePrefix("2001:db8:200::/48"),
	netip.MustParsePrefix("100.64.0.0/24"), // only on isp1
}

// congestedPoP is pop1 with three 10 Gbit/s links; every prefix but the
// last is published on all three.
func congestedPoP(t *testing.T, snap Snapshot) *Engine {
	t.Helper()
	th := fastThresholds()
	ids := []string{"pop1/isp1", "pop1/isp2", "pop1/isp3"}
	nw := Network{Limits: DefaultLimits()}
	for _, id := range ids {
		nw.Links = append(nw.Links, Link{ID: id, PoP: "pop1", Thresholds: th, Capacity: 10 * gbit, Congestion: DefaultCongestion()})
	}
	for i, p := range cpfx {
		on := ids
		if i == len(cpfx)-1 {
			on = ids[:1]
		}
		nw.Prefixes = append(nw.Prefixes, Prefix{Prefix: p, Links: on})
	}
	e, err := New(nw, snap)
	if err != nil {
		t.Fatal(err)
	}
	return e
}

// feed reports loads and isp1's per-prefix rates every 500 ms for d,
// confirms every intent, and returns the decisions.
func feed(t *testing.T, e *Engine, now *time.Time, d time.Duration, in map[string]float64, rates map[netip.Prefix]float64) []Decision {
	t.Helper()
	var out []Decision
	for end := now.Add(d); now.Before(end); {
		*now = now.Add(500 * time.Millisecond)
		for link, bps := range in {
			if err := e.ObserveLoad(Load{Link: link, Source: "test", End: *now, Known: true, InBps: bps}); err != nil {
				t.Fatal(err)
			}
		}
		if rates != nil {
			if err := e.ObservePrefixLoad(PrefixLoad{Link: "pop1/isp1", End: *now, Rates: rates}); err != nil {
				t.Fatal(err)
			}
		}
		dec := e.Step(*now)
		for _, i := range dec.Intents {
			if err := e.Confirm(i); err != nil {
				t.Fatal(err)
			}
		}
		out = append(out, dec)
	}
	return out
}

func moves(ds []Decision, back bool) []Move {
	var out []Move
	for _, d := range ds {
		for _, m := range d.Moves {
			if m.Back == back {
				out = append(out, m)
			}
		}
	}
	return out
}

func TestCongestionMovesFewestPrefixes(t *testing.T) {
	e := congestedPoP(t, Snapshot{})
	now := t0
	rates := map[netip.Prefix]float64{cpfx[0]: 1 * gbit, cpfx[1]: 4 * gbit, cpfx[2]: 3 * gbit, cpfx[3]: 1.5 * gbit, cpfx[4]: 0.5 * gbit}
	feed(t, e, &now, 2*time.Second, map[string]float64{"pop1/isp1": 5 * gbit, "pop1/isp2": 3 * gbit, "pop1/isp3": 3 * gbit}, rates)
	// isp1 fills to 100 %: shedding more than 1 Gbit/s brings it under
	// 90 %; the single 4 Gbit/s prefix does it.
	ds := feed(t, e, &now, 3*time.Second, map[string]float64{"pop1/isp1": 10 * gbit, "pop1/isp2": 3 * gbit, "pop1/isp3": 3 * gbit}, rates)
	mv := moves(ds, false)
	if len(mv) != 1 || mv[0].Prefix != cpfx[1] || mv[0].RateBps != 4*gbit || !strings.Contains(mv[0].Reason, "60.0%") {
		t.Fatalf("moves = %+v; want only %s (4 Gbit/s), explained with the projected 60%%", mv, cpfx[1])
	}
	wd := intentsFor(ds, Withdraw, "pop1/isp1")
	if len(wd) != 1 || len(wd[0].Prefixes) != 1 || wd[0].Prefixes[0] != cpfx[1] || wd[0].Rule != RuleCongestion {
		t.Fatalf("withdraw intents on isp1 = %+v", wd)
	}
	var changes []CongestionChange
	for _, d := range ds {
		changes = append(changes, d.Congestion...)
	}
	if len(changes) != 1 || !changes[0].Congested || !strings.Contains(changes[0].Reason, "100.0%") {
		t.Fatalf("congestion changes = %+v", changes)
	}
	if len(intentsFor(ds, Withdraw, "pop1/isp2"))+len(intentsFor(ds, Withdraw, "pop1/isp3")) != 0 {
		t.Fatal("the receiving links lost prefixes")
	}
	st := e.Status()
	if !st[0].Congested || st[0].Moved != 1 || st[0].Utilisation != 100 {
		t.Fatalf("status of isp1 = %+v", st[0])
	}
}

func TestCongestionShortPeakIgnored(t *testing.T) {
	e := congestedPoP(t, Snapshot{})
	now := t0
	rates := map[netip.Prefix]float64{cpfx[1]: 4 * gbit}
	feed(t, e, &now, 500*time.Millisecond, map[string]float64{"pop1/isp1": 10 * gbit, "pop1/isp2": 1, "pop1/isp3": 1}, rates)
	ds := feed(t, e, &now, 5*time.Second, map[string]float64{"pop1/isp1": 5 * gbit, "pop1/isp2": 1, "pop1/isp3": 1}, rates)
	if m := moves(ds, false); len(m) != 0 {
		t.Fatalf("a 500 ms peak moved %+v (enter is %v)", m, fastThresholds().Enter)
	}
}

func TestCongestionNoRoomNoMove(t *testing.T) {
	e := congestedPoP(t, Snapshot{})
	now := t0
	rates := map[netip.Prefix]float64{cpfx[0]: 2 * gbit, cpfx[1]: 4 * gbit, cpfx[2]: 3 * gbit, cpfx[5]: 1 * gbit}
	in := map[string]float64{"pop1/isp1": 10 * gbit, "pop1/isp2": 8.8 * gbit, "pop1/isp3": 8.8 * gbit}
	ds := feed(t, e, &now, 5*time.Second, in, rates)
	if m := moves(ds, false); len(m) != 0 {
		t.Fatalf("moved %+v onto links at 88 %%", m)
	}
	var alert string
	for _, d := range ds {
		for _, a := range d.Alerts {
			if a.Kind == "congestion" {
				alert = a.Text
			}
		}
	}
	if !strings.Contains(alert, "no safe plan") || !strings.Contains(alert, "no room") || !strings.Contains(alert, "no other link of pop1 carries it") {
		t.Fatalf("alert = %q; want the refusal explained (no room; the isp1-only prefix would strand)", alert)
	}
}

func TestCongestionRestoreNeedsRoom(t *testing.T) {
	th := fastThresholds()
	e := congestedPoP(t, Snapshot{})
	now := t0
	rates := map[netip.Prefix]float64{cpfx[0]: 3 * gbit, cpfx[1]: 4 * gbit, cpfx[2]: 1 * gbit, cpfx[3]: 2 * gbit}
	feed(t, e, &now, 4*time.Second, map[string]float64{"pop1/isp1": 10 * gbit, "pop1/isp2": 1 * gbit, "pop1/isp3": 1 * gbit}, rates)
	if st := e.Status(); st[0].Moved != 1 {
		t.Fatalf("setup: %d moved", st[0].Moved)
	}
	// The moved prefix's traffic has left isp1: the flows no longer see it.
	rates = map[netip.Prefix]float64{cpfx[0]: 3 * gbit, cpfx[2]: 1 * gbit, cpfx[3]: 2 * gbit}
	// Below exit, but 6 Gbit/s + 4 × 1.1 does not fit under 9.
	ds := feed(t, e, &now, th.Exit+th.HoldDown+2*time.Second, map[string]float64{"pop1/isp1": 6 * gbit, "pop1/isp2": 3 * gbit, "pop1/isp3": 3 * gbit}, rates)
	if m := moves(ds, true); len(m) != 0 {
		t.Fatalf("restored without room: %+v", m)
	}
	// Room now, but it must hold for the exit duration first.
	room := map[string]float64{"pop1/isp1": 4 * gbit, "pop1/isp2": 3 * gbit, "pop1/isp3": 3 * gbit}
	if m := moves(feed(t, e, &now, th.Exit-time.Second, room, rates), true); len(m) != 0 {
		t.Fatalf("restored before room held for exit (%v): %+v", th.Exit, m)
	}
	ds = feed(t, e, &now, 2*time.Second, room, rates)
	back := moves(ds, true)
	if len(back) != 1 || back[0].Prefix != cpfx[1] || !strings.Contains(back[0].Reason, "headroom") {
		t.Fatalf("restores = %+v; want %s back with its headroom explained", back, cpfx[1])
	}
	if an := intentsFor(ds, Announce, "pop1/isp1"); len(an) != 1 || an[0].Prefixes[0] != cpfx[1] {
		t.Fatalf("announce intents = %+v", an)
	}
}

func TestCongestionUnknownLoadMovesNothing(t *testing.T) {
	e := congestedPoP(t, Snapshot{})
	now := t0
	for range 20 {
		now = now.Add(500 * time.Millisecond)
		_ = e.ObserveLoad(Load{Link: "pop1/isp1", End: now, Known: false, InBps: 10 * gbit})
		_ = e.ObservePrefixLoad(PrefixLoad{Link: "pop1/isp1", End: now, Rates: map[netip.Prefix]float64{cpfx[1]: 4 * gbit}})
		if d := e.Step(now); len(d.Moves) != 0 || len(d.Congestion) != 0 {
			t.Fatalf("unknown load acted: %+v %+v", d.Moves, d.Congestion)
		}
	}
}

func TestCongestionMovedPrefixReturnsRatherThanStrand(t *testing.T) {
	e := congestedPoP(t, Snapshot{})
	now := t0
	rates := map[netip.Prefix]float64{cpfx[1]: 4 * gbit}
	feed(t, e, &now, 4*time.Second, map[string]float64{"pop1/isp1": 10 * gbit, "pop1/isp2": 1 * gbit, "pop1/isp3": 1 * gbit}, rates)
	// Both receivers' BGP sessions go down: nobody else carries cpfx[1].
	_ = e.SetSession("pop1/isp2", false)
	_ = e.SetSession("pop1/isp3", false)
	e.links[1].withdrawn, e.links[2].withdrawn = true, true
	ds := feed(t, e, &now, time.Second, map[string]float64{"pop1/isp1": 10 * gbit, "pop1/isp2": 1 * gbit, "pop1/isp3": 1 * gbit}, rates)
	back := moves(ds, true)
	if len(back) == 0 || back[0].Prefix != cpfx[1] || !strings.Contains(back[0].Reason, "stranded") {
		t.Fatalf("moves back = %+v; want %s returned to isp1, not stranded", back, cpfx[1])
	}
}

func TestCongestionMovedSurvivesRestart(t *testing.T) {
	e := congestedPoP(t, Snapshot{Moved: map[string][]netip.Prefix{"pop1/isp1": {cpfx[1]}}})
	d := e.Step(t0)
	for _, in := range intentsFor([]Decision{d}, Announce, "pop1/isp1") {
		for _, p := range in.Prefixes {
			if p == cpfx[1] {
				t.Fatal("a prefix moved before the restart was announced at start")
			}
		}
	}
	if got := e.Snapshot().Moved["pop1/isp1"]; len(got) != 1 || got[0] != cpfx[1] {
		t.Fatalf("snapshot moved = %v", got)
	}
}

// TestCongestionScalesLaggingFlows: the flows, averaged over a window
// longer than enter, still show 60 % of the crowd when the link is found
// congested. Scaled to the load the router counts, the one prefix that
// sheds enough is moved, not the two the raw flows would suggest.
func TestCongestionScalesLaggingFlows(t *testing.T) {
	e := congestedPoP(t, Snapshot{})
	now := t0
	lagging := map[netip.Prefix]float64{}
	for i, r := range []float64{2.2, 2.1, 2.0, 1.9, 1.8} { // the truth, 10 Gbit/s
		lagging[cpfx[i]] = 0.6 * r * gbit
	}
	ds := feed(t, e, &now, 3*time.Second, map[string]float64{"pop1/isp1": 10.5 * gbit, "pop1/isp2": 3 * gbit, "pop1/isp3": 3 * gbit}, lagging)
	mv := moves(ds, false)
	if len(mv) != 1 || mv[0].Prefix != cpfx[0] || !strings.Contains(mv[0].Reason, "scaled ×1.75") {
		t.Fatalf("moves = %+v; want only %s, its rate scaled ×1.75 to the load", mv, cpfx[0])
	}
	if got := mv[0].RateBps; math.Abs(got-1.75*0.6*2.2*gbit) > 1 {
		t.Fatalf("moved rate %v, want the scaled %v", got, 1.75*0.6*2.2*gbit)
	}
}

func TestFlowScale(t *testing.T) {
	for _, tt := range []struct {
		source           string
		load, seen, want float64
	}{
		{"gnmi", 10, 6, 10.0 / 6},
		{"gnmi", 10, 10, 1},
		{"gnmi", 8, 10, 1},  // flows above the load: never scaled down
		{"gnmi", 10, 2, 2},  // capped: the gap is not lag
		{"flows", 10, 6, 1}, // the load is the flows' own sum
		{"gnmi", 10, 0, 1},
	} {
		if got := flowScale(tt.source, tt.load, tt.seen); math.Abs(got-tt.want) > 1e-12 {
			t.Errorf("flowScale(%s, %v, %v) = %v, want %v", tt.source, tt.load, tt.seen, got, tt.want)
		}
	}
}
