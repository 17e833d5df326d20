package flow

import (
	"cmp"
	"net/netip"
	"slices"
	"sync"
	"sync/atomic"
	"time"
)

// Reasons a record is not stored, as Aggregator.Add returns them and the
// unattributed_records_total metric labels them.
const (
	ReasonUnknownExporter  = "unknown_exporter"  // not in Config.Exporters
	ReasonUnknownInterface = "unknown_interface" // input ifIndex not in its Interfaces
	ReasonNotEdge          = "not_edge"          // destination in no Config.Prefixes
	ReasonStale            = "stale"             // Time a window or more before a newer record's
)

// PrefixRate is the traffic toward one edge prefix through one link,
// averaged over the window.
type PrefixRate struct {
	Prefix        netip.Prefix
	BytesPerSec   float64
	PacketsPerSec float64
}

// Aggregator sums records per link and edge prefix in one-second buckets
// over the window. Its memory is bounded by the configured links and
// prefixes: records toward other destinations are counted, not kept. It
// is safe for concurrent use; each link has its own lock.
type Aggregator struct {
	window    int64 // seconds
	prefixes  *prefixTable
	exporters map[netip.Addr]bool
	ifaces    map[ifaceKey]*linkAgg
	links     map[string]*linkAgg

	unknownExporter, unknownInterface, notEdge, stale atomic.Uint64
}

type ifaceKey struct {
	exporter netip.Addr
	ifindex  uint32
}

type linkAgg struct {
	mu      sync.Mutex
	buckets []bucket // ring indexed by second % window
}

type bucket struct {
	sec    int64
	counts map[int]counts // prefix index -> sums
}

type counts struct{ bytes, packets uint64 }

// NewAggregator returns an Aggregator for cfg's exporters, links,
// prefixes and window; cfg must be valid (Config.Validate).
func NewAggregator(cfg Config) *Aggregator {
	a := &Aggregator{
		window:    int64(cfg.Window / time.Second),
		prefixes:  newPrefixTable(cfg.Prefixes),
		exporters: make(map[netip.Addr]bool),
		ifaces:    make(map[ifaceKey]*linkAgg),
		links:     make(map[string]*linkAgg),
	}
	for _, e := range cfg.Exporters {
		addr := e.Address.Unmap()
		a.exporters[addr] = true
		for ifx, id := range e.Interfaces {
			l, ok := a.links[id]
			if !ok {
				// One bucket more than the window: the second the window
				// starts in is still needed, in part, while the current
				// one fills.
				l = &linkAgg{buckets: make([]bucket, a.window+1)}
				for i := range l.buckets {
					l.buckets[i].sec = -1
				}
				a.links[id] = l
			}
			a.ifaces[ifaceKey{addr, ifx}] = l
		}
	}
	return a
}

// Add counts r toward its link and edge prefix at r.Time. It returns ""
// when r is stored, else the Reason it is not.
func (a *Aggregator) Add(r *Record) string {
	l, ok := a.ifaces[ifaceKey{r.Exporter, r.InIf}]
	if !ok {
		if a.exporters[r.Exporter] {
			a.unknownInterface.Add(1)
			return ReasonUnknownInterface
		}
		a.unknownExporter.Add(1)
		return ReasonUnknownExporter
	}
	p, ok := a.prefixes.lookup(r.Dst)
	if !ok {
		a.notEdge.Add(1)
		return ReasonNotEdge
	}
	sec := r.Time.Unix()
	l.mu.Lock()
	b := &l.buckets[mod(sec, int64(len(l.buckets)))]
	if sec < b.sec {
		// The bucket holds a newer second: the record is older than the
		// window.
		l.mu.Unlock()
		a.stale.Add(1)
		return ReasonStale
	}
	if b.sec != sec {
		b.sec = sec
		if b.counts == nil {
			b.counts = make(map[int]counts)
		}
		clear(b.counts)
	}
	c := b.counts[p]
	c.bytes += r.Bytes
	c.packets += r.Packets
	b.counts[p] = c
	l.mu.Unlock()
	return ""
}

func mod(a, n int64) int64 {
	m := a % n
	if m < 0 {
		m += n
	}
	return m
}

// Rates returns the traffic through link toward each edge prefix over
// the window ending at now, highest bytes/s first; nil for an unknown
// link or no traffic.
//
// The window is the last Window of time, (now-Window, now]: the seconds
// before now's in full, now's second so far, and of the second the
// window starts in the part the window still covers, taken as spread
// evenly over it. Summing whole buckets over the window instead would
// read low by up to a second's worth while the current bucket fills:
// half the rate with a 2s window.
func (a *Aggregator) Rates(link string, now time.Time) []PrefixRate {
	l, ok := a.links[link]
	if !ok {
		return nil
	}
	end := now.Unix()
	first := end - a.window // covered for (1 - frac) of it
	frac := float64(now.Sub(time.Unix(end, 0))) / float64(time.Second)
	type sum struct{ bytes, packets float64 }
	sums := make(map[int]sum)
	l.mu.Lock()
	for _, b := range l.buckets {
		if b.sec < first || b.sec > end {
			continue
		}
		share := 1.0
		if b.sec == first {
			share = 1 - frac
		}
		for p, c := range b.counts {
			s := sums[p]
			s.bytes += share * float64(c.bytes)
			s.packets += share * float64(c.packets)
			sums[p] = s
		}
	}
	l.mu.Unlock()
	if len(sums) == 0 {
		return nil
	}
	out := make([]PrefixRate, 0, len(sums))
	w := float64(a.window)
	for p, c := range sums {
		if c.bytes == 0 && c.packets == 0 {
			continue
		}
		out = append(out, PrefixRate{
			Prefix:        a.prefixes.prefixes[p],
			BytesPerSec:   c.bytes / w,
			PacketsPerSec: c.packets / w,
		})
	}
	if len(out) == 0 {
		return nil
	}
	slices.SortFunc(out, func(x, y PrefixRate) int {
		if c := cmp.Compare(y.BytesPerSec, x.BytesPerSec); c != 0 {
			return c
		}
		return x.Prefix.Addr().Compare(y.Prefix.Addr())
	})
	return out
}

// Top returns the n prefixes with the most bytes/s through link over
// the window ending at now.
func (a *Aggregator) Top(link string, n int, now time.Time) []PrefixRate {
	r := a.Rates(link, now)
	if len(r) > n {
		r = r[:max(n, 0)]
	}
	return r
}

// Links returns the configured link IDs, sorted.
func (a *Aggregator) Links() []string {
	ids := make([]string, 0, len(a.links))
	for id := range a.links {
		ids = append(ids, id)
	}
	slices.Sort(ids)
	return ids
}

// Refused returns how many records Add has refused, per reason.
func (a *Aggregator) Refused() Refused {
	return Refused{
		UnknownExporter: a.unknownExporter.Load(), UnknownInterface: a.unknownInterface.Load(),
		NotEdge: a.notEdge.Load(), Stale: a.stale.Load(),
	}
}

// Refused counts the records that an Aggregator did not store, by
// reason (see the Reason constants).
type Refused struct {
	UnknownExporter, UnknownInterface, NotEdge, Stale uint64
}
