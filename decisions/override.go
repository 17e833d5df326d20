package decisions

import (
	"cmp"
	"errors"
	"fmt"
	"maps"
	"math/bits"
	"net/netip"
	"slices"
	"time"
)

// Override is a manual intent from a playbook: it pins what some links
// publish until it expires or is released. While it holds, automation does
// not touch the (link, prefix) pairs it covers (invariant 5); the rest of
// the network is still planned as usual, never-strand included.
type Override struct {
	ID       string                    `json:"id"`
	Withdraw map[string][]netip.Prefix `json:"withdraw,omitempty"` // link -> prefixes it must not publish
	Announce map[string][]netip.Prefix `json:"announce,omitempty"` // link -> prefixes it must publish
	// From is when it takes effect (zero: at once); until then it holds
	// its pairs against other overrides but the plan ignores it.
	From    time.Time `json:"from,omitzero"`
	Expires time.Time `json:"expires"`
}

// ErrConflict is returned, wrapped, for an override that covers a (link,
// prefix) pair another active override already covers: two people pinning
// the same thing must settle it between them, not by whichever came last.
var ErrConflict = errors.New("conflicts with an active override")

// override is an Override compiled to per-link bitsets.
type override struct {
	o        Override
	withdraw map[int]bitset // link index -> prefixes
	announce map[int]bitset
}

// active reports whether o takes effect at now.
func (o override) active(now time.Time) bool { return !now.Before(o.o.From) }

// compile checks o against the network and builds its bitsets.
func (e *Engine) compile(o Override) (override, error) {
	if o.ID == "" {
		return override{}, errors.New("override: no id")
	}
	if o.Expires.IsZero() {
		return override{}, fmt.Errorf("override %s: no expiry; every override must end", o.ID)
	}
	c := override{o: o, withdraw: map[int]bitset{}, announce: map[int]bitset{}}
	n := 0
	for _, side := range []struct {
		name  string
		pairs map[string][]netip.Prefix
		into  map[int]bitset
	}{{"withdraw", o.Withdraw, c.withdraw}, {"announce", o.Announce, c.announce}} {
		for id, pfxs := range side.pairs {
			li, ok := e.byID[id]
			if !ok {
				return override{}, fmt.Errorf("override %s: %s on unknown link %q", o.ID, side.name, id)
			}
			b := side.into[li]
			if b == nil {
				b = newBitset(len(e.prefixes))
				side.into[li] = b
			}
			for _, p := range pfxs {
				pi, ok := e.byPrefix[p]
				if !ok {
					return override{}, fmt.Errorf("override %s: %s %s on %s: not an edge prefix of the topology", o.ID, side.name, p, id)
				}
				b.set(pi)
				n++
			}
		}
	}
	if n == 0 {
		return override{}, fmt.Errorf("override %s: covers nothing", o.ID)
	}
	for li, w := range c.withdraw {
		if a, ok := c.announce[li]; ok {
			for i := range w {
				if w[i]&a[i] != 0 {
					return override{}, fmt.Errorf("override %s: withdraws and announces the same prefix on %s", o.ID, e.links[li].cfg.ID)
				}
			}
		}
	}
	return c, nil
}

// overlaps returns the first (link, prefix) pair that a and b both cover.
func (a override) overlaps(e *Engine, b override) (string, bool) {
	for _, am := range []map[int]bitset{a.withdraw, a.announce} {
		for _, bm := range []map[int]bitset{b.withdraw, b.announce} {
			for li, x := range am {
				y, ok := bm[li]
				if !ok {
					continue
				}
				for wi := range x {
					if both := x[wi] & y[wi]; both != 0 {
						pi := wi*64 + bits.TrailingZeros64(both)
						return fmt.Sprintf("%s on %s", e.prefixes[pi], e.links[li].cfg.ID), true
					}
				}
			}
		}
	}
	return "", false
}

// AddOverride activates o. It is refused when it names unknown links or
// prefixes, has no expiry, or overlaps an active override (ErrConflict).
// Whether it strands or overloads is Preview's question, asked first.
func (e *Engine) AddOverride(o Override) error {
	c, err := e.compile(o)
	if err != nil {
		return err
	}
	for _, a := range e.overrides {
		if a.o.ID == o.ID {
			return fmt.Errorf("override %s: %w: the id is taken", o.ID, ErrConflict)
		}
		if what, ok := c.overlaps(e, a); ok {
			return fmt.Errorf("override %s: %w: %s already pins %s until %s", o.ID, ErrConflict, a.o.ID, what, a.o.Expires.UTC().Format(time.RFC3339))
		}
	}
	e.overrides = append(e.overrides, c)
	return nil
}

// RemoveOverride ends the override with this id; false if none is active.
// Automation takes over what it covered at the next step.
func (e *Engine) RemoveOverride(id string) bool {
	n := len(e.overrides)
	e.overrides = slices.DeleteFunc(e.overrides, func(o override) bool { return o.o.ID == id })
	return len(e.overrides) != n
}

// Overrides returns the active overrides, oldest first.
func (e *Engine) Overrides() []Override {
	out := make([]Override, len(e.overrides))
	for i, o := range e.overrides {
		out[i] = o.o
	}
	return out
}

// expire drops the overrides that have expired by now.
func (e *Engine) expire(now time.Time, d *Decision) {
	e.overrides = slices.DeleteFunc(e.overrides, func(o override) bool {
		if now.Before(o.o.Expires) {
			return false
		}
		d.Expired = append(d.Expired, o.o.ID)
		return true
	})
}

// pinnedOff reports whether an override withdraws prefix pi from link li.
func (e *Engine) pinnedOff(li, pi int) bool {
	for _, o := range e.overrides {
		if !o.active(e.last) {
			continue
		}
		if b, ok := o.withdraw[li]; ok && b.has(pi) {
			return true
		}
	}
	return false
}

// applyOverrides makes the plan obey the overrides, then keeps every
// prefix that the overrides leave a PoP without, on the least bad link of
// that PoP that no override takes it off: people win on what they pinned,
// and automation still never strands what they did not (invariant 1). A
// PoP whose every link of a prefix is pinned off is drained on purpose.
func (e *Engine) applyOverrides(d *Decision) {
	if len(e.overrides) == 0 {
		return
	}
	touched := newBitset(len(e.prefixes))
	for _, o := range e.overrides {
		if !o.active(e.last) {
			continue
		}
		for li, b := range o.withdraw {
			for w := range b {
				e.desired[li][w] &^= b[w]
				touched[w] |= b[w]
			}
		}
		for li, b := range o.announce {
			for w := range b {
				e.desired[li][w] |= b[w]
			}
		}
	}
	touched.each(make(bitset, len(touched)), func(pi int) {
		for pop := range e.pops {
			var free []int
			carried := false
			for li, l := range e.links {
				if l.pop != pop || !e.configured[li].has(pi) {
					continue
				}
				if e.desired[li].has(pi) && l.carries() {
					carried = true
					break
				}
				if !e.pinnedOff(li, pi) {
					free = append(free, li)
				}
			}
			if carried || len(free) == 0 {
				continue
			}
			k := free[0]
			for _, li := range free[1:] {
				if less(e.links[li], e.links[k]) {
					k = li
				}
			}
			e.desired[k].set(pi)
			d.Alerts = append(d.Alerts, Alert{Link: e.links[k].cfg.ID, Kind: "stranding",
				Text: fmt.Sprintf("%s: overrides leave %s on no carrying link; kept on %s (%s), the least bad link no override takes it off",
					e.pops[pop], e.prefixes[pi], e.links[k].cfg.ID, e.links[k].summary())})
		}
	})
}

// Delta is what a plan changes on one link's BGP session.
type Delta struct {
	Link     string         `json:"link"`
	Announce []netip.Prefix `json:"announce,omitempty"`
	Withdraw []netip.Prefix `json:"withdraw,omitempty"`
}

// LoadCheck is the projected ingress of a link that receives moved traffic.
type LoadCheck struct {
	Link        string  `json:"link"`
	PoP         string  `json:"pop"`
	MeasuredBps float64 `json:"measured_bps"`
	MovedBps    float64 `json:"moved_bps"`
	CapacityBps float64 `json:"capacity_bps"`
	ProjectedPc float64 `json:"projected_pct"`
	LimitPct    float64 `json:"limit_pct"`
}

// Preview is what an override would do, were it added now.
type Preview struct {
	Changes  []Delta     `json:"changes"`
	Load     []LoadCheck `json:"load,omitempty"`
	Refusals []string    `json:"refusals,omitempty"` // non-empty: the override must not be applied
	Warnings []string    `json:"warnings,omitempty"`
}

// Preview tells what adding o would change on each session, relative to the
// plan of the last step, and refuses it, with reasons, when it would take a
// prefix off the last link that carries it in a PoP it does not drain, or
// off every PoP (invariant 1), or when the traffic it moves would push a
// receiving link over its congestion target. Load is projected from the
// flows: each moved prefix's measured rate, spread as spread says. A receiving link whose
// load is not measured cannot be checked: that is a warning, not a pass.
// The engine is not changed.
func (e *Engine) Preview(o Override) (Preview, error) {
	c, err := e.compile(o)
	if err != nil {
		return Preview{}, err
	}
	for _, a := range e.overrides {
		if what, ok := c.overlaps(e, a); ok {
			return Preview{}, fmt.Errorf("override %s: %w: %s already pins %s until %s", o.ID, ErrConflict, a.o.ID, what, a.o.Expires.UTC().Format(time.RFC3339))
		}
	}
	after := make([]bitset, len(e.desired))
	for li := range e.desired {
		after[li] = slices.Clone(e.desired[li])
		if b, ok := c.withdraw[li]; ok {
			for w := range b {
				after[li][w] &^= b[w]
			}
		}
		if b, ok := c.announce[li]; ok {
			for w := range b {
				after[li][w] |= b[w]
			}
		}
	}
	var p Preview
	for li, l := range e.links {
		var dl Delta
		after[li].each(e.desired[li], func(pi int) { dl.Announce = append(dl.Announce, e.prefixes[pi]) })
		e.desired[li].each(after[li], func(pi int) { dl.Withdraw = append(dl.Withdraw, e.prefixes[pi]) })
		if len(dl.Announce)+len(dl.Withdraw) > 0 {
			dl.Link = l.cfg.ID
			p.Changes = append(p.Changes, dl)
		}
	}
	slices.SortFunc(p.Changes, func(a, b Delta) int { return cmp.Compare(a.Link, b.Link) })
	pinned := func(li, pi int) bool {
		if b, ok := c.withdraw[li]; ok && b.has(pi) {
			return true
		}
		return e.pinnedOff(li, pi)
	}
	carries := func(li, pi int) bool { return after[li].has(pi) && e.links[li].carries() }
	moved := map[int]float64{} // receiving link -> bit/s
	unmeasured := map[string]bool{}
	lost := newBitset(len(e.prefixes))
	for li, b := range c.withdraw {
		for w := range b {
			lost[w] |= b[w] & e.desired[li][w]
		}
	}
	lost.each(make(bitset, len(lost)), func(pi int) {
		anywhere := false
		for li := range e.links {
			if carries(li, pi) {
				anywhere = true
				break
			}
		}
		if !anywhere {
			p.Refusals = append(p.Refusals, fmt.Sprintf("%s would be published nowhere: no other PoP carries it (invariant 1: never strand a range)", e.prefixes[pi]))
			return
		}
		for pop := range e.pops {
			var mine, free []int
			for li, l := range e.links {
				if l.pop == pop && e.configured[li].has(pi) {
					mine = append(mine, li)
					if !pinned(li, pi) {
						free = append(free, li)
					}
				}
			}
			if len(mine) == 0 || len(free) == 0 || slices.ContainsFunc(mine, func(li int) bool { return carries(li, pi) }) {
				continue
			}
			p.Refusals = append(p.Refusals, fmt.Sprintf("%s would be stranded in %s: %s still take it but none would carry it (%s); drain the whole PoP or wait for them to recover",
				e.prefixes[pi], e.pops[pop], e.linkNames(free), e.linkList(free)))
		}
		// Where does its traffic go?
		for li := range c.withdraw {
			if !c.withdraw[li].has(pi) || !e.desired[li].has(pi) {
				continue
			}
			rate := e.links[li].cong.rates[pi]
			if rate <= 0 {
				continue
			}
			for to, share := range e.spread(li, pi, carries) {
				moved[to] += rate * share
			}
		}
	})
	for li, m := range moved {
		l := e.links[li]
		if l.cfg.Capacity == 0 {
			unmeasured[l.cfg.ID+" has no capacity configured"] = true
			continue
		}
		u, ok := l.utilisation(e.last)
		if !ok {
			unmeasured[l.cfg.ID+" has no current load measurement"] = true
			continue
		}
		capBps := float64(l.cfg.Capacity)
		lc := LoadCheck{Link: l.cfg.ID, PoP: l.cfg.PoP, MeasuredBps: u * capBps / 100, MovedBps: m, CapacityBps: capBps,
			LimitPct: l.cfg.Congestion.TargetPct}
		lc.ProjectedPc = 100 * (lc.MeasuredBps + m) / capBps
		p.Load = append(p.Load, lc)
		if lc.ProjectedPc > lc.LimitPct {
			p.Refusals = append(p.Refusals, fmt.Sprintf("%s would be overloaded: %s measured + %s moved = %.0f%% of %s, above its %.0f%% target",
				l.cfg.ID, bps(lc.MeasuredBps), bps(m), lc.ProjectedPc, bps(capBps), lc.LimitPct))
		}
	}
	slices.SortFunc(p.Load, func(a, b LoadCheck) int { return cmp.Compare(a.Link, b.Link) })
	for _, w := range slices.Sorted(maps.Keys(unmeasured)) {
		p.Warnings = append(p.Warnings, "load not checked: "+w)
	}
	if len(p.Changes) == 0 {
		p.Warnings = append(p.Warnings, "changes nothing that is published now")
	}
	return p, nil
}

// spread says how prefix pi's traffic on link from divides among the links
// that carry it once from does not. It comes in through the same ISP where
// that ISP still has the prefix from another PoP (its routing just picks
// the other session), evenly over those links; otherwise through the other
// links of from's PoP, by capacity; otherwise through the other PoPs that
// carry it, evenly, and within each by capacity.
func (e *Engine) spread(from, pi int, carries func(li, pi int) bool) map[int]float64 {
	isp := e.links[from].cfg.ISP
	var same []int
	byPoP := map[int][]int{}
	for li, l := range e.links {
		if li == from || !carries(li, pi) {
			continue
		}
		if isp != "" && l.cfg.ISP == isp && l.pop != e.links[from].pop {
			same = append(same, li)
		}
		byPoP[l.pop] = append(byPoP[l.pop], li)
	}
	out := map[int]float64{}
	if len(same) > 0 {
		for _, li := range same {
			out[li] += 1 / float64(len(same))
		}
		return out
	}
	share := func(lids []int, whole float64) {
		var total float64
		for _, li := range lids {
			total += float64(max(e.links[li].cfg.Capacity, 1))
		}
		for _, li := range lids {
			out[li] += whole * float64(max(e.links[li].cfg.Capacity, 1)) / total
		}
	}
	if own := byPoP[e.links[from].pop]; len(own) > 0 {
		share(own, 1)
		return out
	}
	for _, lids := range byPoP {
		share(lids, 1/float64(len(byPoP)))
	}
	return out
}

// overridesOn returns the ids of the active overrides that pin something
// on link li.
func (e *Engine) overridesOn(li int) []string {
	var ids []string
	for _, o := range e.overrides {
		_, w := o.withdraw[li]
		_, a := o.announce[li]
		if w || a {
			ids = append(ids, o.o.ID)
		}
	}
	return ids
}

// pinnedBy returns the id of the override that withdraws (or announces)
// prefix pi on link li, or "".
func (e *Engine) pinnedBy(li, pi int, withdraw bool) string {
	if len(e.overrides) == 0 {
		return ""
	}
	for _, o := range e.overrides {
		if !o.active(e.last) {
			continue
		}
		m := o.announce
		if withdraw {
			m = o.withdraw
		}
		if b, ok := m[li]; ok && b.has(pi) {
			return o.o.ID
		}
	}
	return ""
}

// appendPinned adds p to what override id pins, making m when it is nil:
// reconcile allocates nothing for the links no override touches.
func appendPinned(m map[string][]netip.Prefix, id string, p netip.Prefix) map[string][]netip.Prefix {
	if m == nil {
		m = map[string][]netip.Prefix{}
	}
	m[id] = append(m[id], p)
	return m
}

// emitPinned adds one intent per override for the prefixes it pins on l.
func (e *Engine) emitPinned(d *Decision, l *link, a Action, pinned map[string][]netip.Prefix) {
	if len(pinned) == 0 {
		return
	}
	for _, id := range slices.Sorted(maps.Keys(pinned)) {
		verb := "off"
		if a == Announce {
			verb = "on"
		}
		d.Intents = append(d.Intents, Intent{Action: a, Link: l.cfg.ID, Prefixes: pinned[id], Rule: RuleOverride,
			Reason: fmt.Sprintf("override %s pins these prefixes %s %s (people win, invariant 5)", id, verb, l.cfg.ID), Evidence: l.evidence()})
	}
}

// PreviewRelease tells what ending the overrides ids would change, relative
// to the plan of the last step: each pair they withdraw comes back where
// automation publishes it (configured, the link not withdrawn, the prefix
// not moved off for congestion), and each pair they announce goes where
// automation does not. Never-strand keepers are left out: releasing gives
// links back, it never takes the last one away.
func (e *Engine) PreviewRelease(ids []string) (Preview, error) {
	var rel []override
	for _, id := range ids {
		i := slices.IndexFunc(e.overrides, func(o override) bool { return o.o.ID == id })
		if i < 0 {
			return Preview{}, fmt.Errorf("no active override %q", id)
		}
		rel = append(rel, e.overrides[i])
	}
	var p Preview
	for li, l := range e.links {
		var dl Delta
		auto := func(pi int) bool {
			return e.configured[li].has(pi) && !l.withdrawn && !l.cong.moved.has(pi)
		}
		for _, o := range rel {
			if b, ok := o.withdraw[li]; ok {
				b.each(e.desired[li], func(pi int) {
					if auto(pi) {
						dl.Announce = append(dl.Announce, e.prefixes[pi])
					}
				})
			}
			if b, ok := o.announce[li]; ok {
				b.each(make(bitset, len(b)), func(pi int) {
					if e.desired[li].has(pi) && !auto(pi) {
						dl.Withdraw = append(dl.Withdraw, e.prefixes[pi])
					}
				})
			}
		}
		if len(dl.Announce)+len(dl.Withdraw) > 0 {
			dl.Link = l.cfg.ID
			p.Changes = append(p.Changes, dl)
		}
	}
	slices.SortFunc(p.Changes, func(a, b Delta) int { return cmp.Compare(a.Link, b.Link) })
	return p, nil
}

// Publication is what a link should publish and what it does.
type Publication struct {
	Link    string         `json:"link"`
	Desired []netip.Prefix `json:"desired"`
	Applied []netip.Prefix `json:"applied"`
}

// Publications returns every link's desired and applied prefixes as of the
// last step, sorted by link.
func (e *Engine) Publications() []Publication {
	out := make([]Publication, 0, len(e.links))
	for li, l := range e.links {
		pb := Publication{Link: l.cfg.ID, Desired: []netip.Prefix{}, Applied: []netip.Prefix{}}
		none := make(bitset, len(e.desired[li]))
		e.desired[li].each(none, func(pi int) { pb.Desired = append(pb.Desired, e.prefixes[pi]) })
		e.applied[li].each(none, func(pi int) { pb.Applied = append(pb.Applied, e.prefixes[pi]) })
		out = append(out, pb)
	}
	slices.SortFunc(out, func(a, b Publication) int { return cmp.Compare(a.Link, b.Link) })
	return out
}
