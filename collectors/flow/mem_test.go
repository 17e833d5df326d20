package flow

import (
	"fmt"
	"net/netip"
	"runtime"
	"testing"
	"time"
)

// The memory scenario: 1,000 exporters of one link each, 64 IPv4 /24 and
// 16 IPv6 /48 edge prefixes, a 10 s window, and records toward 100,000
// distinct destinations, a third of them inside the prefixes.
const (
	memExporters    = 1000
	memDestinations = 100_000
	memPerSecond    = 300 // records per exporter and second
	memWindow       = 10 * time.Second
)

func memExporter(i int) netip.Addr { return netip.AddrFrom4([4]byte{127, 1, byte(i >> 8), byte(i)}) }

func memConfig() Config {
	cfg := DefaultConfig()
	cfg.Window = memWindow
	for i := range memExporters {
		cfg.Exporters = append(cfg.Exporters, ExporterConfig{Address: memExporter(i), Interfaces: map[uint32]string{1: fmt.Sprintf("e%d/isp1", i)}})
	}
	for i := range 64 {
		cfg.Prefixes = append(cfg.Prefixes, netip.PrefixFrom(netip.AddrFrom4([4]byte{198, 18, byte(i), 0}), 24))
	}
	for i := range 16 {
		cfg.Prefixes = append(cfg.Prefixes, netip.PrefixFrom(netip.AddrFrom16([16]byte{0x20, 0x01, 0x0d, 0xb8, 0, byte(i)}), 48))
	}
	return cfg
}

// memDestination is destination d of memDestinations: even ones spread
// over 198.18.0.0/16 (the third octet below 64 inside an edge /24), odd
// ones over 2001:db8:0-1f::/48 (below 0x10 inside an edge /48).
func memDestination(d int) netip.Addr {
	if d%2 == 0 {
		h := d / 2
		return netip.AddrFrom4([4]byte{198, 18, byte(h >> 8), byte(h)})
	}
	return netip.AddrFrom16([16]byte{0x20, 0x01, 0x0d, 0xb8, 0, byte(d % 32), 12: byte(d >> 24), 13: byte(d >> 16), 14: byte(d >> 8), 15: byte(d)})
}

// fill adds memPerSecond records per exporter and second of the window,
// the destinations walking all memDestinations, from exporters offset..
// offset+memExporters-1; it returns how many were stored.
func fill(a *Aggregator, offset int, dst func(int) netip.Addr) int {
	stored := 0
	r := &Record{InIf: 1, Bytes: 1500, Packets: 1}
	d := 0
	for s := range int(memWindow / time.Second) {
		r.Time = aggT0.Add(time.Duration(s) * time.Second)
		for e := range memExporters {
			r.Exporter = memExporter(offset + e)
			for range memPerSecond {
				r.Dst = dst(d % memDestinations)
				d += 7919 // prime: consecutive records of an exporter spread
				if a.Add(r) == "" {
					stored++
				}
			}
		}
	}
	return stored
}

func heapInUse() uint64 {
	runtime.GC()
	var m runtime.MemStats
	runtime.ReadMemStats(&m)
	return m.HeapAlloc
}

// memFigures are what the scenario costs.
type memFigures struct {
	config, data uint64 // heap of the empty aggregator, then of its counts
	entries      int    // (link, second, prefix) counts kept
	stored       int
	afterRefused int64 // heap growth from records it refuses
}

func measureMemory(tb testing.TB) memFigures {
	cfg := memConfig()
	var f memFigures
	base := heapInUse()
	a := NewAggregator(cfg)
	f.config = heapInUse() - base
	f.stored = fill(a, 0, memDestination)
	f.data = heapInUse() - base - f.config
	for _, l := range a.links {
		for _, b := range l.buckets {
			f.entries += len(b.counts)
		}
	}
	before := heapInUse()
	// Unknown exporters toward edge destinations, then known ones toward
	// destinations outside the edge only.
	fill(a, memExporters, memDestination)
	fill(a, 0, func(d int) netip.Addr { return netip.AddrFrom4([4]byte{10, byte(d >> 16), byte(d >> 8), byte(d)}) })
	f.afterRefused = int64(heapInUse()) - int64(before)
	runtime.KeepAlive(a)
	if f.stored == 0 {
		tb.Fatal("no record stored")
	}
	return f
}

// TestAggregatorMemoryBound runs the memory scenario: the counts take at
// most one entry per configured (link, window second, prefix), each
// entry at most 96 bytes of heap, and records from unknown exporters or
// toward destinations outside the edge take none.
func TestAggregatorMemoryBound(t *testing.T) {
	if testing.Short() {
		t.Skip("3 million records")
	}
	f := measureMemory(t)
	cfg := memConfig()
	cells := len(cfg.Exporters) * int(cfg.Window/time.Second) * len(cfg.Prefixes)
	t.Logf("config %d B, counts %d B for %d entries (%.1f B each) of %d cells, %d records stored, refused ones %+d B",
		f.config, f.data, f.entries, float64(f.data)/float64(f.entries), cells, f.stored, f.afterRefused)
	if f.entries > cells {
		t.Errorf("%d entries, more than the %d (link, second, prefix) cells", f.entries, cells)
	}
	if f.entries < cells/2 {
		t.Errorf("%d entries of %d cells: the scenario does not fill the aggregator", f.entries, cells)
	}
	if per := f.data / uint64(f.entries); per > 96 {
		t.Errorf("%d B per entry, want 96 or less", per)
	}
	if f.afterRefused > 256<<10 {
		t.Errorf("refused records grew the heap by %d B; want nothing stored", f.afterRefused)
	}
}

// BenchmarkAggregatorMemory reports the heap of the memory scenario.
func BenchmarkAggregatorMemory(b *testing.B) {
	var f memFigures
	for b.Loop() {
		f = measureMemory(b)
	}
	cfg := memConfig()
	cells := len(cfg.Exporters) * int(cfg.Window/time.Second) * len(cfg.Prefixes)
	b.ReportMetric(float64(f.config+f.data), "heap-bytes")
	b.ReportMetric(float64(f.data)/float64(f.entries), "bytes/entry")
	b.ReportMetric(float64(f.config+f.data)/float64(cells), "bytes/cell")
	b.ReportMetric(float64(f.entries), "entries")
	b.ReportMetric(float64(f.afterRefused), "refused-growth-bytes")
}
