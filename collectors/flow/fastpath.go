package flow

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"math"
	"net/netip"

	"github.com/netsampler/goflow2/v2/decoders/netflow"
	"github.com/netsampler/goflow2/v2/decoders/sflow"
)

// The fast path decodes the common layouts straight from the datagram
// into the exporter's reused Record, without goflow2's per-record
// allocations (a []DataField and an interface box per field for
// NetFlow v9/IPFIX, a bytes.Buffer and a []FlowRecord per sFlow sample).
// It reads each layout exactly as goflow2 does, quirks included, so that
// both emit the same records and fail on the same datagrams; what it does
// not handle goes to goflow2:
//
//   - sFlow: a datagram holding an extended ACL or function record
//     (sflow_drops.txt, formats 1037 and 1038, whose strings goflow2
//     allocates) is decoded by goflow2 whole;
//   - NetFlow v5: nothing, the layout is fixed;
//   - NetFlow v9/IPFIX: template and options template sets, data sets of
//     templates with variable-length fields, and sets whose header is
//     cut or has an invalid length or ID are decoded by goflow2, one set
//     at a time, between the data sets of the fast path, which shares
//     the template cache: templates change rarely, data sets are the
//     traffic. A datagram whose header is cut goes to goflow2 whole.

// errFallback tells that the fast path leaves a datagram to goflow2.
var errFallback = errors.New("layout left to goflow2")

func be16(b []byte) uint16 { return binary.BigEndian.Uint16(b) }
func be32(b []byte) uint32 { return binary.BigEndian.Uint32(b) }

// fastSFlow decodes an sFlow v5 datagram. goflow2 decodes a datagram
// whole before the caller emits anything, so that a datagram that fails
// emits nothing: the fast path checks the datagram in a first walk and
// emits in a second, both over the bytes.
func (e *exporterState) fastSFlow(b []byte, override uint32, emit func(*Record)) error {
	if err := checkSFlow(b); err != nil {
		return err
	}
	if err := walkSFlow(b, nil, override, nil); err != nil {
		if errors.Is(err, errFallback) {
			return e.decodeSFlow(b, override, emit)
		}
		return err
	}
	return walkSFlow(b, &e.rec, override, emit)
}

// walkSFlow reads an sFlow v5 datagram as goflow2 does
// (decoders/sflow/sflow.go: DecodeMessage, DecodeSample, DecodeFlowRecord,
// DecodeCounterRecord): the same bounds, the same silent stops when a
// sample or record length overruns, the same errors. With emit nil it
// only checks; otherwise it fills r and emits the flow samples' packets.
func walkSFlow(b []byte, r *Record, override uint32, emit func(*Record)) error {
	if len(b) < 8 {
		return fmt.Errorf("sflow header: %w", ErrTruncated)
	}
	off := 8
	switch be32(b[4:]) {
	case 1:
		off += 4
	case 2:
		off += 16
	default:
		return fmt.Errorf("sflow agent address type %d: %w", be32(b[4:]), ErrMalformed)
	}
	if len(b) < off+16 {
		return fmt.Errorf("sflow header: %w", ErrTruncated)
	}
	subAgent, n := be32(b[off:]), be32(b[off+12:])
	off += 16
	if n > 1000 {
		return fmt.Errorf("sflow datagram with %d samples: %w", n, ErrMalformed)
	}
	if emit != nil {
		r.ObservationDomain = subAgent
	}
	for i := uint32(0); i < n && len(b)-off >= 8; i++ {
		format, length := be32(b[off:]), be32(b[off+4:])
		off += 8
		if uint64(length) > uint64(len(b)-off) {
			break
		}
		s := b[off : off+int(length)]
		off += int(length)
		if err := walkSample(format, s, r, override, emit); err != nil {
			return fmt.Errorf("sflow sample %d: %w", i, err)
		}
	}
	return nil
}

// walkSample reads one sFlow sample of format from s, its body.
func walkSample(format uint32, s []byte, r *Record, override uint32, emit func(*Record)) error {
	p := 4 // sequence number
	switch format {
	case sflow.SAMPLE_FORMAT_FLOW, sflow.SAMPLE_FORMAT_COUNTER:
		p += 4 // source ID
	case sflow.SAMPLE_FORMAT_EXPANDED_FLOW, sflow.SAMPLE_FORMAT_EXPANDED_COUNTER, sflow.SAMPLE_FORMAT_DROP:
		p += 8
	default:
		if len(s) < 4 {
			return ErrTruncated
		}
		return fmt.Errorf("format %d: %w", format, ErrMalformed)
	}
	if len(s) < p {
		return ErrTruncated
	}
	var count, in, out, announced uint32
	flow, counter := false, false
	switch format {
	case sflow.SAMPLE_FORMAT_FLOW:
		if len(s) < p+24 {
			return ErrTruncated
		}
		announced, count = be32(s[p:]), be32(s[p+20:])
		if input := be32(s[p+12:]); input>>30 == 0 {
			in = input
		}
		if output := be32(s[p+16:]); output>>30 == 0 {
			out = output
		}
		p += 24
		flow = true
	case sflow.SAMPLE_FORMAT_EXPANDED_FLOW:
		if len(s) < p+32 {
			return ErrTruncated
		}
		announced, count = be32(s[p:]), be32(s[p+28:])
		if be32(s[p+12:]) == 0 {
			in = be32(s[p+16:])
		}
		if be32(s[p+20:]) == 0 {
			out = be32(s[p+24:])
		}
		p += 32
		flow = true
	case sflow.SAMPLE_FORMAT_COUNTER, sflow.SAMPLE_FORMAT_EXPANDED_COUNTER:
		if len(s) < p+4 {
			return ErrTruncated
		}
		count = be32(s[p:])
		p += 4
		counter = true
	case sflow.SAMPLE_FORMAT_DROP:
		if len(s) < p+20 {
			return ErrTruncated
		}
		count = be32(s[p+16:])
		p += 20
	}
	// goflow2 bounds the record count of every format but the expanded
	// flow sample, which checkSFlow bounds.
	if count > 1000 && format != sflow.SAMPLE_FORMAT_EXPANDED_FLOW {
		return fmt.Errorf("%d records: %w", count, ErrMalformed)
	}
	recs := s[p:]
	found := false
	for i := uint32(0); i < count && len(recs) >= 8; i++ {
		df, l := be32(recs), be32(recs[4:])
		recs = recs[8:]
		if uint64(l) > uint64(len(recs)) {
			break
		}
		rec := recs[:l]
		recs = recs[l:]
		if emit != nil {
			// Checked by the first walk.
			if flow && !found {
				found = sampledRecord(df, rec, r)
			}
			continue
		}
		var err error
		if counter {
			err = checkCounterRecord(df, rec)
		} else {
			err = checkFlowRecord(df, rec)
		}
		if err != nil {
			return fmt.Errorf("record %d (format %d): %w", i, df, err)
		}
	}
	if found {
		r.InIf, r.OutIf = in, out
		r.SamplingRate = rate(override, announced)
		r.Packets = uint64(r.SamplingRate)
		r.Bytes *= uint64(r.SamplingRate)
		emit(r)
	}
	return nil
}

// sampledRecord fills r's addresses, ports and Bytes (unscaled) from a
// flow record as sampledPacket does from goflow2's, and tells whether it
// did.
func sampledRecord(df uint32, rec []byte, r *Record) bool {
	switch df {
	case sflow.FLOW_TYPE_RAW:
		if parseHeader(be32(rec), rec[16:], r) {
			r.Bytes = uint64(be32(rec[4:]))
			return true
		}
	case sflow.FLOW_TYPE_IPV4:
		r.Bytes, r.Proto = uint64(be32(rec)), uint8(be32(rec[4:]))
		r.Src, r.Dst = netip.AddrFrom4([4]byte(rec[8:12])), netip.AddrFrom4([4]byte(rec[12:16]))
		r.SrcPort, r.DstPort = uint16(be32(rec[16:])), uint16(be32(rec[20:]))
		return true
	case sflow.FLOW_TYPE_IPV6:
		r.Bytes, r.Proto = uint64(be32(rec)), uint8(be32(rec[4:]))
		r.Src, r.Dst = netip.AddrFrom16([16]byte(rec[8:24])), netip.AddrFrom16([16]byte(rec[24:40]))
		r.SrcPort, r.DstPort = uint16(be32(rec[40:])), uint16(be32(rec[44:]))
		return true
	}
	return false
}

// checkFlowRecord fails where goflow2's DecodeFlowRecord does: a record
// shorter than its fixed part is cut; an address of unknown type, or
// longer than the record, or an AS path or community list longer than
// 1000 or than the record, is malformed.
func checkFlowRecord(df uint32, rec []byte) error {
	need := 0
	switch df {
	case sflow.FLOW_TYPE_RAW, sflow.FLOW_TYPE_EXT_SWITCH:
		need = 16
	case sflow.FLOW_TYPE_ETH:
		need = 20
	case sflow.FLOW_TYPE_IPV4:
		need = 32
	case sflow.FLOW_TYPE_IPV6:
		need = 56
	case sflow.FLOW_TYPE_EGRESS_QUEUE:
		need = 4
	case sflow.FLOW_TYPE_EXT_ROUTER:
		p, err := sflowAddr(rec)
		if err != nil {
			return err
		}
		need = p + 8
	case sflow.FLOW_TYPE_EXT_GATEWAY:
		return checkGateway(rec)
	case sflow.FLOW_TYPE_EXT_ACL, sflow.FLOW_TYPE_EXT_FUNCTION:
		return errFallback
	}
	if len(rec) < need {
		return ErrTruncated
	}
	return nil
}

// sflowAddr reads the type of the address at the start of rec and
// returns the offset past the address.
func sflowAddr(rec []byte) (int, error) {
	if len(rec) < 4 {
		return 0, ErrTruncated
	}
	n := 0
	switch be32(rec) {
	case 1:
		n = 4
	case 2:
		n = 16
	default:
		return 0, fmt.Errorf("address type %d: %w", be32(rec), ErrMalformed)
	}
	if len(rec)-4 < n {
		// goflow2's DecodeIP says "truncated data" without io.ErrUnexpectedEOF.
		return 0, fmt.Errorf("address cut: %w", ErrMalformed)
	}
	return 4 + n, nil
}

// checkGateway checks an extended gateway record (sFlow v5
// extended_gateway) as goflow2's DecodeFlowRecord reads it.
func checkGateway(rec []byte) error {
	p, err := sflowAddr(rec)
	if err != nil {
		return err
	}
	if len(rec) < p+16 {
		return ErrTruncated
	}
	destinations := be32(rec[p+12:])
	p += 16
	// list reads a count and that many words, with goflow2's checks.
	list := func(countAt int) (int, error) {
		if countAt > len(rec)-4 {
			return 0, ErrTruncated
		}
		n := be32(rec[countAt:])
		end := countAt + 4
		if n > 1000 || int(n) > len(rec)-end-4 {
			return 0, fmt.Errorf("list of %d: %w", n, ErrMalformed)
		}
		end += 4 * int(n)
		if end > len(rec) {
			return 0, ErrTruncated
		}
		return end, nil
	}
	if destinations != 0 {
		if len(rec) < p+8 {
			return ErrTruncated
		}
		if p, err = list(p + 4); err != nil { // AS path: type, length
			return err
		}
	}
	if p, err = list(p); err != nil { // communities
		return err
	}
	if len(rec) < p+4 { // local preference
		return ErrTruncated
	}
	return nil
}

// checkCounterRecord fails where goflow2's DecodeCounterRecord does: on
// a generic interface or Ethernet counter record that is cut.
func checkCounterRecord(df uint32, rec []byte) error {
	switch {
	case df == sflow.COUNTER_TYPE_IF && len(rec) < 88,
		df == sflow.COUNTER_TYPE_ETH && len(rec) < 52:
		return ErrTruncated
	}
	return nil
}

// fastNetFlow5 decodes a NetFlow v5 datagram, as decodeNetFlow5 does.
func (e *exporterState) fastNetFlow5(b []byte, override uint32, emit func(*Record)) error {
	if err := checkNetFlow5(b); err != nil {
		return err
	}
	r := &e.rec
	r.ObservationDomain = uint32(b[20])<<8 | uint32(b[21])
	r.SamplingRate = rate(override, uint32(be16(b[22:])&0x3fff))
	n := uint64(r.SamplingRate)
	for i := range int(be16(b[2:])) {
		f := b[netflow5Header+i*netflow5Record:][:netflow5Record]
		r.Src = netip.AddrFrom4([4]byte(f[0:4]))
		r.Dst = netip.AddrFrom4([4]byte(f[4:8]))
		r.InIf, r.OutIf = uint32(be16(f[12:])), uint32(be16(f[14:]))
		r.Packets, r.Bytes = uint64(be32(f[16:]))*n, uint64(be32(f[20:]))*n
		r.SrcPort, r.DstPort = be16(f[32:]), be16(f[34:])
		r.Proto = f[38]
		emit(r)
	}
	return nil
}

// ipfixHeaderLen is the IPFIX message header (RFC 7011 §3.1).
const ipfixHeaderLen = 16

// fastNetFlow decodes a NetFlow v9 or IPFIX datagram set by set, as
// decodeNetFlow does: the data sets of templates compiled to a fixed
// layout here, the other sets with goflow2's DecodeMessageCommonFlowSet,
// which reads and stores templates. Records are emitted set by set rather
// than once the datagram is read: the same records in the same order,
// since a set only changes the templates and sampling rates of the sets
// after it. It stops at the first set that fails as goflow2's
// DecodeMessageCommon does, and bounds the sets by the datagram for v9
// (see decodeNetFlow9) and by the header's length for IPFIX.
func (e *exporterState) fastNetFlow(b []byte, override uint32, emit func(*Record)) error {
	version, hdr := uint16(9), nfv9HeaderLen
	if e.rec.Format == FormatIPFIX {
		version, hdr = 10, ipfixHeaderLen
	}
	if len(b) < hdr {
		return e.decodeNetFlow(b, override, emit)
	}
	var domain uint32
	var size uint16 // IPFIX: bytes of sets to read, as goflow2 computes it
	if version == 9 {
		domain = be32(b[16:])
	} else {
		domain = be32(b[12:])
		size = be16(b[2:]) - ipfixHeaderLen
	}
	key := samplingKey(version, domain)
	e.rec.ObservationDomain = domain
	sets, noTemplate := b[hdr:], false
	p := sets
	for i := 0; len(p) > 0; i++ {
		if (version == 9 && i >= math.MaxUint16) || (version == 10 && uint16(len(sets)-len(p)) >= size) {
			break
		}
		if len(p) >= 4 {
			id, l := be16(p), int(be16(p[2:]))
			if id >= 256 && l >= 4 && l <= len(p) {
				t, known := e.templates.fast(version, domain, id)
				if !known {
					noTemplate = true
					p = p[l:]
					continue
				}
				if t != nil {
					e.fastDataSet(t, p[4:l], key, override, emit)
					p = p[l:]
					continue
				}
			}
		}
		buf := bytes.NewBuffer(p)
		s, err := netflow.DecodeMessageCommonFlowSet(buf, &e.templates, domain, version)
		p = p[len(p)-buf.Len():]
		if err != nil {
			if !errors.Is(err, netflow.ErrorTemplateNotFound) {
				return classify(err)
			}
			noTemplate = true
		}
		e.emitSet(s, key, override, emit)
	}
	if noTemplate {
		return ErrNoTemplate
	}
	return nil
}

// fastDataSet emits the records of a data set of template t, or learns
// the sampling rate of an options data set, as emitSet does.
func (e *exporterState) fastDataSet(t *fastTemplate, data []byte, key uint64, override uint32, emit func(*Record)) {
	r := &e.rec
	for len(data) >= t.size {
		rec := data[:t.size]
		data = data[t.size:]
		if t.options {
			if n := t.samplingOf(rec); n > 0 {
				e.sampling[key] = n
			}
			continue
		}
		announced := t.samplingOf(rec)
		if announced == 0 {
			announced = e.sampling[key]
		}
		r.SamplingRate = rate(override, announced)
		if t.record(rec, r) {
			emit(r)
		}
	}
}

// fastTemplate is a template compiled for the fast path: the record size
// and where the fields that a Record needs lie in a record.
type fastTemplate struct {
	size     int
	options  bool        // an options template: only sampling is read
	fields   []fastField // record fields, in template order
	sampling []fastField // sampling fields, in template order
}

type fastField struct {
	off, len int
	ie       uint16
}

// compileTemplate compiles t, a goflow2 template record, or returns nil
// when it has a variable-length field (RFC 7011 §7), left to goflow2.
func compileTemplate(t any) *fastTemplate {
	ft := &fastTemplate{}
	var fields []netflow.Field
	switch t := t.(type) {
	case netflow.TemplateRecord:
		fields = t.Fields
	case netflow.NFv9OptionsTemplateRecord:
		ft.options = true
		if !ft.skip(t.Scopes) {
			return nil
		}
		fields = t.Options
	case netflow.IPFIXOptionsTemplateRecord:
		ft.options = true
		if !ft.skip(t.Scopes) {
			return nil
		}
		fields = t.Options
	default:
		return nil
	}
	for _, f := range fields {
		if f.Length == 0xffff {
			return nil
		}
		ff := fastField{off: ft.size, len: int(f.Length), ie: f.Type}
		ft.size += int(f.Length)
		if f.PenProvided {
			continue // as dataRecord and samplingOf
		}
		switch f.Type {
		case ieSamplingInterval, ieSamplerRandom, iePacketInterval, iePacketSpace:
			ft.sampling = append(ft.sampling, ff)
		case ieBytes, iePackets, ieProto, ieSrcPort, ieDstPort, ieInIf, ieOutIf, ieSrcV4, ieSrcV6, ieDstV4, ieDstV6:
			if !ft.options {
				ft.fields = append(ft.fields, ff)
			}
		}
	}
	return ft
}

// skip adds fields, the scopes of an options template, to the record
// size; false if one has a variable length.
func (t *fastTemplate) skip(fields []netflow.Field) bool {
	for _, f := range fields {
		if f.Length == 0xffff {
			return false
		}
		t.size += int(f.Length)
	}
	return true
}

// samplingOf is samplingOf for a record of t.
func (t *fastTemplate) samplingOf(rec []byte) uint32 {
	var interval, space uint64
	for _, f := range t.sampling {
		v := uintOf(rec[f.off : f.off+f.len])
		switch f.ie {
		case ieSamplingInterval, ieSamplerRandom:
			if v > 0 && v <= 1<<32-1 {
				return uint32(v)
			}
		case iePacketInterval:
			interval = v
		case iePacketSpace:
			space = v
		}
	}
	return packetSampling(interval, space)
}

// record is dataRecord for a record of t.
func (t *fastTemplate) record(rec []byte, r *Record) bool {
	r.clearFlow()
	for _, f := range t.fields {
		r.setField(f.ie, rec[f.off:f.off+f.len])
	}
	return r.scaleFlow()
}

// uintOf is beUint, with the usual sizes read directly.
func uintOf(v []byte) uint64 {
	switch len(v) {
	case 1:
		return uint64(v[0])
	case 2:
		return uint64(be16(v))
	case 4:
		return uint64(be32(v))
	case 8:
		return binary.BigEndian.Uint64(v)
	}
	return beUint(v)
}

// addrOf is netip.AddrFromSlice without the slice escaping.
func addrOf(v []byte) (netip.Addr, bool) {
	switch len(v) {
	case 4:
		return netip.AddrFrom4([4]byte(v)), true
	case 16:
		return netip.AddrFrom16([16]byte(v)), true
	}
	return netip.Addr{}, false
}
