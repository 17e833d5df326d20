package flow_test

import (
	"testing"
	"time"

	"github.com/sdnoc/sdnoc/collectors/flow"
)

// BenchmarkDecodeAggregate decodes a full datagram of each format and
// aggregates its records, as a collector worker does, with the fast path
// and with goflow2 alone. It runs on one goroutine: records/s is per
// core.
func BenchmarkDecodeAggregate(b *testing.B) {
	for _, path := range []string{"fast", "goflow2"} {
		for _, bc := range hotDatagrams() {
			b.Run(path+"/"+bc.name, func(b *testing.B) {
				agg := hotAggregator()
				d := flow.NewDecoder(flow.DecoderConfig{TemplateTTL: time.Hour, MaxExporters: 10, Goflow2Only: path == "goflow2"})
				var n int
				emit := func(r *flow.Record) {
					n++
					if agg.Add(r) != "" {
						b.Fatal("record not stored")
					}
				}
				for _, p := range bc.setup {
					if err := d.Decode(exporter, p, t0, emit); err != nil {
						b.Fatal(err)
					}
				}
				n = 0
				b.ReportAllocs()
				for b.Loop() {
					if err := d.Decode(exporter, bc.pkt, t0, emit); err != nil {
						b.Fatal(err)
					}
				}
				b.ReportMetric(float64(n)/b.Elapsed().Seconds(), "records/s")
				b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(n), "ns/record")
				perOp := float64(n) / float64(b.N)
				allocs := testing.AllocsPerRun(100, func() { _ = d.Decode(exporter, bc.pkt, t0, emit) })
				b.ReportMetric(allocs/perOp, "allocs/record")
			})
		}
	}
}
