package flow_test

import (
	"net/netip"
	"os"
	"testing"
	"time"

	"github.com/sdnoc/sdnoc/collectors/flow"
)

// TestRealCaptures decodes datagrams captured from real exporters: pmacct
// 1.7.7's pmacctd in a network namespace, its nfprobe plugin (NetFlow v9,
// templates and data in one datagram) and sfprobe plugin (sFlow v5,
// sampling_rate 4), exporting neighbour-discovery traffic seen on a veth.
func TestRealCaptures(t *testing.T) {
	tests := []struct {
		file       string
		format     string
		records    int
		sampling   uint32
		firstDst   netip.Addr
		firstBytes uint64
		firstPkts  uint64
		firstProto uint8
	}{
		{"pmacct-1.7.7-nfprobe-v9.bin", flow.FormatNetFlow9, 2, 1, netip.MustParseAddr("ff02::2"), 112, 2, 58},
		{"pmacct-1.7.7-sfprobe-1.bin", flow.FormatSFlow5, 1, 4, netip.MustParseAddr("ff02::1:ffb5:65a7"), 360, 4, 58},
		{"pmacct-1.7.7-sfprobe-2.bin", flow.FormatSFlow5, 2, 4, netip.MustParseAddr("ff02::2"), 296, 4, 58},
	}
	for _, tt := range tests {
		t.Run(tt.file, func(t *testing.T) {
			b, err := os.ReadFile("testdata/captures/" + tt.file)
			if err != nil {
				t.Fatal(err)
			}
			d := flow.NewDecoder(flow.DecoderConfig{TemplateTTL: time.Minute, MaxExporters: 10})
			var recs []flow.Record
			err = d.Decode(netip.MustParseAddrPort("198.18.51.2:40000"), b, time.Unix(0, 0), func(r *flow.Record) { recs = append(recs, *r) })
			if err != nil {
				t.Fatal(err)
			}
			if len(recs) != tt.records {
				t.Fatalf("%d records, want %d: %+v", len(recs), tt.records, recs)
			}
			r := recs[0]
			if r.Format != tt.format || r.SamplingRate != tt.sampling || r.Dst != tt.firstDst || r.Bytes != tt.firstBytes ||
				r.Packets != tt.firstPkts || r.Proto != tt.firstProto {
				t.Fatalf("first record %+v; want %s, 1:%d, dst %s, %d bytes, %d packets, proto %d",
					r, tt.format, tt.sampling, tt.firstDst, tt.firstBytes, tt.firstPkts, tt.firstProto)
			}
		})
	}
}
