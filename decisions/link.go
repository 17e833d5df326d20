package decisions

import (
	"fmt"
	"time"
)

// State is what the engine believes about a link.
type State int

// The states of a link. Unknown is the start and whatever follows missing
// data; it never causes a withdrawal (invariant 2).
const (
	Unknown State = iota
	Healthy
	Degraded
)

func (s State) String() string {
	switch s {
	case Healthy:
		return "healthy"
	case Degraded:
		return "degraded"
	default:
		return "unknown"
	}
}

// MarshalText makes states readable in JSON journals and reports.
func (s State) MarshalText() ([]byte, error) { return []byte(s.String()), nil }

// UnmarshalText is the inverse of MarshalText.
func (s *State) UnmarshalText(b []byte) error {
	switch string(b) {
	case "healthy":
		*s = Healthy
	case "degraded":
		*s = Degraded
	case "unknown":
		*s = Unknown
	default:
		return fmt.Errorf("unknown link state %q", b)
	}
	return nil
}

// verdict is one evaluation of a link's window against its thresholds.
type verdict int

const (
	noData verdict = iota // stale, unsendable or no samples: unknown
	tooFew                // data, but too few probes to judge
	good                  // within every threshold
	bad                   // over a threshold
	down                  // no reply at all for DownAfter
)

// link is the engine's record of one link.
type link struct {
	cfg   Link
	idx   int
	pop   int
	state State
	// definite is the last state other than unknown.
	definite State
	// changed is when the state last moved between healthy and degraded
	// (hold-down runs from it); zero before the first such change.
	changed   time.Time
	badSince  time.Time
	goodSince time.Time
	samples   ring
	window    Window
	verdict   verdict
	reason    string // why the current verdict, with numbers
	// withdrawn is the planner's decision that the link should not carry
	// its prefixes; it survives restarts through the journal.
	withdrawn bool
	// cong is the link's congestion state and moved prefixes.
	cong *congestion
	// session is the BGP session state as last reported; sessionKnown is
	// false until the actuator reports it.
	sessionUp, sessionKnown bool
}

// evaluate judges the link's recent samples at now.
func (l *link) evaluate(now time.Time) {
	t := l.cfg.Thresholds
	newest, ok := l.samples.newest()
	switch {
	case !ok:
		l.verdict, l.reason, l.window = noData, "no samples yet", Window{}
		return
	case now.Sub(newest.End) > t.StaleAfter:
		l.window = l.samples.aggregate(now, t.LossWindow)
		l.verdict = noData
		l.reason = fmt.Sprintf("stale: last sample %v ago (stale_after %v)", now.Sub(newest.End).Round(time.Millisecond), t.StaleAfter)
		return
	case !newest.Known:
		l.window = l.samples.aggregate(now, t.LossWindow)
		l.verdict, l.reason = noData, "probes cannot be sent (no socket or no route): not loss"
		return
	}
	w := l.samples.aggregate(now, t.LossWindow)
	l.window = w
	switch {
	case newest.Sent > 0 && w.SinceReply >= t.DownAfter:
		l.verdict = down
		l.reason = fmt.Sprintf("no reply for %v (down_after %v)", w.SinceReply.Round(time.Millisecond), t.DownAfter)
	case w.Resolved < t.MinProbes:
		l.verdict = tooFew
		l.reason = fmt.Sprintf("%d probes resolved in %v, below min_probes %d", w.Resolved, t.LossWindow, t.MinProbes)
	case w.LossPct > t.LossPct && w.SustainedPct > t.LossPct:
		l.verdict = bad
		l.reason = fmt.Sprintf("loss %.1f%% (%d/%d) over %v above %.1f%% (%.1f%% counting at most %.0f%% of each sample)",
			w.LossPct, w.Lost, w.Resolved, t.LossWindow, t.LossPct, w.SustainedPct, 100*burstCap)
	case t.RTT > 0 && w.RTTAvg > t.RTT:
		l.verdict = bad
		l.reason = fmt.Sprintf("rtt %v above %v", w.RTTAvg.Round(time.Microsecond), t.RTT)
	case t.Jitter > 0 && w.Jitter > t.Jitter:
		l.verdict = bad
		l.reason = fmt.Sprintf("jitter %v above %v", w.Jitter.Round(time.Microsecond), t.Jitter)
	default:
		l.verdict = good
		l.reason = fmt.Sprintf("loss %.1f%% (%d/%d), rtt %v, jitter %v within thresholds", w.LossPct, w.Lost, w.Resolved,
			w.RTTAvg.Round(time.Microsecond), w.Jitter.Round(time.Microsecond))
	}
}

// Transition is a change of a link's state, with the reason.
type Transition struct {
	Link   string `json:"link"`
	From   State  `json:"from"`
	To     State  `json:"to"`
	Reason string `json:"reason"`
	Window Window `json:"window"`
}

// advance moves the state machine after evaluate, applying the hysteresis
// rules of invariant 3. It returns a transition when the state changed.
func (l *link) advance(now time.Time) (Transition, bool) {
	t := l.cfg.Thresholds
	switch l.verdict {
	case noData:
		l.badSince, l.goodSince = time.Time{}, time.Time{}
		if l.state != Unknown {
			return l.move(Unknown, now, l.reason), true
		}
		return Transition{}, false
	case tooFew:
		// Not enough evidence either way: keep the state and the timers.
		return Transition{}, false
	case bad, down:
		l.goodSince = time.Time{}
		if l.badSince.IsZero() {
			l.badSince = now
		}
	case good:
		l.badSince = time.Time{}
		if l.goodSince.IsZero() {
			l.goodSince = now
		}
	}
	held := !l.changed.IsZero() && now.Sub(l.changed) < t.HoldDown
	switch {
	case l.verdict == down && l.state != Degraded:
		// A black hole does not wait for enter or hold-down: every second
		// it stays published loses all its traffic. Flapping is still
		// bounded by exit, hold-down on the way back, and the cap.
		return l.move(Degraded, now, l.reason), true
	case l.verdict == bad && l.state != Degraded && !l.badSince.IsZero() && now.Sub(l.badSince) >= t.Enter && !held:
		return l.move(Degraded, now, fmt.Sprintf("%s for %v (enter %v)", l.reason, now.Sub(l.badSince).Round(time.Millisecond), t.Enter)), true
	case l.verdict == good && l.state == Unknown && !l.withdrawn:
		// Nothing to restore: a published link with good data is healthy.
		return l.move(Healthy, now, l.reason), true
	case l.verdict == good && l.state != Healthy && now.Sub(l.goodSince) >= t.Exit && !held:
		return l.move(Healthy, now, fmt.Sprintf("%s for %v (exit %v)", l.reason, now.Sub(l.goodSince).Round(time.Millisecond), t.Exit)), true
	}
	return Transition{}, false
}

func (l *link) move(to State, now time.Time, reason string) Transition {
	tr := Transition{Link: l.cfg.ID, From: l.state, To: to, Reason: reason, Window: l.window}
	// Hold-down runs from the last change between healthy and degraded; a
	// detour through unknown neither starts nor resets it, and the first
	// verdict after start has nothing to hold down.
	if to != Unknown {
		if l.definite != Unknown && l.definite != to {
			l.changed = now
		}
		l.definite = to
	}
	l.state = to
	return tr
}
