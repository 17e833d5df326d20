package flowtest_test

import (
	"bytes"
	"net/netip"
	"testing"

	"github.com/netsampler/goflow2/v2/decoders/netflow"
	"github.com/netsampler/goflow2/v2/decoders/netflowlegacy"
	"github.com/netsampler/goflow2/v2/decoders/sflow"

	"github.com/sdnoc/sdnoc/collectors/flow/flowtest"
)

var (
	src4 = netip.MustParseAddr("192.0.2.10")
	dst4 = netip.MustParseAddr("198.51.100.20")
	src6 = netip.MustParseAddr("2001:db8::10")
	dst6 = netip.MustParseAddr("2001:db8:1::20")
	f4   = flowtest.Flow{Src: src4, Dst: dst4, Proto: 6, SrcPort: 443, DstPort: 51000, InIf: 3, OutIf: 7, Bytes: 1500, Packets: 3}
	f6   = flowtest.Flow{Src: src6, Dst: dst6, Proto: 17, SrcPort: 53, DstPort: 40000, InIf: 4, OutIf: 8, Bytes: 800, Packets: 2}
)

// The round trips below decode with goflow2 directly, so that they check
// the encoders against a decoder that is not ours.

func TestSFlowV5(t *testing.T) {
	pkt := flowtest.SFlowV5(netip.MustParseAddr("127.0.0.1"), []flowtest.SFlowSample{
		{SamplingRate: 1000, InIf: 3, OutIf: 7, Src: src4, Dst: dst4, Proto: 6, SrcPort: 443, DstPort: 51000, FrameLength: 1518},
		{SamplingRate: 10, InIf: 4, OutIf: 8, Src: src6, Dst: dst6, Proto: 17, FrameLength: 200, Expanded: true},
	})
	var p sflow.Packet
	if err := sflow.DecodeMessageVersion(bytes.NewBuffer(pkt), &p); err != nil {
		t.Fatal(err)
	}
	if len(p.Samples) != 2 {
		t.Fatalf("%d samples, want 2", len(p.Samples))
	}
	fs, ok := p.Samples[0].(sflow.FlowSample)
	if !ok || fs.SamplingRate != 1000 || fs.Input != 3 || fs.Output != 7 || len(fs.Records) != 1 {
		t.Fatalf("sample 0: %+v", p.Samples[0])
	}
	h, ok := fs.Records[0].Data.(sflow.SampledHeader)
	if !ok || h.FrameLength != 1518 || h.Protocol != 1 || !bytes.Equal(h.HeaderData[14+16:14+20], dst4.AsSlice()) {
		t.Fatalf("sample 0 record: %+v", fs.Records[0].Data)
	}
	es, ok := p.Samples[1].(sflow.ExpandedFlowSample)
	if !ok || es.SamplingRate != 10 || es.InputIfValue != 4 || es.OutputIfValue != 8 {
		t.Fatalf("sample 1: %+v", p.Samples[1])
	}
}

func TestNetFlowV5(t *testing.T) {
	var p netflowlegacy.PacketNetFlowV5
	if err := netflowlegacy.DecodeMessageVersion(bytes.NewBuffer(flowtest.NetFlowV5(100, []flowtest.Flow{f4})), &p); err != nil {
		t.Fatal(err)
	}
	r := p.Records[0]
	if p.SamplingInterval&0x3fff != 100 || len(p.Records) != 1 || r.DOctets != 1500 || r.DPkts != 3 || r.Input != 3 ||
		r.Output != 7 || r.DstPort != 51000 || uint32(r.DstAddr) != 198<<24|51<<16|100<<8|20 {
		t.Fatalf("decoded %+v", p)
	}
}

// dataValues returns the data records' fields of the data sets.
func dataValues(sets []any) [][]netflow.DataField {
	var out [][]netflow.DataField
	for _, s := range sets {
		if ds, ok := s.(netflow.DataFlowSet); ok {
			for _, r := range ds.Records {
				out = append(out, r.Values)
			}
		}
	}
	return out
}

func optionValues(sets []any) []netflow.DataField {
	for _, s := range sets {
		if os, ok := s.(netflow.OptionsDataFlowSet); ok && len(os.Records) > 0 {
			return os.Records[0].OptionsValues
		}
	}
	return nil
}

func TestNetFlowV9(t *testing.T) {
	ts := netflow.CreateTemplateSystem()
	var sets []any
	for _, pkt := range [][]byte{flowtest.NetFlowV9Template(7), flowtest.NetFlowV9Sampling(7, 64), flowtest.NetFlowV9Data(7, []flowtest.Flow{f4, f6})} {
		var v9 netflow.NFv9Packet
		if err := netflow.DecodeMessageVersion(bytes.NewBuffer(pkt), ts, &v9, nil); err != nil {
			t.Fatal(err)
		}
		if v9.SourceId != 7 {
			t.Fatalf("source ID %d", v9.SourceId)
		}
		sets = append(sets, v9.FlowSets...)
	}
	checkFlows(t, dataValues(sets))
	if o := optionValues(sets); len(o) != 1 || o[0].Type != 34 || !bytes.Equal(o[0].Value.([]byte), []byte{0, 0, 0, 64}) {
		t.Fatalf("options: %+v", o)
	}
}

func TestIPFIX(t *testing.T) {
	ts := netflow.CreateTemplateSystem()
	var sets []any
	for _, pkt := range [][]byte{flowtest.IPFIXTemplate(9), flowtest.IPFIXSampling(9, 2048), flowtest.IPFIXData(9, []flowtest.Flow{f4, f6})} {
		var ipfix netflow.IPFIXPacket
		if err := netflow.DecodeMessageVersion(bytes.NewBuffer(pkt), ts, nil, &ipfix); err != nil {
			t.Fatal(err)
		}
		if ipfix.ObservationDomainId != 9 || int(ipfix.Length) != len(pkt) {
			t.Fatalf("header %+v for %d bytes", ipfix, len(pkt))
		}
		sets = append(sets, ipfix.FlowSets...)
	}
	checkFlows(t, dataValues(sets))
	if o := optionValues(sets); len(o) != 1 || o[0].Type != 305 || !bytes.Equal(o[0].Value.([]byte), []byte{0, 0, 8, 0}) {
		t.Fatalf("options: %+v", o)
	}
}

// checkFlows checks the decoded records of f4 and f6: destination,
// bytes and input interface.
func checkFlows(t *testing.T, recs [][]netflow.DataField) {
	t.Helper()
	if len(recs) != 2 {
		t.Fatalf("%d data records, want 2", len(recs))
	}
	for i, f := range []flowtest.Flow{f4, f6} {
		got := map[uint16][]byte{}
		for _, v := range recs[i] {
			got[v.Type] = v.Value.([]byte)
		}
		dst := got[12]
		if f.Dst.Is6() {
			dst = got[28]
		}
		if !bytes.Equal(dst, f.Dst.AsSlice()) || !bytes.Equal(got[1], []byte{0, 0, 0, 0, 0, 0, byte(f.Bytes >> 8), byte(f.Bytes)}) ||
			!bytes.Equal(got[10], []byte{0, 0, 0, byte(f.InIf)}) {
			t.Errorf("record %d: %v", i, got)
		}
	}
}
