package flow

import (
	"encoding/binary"
	"fmt"
	"math"
	"net/netip"
	"testing"
	"time"
)

var (
	aggT0    = time.Date(2026, 11, 23, 12, 0, 0, 0, time.UTC)
	router   = netip.MustParseAddr("127.0.0.1")
	edge24   = netip.MustParsePrefix("198.51.100.0/24")
	edge25   = netip.MustParsePrefix("198.51.100.128/25")
	edge6    = netip.MustParsePrefix("2001:db8:1::/48")
	linkISP1 = "pop1/isp1"
	linkISP2 = "pop1/isp2"
)

func aggConfig() Config {
	cfg := DefaultConfig()
	cfg.Window = 10 * time.Second
	cfg.Exporters = []ExporterConfig{{Address: router, Interfaces: map[uint32]string{1: linkISP1, 2: linkISP2}}}
	cfg.Prefixes = []netip.Prefix{edge24, edge25, edge6}
	return cfg
}

func rec(in uint32, dst string, bytes, pkts uint64, at time.Time) *Record {
	return &Record{Exporter: router, InIf: in, Dst: netip.MustParseAddr(dst), Bytes: bytes, Packets: pkts, Time: at}
}

func TestAggregatorRates(t *testing.T) {
	a := NewAggregator(aggConfig())
	// 10 s window: seconds t0+0 .. t0+9 each carry 1000 B toward the /24
	// and 100 B toward the /25 through ISP 1; ISP 2 only IPv6.
	for s := range 10 {
		at := aggT0.Add(time.Duration(s)*time.Second + 500*time.Millisecond)
		for _, r := range []*Record{
			rec(1, "198.51.100.1", 1000, 10, at),
			rec(1, "198.51.100.129", 100, 1, at),
			rec(2, "2001:db8:1::5", 50, 5, at),
		} {
			if reason := a.Add(r); reason != "" {
				t.Fatalf("Add(%+v) = %q", r, reason)
			}
		}
	}
	now := aggT0.Add(9*time.Second + 900*time.Millisecond)
	got := a.Rates(linkISP1, now)
	want := []PrefixRate{{edge24, 1000, 10}, {edge25, 100, 1}}
	if len(got) != len(want) || got[0] != want[0] || got[1] != want[1] {
		t.Fatalf("Rates(isp1) = %+v, want %+v", got, want)
	}
	if got := a.Rates(linkISP2, now); len(got) != 1 || got[0] != (PrefixRate{edge6, 50, 5}) {
		t.Fatalf("Rates(isp2) = %+v", got)
	}
	if got := a.Top(linkISP1, 1, now); len(got) != 1 || got[0].Prefix != edge24 {
		t.Fatalf("Top(isp1, 1) = %+v", got)
	}
	// Five seconds later the window is (t0+4.9s, t0+14.9s]: seconds 5
	// to 9 in full and a tenth of second 4.
	if got := a.Rates(linkISP1, now.Add(5*time.Second)); len(got) != 2 || !near(got[0].BytesPerSec, 510) || !near(got[1].PacketsPerSec, 0.51) {
		t.Fatalf("Rates(isp1) 5s later = %+v, want 510 B/s and 0.51 packets/s", got)
	}
	// New seconds reuse the oldest buckets: second 11 takes second 0's.
	// At t0+11.5s the window is half of second 1, seconds 2 to 10 and
	// second 11 so far.
	a.Add(rec(1, "198.51.100.1", 7000, 7, aggT0.Add(10*time.Second)))
	a.Add(rec(1, "198.51.100.1", 3000, 3, aggT0.Add(11*time.Second)))
	if got := a.Rates(linkISP1, aggT0.Add(11500*time.Millisecond)); !near(got[0].BytesPerSec, (500+8*1000+7000+3000)/10.0) {
		t.Fatalf("after the ring wrapped: %+v, want %v B/s", got, (500+8*1000+7000+3000)/10.0)
	}
	if got := a.Rates(linkISP1, now.Add(time.Hour)); got != nil {
		t.Fatalf("an hour later: %+v, want nil", got)
	}
	if got := a.Rates("nowhere", now); got != nil {
		t.Fatalf("unknown link: %+v", got)
	}
}

func TestAggregatorUnattributed(t *testing.T) {
	a := NewAggregator(aggConfig())
	other := &Record{Exporter: netip.MustParseAddr("127.0.0.9"), InIf: 1, Dst: netip.MustParseAddr("198.51.100.1"), Time: aggT0}
	for _, tt := range []struct {
		r    *Record
		want string
	}{
		{other, ReasonUnknownExporter},
		{rec(9, "198.51.100.1", 1, 1, aggT0), ReasonUnknownInterface},
		{rec(1, "203.0.113.1", 1, 1, aggT0), ReasonNotEdge},
		{rec(1, "198.51.100.1", 1, 1, aggT0), ""},
	} {
		if got := a.Add(tt.r); got != tt.want {
			t.Errorf("Add(%+v) = %q, want %q", tt.r, got, tt.want)
		}
	}
	// Eleven seconds later (the window and the second it starts in) the
	// bucket is reused; a record as old as the first one no longer fits.
	if got := a.Add(rec(1, "198.51.100.1", 1, 1, aggT0.Add(11*time.Second))); got != "" {
		t.Fatalf("Add 11s later = %q", got)
	}
	if got := a.Add(rec(1, "198.51.100.1", 1, 1, aggT0)); got != ReasonStale {
		t.Fatalf("Add of a record older than the window = %q, want %q", got, ReasonStale)
	}
	if got, want := a.Refused(), (Refused{1, 1, 1, 1}); got != want {
		t.Fatalf("Refused = %+v, want %+v", got, want)
	}
}

// TestAggregatorBoundedMemory sends 100k distinct destinations outside
// the edge and 100k inside one prefix: storage stays one entry.
func TestAggregatorBoundedMemory(t *testing.T) {
	a := NewAggregator(aggConfig())
	l := a.links[linkISP1]
	entries := func() int {
		n := 0
		for _, b := range l.buckets {
			n += len(b.counts)
		}
		return n
	}
	r := rec(1, "198.51.100.1", 1, 1, aggT0)
	for i := range 100_000 {
		var b [4]byte
		binary.BigEndian.PutUint32(b[:], 0x0a000000+uint32(i)) // 10.0.0.0/8: not edge
		r.Dst = netip.AddrFrom4(b)
		a.Add(r)
	}
	if n := entries(); n != 0 {
		t.Fatalf("%d entries after 100k non-edge records, want 0", n)
	}
	for i := range 100_000 {
		r.Dst = netip.AddrFrom4([4]byte{198, 51, 100, byte(i % 128)})
		a.Add(r)
	}
	if n := entries(); n != 1 {
		t.Fatalf("%d entries after 100k records to one prefix, want 1", n)
	}
	if ne := a.Refused().NotEdge; ne != 100_000 {
		t.Fatalf("not_edge = %d, want 100000", ne)
	}
}

// BenchmarkAggregatorParallel adds records from all Ps at once, to one
// link (every worker on one lock) or spread over 16 links.
func BenchmarkAggregatorParallel(b *testing.B) {
	for _, links := range []int{1, 16} {
		cfg := aggConfig()
		ifaces := make(map[uint32]string)
		for i := range links {
			ifaces[uint32(i)] = fmt.Sprintf("pop1/isp%d", i)
		}
		cfg.Exporters = []ExporterConfig{{Address: router, Interfaces: ifaces}}
		a := NewAggregator(cfg)
		b.Run(fmt.Sprintf("links=%d", links), func(b *testing.B) {
			b.ReportAllocs()
			b.RunParallel(func(pb *testing.PB) {
				r := rec(0, "198.51.100.1", 1000, 1, aggT0)
				i := uint32(0)
				for pb.Next() {
					r.InIf = i % uint32(links)
					i++
					a.Add(r)
				}
			})
		})
	}
}

// near compares rates computed with fractions of a second.
func near(got, want float64) bool {
	return math.Abs(got-want) <= 1e-9*math.Max(1, math.Abs(want))
}

// TestAggregatorSteadyRate: a steady rate reads as itself at any moment
// of the second, not lower while the current second fills.
func TestAggregatorSteadyRate(t *testing.T) {
	for _, window := range []time.Duration{2 * time.Second, 10 * time.Second} {
		cfg := aggConfig()
		cfg.Window = window
		a := NewAggregator(cfg)
		// 1000 B/s as ten records a second, for 30 s.
		step := 100 * time.Millisecond
		for at := aggT0; at.Before(aggT0.Add(30 * time.Second)); at = at.Add(step) {
			a.Add(rec(1, "198.51.100.1", 100, 1, at))
			if at.Sub(aggT0) < window+time.Second {
				continue
			}
			// Just after this record: the rate over the window is what
			// was sent in it, within one record.
			got := a.Rates(linkISP1, at.Add(time.Millisecond))
			if len(got) != 1 || math.Abs(got[0].BytesPerSec-1000) > 100/window.Seconds() {
				t.Fatalf("window %v, at %v: %+v, want 1000 B/s within one record", window, at.Sub(aggT0), got)
			}
		}
	}
}
