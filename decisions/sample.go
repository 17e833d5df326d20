package decisions

import (
	"math"
	"time"
)

// Sample is one window of active probing on a link, as the engine needs it.
// The controller converts the probe collector's samples into this type so
// that the engine depends on no collector.
type Sample struct {
	Link       string
	Source     string // who measured it, e.g. "probes"
	End        time.Time
	Known      bool // false: no probe could be sent (not loss)
	Sent       int
	Received   int
	Lost       int
	RTTAvg     time.Duration
	Jitter     time.Duration
	SinceReply time.Duration // at End, time since the last reply on the link
}

// Window is the aggregate of a link's recent samples, the numbers every
// decision about the link is based on.
type Window struct {
	Samples    int           `json:"samples"`
	Resolved   int           `json:"resolved"` // probes received or lost
	Lost       int           `json:"lost"`
	LossPct    float64       `json:"loss_pct"`
	RTTAvg     time.Duration `json:"rtt_avg_ns"`
	Jitter     time.Duration `json:"jitter_ns"`
	SinceReply time.Duration `json:"since_reply_ns"`
	Age        time.Duration `json:"age_ns"` // since the newest sample
	// SustainedPct is the loss with each sample's losses capped at
	// burstCap of its probes: loss that kept going, not one burst.
	SustainedPct float64 `json:"sustained_loss_pct"`
}

// ring holds a link's samples within the loss window, oldest first.
type ring struct{ s []Sample }

func (r *ring) add(s Sample, keep time.Duration) {
	// Samples normally arrive in order; one that is older than the newest
	// is inserted in place so the window stays sorted.
	i := len(r.s)
	for i > 0 && r.s[i-1].End.After(s.End) {
		i--
	}
	r.s = append(r.s, Sample{})
	copy(r.s[i+1:], r.s[i:])
	r.s[i] = s
	r.trim(r.s[len(r.s)-1].End.Add(-keep))
}

// trim drops samples that ended at or before cut.
func (r *ring) trim(cut time.Time) {
	n := 0
	for n < len(r.s) && !r.s[n].End.After(cut) {
		n++
	}
	if n > 0 {
		r.s = append(r.s[:0], r.s[n:]...)
	}
}

func (r *ring) newest() (Sample, bool) {
	if len(r.s) == 0 {
		return Sample{}, false
	}
	return r.s[len(r.s)-1], true
}

// aggregate sums the known samples that ended after now-span.
func (r *ring) aggregate(now time.Time, span time.Duration) Window {
	var w Window
	var rttSum time.Duration
	var rttN int
	cut := now.Add(-span)
	for _, s := range r.s {
		if !s.End.After(cut) || !s.Known {
			continue
		}
		w.Samples++
		w.Resolved += s.Received + s.Lost
		w.Lost += s.Lost
		if s.Received > 0 {
			rttSum += s.RTTAvg * time.Duration(s.Received)
			rttN += s.Received
		}
	}
	if w.Resolved > 0 {
		w.LossPct = 100 * float64(w.Lost) / float64(w.Resolved)
	}
	if rttN > 0 {
		w.RTTAvg = rttSum / time.Duration(rttN)
	}
	w.SustainedPct = r.sustained(cut, w.Resolved)
	if s, ok := r.newest(); ok {
		w.Jitter = s.Jitter // already smoothed by the sender (RFC 3550)
		w.SinceReply = s.SinceReply
		w.Age = now.Sub(s.End)
	}
	return w
}

// burstCap is the share of one sample's probes that counts towards
// sustained loss. Uniform loss rarely exceeds it in one 500 ms sample (5 %
// loss over 15 probes: 1 % of samples), while a burst concentrates there;
// so a second of 50 % loss does not count as 5 % over ten seconds.
const burstCap = 0.2

// sustained returns the loss over the known samples after cut with each
// sample's losses capped at burstCap of its probes.
func (r *ring) sustained(cut time.Time, resolved int) float64 {
	if resolved == 0 {
		return 0
	}
	lost := 0
	for _, s := range r.s {
		if s.End.After(cut) && s.Known {
			lost += min(s.Lost, int(math.Ceil(burstCap*float64(s.Received+s.Lost))))
		}
	}
	return 100 * float64(lost) / float64(resolved)
}
