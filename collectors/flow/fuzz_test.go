package flow_test

import (
	"testing"
	"time"

	"github.com/sdnoc/sdnoc/collectors/flow"
	"github.com/sdnoc/sdnoc/collectors/flow/flowtest"
)

// FuzzDecode feeds any datagram to a decoder that already knows the
// flowtest templates: it must never panic nor hang, and the records it
// emits must have a destination and a sampling rate.
func FuzzDecode(f *testing.F) {
	for _, tt := range decodeTests {
		for _, p := range tt.pkts {
			f.Add(p)
		}
	}
	f.Add(flowtest.NetFlowV9Sampling(1, 100))
	f.Fuzz(func(t *testing.T, b []byte) {
		d := flow.NewDecoder(flow.DecoderConfig{TemplateTTL: time.Minute, MaxExporters: 10})
		for _, p := range [][]byte{flowtest.NetFlowV9Template(7), flowtest.IPFIXTemplate(9)} {
			if err := d.Decode(exporter, p, t0, func(*flow.Record) {}); err != nil {
				t.Fatal(err)
			}
		}
		n := 0
		err := d.Decode(exporter, b, t0, func(r *flow.Record) {
			n++
			if r.SamplingRate == 0 || !r.Dst.IsValid() {
				t.Fatalf("record %+v", r)
			}
		})
		if err == nil && len(b) < 4 {
			t.Fatalf("%d bytes decoded without error", len(b))
		}
	})
}
