package main

import (
	"net/netip"
	"testing"
	"time"

	"github.com/sdnoc/sdnoc/collectors/flow"
)

// TestConfigAttributes checks that the configuration attributes what
// flowreplay sends (its sources, the captures' ifIndexes, the
// destinations it writes) and refuses the rest.
func TestConfigAttributes(t *testing.T) {
	cfg := config("127.0.0.1:0", 4, 11, 1)
	if err := cfg.Validate(); err != nil {
		t.Fatal(err)
	}
	agg := flow.NewAggregator(cfg)
	now := time.Unix(1700000000, 0)
	tests := []struct {
		exporter, dst string
		inIf          uint32
		want          string
	}{
		{"127.0.0.11", "198.18.5.7", 0, ""},
		{"127.0.0.14", "ff02::1:ffb5:65a7", pmacctUnknownIf, ""},
		{"127.0.0.15", "198.18.5.7", 0, flow.ReasonUnknownExporter},
		{"127.0.0.11", "198.18.5.7", 3, flow.ReasonUnknownInterface},
		{"127.0.0.11", "192.0.2.1", 0, flow.ReasonNotEdge},
	}
	for _, tt := range tests {
		r := flow.Record{Exporter: netip.MustParseAddr(tt.exporter), Dst: netip.MustParseAddr(tt.dst), InIf: tt.inIf, Bytes: 100, Packets: 1, Time: now}
		if got := agg.Add(&r); got != tt.want {
			t.Errorf("%s -> %s on ifIndex %d: %q, want %q", tt.exporter, tt.dst, tt.inIf, got, tt.want)
		}
	}
	top := agg.Top("r0/isp1", 1, now)
	if len(top) != 1 || top[0].Prefix != netip.MustParsePrefix("198.18.5.0/24") {
		t.Errorf("top of r0/isp1 = %v, want 198.18.5.0/24", top)
	}
}
