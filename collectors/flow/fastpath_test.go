package flow_test

import (
	"net/netip"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/sdnoc/sdnoc/collectors/flow"
	"github.com/sdnoc/sdnoc/collectors/flow/flowtest"
)

// hotDatagrams are data datagrams of every format as the fast path meets
// them once the templates are known: what TestFastPathZeroAllocs checks
// and BenchmarkDecodeAggregate measures.
func hotDatagrams() []struct {
	name  string
	setup [][]byte // datagrams that teach the templates and sampling
	pkt   []byte
} {
	flows4 := make([]flowtest.Flow, 0, 30)
	flows6 := make([]flowtest.Flow, 0, 20)
	compact := make([]flowtest.SFlowSample, 0, 8)
	expanded := make([]flowtest.SFlowSample, 0, 8)
	for i := range 30 {
		f := flow4
		f.Dst = netip.AddrFrom4([4]byte{198, 51, 100, byte(i)})
		f.InIf = 3
		flows4 = append(flows4, f)
		f6 := flow6
		f6.Dst = netip.AddrFrom16([16]byte{0x20, 0x01, 0x0d, 0xb8, 0, 1, 14: byte(i >> 8), 15: byte(i)})
		f6.InIf = 3
		if len(flows6) < cap(flows6) {
			flows6 = append(flows6, f6)
		}
		if len(compact) < cap(compact) {
			compact = append(compact, flowtest.SFlowSample{SamplingRate: 1000, InIf: 3, Src: src4, Dst: f.Dst, Proto: 6, SrcPort: 1, DstPort: 2, FrameLength: 1500})
			expanded = append(expanded, flowtest.SFlowSample{SamplingRate: 1000, InIf: 3, Src: src6, Dst: f6.Dst, Proto: 17, SrcPort: 1, DstPort: 2, FrameLength: 1500, Expanded: true})
		}
	}
	return []struct {
		name  string
		setup [][]byte
		pkt   []byte
	}{
		{"sflow5", nil, flowtest.SFlowV5(expAddr, compact)},
		{"sflow5-expanded-v6", nil, flowtest.SFlowV5(expAddr, expanded)},
		{"sflow5-extended-records", nil, sflowExtended()},
		{"sflow5-counters-drops", nil, sflowMixed()},
		{"netflow5", nil, flowtest.NetFlowV5(100, flows4)},
		{"netflow9", [][]byte{flowtest.NetFlowV9Template(1)}, flowtest.NetFlowV9Data(1, flows4[:20])},
		{"netflow9-v6-sampled", [][]byte{flowtest.NetFlowV9Template(1), flowtest.NetFlowV9Sampling(1, 64)}, flowtest.NetFlowV9Data(1, flows6)},
		{"ipfix", [][]byte{flowtest.IPFIXTemplate(1)}, flowtest.IPFIXData(1, flows4[:20])},
		{"ipfix-v6-sampled", [][]byte{flowtest.IPFIXTemplate(1), flowtest.IPFIXSampling(1, 2048)}, flowtest.IPFIXData(1, flows6)},
	}
}

// hotAggregator attributes expAddr's ifIndex 3 to a link and has the
// prefixes of hotDatagrams.
func hotAggregator() *flow.Aggregator {
	cfg := flow.DefaultConfig()
	cfg.Exporters = []flow.ExporterConfig{{Address: expAddr, Interfaces: map[uint32]string{3: "pop1/isp1"}}}
	cfg.Prefixes = []netip.Prefix{netip.MustParsePrefix("198.51.100.0/24"), netip.MustParsePrefix("2001:db8:1::/48")}
	return flow.NewAggregator(cfg)
}

// TestFastPathZeroAllocs decodes data datagrams of every format, and the
// captured ones that hold no template, into an aggregator: once the
// templates are known, a datagram costs no heap allocation, whatever its
// number of records.
func TestFastPathZeroAllocs(t *testing.T) {
	type tc struct {
		name  string
		setup [][]byte
		pkt   []byte
	}
	var cases []tc
	for _, h := range hotDatagrams() {
		cases = append(cases, tc(h))
	}
	files, err := filepath.Glob("testdata/captures/*.bin")
	if err != nil {
		t.Fatal(err)
	}
	slices.Sort(files)
	var before [][]byte // softflowd's earlier datagrams teach the templates
	for _, f := range files {
		b, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		if !hasTemplateSet(b) {
			cases = append(cases, tc{filepath.Base(f), slices.Clone(before), b})
		}
		if strings.HasPrefix(filepath.Base(f), "softflowd") {
			before = append(before, b)
		}
	}
	if captured := len(cases) - len(hotDatagrams()); captured < 5 {
		t.Fatalf("%d captured datagrams without templates; want 5 or more", captured)
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			d := flow.NewDecoder(flow.DecoderConfig{TemplateTTL: time.Hour, MaxExporters: 10})
			agg := hotAggregator()
			n := 0
			emit := func(r *flow.Record) {
				n++
				agg.Add(r)
			}
			for _, p := range c.setup {
				_ = d.Decode(exporter, p, t0, emit)
			}
			n = 0
			if err := d.Decode(exporter, c.pkt, t0, emit); err != nil {
				t.Fatal(err)
			}
			if n == 0 {
				t.Fatal("no record decoded")
			}
			if a := testing.AllocsPerRun(100, func() { _ = d.Decode(exporter, c.pkt, t0, emit) }); a != 0 {
				t.Fatalf("%.1f allocations per datagram of %d records; want 0", a, n)
			}
		})
	}
}

// hasTemplateSet tells whether a NetFlow v9 or IPFIX datagram holds a
// template or options template set, which goflow2 decodes.
func hasTemplateSet(b []byte) bool {
	if len(b) < 4 {
		return false
	}
	hdr := 0
	switch b[1] {
	case 9:
		hdr = 20
	case 10:
		hdr = 16
	default:
		return false
	}
	for p := b[hdr:]; len(p) >= 4; {
		id, l := int(p[0])<<8|int(p[1]), int(p[2])<<8|int(p[3])
		if id < 256 {
			return true
		}
		if l < 4 || l > len(p) {
			return false
		}
		p = p[l:]
	}
	return false
}
