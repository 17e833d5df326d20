package flow_test

import (
	"errors"
	"net/netip"
	"sync"
	"testing"
	"time"

	"github.com/sdnoc/sdnoc/collectors/flow"
	"github.com/sdnoc/sdnoc/collectors/flow/flowtest"
)

var (
	t0       = time.Date(2026, 11, 23, 12, 0, 0, 0, time.UTC)
	exporter = netip.MustParseAddrPort("127.0.0.1:50000")
	expAddr  = exporter.Addr()
	src4     = netip.MustParseAddr("192.0.2.10")
	dst4     = netip.MustParseAddr("198.51.100.20")
	src6     = netip.MustParseAddr("2001:db8::10")
	dst6     = netip.MustParseAddr("2001:db8:1::20")
)

func newDecoder() *flow.Decoder {
	return flow.NewDecoder(flow.DecoderConfig{TemplateTTL: 30 * time.Minute, MaxExporters: 10})
}

// decodeAll decodes each datagram in turn and returns the records (copied)
// and the last error.
func decodeAll(d *flow.Decoder, now time.Time, pkts ...[]byte) ([]flow.Record, error) {
	var recs []flow.Record
	var err error
	for _, p := range pkts {
		err = d.Decode(exporter, p, now, func(r *flow.Record) { recs = append(recs, *r) })
	}
	return recs, err
}

var (
	flow4 = flowtest.Flow{Src: src4, Dst: dst4, Proto: 6, SrcPort: 443, DstPort: 51000, InIf: 3, OutIf: 7, Bytes: 1500, Packets: 3}
	flow6 = flowtest.Flow{Src: src6, Dst: dst6, Proto: 17, SrcPort: 53, DstPort: 40000, InIf: 4, OutIf: 8, Bytes: 800, Packets: 2}
)

func want(format string, f flowtest.Flow, domain, rate uint32) flow.Record {
	return flow.Record{
		Exporter: expAddr, ObservationDomain: domain, Format: format,
		InIf: f.InIf, OutIf: f.OutIf, Src: f.Src, Dst: f.Dst, Proto: f.Proto,
		SrcPort: f.SrcPort, DstPort: f.DstPort,
		Bytes: f.Bytes * uint64(rate), Packets: f.Packets * uint64(rate),
		SamplingRate: rate, Time: t0,
	}
}

var decodeTests = []struct {
	name string
	pkts [][]byte
	want []flow.Record
}{
	{
		name: "sflow v4 and v6 samples",
		pkts: [][]byte{flowtest.SFlowV5(expAddr, []flowtest.SFlowSample{
			{SamplingRate: 1000, InIf: 3, OutIf: 7, Src: src4, Dst: dst4, Proto: 6, SrcPort: 443, DstPort: 51000, FrameLength: 1518},
			{SamplingRate: 512, InIf: 4, OutIf: 8, Src: src6, Dst: dst6, Proto: 17, SrcPort: 53, DstPort: 40000, FrameLength: 200, Expanded: true},
		})},
		want: []flow.Record{
			want(flow.FormatSFlow5, flowtest.Flow{Src: src4, Dst: dst4, Proto: 6, SrcPort: 443, DstPort: 51000, InIf: 3, OutIf: 7, Bytes: 1518, Packets: 1}, 0, 1000),
			want(flow.FormatSFlow5, flowtest.Flow{Src: src6, Dst: dst6, Proto: 17, SrcPort: 53, DstPort: 40000, InIf: 4, OutIf: 8, Bytes: 200, Packets: 1}, 0, 512),
		},
	},
	{
		name: "netflow v5 sampled 1 in 100",
		pkts: [][]byte{flowtest.NetFlowV5(100, []flowtest.Flow{flow4, flow4})},
		want: []flow.Record{want(flow.FormatNetFlow5, flow4, 0, 100), want(flow.FormatNetFlow5, flow4, 0, 100)},
	},
	{
		name: "netflow v5 unsampled",
		pkts: [][]byte{flowtest.NetFlowV5(0, []flowtest.Flow{flow4})},
		want: []flow.Record{want(flow.FormatNetFlow5, flow4, 0, 1)},
	},
	{
		name: "netflow v9 without sampling options",
		pkts: [][]byte{flowtest.NetFlowV9Template(7), flowtest.NetFlowV9Data(7, []flowtest.Flow{flow4, flow6})},
		want: []flow.Record{want(flow.FormatNetFlow9, flow4, 7, 1), want(flow.FormatNetFlow9, flow6, 7, 1)},
	},
	{
		name: "netflow v9 sampled 1 in 64",
		pkts: [][]byte{flowtest.NetFlowV9Template(7), flowtest.NetFlowV9Sampling(7, 64), flowtest.NetFlowV9Data(7, []flowtest.Flow{flow6})},
		want: []flow.Record{want(flow.FormatNetFlow9, flow6, 7, 64)},
	},
	{
		name: "ipfix sampled 1 in 2048",
		pkts: [][]byte{flowtest.IPFIXTemplate(9), flowtest.IPFIXSampling(9, 2048), flowtest.IPFIXData(9, []flowtest.Flow{flow4, flow6})},
		want: []flow.Record{want(flow.FormatIPFIX, flow4, 9, 2048), want(flow.FormatIPFIX, flow6, 9, 2048)},
	},
	{
		name: "ipfix sampling of another domain does not apply",
		pkts: [][]byte{flowtest.IPFIXTemplate(9), flowtest.IPFIXTemplate(10), flowtest.IPFIXSampling(10, 2048), flowtest.IPFIXData(9, []flowtest.Flow{flow4})},
		want: []flow.Record{want(flow.FormatIPFIX, flow4, 9, 1)},
	},
}

func TestDecode(t *testing.T) {
	for _, tt := range decodeTests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := decodeAll(newDecoder(), t0, tt.pkts...)
			if err != nil {
				t.Fatalf("Decode: %v", err)
			}
			if len(got) != len(tt.want) {
				t.Fatalf("got %d records, want %d: %+v", len(got), len(tt.want), got)
			}
			for i := range got {
				if got[i] != tt.want[i] {
					t.Errorf("record %d:\n got %+v\nwant %+v", i, got[i], tt.want[i])
				}
			}
		})
	}
}

func TestDecodeSamplingOverride(t *testing.T) {
	d := flow.NewDecoder(flow.DecoderConfig{
		TemplateTTL: time.Minute, MaxExporters: 10,
		SamplingRates: map[netip.Addr]uint32{expAddr: 10},
	})
	got, err := decodeAll(d, t0, flowtest.NetFlowV5(100, []flowtest.Flow{flow4}),
		flowtest.IPFIXTemplate(1), flowtest.IPFIXSampling(1, 2048), flowtest.IPFIXData(1, []flowtest.Flow{flow4}))
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != 2 || got[0].SamplingRate != 10 || got[0].Bytes != 15000 || got[1].SamplingRate != 10 || got[1].Packets != 30 {
		t.Fatalf("override not applied: %+v", got)
	}
}

// TestDecodeDataBeforeTemplate: data sets of an unknown template are
// ErrNoTemplate and emit nothing; once the template comes, they decode.
func TestDecodeDataBeforeTemplate(t *testing.T) {
	for _, tc := range []struct {
		name           string
		template, data []byte
	}{
		{"netflow9", flowtest.NetFlowV9Template(1), flowtest.NetFlowV9Data(1, []flowtest.Flow{flow4})},
		{"ipfix", flowtest.IPFIXTemplate(1), flowtest.IPFIXData(1, []flowtest.Flow{flow4})},
	} {
		t.Run(tc.name, func(t *testing.T) {
			d := newDecoder()
			got, err := decodeAll(d, t0, tc.data)
			if !errors.Is(err, flow.ErrNoTemplate) || len(got) != 0 {
				t.Fatalf("data before template: %d records, %v; want 0, ErrNoTemplate", len(got), err)
			}
			got, err = decodeAll(d, t0, tc.template, tc.data)
			if err != nil || len(got) != 1 || got[0].Dst != dst4 {
				t.Fatalf("after template: %+v, %v; want one record", got, err)
			}
		})
	}
}

func TestDecodeTemplateExpiry(t *testing.T) {
	d := flow.NewDecoder(flow.DecoderConfig{TemplateTTL: time.Minute, MaxExporters: 10})
	data := flowtest.IPFIXData(1, []flowtest.Flow{flow4})
	if _, err := decodeAll(d, t0, flowtest.IPFIXTemplate(1)); err != nil {
		t.Fatal(err)
	}
	if got, err := decodeAll(d, t0.Add(time.Minute), data); err != nil || len(got) != 1 {
		t.Fatalf("at the TTL: %d records, %v; want 1", len(got), err)
	}
	if got, err := decodeAll(d, t0.Add(time.Minute+time.Second), data); !errors.Is(err, flow.ErrNoTemplate) || len(got) != 0 {
		t.Fatalf("after the TTL: %d records, %v; want ErrNoTemplate", len(got), err)
	}
}

// TestDecodeTemplateWithdrawal: an IPFIX template with no field withdraws
// the ID (RFC 7011 §8.1), and a template whose records take no byte is
// refused rather than hanging goflow2's decoder.
func TestDecodeTemplateWithdrawal(t *testing.T) {
	d := newDecoder()
	if _, err := decodeAll(d, t0, flowtest.IPFIXTemplate(1)); err != nil {
		t.Fatal(err)
	}
	withdraw := ipfixMessage(1, []byte{0, 2, 0, 8, 1, 0, 0, 0}) // set 2: template 256, 0 fields
	if _, err := decodeAll(d, t0, withdraw); err != nil {
		t.Fatalf("withdrawal: %v", err)
	}
	if _, err := decodeAll(d, t0, flowtest.IPFIXData(1, []flowtest.Flow{flow4})); !errors.Is(err, flow.ErrNoTemplate) {
		t.Fatalf("data after withdrawal: %v; want ErrNoTemplate", err)
	}
	empty := ipfixMessage(1, []byte{0, 2, 0, 12, 1, 0, 0, 1, 0, 1, 0, 0}) // one field of length 0
	if _, err := decodeAll(d, t0, empty); !errors.Is(err, flow.ErrMalformed) {
		t.Fatalf("zero-length template: %v; want ErrMalformed", err)
	}
	done := make(chan error, 1)
	go func() {
		_, err := decodeAll(d, t0, ipfixMessage(1, []byte{1, 0, 0, 8, 1, 2, 3, 4}))
		done <- err
	}()
	select {
	case err := <-done:
		if !errors.Is(err, flow.ErrNoTemplate) {
			t.Fatalf("data of the refused template: %v; want ErrNoTemplate", err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("decoding data of a zero-length template hangs")
	}
}

// ipfixMessage wraps sets in an IPFIX header for domain.
func ipfixMessage(domain uint32, sets []byte) []byte {
	n := 16 + len(sets)
	h := []byte{0, 10, byte(n >> 8), byte(n), 0, 0, 0, 1, 0, 0, 0, 1, byte(domain >> 24), byte(domain >> 16), byte(domain >> 8), byte(domain)}
	return append(h, sets...)
}

func TestDecodeErrors(t *testing.T) {
	sf := flowtest.SFlowV5(expAddr, []flowtest.SFlowSample{{SamplingRate: 1, Src: src4, Dst: dst4, FrameLength: 100}})
	nf5 := flowtest.NetFlowV5(1, []flowtest.Flow{flow4})
	// An expanded flow sample (format 3) claiming 2^32-1 records.
	huge := append([]byte(nil), flowtest.SFlowV5(expAddr, []flowtest.SFlowSample{{SamplingRate: 1, Src: src4, Dst: dst4, FrameLength: 100, Expanded: true}})...)
	copy(huge[28+8+40:], []byte{0xff, 0xff, 0xff, 0xff})
	for _, tt := range []struct {
		name string
		in   []byte
		want error
	}{
		{"empty", nil, flow.ErrTruncated},
		{"three bytes", []byte{0, 0, 0}, flow.ErrTruncated},
		{"dns query", []byte{0x12, 0x34, 0x01, 0x00, 0, 1, 0, 0, 0, 0, 0, 0}, flow.ErrUnknownVersion},
		{"netflow v1", []byte{0, 1, 0, 0, 0, 0, 0, 0}, flow.ErrUnknownVersion},
		{"sflow v4", []byte{0, 0, 0, 4, 0, 0, 0, 1}, flow.ErrUnknownVersion},
		{"sflow header cut", sf[:20], flow.ErrTruncated},
		{"netflow v5 records cut", nf5[:len(nf5)-1], flow.ErrTruncated},
		{"netflow v5 count 65535", append([]byte{0, 5, 0xff, 0xff}, nf5[4:]...), flow.ErrTruncated},
		{"sflow bad agent type", append([]byte{0, 0, 0, 5, 0, 0, 0, 7}, sf[8:]...), flow.ErrMalformed},
		{"sflow expanded sample with 2^32-1 records", huge, flow.ErrMalformed},
		{"netflow v9 header cut", flowtest.NetFlowV9Template(1)[:10], flow.ErrTruncated},
		{"ipfix set cut", flowtest.IPFIXTemplate(1)[:30], flow.ErrTruncated},
	} {
		t.Run(tt.name, func(t *testing.T) {
			got, err := decodeAll(newDecoder(), t0, tt.in)
			if !errors.Is(err, tt.want) {
				t.Fatalf("Decode = %d records, %v; want %v", len(got), err, tt.want)
			}
		})
	}
}

func TestDecodeMaxExporters(t *testing.T) {
	d := flow.NewDecoder(flow.DecoderConfig{TemplateTTL: time.Minute, MaxExporters: 2})
	pkt := flowtest.NetFlowV5(1, []flowtest.Flow{flow4})
	send := func(addr string, now time.Time) error {
		return d.Decode(netip.MustParseAddrPort(addr), pkt, now, func(*flow.Record) {})
	}
	for _, a := range []string{"127.0.0.1:1", "127.0.0.2:1"} {
		if err := send(a, t0); err != nil {
			t.Fatal(err)
		}
	}
	if err := send("127.0.0.3:1", t0); !errors.Is(err, flow.ErrTooManyExporters) {
		t.Fatalf("third exporter: %v; want ErrTooManyExporters", err)
	}
	if err := send("127.0.0.1:2", t0); err != nil {
		t.Fatalf("known exporter from another port: %v", err)
	}
	// Once the others have been silent for a TTL, they make room.
	if err := send("127.0.0.3:1", t0.Add(2*time.Minute)); err != nil {
		t.Fatalf("after the others expired: %v", err)
	}
	if n := d.Exporters(); n != 1 {
		t.Fatalf("exporters = %d, want 1", n)
	}
}

// TestDecodeConcurrent decodes from several goroutines and exporters at
// once (run with -race): each exporter's templates stay its own.
func TestDecodeConcurrent(t *testing.T) {
	d := newDecoder()
	var wg sync.WaitGroup
	counts := make([]int, 4)
	for g := range 4 {
		from := netip.AddrPortFrom(netip.AddrFrom4([4]byte{127, 0, 0, byte(1 + g%2)}), 1000)
		wg.Go(func() {
			for range 200 {
				for _, p := range [][]byte{flowtest.IPFIXTemplate(uint32(g)), flowtest.IPFIXData(uint32(g), []flowtest.Flow{flow4, flow6})} {
					if err := d.Decode(from, p, t0, func(r *flow.Record) {
						if r.ObservationDomain == uint32(g) {
							counts[g]++
						}
					}); err != nil {
						t.Error(err)
						return
					}
				}
			}
		})
	}
	wg.Wait()
	for g, n := range counts {
		if n != 400 {
			t.Errorf("goroutine %d: %d records, want 400", g, n)
		}
	}
}
