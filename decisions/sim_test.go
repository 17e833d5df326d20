package decisions

import (
	"math/rand/v2"
	"net/netip"
	"time"
)

// t0 is the virtual epoch of every test.
var t0 = time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)

// simLink generates probe samples for one link the way the probe collector
// does: a window every 500 ms, perWindow probes resolved per window, each
// lost with probability loss (or all of them when dark).
type simLink struct {
	id         string
	loss       float64
	dark       bool
	unsendable bool
	rtt        time.Duration
	lastReply  time.Time
}

type sim struct {
	e         *Engine
	rng       *rand.Rand
	now       time.Time
	links     []*simLink
	window    time.Duration
	perWindow int
	// perWindow is the probes resolved per window: 15 is three targets at
	// the default 100 ms interval.
	// confirm applies every intent as a working actuator would.
	confirm   bool
	decisions []Decision
}

func newSim(e *Engine, seed uint64, ids ...string) *sim {
	s := &sim{e: e, rng: rand.New(rand.NewPCG(seed, seed^0x9e3779b9)), now: t0, window: 500 * time.Millisecond, perWindow: 15, confirm: true}
	for _, id := range ids {
		s.links = append(s.links, &simLink{id: id, rtt: 20 * time.Millisecond, lastReply: t0})
	}
	return s
}

func (s *sim) link(id string) *simLink {
	for _, l := range s.links {
		if l.id == id {
			return l
		}
	}
	panic("no sim link " + id)
}

// run advances virtual time by d, one window at a time, stepping the engine
// after each window, and returns the decisions that did something.
func (s *sim) run(d time.Duration) []Decision {
	var out []Decision
	end := s.now.Add(d)
	for s.now.Before(end) {
		s.now = s.now.Add(s.window)
		for _, l := range s.links {
			smp := Sample{Link: l.id, Source: "sim", End: s.now, Known: !l.unsendable}
			if l.unsendable {
				_ = s.e.Observe(smp)
				continue
			}
			smp.Sent = s.perWindow
			for range s.perWindow {
				if l.dark || s.rng.Float64() < l.loss {
					smp.Lost++
				} else {
					smp.Received++
					l.lastReply = s.now
				}
			}
			smp.RTTAvg = l.rtt
			smp.SinceReply = s.now.Sub(l.lastReply)
			if err := s.e.Observe(smp); err != nil {
				panic(err)
			}
		}
		dec := s.e.Step(s.now)
		if s.confirm {
			for _, in := range dec.Intents {
				if err := s.e.Confirm(in); err != nil {
					panic(err)
				}
			}
		}
		if len(dec.Intents)+len(dec.Transitions)+len(dec.Changes)+len(dec.Refusals) > 0 {
			out = append(out, dec)
			s.decisions = append(s.decisions, dec)
		}
	}
	return out
}

// published returns what link id publishes as the engine has it applied.
func (s *sim) published(id string) []netip.Prefix {
	var out []netip.Prefix
	i := s.e.byID[id]
	s.e.applied[i].each(make(bitset, len(s.e.applied[i])), func(pi int) { out = append(out, s.e.prefixes[pi]) })
	return out
}

func countWithdrawals(ds []Decision) int {
	n := 0
	for _, d := range ds {
		for _, c := range d.Changes {
			if c.Withdrawn {
				n++
			}
		}
	}
	return n
}
