package decisions

import (
	"fmt"
	"net/netip"
	"slices"
	"sort"
	"strings"
	"time"
)

// Action is what an intent asks of the actuator.
type Action string

// The two actions on a (prefix, link) publication.
const (
	Announce Action = "announce"
	Withdraw Action = "withdraw"
)

// Rules name why an intent exists; they are stable strings for logs,
// journals and metrics.
const (
	RulePublish      = "publish"        // configured on a link that may carry it
	RuleDegraded     = "degraded"       // the link is degraded: take its prefixes off
	RuleLastLink     = "last-link"      // kept on the least bad link so the prefix is not stranded
	RuleUnconfigured = "not-configured" // published but no longer configured there
	RuleCongestion   = "congestion"     // moved off a full link
	RuleOverride     = "override"       // pinned by a playbook's override (invariant 5)
)

// Evidence is what an intent or change was based on.
type Evidence struct {
	State      State      `json:"state"`
	Verdict    string     `json:"verdict"`
	Window     Window     `json:"window"`
	Thresholds Thresholds `json:"thresholds"`
}

// Intent asks the actuator to announce or withdraw prefixes on one link.
type Intent struct {
	Action   Action         `json:"action"`
	Link     string         `json:"link"`
	Prefixes []netip.Prefix `json:"prefixes"`
	Rule     string         `json:"rule"`
	Reason   string         `json:"reason"`
	Evidence Evidence       `json:"evidence"`
}

// LinkChange is the planner deciding that a link stops or resumes carrying
// its prefixes.
type LinkChange struct {
	Link      string   `json:"link"`
	Withdrawn bool     `json:"withdrawn"`
	Reason    string   `json:"reason"`
	Evidence  Evidence `json:"evidence"`
}

// Refusal is an action the engine wanted but would not take, with why.
type Refusal struct {
	Link     string       `json:"link"`
	Rule     string       `json:"rule"` // "never-strand" or "cap"
	Prefixes int          `json:"prefixes"`
	Example  netip.Prefix `json:"example,omitzero"`
	KeptOn   string       `json:"kept_on,omitempty"`
	Reason   string       `json:"reason"`
}

// Alert is something a person should look at.
type Alert struct {
	Link string `json:"link"`
	Kind string `json:"kind"` // "unknown", "cap", "stranding"
	Text string `json:"text"`
}

// Decision is the outcome of one step.
type Decision struct {
	At          time.Time
	Transitions []Transition
	Changes     []LinkChange
	Intents     []Intent
	Refusals    []Refusal
	Alerts      []Alert
	// Keepers is set when the assignment of kept prefixes changed: every
	// withdrawn link that still carries prefixes, and which. The journal
	// keeps it so a restart keeps them where they are.
	Keepers map[string][]netip.Prefix
	// Moves are prefixes the congestion planner took off links or put
	// back this step; Congestion, links that became congested or clear.
	Moves      []Move
	Congestion []CongestionChange
	// Moved is set when any link's moved set changed: every link's moved
	// prefixes, for the journal.
	Moved map[string][]netip.Prefix
	// Expired are the overrides that ended at this step: automation has
	// what they covered again.
	Expired []string
}

// Snapshot is the planner state that must survive a restart (invariant 7).
type Snapshot struct {
	Withdrawn map[string]bool           // links taken out
	Keepers   map[string][]netip.Prefix // withdrawn links still carrying prefixes, to avoid moving them
	Moved     map[string][]netip.Prefix // prefixes moved off congested links
}

// LinkStatus is a link as the engine sees it now, for metrics and status.
type LinkStatus struct {
	Link        string  `json:"link"`
	PoP         string  `json:"pop"`
	State       State   `json:"state"`
	Withdrawn   bool    `json:"withdrawn"`
	Reason      string  `json:"reason"`
	Window      Window  `json:"window"`
	Congested   bool    `json:"congested"`
	Utilisation float64 `json:"utilisation_pct"` // ingress, -1 when unknown
	Moved       int     `json:"moved"`
	Configured  int     `json:"configured"`
	Published   int     `json:"published"` // applied
	SessionUp   bool    `json:"session_up"`
	SessionSeen bool    `json:"session_known"`
	// Overrides are the active overrides that pin something on the link.
	Overrides []string `json:"overrides,omitempty"`
}

type group struct {
	prefixes []int
	byPoP    map[int][]int // PoP index -> the group's links in that PoP
}

type keeperKey struct{ group, pop int }

// Engine holds the state of every link and decides. It is not safe for
// concurrent use: the controller owns it from one goroutine.
type Engine struct {
	links      []*link
	byID       map[string]int
	pops       []string
	prefixes   []netip.Prefix
	byPrefix   map[netip.Prefix]int
	groups     []group
	groupOf    []int    // per prefix
	configured []bitset // per link
	applied    []bitset // per link, as confirmed by the actuator
	desired    []bitset // per link, scratch of the last step
	limits     Limits
	// withdrawals are the times of recent link withdrawals, for the cap.
	withdrawals []time.Time
	keepers     map[keeperKey]int
	// refused remembers refusals already reported, so a held refusal is
	// reported once, not every step.
	refused map[string]string
	// overrides are the active manual intents, oldest first.
	overrides []override
	// first and last are the times of the first and latest steps.
	first, last time.Time
}

// New builds an engine for nw, restoring the planner state in snap (zero
// value: a fresh start, everything configured is to be published).
func New(nw Network, snap Snapshot) (*Engine, error) {
	if err := nw.Validate(); err != nil {
		return nil, fmt.Errorf("network: %w", err)
	}
	e := &Engine{
		byID:     make(map[string]int, len(nw.Links)),
		byPrefix: make(map[netip.Prefix]int, len(nw.Prefixes)),
		limits:   nw.Limits,
		keepers:  make(map[keeperKey]int),
		refused:  make(map[string]string),
	}
	popIdx := map[string]int{}
	for i, l := range nw.Links {
		p, ok := popIdx[l.PoP]
		if !ok {
			p = len(e.pops)
			popIdx[l.PoP] = p
			e.pops = append(e.pops, l.PoP)
		}
		e.links = append(e.links, &link{cfg: l, idx: i, pop: p, withdrawn: snap.Withdrawn[l.ID],
			cong: newCongestion(l.Congestion, len(nw.Prefixes))})
		e.byID[l.ID] = i
	}
	n := len(nw.Prefixes)
	for range e.links {
		e.configured = append(e.configured, newBitset(n))
		e.applied = append(e.applied, newBitset(n))
		e.desired = append(e.desired, newBitset(n))
	}
	groupOf := map[string]int{}
	for i, p := range nw.Prefixes {
		e.prefixes = append(e.prefixes, p.Prefix)
		e.byPrefix[p.Prefix] = i
		ids := make([]int, 0, len(p.Links))
		for _, l := range p.Links {
			ids = append(ids, e.byID[l])
			e.configured[e.byID[l]].set(i)
		}
		slices.Sort(ids)
		ids = slices.Compact(ids)
		key := fmt.Sprint(ids)
		g, ok := groupOf[key]
		if !ok {
			g = len(e.groups)
			groupOf[key] = g
			byPoP := map[int][]int{}
			for _, li := range ids {
				byPoP[e.links[li].pop] = append(byPoP[e.links[li].pop], li)
			}
			e.groups = append(e.groups, group{byPoP: byPoP})
		}
		e.groups[g].prefixes = append(e.groups[g].prefixes, i)
		e.groupOf = append(e.groupOf, g)
	}
	for id, pfxs := range snap.Moved {
		if li, ok := e.byID[id]; ok {
			for _, p := range pfxs {
				if pi, ok := e.byPrefix[p]; ok {
					e.links[li].cong.moved.set(pi)
				}
			}
		}
	}
	for id, pfxs := range snap.Keepers {
		li, ok := e.byID[id]
		if !ok {
			continue // a link removed from the topology since
		}
		for _, p := range pfxs {
			pi, ok := e.byPrefix[p]
			if !ok {
				continue
			}
			e.keepers[keeperKey{e.groupOf[pi], e.links[li].pop}] = li
		}
	}
	return e, nil
}

// Observe records a sample. Samples for unknown links are an error.
func (e *Engine) Observe(s Sample) error {
	i, ok := e.byID[s.Link]
	if !ok {
		return fmt.Errorf("sample for unknown link %q", s.Link)
	}
	l := e.links[i]
	l.samples.add(s, l.cfg.Thresholds.LossWindow+l.cfg.Thresholds.StaleAfter)
	return nil
}

// SetSession records the BGP session state of a link. A link whose session
// is down cannot carry prefixes, which matters to the never-strand rule.
func (e *Engine) SetSession(linkID string, up bool) error {
	i, ok := e.byID[linkID]
	if !ok {
		return fmt.Errorf("session for unknown link %q", linkID)
	}
	e.links[i].sessionUp, e.links[i].sessionKnown = up, true
	return nil
}

// Confirm records that the actuator applied in. The controller calls it
// only after the actuator succeeded, so a failed intent is emitted again at
// the next step.
func (e *Engine) Confirm(in Intent) error {
	i, ok := e.byID[in.Link]
	if !ok {
		return fmt.Errorf("intent for unknown link %q", in.Link)
	}
	for _, p := range in.Prefixes {
		pi, ok := e.byPrefix[p]
		if !ok {
			return fmt.Errorf("intent for unknown prefix %s", p)
		}
		if in.Action == Announce {
			e.applied[i].set(pi)
		} else {
			e.applied[i].clear(pi)
		}
	}
	return nil
}

// SetApplied replaces what a link is known to publish, from the actuator's
// own view (its adj-RIB-out). Prefixes unknown to the engine are ignored:
// the engine will not plan for what it was not told about.
func (e *Engine) SetApplied(linkID string, published []netip.Prefix) error {
	i, ok := e.byID[linkID]
	if !ok {
		return fmt.Errorf("applied state for unknown link %q", linkID)
	}
	clear(e.applied[i])
	for _, p := range published {
		if pi, ok := e.byPrefix[p]; ok {
			e.applied[i].set(pi)
		}
	}
	return nil
}

// Step evaluates every link at now, plans the desired publication and
// returns the intents that move applied towards it.
func (e *Engine) Step(now time.Time) Decision {
	if e.first.IsZero() {
		e.first = now
	}
	e.last = now
	d := Decision{At: now}
	e.expire(now, &d)
	for _, l := range e.links {
		l.evaluate(now)
		if tr, ok := l.advance(now); ok {
			d.Transitions = append(d.Transitions, tr)
		}
		// Before the first samples could have arrived, or while the first
		// window fills up to min_probes, unknown is the expected start,
		// not something to page about.
		since := now.Sub(e.first)
		starting := l.verdict == noData && l.window.Samples == 0 && since < l.cfg.Thresholds.StaleAfter ||
			l.verdict == tooFew && since < l.cfg.Thresholds.LossWindow
		if l.state == Unknown && !starting {
			d.Alerts = append(d.Alerts, Alert{Link: l.cfg.ID, Kind: "unknown",
				Text: fmt.Sprintf("%s: state unknown (%s); publication left as it is (fail static)", l.cfg.ID, l.reason)})
		}
	}
	e.decideLinks(now, &d)
	before := e.movedCount()
	e.planCongestion(now, &d)
	e.plan(&d)
	e.unstrand(&d)
	e.applyOverrides(&d)
	if len(d.Moves) > 0 || e.movedCount() != before {
		d.Moved = e.movedSets()
	}
	e.reconcile(&d)
	return d
}

// decideLinks turns link states into withdrawn flags, under the cap.
func (e *Engine) decideLinks(now time.Time, d *Decision) {
	cut := now.Add(-e.limits.WithdrawalWindow)
	e.withdrawals = slices.DeleteFunc(e.withdrawals, func(t time.Time) bool { return !t.After(cut) })
	for _, l := range e.links {
		switch {
		case l.state == Degraded && !l.withdrawn:
			if len(e.withdrawals) >= e.limits.MaxWithdrawals {
				reason := fmt.Sprintf("withdrawal cap reached: %d link withdrawals in the last %v (max_withdrawals %d); %s stays published",
					len(e.withdrawals), e.limits.WithdrawalWindow, e.limits.MaxWithdrawals, l.cfg.ID)
				e.refuse(d, Refusal{Link: l.cfg.ID, Rule: "cap", Reason: reason})
				d.Alerts = append(d.Alerts, Alert{Link: l.cfg.ID, Kind: "cap", Text: reason})
				continue
			}
			e.withdrawals = append(e.withdrawals, now)
			l.withdrawn = true
			d.Changes = append(d.Changes, LinkChange{Link: l.cfg.ID, Withdrawn: true,
				Reason: "degraded: " + l.reason, Evidence: l.evidence()})
		case l.state == Healthy && l.withdrawn:
			l.withdrawn = false
			d.Changes = append(d.Changes, LinkChange{Link: l.cfg.ID, Withdrawn: false,
				Reason: "healthy again: " + l.reason, Evidence: l.evidence()})
		}
		if l.state != Degraded || l.withdrawn {
			delete(e.refused, l.cfg.ID+"|cap")
		}
	}
}

// plan computes the desired publication per link. A withdrawn link carries
// nothing, except prefixes for which it is the least bad link left in its
// PoP (invariant 1).
func (e *Engine) plan(d *Decision) {
	affected := make([]bool, len(e.pops))
	for i, l := range e.links {
		switch {
		case !l.withdrawn:
			for w := range e.desired[i] {
				e.desired[i][w] = e.configured[i][w] &^ l.cong.moved[w]
			}
		case l.verdict == good:
			// A withdrawn link that already measures good is on its way
			// back: it keeps what it still carries (prefixes it kept)
			// rather than dropping them now only to announce them again
			// when exit has passed.
			for w := range e.desired[i] {
				e.desired[i][w] = e.applied[i][w] & e.configured[i][w]
			}
		default:
			clear(e.desired[i])
		}
		// Only a PoP with a withdrawn link can strand a prefix: sessions
		// that are down (at start, say) are not sdnoc's doing.
		if l.withdrawn {
			affected[l.pop] = true
		}
	}
	oldKeepers := e.keepers
	e.keepers = make(map[keeperKey]int, len(oldKeepers))
	for gi, g := range e.groups {
		for pop, lids := range g.byPoP {
			if !affected[pop] {
				continue
			}
			if slices.ContainsFunc(lids, func(li int) bool { return e.links[li].carries() }) {
				continue
			}
			// A link that an override takes the prefixes off is no
			// keeper: people win (invariant 5). With none left, the PoP
			// is drained on purpose and applyOverrides has the last word.
			if len(e.overrides) > 0 {
				lids = slices.DeleteFunc(slices.Clone(lids), func(li int) bool { return e.pinnedOff(li, g.prefixes[0]) })
				if len(lids) == 0 {
					continue
				}
			}
			prev, had := oldKeepers[keeperKey{gi, pop}]
			k := e.chooseKeeper(g, lids, prev, had)
			e.keepers[keeperKey{gi, pop}] = k
			for _, pi := range g.prefixes {
				e.desired[k].set(pi)
			}
			kl := e.links[k]
			reason := fmt.Sprintf("%s is the last link that can publish %d prefixes (e.g. %s) in %s: withdrawing them would strand them (invariant 1); they stay on it as the least bad of %s",
				kl.cfg.ID, len(g.prefixes), e.prefixes[g.prefixes[0]], e.pops[pop], e.linkList(lids))
			if kl.withdrawn {
				e.refuse(d, Refusal{Link: kl.cfg.ID, Rule: "never-strand", Prefixes: len(g.prefixes),
					Example: e.prefixes[g.prefixes[0]], KeptOn: kl.cfg.ID, Reason: reason})
			}
			d.Alerts = append(d.Alerts, Alert{Link: kl.cfg.ID, Kind: "stranding",
				Text: fmt.Sprintf("%s: no healthy link left for %d prefixes (e.g. %s); kept on %s (%s)",
					e.pops[pop], len(g.prefixes), e.prefixes[g.prefixes[0]], kl.cfg.ID, kl.summary())})
		}
	}
	if !sameKeepers(oldKeepers, e.keepers) {
		d.Keepers = e.keptPrefixes()
	}
	// Forget refusals that no longer hold, so they are reported again if
	// they come back.
	for k := range e.refused {
		if strings.HasSuffix(k, "|never-strand") && !e.isKeeper(strings.TrimSuffix(k, "|never-strand")) {
			delete(e.refused, k)
		}
	}
}

func sameKeepers(a, b map[keeperKey]int) bool {
	if len(a) != len(b) {
		return false
	}
	for k, v := range a {
		if w, ok := b[k]; !ok || w != v {
			return false
		}
	}
	return true
}

func (e *Engine) isKeeper(id string) bool {
	for _, li := range e.keepers {
		if e.links[li].cfg.ID == id && e.links[li].withdrawn {
			return true
		}
	}
	return false
}

func (e *Engine) keptPrefixes() map[string][]netip.Prefix {
	out := map[string][]netip.Prefix{}
	for k, li := range e.keepers {
		id := e.links[li].cfg.ID
		for _, pi := range e.groups[k.group].prefixes {
			out[id] = append(out[id], e.prefixes[pi])
		}
	}
	for id := range out {
		slices.SortFunc(out[id], func(a, b netip.Prefix) int { return strings.Compare(a.String(), b.String()) })
	}
	return out
}

func (e *Engine) linkList(lids []int) string {
	names := make([]string, len(lids))
	for i, li := range lids {
		names[i] = e.links[li].cfg.ID + " (" + e.links[li].summary() + ")"
	}
	return strings.Join(names, ", ")
}

// carries reports whether a link publishes its prefixes in the plan: not
// withdrawn and its session not known to be down.
func (l *link) carries() bool { return !l.withdrawn && !(l.sessionKnown && !l.sessionUp) }

// badness orders links from least to most bad for keeping prefixes.
func (l *link) badness() (sessionDown, isDown int, loss float64, rtt time.Duration) {
	if l.sessionKnown && !l.sessionUp {
		sessionDown = 1
	}
	if l.verdict == down {
		isDown = 1
	}
	return sessionDown, isDown, l.window.LossPct, l.window.RTTAvg
}

// keeperMargin: kept prefixes move from the incumbent only when its loss
// exceeds twice the best link's plus this many points. Loss measured over a
// short window is noisy (30 probes at 30 % loss: ±8 points), and without a
// wide margin two equally bad links would trade the prefixes back and forth.
const keeperMargin = 10.0

// chooseKeeper picks the link of lids that keeps group g's prefixes: the
// incumbent (the previous keeper, else a link that publishes them now)
// unless it is clearly worse than the least bad, because moving prefixes
// between bad links is churn at two ISPs for little gain.
func (e *Engine) chooseKeeper(g group, lids []int, prev int, had bool) int {
	best := lids[0]
	for _, li := range lids[1:] {
		if less(e.links[li], e.links[best]) {
			best = li
		}
	}
	inc := -1
	if had && slices.Contains(lids, prev) {
		inc = prev
	} else {
		first := g.prefixes[0]
		for _, li := range lids {
			if e.applied[li].has(first) && (inc < 0 || less(e.links[li], e.links[inc])) {
				inc = li
			}
		}
	}
	if inc < 0 || inc == best {
		return best
	}
	is, id, il, _ := e.links[inc].badness()
	bs, bd, bl, _ := e.links[best].badness()
	if is == bs && id == bd && il <= 2*bl+keeperMargin {
		return inc
	}
	return best
}

func less(a, b *link) bool {
	as, ad, al, ar := a.badness()
	bs, bd, bl, br := b.badness()
	switch {
	case as != bs:
		return as < bs
	case ad != bd:
		return ad < bd
	case al != bl:
		return al < bl
	case ar != br:
		return ar < br
	}
	return a.cfg.ID < b.cfg.ID
}

func (l *link) summary() string {
	w := l.window
	s := fmt.Sprintf("%s, loss %.1f%%", l.state, w.LossPct)
	if l.verdict == down {
		s = fmt.Sprintf("%s, no reply for %v", l.state, w.SinceReply.Round(time.Millisecond))
	}
	if l.sessionKnown && !l.sessionUp {
		s += ", session down"
	}
	return s
}

func (l *link) evidence() Evidence {
	return Evidence{State: l.state, Verdict: l.reason, Window: l.window, Thresholds: l.cfg.Thresholds}
}

// refuse records a refusal in d unless the same one was already reported.
func (e *Engine) refuse(d *Decision, r Refusal) {
	key := r.Link + "|" + r.Rule
	if _, done := e.refused[key]; done {
		return
	}
	e.refused[key] = r.Reason
	d.Refusals = append(d.Refusals, r)
}

// reconcile diffs desired against applied and emits intents.
func (e *Engine) reconcile(d *Decision) {
	for i, l := range e.links {
		var add, del []netip.Prefix
		var pinnedOn, pinnedOff map[string][]netip.Prefix // override id -> prefixes it pins; nil until one does
		e.desired[i].each(e.applied[i], func(pi int) {
			if id := e.pinnedBy(i, pi, false); id != "" {
				pinnedOn = appendPinned(pinnedOn, id, e.prefixes[pi])
				return
			}
			add = append(add, e.prefixes[pi])
		})
		e.applied[i].each(e.desired[i], func(pi int) {
			if id := e.pinnedBy(i, pi, true); id != "" {
				pinnedOff = appendPinned(pinnedOff, id, e.prefixes[pi])
				return
			}
			del = append(del, e.prefixes[pi])
		})
		e.emitPinned(d, l, Announce, pinnedOn)
		e.emitPinned(d, l, Withdraw, pinnedOff)
		if len(add) > 0 {
			rule, reason := RulePublish, fmt.Sprintf("%s carries its configured prefixes (%s)", l.cfg.ID, l.summary())
			if l.withdrawn {
				rule, reason = RuleLastLink, fmt.Sprintf("%s is the least bad link left for these prefixes in %s (%s): kept so they are not stranded", l.cfg.ID, l.cfg.PoP, l.summary())
			}
			d.Intents = append(d.Intents, Intent{Action: Announce, Link: l.cfg.ID, Prefixes: add, Rule: rule, Reason: reason, Evidence: l.evidence()})
		}
		if len(del) > 0 && l.withdrawn {
			d.Intents = append(d.Intents, Intent{Action: Withdraw, Link: l.cfg.ID, Prefixes: del, Rule: RuleDegraded,
				Reason: fmt.Sprintf("%s is withdrawn: %s", l.cfg.ID, l.reason), Evidence: l.evidence()})
		} else if len(del) > 0 {
			var moved, other []netip.Prefix
			for _, p := range del {
				if l.cong.moved.has(e.byPrefix[p]) {
					moved = append(moved, p)
				} else {
					other = append(other, p)
				}
			}
			if len(moved) > 0 {
				u, _ := l.utilisation(d.At)
				d.Intents = append(d.Intents, Intent{Action: Withdraw, Link: l.cfg.ID, Prefixes: moved, Rule: RuleCongestion,
					Reason: fmt.Sprintf("%s is congested (ingress %.1f%% of %s): moving its busiest prefixes to the PoP's other links",
						l.cfg.ID, u, bps(float64(l.cfg.Capacity))), Evidence: l.evidence()})
			}
			if len(other) > 0 {
				d.Intents = append(d.Intents, Intent{Action: Withdraw, Link: l.cfg.ID, Prefixes: other, Rule: RuleUnconfigured,
					Reason: fmt.Sprintf("%s publishes prefixes it is not configured for", l.cfg.ID), Evidence: l.evidence()})
			}
		}
	}
}

// Status returns every link as the engine sees it, sorted by link ID.
func (e *Engine) Status() []LinkStatus {
	out := make([]LinkStatus, 0, len(e.links))
	for i, l := range e.links {
		u, ok := l.utilisation(e.last)
		if !ok {
			u = -1
		}
		out = append(out, LinkStatus{Link: l.cfg.ID, PoP: l.cfg.PoP, State: l.state, Withdrawn: l.withdrawn, Reason: l.reason,
			Congested: l.cong.congested, Utilisation: u, Moved: l.cong.moved.count(),
			Window: l.window, Configured: e.configured[i].count(), Published: e.applied[i].count(),
			SessionUp: l.sessionUp, SessionSeen: l.sessionKnown, Overrides: e.overridesOn(i)})
	}
	sort.Slice(out, func(a, b int) bool { return out[a].Link < out[b].Link })
	return out
}

// Snapshot returns the planner state to persist.
func (e *Engine) Snapshot() Snapshot {
	s := Snapshot{Withdrawn: map[string]bool{}, Keepers: e.keptPrefixes(), Moved: e.movedSets()}
	for _, l := range e.links {
		if l.withdrawn {
			s.Withdrawn[l.cfg.ID] = true
		}
	}
	return s
}

func (e *Engine) movedCount() int {
	n := 0
	for _, l := range e.links {
		n += l.cong.moved.count()
	}
	return n
}
