package probes

import (
	"math"
	"slices"
	"time"
)

// Sample is what one link showed over one window. Probes are counted in
// the window in which they are resolved: a reply in time makes one
// Received, a timeout one Lost. Every probe sent is resolved once, unless
// the collector stops first, so over consecutive samples
// Outstanding = previous Outstanding + Sent − Received − Lost.
type Sample struct {
	Link       string    // LinkConfig.ID
	Source     string    // "probes"
	Start, End time.Time // the window, by Deps.Now

	// Known is false when no probe was sent in the window (socket not
	// bound, send errors): the window says nothing about loss, and its
	// figures must not be read as the link being down.
	Known bool

	Sent       int // probes sent
	SendErrors int // probes that could not be sent; not in Sent, never lost
	Received   int // replies in time
	Lost       int // probes not answered in time
	Late       int // replies after the timeout; their probes are in Lost (of this or an earlier window)
	// Outstanding is the number of probes waiting for a reply at the end
	// of the window.
	Outstanding int

	LossPct float64 // 100×Lost/(Received+Lost); 0 when both are 0

	// RTTMin, RTTAvg and RTTP95 are over the window's replies in time
	// (0 without any): (T4−T1)−(T3−T2), the reflector's own time taken out.
	RTTMin, RTTAvg, RTTP95 time.Duration

	// Jitter is the interarrival jitter of RFC 3550 §6.4.1 over the
	// forward one-way delays (T2−T1) of each target, at the end of the
	// window, averaged over the targets that have answered twice.
	Jitter time.Duration

	// SinceReply is the time from the last reply in time, from any
	// target, to the end of the window (from the collector's start if
	// none came yet). It grows past a second on a black-holed link
	// whatever the window's counts say.
	SinceReply time.Duration

	Targets []TargetSample // the same figures per target, in configured order
}

// TargetSample is one target's part of a Sample.
type TargetSample struct {
	Target   string // as configured
	Sent     int
	Received int
	Lost     int
	LossPct  float64
	RTTAvg   time.Duration
	Jitter   time.Duration
}

// takeSample reports the window ending at now (stamped end) and starts
// the next one.
func (l *link) takeSample(now, end time.Time) Sample {
	l.mu.Lock()
	defer l.mu.Unlock()
	smp := Sample{
		Link: l.cfg.ID, Source: "probes", Start: l.winStart, End: end,
		SinceReply: now.Sub(l.lastReply),
		Targets:    make([]TargetSample, 0, len(l.sessions)),
	}
	l.winStart = end
	all := l.rtts[:0]
	var jitterSum time.Duration
	var jitterN int
	for _, s := range l.sessions {
		w := &s.win
		ts := TargetSample{
			Target: s.target, Sent: w.sent, Received: w.received, Lost: w.lost,
			LossPct: lossPct(w.received, w.lost), RTTAvg: mean(w.rtts),
		}
		if j, ok := s.jitter.value(); ok {
			ts.Jitter = j
			jitterSum += j
			jitterN++
		}
		smp.Targets = append(smp.Targets, ts)
		smp.Sent += w.sent
		smp.SendErrors += w.sendErrors
		smp.Received += w.received
		smp.Lost += w.lost
		smp.Late += w.late
		smp.Outstanding += s.outstanding
		all = append(all, w.rtts...)
		*w = windowCounts{rtts: w.rtts[:0]}
	}
	l.rtts = all
	smp.Known = smp.Sent > 0
	smp.LossPct = lossPct(smp.Received, smp.Lost)
	if jitterN > 0 {
		smp.Jitter = jitterSum / time.Duration(jitterN)
	}
	if len(all) > 0 {
		slices.Sort(all)
		smp.RTTMin = all[0]
		smp.RTTAvg = mean(all)
		smp.RTTP95 = all[(len(all)*95+99)/100-1] // nearest rank
	}
	return smp
}

func lossPct(received, lost int) float64 {
	if received+lost == 0 {
		return 0
	}
	return 100 * float64(lost) / float64(received+lost)
}

func mean(ds []time.Duration) time.Duration {
	if len(ds) == 0 {
		return 0
	}
	var sum time.Duration
	for _, d := range ds {
		sum += d
	}
	return sum / time.Duration(len(ds))
}

func nanIf(cond bool, v float64) float64 {
	if cond {
		return math.NaN()
	}
	return v
}

// jitter is the interarrival jitter estimator of RFC 3550 §6.4.1:
// J += (|D| − J)/16, where D is the change in transit time between two
// consecutive replies. Transit is T2−T1 across two clocks; their offset
// cancels in D.
type jitter struct {
	j       float64 // ns
	transit time.Duration
	n       int // transits seen
}

func (j *jitter) add(transit time.Duration) {
	if j.n > 0 {
		d := math.Abs(float64(transit - j.transit))
		j.j += (d - j.j) / 16
	}
	j.transit = transit
	j.n++
}

// value is the estimate, once there are two transits to compare.
func (j *jitter) value() (time.Duration, bool) {
	return time.Duration(j.j), j.n >= 2
}
