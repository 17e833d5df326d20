package flow_test

import (
	"net/netip"
	"testing"
	"time"

	"github.com/sdnoc/sdnoc/collectors/flow"
	"github.com/sdnoc/sdnoc/collectors/flow/flowtest"
)

// BenchmarkDecodeAggregate decodes a full datagram of each format and
// aggregates its records, as a collector worker does.
func BenchmarkDecodeAggregate(b *testing.B) {
	flows := make([]flowtest.Flow, 0, 30)
	samples := make([]flowtest.SFlowSample, 0, 8)
	for i := range 30 {
		f := flow4
		f.Dst = netip.AddrFrom4([4]byte{198, 51, 100, byte(i)})
		f.InIf = 3
		flows = append(flows, f)
		if len(samples) < cap(samples) {
			samples = append(samples, flowtest.SFlowSample{SamplingRate: 1000, InIf: 3, Src: src4, Dst: f.Dst, Proto: 6, SrcPort: 1, DstPort: 2, FrameLength: 1500})
		}
	}
	for _, bc := range []struct {
		name  string
		setup [][]byte
		pkt   []byte
	}{
		{"sflow5", nil, flowtest.SFlowV5(expAddr, samples)},
		{"netflow5", nil, flowtest.NetFlowV5(100, flows)},
		{"netflow9", [][]byte{flowtest.NetFlowV9Template(1)}, flowtest.NetFlowV9Data(1, flows[:20])},
		{"ipfix", [][]byte{flowtest.IPFIXTemplate(1)}, flowtest.IPFIXData(1, flows[:20])},
	} {
		b.Run(bc.name, func(b *testing.B) {
			cfg := flow.DefaultConfig()
			cfg.Exporters = []flow.ExporterConfig{{Address: expAddr, Interfaces: map[uint32]string{3: "pop1/isp1"}}}
			cfg.Prefixes = []netip.Prefix{netip.MustParsePrefix("198.51.100.0/24")}
			agg := flow.NewAggregator(cfg)
			d := flow.NewDecoder(flow.DecoderConfig{TemplateTTL: time.Hour, MaxExporters: 10})
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
			b.ReportAllocs()
			for b.Loop() {
				if err := d.Decode(exporter, bc.pkt, t0, emit); err != nil {
					b.Fatal(err)
				}
			}
			b.ReportMetric(float64(n)/b.Elapsed().Seconds(), "records/s")
			perOp := float64(n) / float64(b.N)
			allocs := testing.AllocsPerRun(100, func() { _ = d.Decode(exporter, bc.pkt, t0, emit) })
			b.ReportMetric(allocs/perOp, "allocs/record")
		})
	}
}
