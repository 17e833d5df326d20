package main

import (
	"net/netip"
	"testing"
	"time"

	"github.com/sdnoc/sdnoc/collectors/flow"
)

// TestBuildDecodes decodes what each exporter sends with sdnoc's decoder:
// every datagram must decode without error into the records the
// replayer counts, of the right format, toward distinct destinations in
// the prefixes flowsink configures.
func TestBuildDecodes(t *testing.T) {
	tests := []struct {
		format      string
		want        string
		setup, data int // records
		dsts        int // distinct destinations in the data
	}{
		{formatSFlow, flow.FormatSFlow5, 0, 8 * 16, 8 * 16},
		{formatNetFlow5, flow.FormatNetFlow5, 0, 30 * 16, 30 * 16},
		{formatNetFlow9, flow.FormatNetFlow9, 1, 30 * 16, 30 * 16},
		{formatIPFIX, flow.FormatIPFIX, 1, 30 * 16, 30 * 16},
	}
	for _, tt := range tests {
		t.Run(tt.format, func(t *testing.T) {
			r, err := build("../../collectors/flow/testdata/captures", tt.format, 16)
			if err != nil {
				t.Fatal(err)
			}
			d := flow.NewDecoder(flow.DecoderConfig{TemplateTTL: time.Minute, MaxExporters: 1})
			from := netip.MustParseAddrPort("127.0.0.11:40000")
			decode := func(dgs []datagram) (records int, dsts map[netip.Addr]bool) {
				dsts = make(map[netip.Addr]bool)
				for i, dg := range dgs {
					n := 0
					err := d.Decode(from, dg.b, time.Unix(1700000000, 0), func(r *flow.Record) {
						n++
						if r.Format != tt.want {
							t.Fatalf("datagram %d: format %s, want %s", i, r.Format, tt.want)
						}
						if !edge(r.Dst) {
							t.Fatalf("datagram %d: destination %s outside 198.18.0.0/15 and ff02::/16", i, r.Dst)
						}
						dsts[r.Dst] = true
					})
					if err != nil {
						t.Fatalf("datagram %d: %v", i, err)
					}
					if n != dg.records {
						t.Fatalf("datagram %d: decoded %d records, the replayer counts %d", i, n, dg.records)
					}
					records += n
				}
				return records, dsts
			}
			if n, _ := decode(r.setup); n != tt.setup {
				t.Errorf("setup: %d records, want %d", n, tt.setup)
			}
			n, dsts := decode(r.data)
			if n != tt.data || len(dsts) != tt.dsts {
				t.Errorf("data: %d records toward %d destinations, want %d toward %d", n, len(dsts), tt.data, tt.dsts)
			}
		})
	}
}

func edge(a netip.Addr) bool {
	return netip.MustParsePrefix("198.18.0.0/15").Contains(a) || netip.MustParsePrefix("ff02::/16").Contains(a)
}

func TestBuildUnknownFormat(t *testing.T) {
	if _, err := build("../../collectors/flow/testdata/captures", "netflow7", 1); err == nil {
		t.Fatal("build accepted format netflow7")
	}
}

func TestCheckRefusesNonLoopback(t *testing.T) {
	for _, target := range []string{"192.0.2.1:2055", "[::1]:2055", "127.0.0.1:0"} {
		o := options{target: netip.MustParseAddrPort(target), exporters: 4, firstHost: 11, duration: time.Second, distinct: 1, procs: 1}
		if err := o.check(); err == nil {
			t.Errorf("target %s accepted", target)
		}
	}
	o := options{target: netip.MustParseAddrPort("127.0.0.1:2055"), exporters: 4, firstHost: 11, duration: time.Second, distinct: 1, procs: 1}
	if err := o.check(); err != nil {
		t.Errorf("target 127.0.0.1:2055 refused: %v", err)
	}
}
