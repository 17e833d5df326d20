package decisions

import (
	"cmp"
	"fmt"
	"net/netip"
	"slices"
	"time"
)

// Congestion says when a link is too full and how full a link may get
// when traffic moves onto it. Percentages are of the link's capacity.
type Congestion struct {
	TargetPct       float64 // congested while ingress utilisation exceeds this
	ExitPct         float64 // clear once it stays below this for Exit
	RestoreHeadroom float64 // a moved prefix returns only if its rate × (1+this/100) fits under TargetPct
}

// DefaultCongestion returns the congestion levels used when the topology
// says nothing.
func DefaultCongestion() Congestion {
	return Congestion{TargetPct: 90, ExitPct: 80, RestoreHeadroom: 10}
}

// Load is a link's measured ingress (traffic arriving from the ISP, the
// direction sdnoc steers), from telemetry or, where a link has none, from
// flows.
type Load struct {
	Link   string
	Source string // "gnmi", "flows"
	End    time.Time
	Known  bool // false: the router stopped answering (not idle)
	InBps  float64
}

// PrefixLoad is the measured ingress rate of each edge prefix on a link,
// from flows.
type PrefixLoad struct {
	Link  string
	End   time.Time
	Rates map[netip.Prefix]float64 // bit/s
}

// congestion is a link's congestion state.
type congestion struct {
	load       Load
	hasLoad    bool
	rates      map[int]float64 // prefix index -> bit/s, last measured
	ratesAt    time.Time
	congested  bool
	overSince  time.Time
	underSince time.Time
	changed    time.Time
	moved      bitset
	movedRate  map[int]float64 // rate of each moved prefix when it moved
	// roomSince is when the link last began to have room for its
	// smallest moved prefix; zero while it has none.
	roomSince     time.Time
	congestionCfg Congestion
}

func newCongestion(cfg Congestion, prefixes int) *congestion {
	return &congestion{rates: map[int]float64{}, moved: newBitset(prefixes), movedRate: map[int]float64{}, congestionCfg: cfg}
}

// unstrand puts back every moved prefix that no other link of its PoP
// carries in the plan any more (a receiver was withdrawn since, say):
// moving it was safe then, keeping it off now would strand it
// (invariant 1).
func (e *Engine) unstrand(d *Decision) {
	for i, l := range e.links {
		c := l.cong
		if c.moved.count() == 0 {
			continue
		}
		var back []int
		c.moved.each(make(bitset, len(c.moved)), func(pi int) {
			for j, o := range e.links {
				if j != i && o.pop == l.pop && e.desired[j].has(pi) {
					return
				}
			}
			back = append(back, pi)
		})
		for _, pi := range back {
			c.moved.clear(pi)
			if !l.withdrawn {
				e.desired[i].set(pi)
			}
			d.Moves = append(d.Moves, Move{Link: l.cfg.ID, Prefix: e.prefixes[pi], RateBps: c.movedRate[pi], Back: true,
				Reason: fmt.Sprintf("no other link of %s carries %s any more: it returns to %s rather than be stranded (invariant 1)",
					l.cfg.PoP, e.prefixes[pi], l.cfg.ID)})
			delete(c.movedRate, pi)
		}
	}
}

// movedSets returns every link's moved prefixes, for the journal.
func (e *Engine) movedSets() map[string][]netip.Prefix {
	out := map[string][]netip.Prefix{}
	for _, l := range e.links {
		l.cong.moved.each(make(bitset, len(l.cong.moved)), func(pi int) {
			out[l.cfg.ID] = append(out[l.cfg.ID], e.prefixes[pi])
		})
	}
	return out
}

// ObserveLoad records a link's ingress utilisation.
func (e *Engine) ObserveLoad(l Load) error {
	i, ok := e.byID[l.Link]
	if !ok {
		return fmt.Errorf("load for unknown link %q", l.Link)
	}
	c := e.links[i].cong
	c.load, c.hasLoad = l, true
	return nil
}

// ObservePrefixLoad records the per-prefix ingress rates on a link.
// Prefixes the engine does not know are ignored.
func (e *Engine) ObservePrefixLoad(pl PrefixLoad) error {
	i, ok := e.byID[pl.Link]
	if !ok {
		return fmt.Errorf("prefix load for unknown link %q", pl.Link)
	}
	c := e.links[i].cong
	clear(c.rates)
	for p, r := range pl.Rates {
		if pi, ok := e.byPrefix[p]; ok {
			c.rates[pi] = r
		}
	}
	c.ratesAt = pl.End
	return nil
}

// utilisation returns the link's ingress utilisation in percent, and
// whether it is known and fresh.
func (l *link) utilisation(now time.Time) (float64, bool) {
	c := l.cong
	if !c.hasLoad || !c.load.Known || l.cfg.Capacity == 0 || now.Sub(c.load.End) > l.cfg.Thresholds.StaleAfter {
		return 0, false
	}
	return 100 * c.load.InBps / float64(l.cfg.Capacity), true
}

// advanceCongestion moves a link's congestion state with the same
// hysteresis as degradation: over target for enter, under exit for exit,
// no change within hold-down. Missing data changes nothing (invariant 2).
func (l *link) advanceCongestion(now time.Time) (string, bool) {
	c, t, cc := l.cong, l.cfg.Thresholds, l.cong.congestionCfg
	u, ok := l.utilisation(now)
	if !ok {
		c.overSince, c.underSince = time.Time{}, time.Time{}
		return "", false
	}
	over, under := u > cc.TargetPct, u < cc.ExitPct
	if over {
		c.underSince = time.Time{}
		if c.overSince.IsZero() {
			c.overSince = now
		}
	} else {
		c.overSince = time.Time{}
	}
	if under {
		if c.underSince.IsZero() {
			c.underSince = now
		}
	} else {
		c.underSince = time.Time{}
	}
	held := !c.changed.IsZero() && now.Sub(c.changed) < t.HoldDown
	switch {
	case !c.congested && over && now.Sub(c.overSince) >= t.Enter && !held:
		c.congested, c.changed = true, now
		return fmt.Sprintf("ingress %.1f%% of %s above the %.0f%% target for %v", u, bps(float64(l.cfg.Capacity)), cc.TargetPct, now.Sub(c.overSince).Round(time.Millisecond)), true
	case c.congested && under && now.Sub(c.underSince) >= t.Exit && !held:
		c.congested, c.changed = false, now
		return fmt.Sprintf("ingress %.1f%% below the %.0f%% exit level for %v", u, cc.ExitPct, now.Sub(c.underSince).Round(time.Millisecond)), true
	}
	return "", false
}

// bps formats a rate for people.
func bps(v float64) string {
	switch {
	case v >= 1e9:
		return fmt.Sprintf("%.2f Gbit/s", v/1e9)
	case v >= 1e6:
		return fmt.Sprintf("%.1f Mbit/s", v/1e6)
	case v >= 1e3:
		return fmt.Sprintf("%.1f kbit/s", v/1e3)
	}
	return fmt.Sprintf("%.0f bit/s", v)
}

// Move is one prefix the congestion planner takes off a link, or puts
// back, with the numbers behind it.
type Move struct {
	Link    string       `json:"link"`
	Prefix  netip.Prefix `json:"prefix"`
	RateBps float64      `json:"rate_bps"`
	Back    bool         `json:"back"`
	Reason  string       `json:"reason"`
}

// planCongestion decides, for every congested link, the fewest prefixes
// whose withdrawal brings its projected ingress under target, moving only
// onto links of the same PoP that stay under their own target and never
// stranding a prefix (invariant 4); and, for links with room, which moved
// prefixes come back. It runs before plan, which applies the moved sets.
func (e *Engine) planCongestion(now time.Time, d *Decision) {
	// Projected ingress per link, updated as moves are planned so that two
	// congested links do not both count on the same room.
	proj := make([]float64, len(e.links))
	known := make([]bool, len(e.links))
	for i, l := range e.links {
		if l.cong.hasLoad && l.cong.load.Known {
			proj[i], known[i] = l.cong.load.InBps, true
		}
	}
	// Traffic of prefixes already moved that the flows still see on their
	// old link has not drained yet: count it where it is going, not where
	// it was, or every step would move more for the same excess. It is
	// scaled as the move was (flowScale), so that what a move was planned
	// to shed is what is taken off.
	for i, l := range e.links {
		if l.cong.moved.count() == 0 {
			continue
		}
		var seen float64
		for _, r := range l.cong.rates {
			seen += r
		}
		scale := flowScale(l.cong.load.Source, proj[i], seen)
		l.cong.moved.each(make(bitset, len(l.cong.moved)), func(pi int) {
			r := l.cong.rates[pi] * scale
			if r <= 0 {
				return
			}
			proj[i] -= r
			if recv := e.receivers(i, pi); len(recv) > 0 {
				for _, ri := range recv {
					proj[ri] += r / float64(len(recv))
				}
			}
		})
	}
	for i, l := range e.links {
		c := l.cong
		if reason, changed := l.advanceCongestion(now); changed {
			d.Congestion = append(d.Congestion, CongestionChange{Link: l.cfg.ID, Congested: c.congested, Reason: reason})
		}
		if !c.congested || l.withdrawn || !known[i] {
			continue
		}
		target := c.congestionCfg.TargetPct / 100 * float64(l.cfg.Capacity)
		if proj[i] <= target {
			continue
		}
		cands := make([]int, 0, len(c.rates))
		var seen float64
		for pi, r := range c.rates {
			if r > 0 && !c.moved.has(pi) && e.configured[i].has(pi) {
				cands = append(cands, pi)
				seen += r
			}
		}
		scale := flowScale(c.load.Source, proj[i], seen)
		// Largest first: the fewest prefixes that cover the excess.
		slices.SortFunc(cands, func(a, b int) int {
			return cmp.Or(cmp.Compare(c.rates[b], c.rates[a]), cmp.Compare(a, b))
		})
		scaled := ""
		if scale > 1.05 { // below, the flows agree with the counters
			scaled = fmt.Sprintf(", flows scaled ×%.2f to the link's measured load", scale)
		}
		var refused []string
		for _, pi := range cands {
			if proj[i] <= target {
				break
			}
			r := c.rates[pi] * scale
			recv := e.receivers(i, pi)
			if len(recv) == 0 {
				refused = append(refused, fmt.Sprintf("%s (%s): no other link of %s carries it", e.prefixes[pi], bps(r), l.cfg.PoP))
				continue
			}
			share := r / float64(len(recv))
			fits := true
			for _, ri := range recv {
				rl := e.links[ri]
				if !known[ri] || proj[ri]+share > rl.cong.congestionCfg.TargetPct/100*float64(rl.cfg.Capacity) {
					fits = false
				}
			}
			if !fits {
				refused = append(refused, fmt.Sprintf("%s (%s): the other links of %s have no room for it", e.prefixes[pi], bps(r), l.cfg.PoP))
				continue
			}
			c.moved.set(pi)
			c.movedRate[pi] = r
			proj[i] -= r
			for _, ri := range recv {
				proj[ri] += share
			}
			d.Moves = append(d.Moves, Move{Link: l.cfg.ID, Prefix: e.prefixes[pi], RateBps: r,
				Reason: fmt.Sprintf("%s congested; moving %s (%s%s) brings it to %.1f%% of %s, spread over %s",
					l.cfg.ID, e.prefixes[pi], bps(r), scaled, 100*proj[i]/float64(l.cfg.Capacity), bps(float64(l.cfg.Capacity)), e.linkNames(recv))})
		}
		if proj[i] > target {
			text := fmt.Sprintf("%s stays congested: no safe plan moves enough (projected %.1f%% of %s, target %.0f%%)",
				l.cfg.ID, 100*proj[i]/float64(l.cfg.Capacity), bps(float64(l.cfg.Capacity)), c.congestionCfg.TargetPct)
			if len(refused) > 0 {
				text += "; not moved: " + joinFirst(refused, 5)
			}
			d.Alerts = append(d.Alerts, Alert{Link: l.cfg.ID, Kind: "congestion", Text: text})
		}
	}
	// Restore moved prefixes, smallest first, where the link is no longer
	// congested and has had room for their rate plus headroom for the
	// exit duration: a dip in the crowd does not bring them back only to
	// move them off again.
	for i, l := range e.links {
		c := l.cong
		if c.congested || !known[i] || c.moved.count() == 0 {
			c.roomSince = time.Time{}
			continue
		}
		target := c.congestionCfg.TargetPct / 100 * float64(l.cfg.Capacity)
		var back []int
		c.moved.each(make(bitset, len(c.moved)), func(pi int) { back = append(back, pi) })
		slices.SortFunc(back, func(a, b int) int { return cmp.Or(cmp.Compare(c.movedRate[a], c.movedRate[b]), cmp.Compare(a, b)) })
		if proj[i]+c.movedRate[back[0]]*(1+c.congestionCfg.RestoreHeadroom/100) > target {
			c.roomSince = time.Time{}
			continue
		}
		if c.roomSince.IsZero() {
			c.roomSince = now
		}
		if now.Sub(c.roomSince) < l.cfg.Thresholds.Exit {
			continue
		}
		// What returns changes the link's load: the next ones wait for
		// room to hold again, measured with these back.
		c.roomSince = time.Time{}
		for _, pi := range back {
			need := c.movedRate[pi] * (1 + c.congestionCfg.RestoreHeadroom/100)
			if proj[i]+need > target {
				break
			}
			c.moved.clear(pi)
			proj[i] += c.movedRate[pi]
			d.Moves = append(d.Moves, Move{Link: l.cfg.ID, Prefix: e.prefixes[pi], RateBps: c.movedRate[pi], Back: true,
				Reason: fmt.Sprintf("%s has had room for %v: %s back (%s + %.0f%% headroom) keeps it at %.1f%% of %s",
					l.cfg.ID, l.cfg.Thresholds.Exit, e.prefixes[pi], bps(c.movedRate[pi]), c.congestionCfg.RestoreHeadroom,
					100*proj[i]/float64(l.cfg.Capacity), bps(float64(l.cfg.Capacity)))})
			delete(c.movedRate, pi)
		}
	}
}

// receivers returns the other links of link i's PoP that carry prefix pi
// now: configured, not withdrawn, not moved off, session not down.
func (e *Engine) receivers(i, pi int) []int {
	var out []int
	for j, l := range e.links {
		if j == i || l.pop != e.links[i].pop || !e.configured[j].has(pi) || !l.carries() || l.cong.moved.has(pi) {
			continue
		}
		out = append(out, j)
	}
	return out
}

func (e *Engine) linkNames(ids []int) string {
	names := make([]string, len(ids))
	for k, i := range ids {
		names[k] = e.links[i].cfg.ID
	}
	return joinFirst(names, 4)
}

func joinFirst(s []string, n int) string {
	out := ""
	for i, v := range s {
		if i == n {
			return out + fmt.Sprintf(" and %d more", len(s)-n)
		}
		if i > 0 {
			out += ", "
		}
		out += v
	}
	return out
}

// CongestionChange is a link becoming congested or clear.
type CongestionChange struct {
	Link      string `json:"link"`
	Congested bool   `json:"congested"`
	Reason    string `json:"reason"`
}

// maxFlowScale bounds how far flows are scaled up to a link's load: a
// larger gap is not lag but traffic the flows do not see (another
// exporter, traffic to other addresses), which moving prefixes would
// not shed.
const maxFlowScale = 2.0

// flowScale is the factor the planner applies to a congested link's
// per-prefix rates. Flows are averaged over a window (10s by default)
// longer than enter (3s), so when a link is found congested they still
// partly describe the calm before: prefixes would look smaller than they
// are and the planner would move more of them than needed. Where the
// load comes from the router's counters (not from the flows themselves),
// the rates of the prefixes still on the link are scaled up so that they
// add up to the load they share, at most maxFlowScale.
func flowScale(source string, load, seen float64) float64 {
	if source == "flows" || seen <= 0 || load <= seen {
		return 1
	}
	return min(load/seen, maxFlowScale)
}
