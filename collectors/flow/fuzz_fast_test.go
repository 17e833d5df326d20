package flow_test

import (
	"encoding/binary"
	"errors"
	"net/netip"
	"os"
	"path/filepath"
	"slices"
	"testing"
	"time"

	"github.com/sdnoc/sdnoc/collectors/flow"
	"github.com/sdnoc/sdnoc/collectors/flow/flowtest"
)

// errClass reduces a Decode error to its sentinel.
func errClass(err error) error {
	for _, s := range []error{flow.ErrNoTemplate, flow.ErrTruncated, flow.ErrMalformed, flow.ErrUnknownVersion, flow.ErrTooManyExporters} {
		if errors.Is(err, s) {
			return s
		}
	}
	return err
}

// pathPair is a fast-path decoder and a goflow2 one, fed the same
// datagrams so that they hold the same templates and sampling rates.
type pathPair struct{ fast, ref *flow.Decoder }

func newPathPair() pathPair {
	cfg := flow.DecoderConfig{TemplateTTL: time.Minute, MaxExporters: 10}
	ref := cfg
	ref.Goflow2Only = true
	return pathPair{flow.NewDecoder(cfg), flow.NewDecoder(ref)}
}

// decode decodes p with both decoders and fails unless they emit the
// same records in the same order and fail alike.
func (pp pathPair) decode(t *testing.T, p []byte, now time.Time) []flow.Record {
	t.Helper()
	var got, want []flow.Record
	errGot := pp.fast.Decode(exporter, p, now, func(r *flow.Record) { got = append(got, *r) })
	errWant := pp.ref.Decode(exporter, p, now, func(r *flow.Record) { want = append(want, *r) })
	if errClass(errGot) != errClass(errWant) {
		t.Fatalf("datagram %x:\nfast path error: %v\n  goflow2 error: %v", p, errGot, errWant)
	}
	if !slices.Equal(got, want) {
		t.Fatalf("datagram %x:\nfast path: %d records %+v\n  goflow2: %d records %+v", p, len(got), got, len(want), want)
	}
	return got
}

// primers are the datagrams both decoders see before the fuzzed ones:
// the flowtest templates and a sampling rate, and the templates of the
// softflowd captures.
func primers(tb testing.TB) [][]byte {
	ps := [][]byte{flowtest.NetFlowV9Template(7), flowtest.NetFlowV9Sampling(7, 64), flowtest.IPFIXTemplate(9)}
	for _, f := range []string{"softflowd-1.1.0-v9-001.bin", "softflowd-1.1.0-ipfix-002.bin"} {
		b, err := os.ReadFile(filepath.Join("testdata/captures", f))
		if err != nil {
			tb.Fatal(err)
		}
		ps = append(ps, b)
	}
	return ps
}

// Builders of sFlow v5 datagrams with any sample and record, for the
// layouts flowtest does not write.
func u32s(vs ...uint32) []byte {
	var b []byte
	for _, v := range vs {
		b = binary.BigEndian.AppendUint32(b, v)
	}
	return b
}

func cat(parts ...[]byte) []byte { return slices.Concat(parts...) }

// tlv is an sFlow sample or record: format, length, body.
func tlv(format uint32, body []byte) []byte { return cat(u32s(format, uint32(len(body))), body) }

func sflowDatagram(agent6 bool, samples ...[]byte) []byte {
	agent := u32s(1, 0x7f000001)
	if agent6 {
		agent = cat(u32s(2), netip.IPv6Loopback().AsSlice())
	}
	return cat(u32s(5), agent, u32s(3, 1, 100, uint32(len(samples))), cat(samples...))
}

// flowSample is a compact flow sample (format 1) of 1 in 100 on ifIndex
// 3 > 7 holding records.
func flowSample(records ...[]byte) []byte {
	return tlv(1, cat(u32s(1, 3, 100, 100, 0, 3, 7, uint32(len(records))), cat(records...)))
}

// rawHeader is a raw packet header record of protocol (1: Ethernet, 11:
// IPv4).
func rawHeader(protocol, frame uint32, hdr []byte) []byte {
	hdr = cat(hdr, make([]byte, (4-len(hdr)%4)%4))
	return tlv(1, cat(u32s(protocol, frame, 0, uint32(len(hdr))), hdr))
}

var (
	ipv4Header = []byte{0x45, 0, 0, 40, 0, 0, 0, 0, 64, 6, 0, 0, 192, 0, 2, 1, 198, 51, 100, 7, 0x01, 0xbb, 0xc3, 0x50}
	extSwitch  = tlv(1001, u32s(10, 0, 20, 0))
	extRouter  = tlv(1002, u32s(1, 0xc0000201, 24, 24))
	extGateway = tlv(1003, cat(u32s(1, 0xc0000201, 64500, 64501, 64502, 1, 2, 2, 64501, 64502, 1, 0xfde80001, 100)))
	extACL     = tlv(1037, cat(u32s(1, 3), []byte("acl\x00"), u32s(1)))
)

func ipfixSet(id uint16, body []byte) []byte {
	return cat(binary.BigEndian.AppendUint16(binary.BigEndian.AppendUint16(nil, id), uint16(4+len(body))), body)
}

func u16s(vs ...uint16) []byte {
	var b []byte
	for _, v := range vs {
		b = binary.BigEndian.AppendUint16(b, v)
	}
	return b
}

// sflowExtended is an sFlow datagram whose flow sample holds extended
// switch, router and gateway records before its raw packet header.
func sflowExtended() []byte {
	eth := append([]byte{2, 0, 0, 0, 0, 1, 2, 0, 0, 0, 0, 2, 8, 0}, ipv4Header...)
	return sflowDatagram(false, flowSample(extSwitch, extRouter, extGateway, rawHeader(1, 1000, eth)))
}

// sflowMixed is an sFlow datagram from an IPv6 agent with flow samples
// of IPv4, Ethernet and IPv6 records, counter samples and a drop sample.
func sflowMixed() []byte {
	return sflowDatagram(true,
		flowSample(tlv(3, u32s(100, 17, 0xc0000201, 0xc6336401, 53, 4000, 0, 0))),
		flowSample(tlv(2, u32s(100, 0, 0, 0, 0, 0x800)), tlv(4, cat(u32s(100, 6), src6.AsSlice(), dst6.AsSlice(), u32s(1, 2, 0, 0)))),
		tlv(2, cat(u32s(1, 3, 2), tlv(1, make([]byte, 88)), tlv(2, make([]byte, 52)))),
		tlv(4, cat(u32s(1, 0, 3, 1), tlv(1000, nil))),
		tlv(5, cat(u32s(1, 0, 3, 0, 3, 7, 1, 1), rawHeader(11, 64, ipv4Header))),
	)
}

// fastPathSeeds are datagram pairs for FuzzFastPathMatchesGoflow2 and
// TestFastPathMatchesGoflow2: the decoder tests', the captures in order,
// and layouts that only the fuzzer would otherwise reach.
func fastPathSeeds(tb testing.TB) [][2][]byte {
	var seeds [][2][]byte
	for _, tt := range decodeTests {
		for i, p := range tt.pkts {
			next := []byte{}
			if i+1 < len(tt.pkts) {
				next = tt.pkts[i+1]
			}
			seeds = append(seeds, [2][]byte{p, next})
		}
	}
	files, err := filepath.Glob("testdata/captures/*.bin")
	if err != nil {
		tb.Fatal(err)
	}
	slices.Sort(files)
	for i, f := range files {
		b, err := os.ReadFile(f)
		if err != nil {
			tb.Fatal(err)
		}
		next := []byte{}
		if i+1 < len(files) {
			if next, err = os.ReadFile(files[i+1]); err != nil {
				tb.Fatal(err)
			}
		}
		seeds = append(seeds, [2][]byte{b, next})
	}
	ipv6 := flowtest.Flow{Src: src6, Dst: dst6, Proto: 17, SrcPort: 1, DstPort: 2, InIf: 1, Bytes: 10, Packets: 1}
	// IPFIX template 300: reduced-size counters, an enterprise field, the
	// sampling interval in the record; 301: a variable-length field
	// (goflow2 decodes its data sets); 302: an options template with two
	// scopes and the RFC 5477 interval and space.
	tmpl := ipfixMessage(9, cat(
		ipfixSet(2, cat(
			u16s(300, 7, 1, 4, 2, 2, 0x8000|1, 4), u32s(9),
			u16s(8, 4, 12, 4, 10, 2, 34, 2),
			u16s(301, 3, 8, 4, 0x8000|82, 0xffff), u32s(9), u16s(12, 4)),
		),
		ipfixSet(3, u16s(302, 4, 2, 149, 4, 141, 2, 305, 4, 306, 4)),
	))
	data := ipfixMessage(9, cat(
		ipfixSet(302, cat(u32s(9), u16s(1), u32s(1, 99))),
		ipfixSet(300, cat(u32s(1000), u16s(2), u32s(5, 0xc0000201, 0xc6336407), u16s(3, 10))),
		ipfixSet(301, cat(u32s(0xc0000201), []byte{3, 'a', 'b', 'c'}, u32s(0xc6336407, 0xc0000202), []byte{0xff, 0, 1, 'x', 0xc6, 0x33, 0x64, 8})),
	))
	// NetFlow v9 options template with two scopes and
	// FLOW_SAMPLER_RANDOM_INTERVAL, then its data and a flow.
	v9 := func(body []byte) []byte {
		return cat(u16s(9, 1), u32s(1, 2, 3, 7), body)
	}
	// An IPFIX message whose header length ends after its first set:
	// goflow2 reads no further, nor must the fast path.
	short := flowtest.IPFIXData(9, []flowtest.Flow{flow4, flow6})
	binary.BigEndian.PutUint16(short[2:], 16+binary.BigEndian.Uint16(short[18:]))
	// An empty data set of a known template before a full one.
	empty := ipfixMessage(9, cat(ipfixSet(flowtest.TemplateV4, nil), flowtest.IPFIXData(9, []flowtest.Flow{flow4})[16:]))
	// An extended gateway record whose community list leaves no room for
	// the local preference.
	gateway := sflowDatagram(false, flowSample(tlv(1003, u32s(1, 0xc0000201, 64500, 64501, 64502, 0, 1, 0xfde80001)), rawHeader(11, 64, ipv4Header)))
	v9opts := v9(cat(ipfixSet(1, u16s(310, 8, 4, 1, 4, 2, 2, 50, 2)), ipfixSet(310, cat(u32s(0), u16s(1, 512)))))
	seeds = append(seeds,
		[2][]byte{tmpl, data},
		[2][]byte{v9opts, flowtest.NetFlowV9Data(7, []flowtest.Flow{flow4, ipv6})},
		[2][]byte{flowtest.IPFIXSampling(9, 100), flowtest.IPFIXData(9, []flowtest.Flow{flow4, flow6})},
		[2][]byte{sflowExtended(), sflowMixed()},
		[2][]byte{short, empty},
		[2][]byte{gateway, sflowDatagram(false, flowSample(tlv(1003, u32s(2, 0, 0, 0, 0)), rawHeader(11, 64, ipv4Header)))},
		[2][]byte{sflowDatagram(false, flowSample(extACL, rawHeader(11, 1000, ipv4Header))), sflowDatagram(false, tlv(9, u32s(1)))},
	)
	return seeds
}

// TestFastPathMatchesGoflow2 runs the seeds of the fuzz target, and checks
// that the crafted ones decode to records, so that the comparison is not
// between two empty results.
func TestFastPathMatchesGoflow2(t *testing.T) {
	ps := primers(t)
	total := 0
	for _, s := range fastPathSeeds(t) {
		pp := newPathPair()
		for _, p := range ps {
			pp.decode(t, p, t0)
		}
		total += len(pp.decode(t, s[0], t0)) + len(pp.decode(t, s[1], t0))
	}
	if total < 100 {
		t.Fatalf("seeds decode to %d records; want more", total)
	}
}

// FuzzFastPathMatchesGoflow2 decodes two datagrams in turn, the first
// often a template one, with the fast path and with goflow2, both primed
// with the same templates (TTL one minute), the second datagram later
// seconds after the rest: they must emit the same records in the same
// order and fail alike (compared by sentinel: ErrTruncated,
// ErrMalformed, ErrNoTemplate...).
func FuzzFastPathMatchesGoflow2(f *testing.F) {
	for i, s := range fastPathSeeds(f) {
		f.Add(s[0], s[1], uint8(0))
		if i%4 == 0 {
			f.Add(s[0], s[1], uint8(61)) // the primers' templates expired
		}
	}
	ps := primers(f)
	f.Fuzz(func(t *testing.T, first, second []byte, later uint8) {
		pp := newPathPair()
		for _, p := range ps {
			pp.decode(t, p, t0)
		}
		pp.decode(t, first, t0)
		pp.decode(t, second, t0.Add(time.Duration(later)*time.Second))
	})
}

// TestFastPathMatchesGoflow2Mutations compares both paths on every seed
// datagram cut at every length and with each byte in turn decremented
// and incremented: the off-by-one lengths that random fuzzing rarely
// hits.
func TestFastPathMatchesGoflow2Mutations(t *testing.T) {
	pp := newPathPair()
	for _, p := range primers(t) {
		pp.decode(t, p, t0)
	}
	for _, s := range fastPathSeeds(t) {
		for _, p := range s {
			for n := range len(p) {
				pp.decode(t, p[:n], t0)
			}
			m := slices.Clone(p)
			for i := range m {
				for _, d := range []byte{1, 0xff} {
					m[i] += d
					pp.decode(t, m, t0)
					m[i] = p[i]
				}
			}
			pp.decode(t, p, t0) // teach the templates to the next datagram
		}
	}
}
