package flow

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"math"
	"net/netip"
	"sync"
	"time"

	"github.com/netsampler/goflow2/v2/decoders/netflow"
	"github.com/netsampler/goflow2/v2/decoders/netflowlegacy"
	"github.com/netsampler/goflow2/v2/decoders/sflow"
)

// DecoderConfig is the configuration of a Decoder.
type DecoderConfig struct {
	// TemplateTTL is how long a NetFlow v9 or IPFIX template stays valid
	// after the exporter last sent it.
	TemplateTTL time.Duration
	// MaxExporters bounds how many exporters the decoder keeps templates
	// and sampling rates for; datagrams from more are refused with
	// ErrTooManyExporters.
	MaxExporters int
	// SamplingRates overrides, per exporter, the sampling rate that the
	// datagrams announce; nil or a missing exporter: use the datagrams'.
	SamplingRates map[netip.Addr]uint32
	// Goflow2Only decodes every datagram with goflow2's decoders, as the
	// reference, rather than with the fast path (fastpath.go) that
	// handles the common layouts without allocating. The records and the
	// errors are the same (FuzzFastPathMatchesGoflow2 checks it); goflow2
	// is several times slower and allocates per record.
	Goflow2Only bool
}

// Decoder turns datagrams into Records. It keeps each exporter's
// templates and sampling rates. It is safe for concurrent use: datagrams
// from one exporter are decoded one at a time.
type Decoder struct {
	cfg DecoderConfig

	mu        sync.Mutex
	exporters map[netip.Addr]*exporterState
	lastSweep time.Time // of evict, at most once a second
}

// exporterState is what the decoder remembers of one exporter.
type exporterState struct {
	mu        sync.Mutex
	seen      time.Time
	templates templateCache
	sampling  map[uint64]uint32 // version<<32 | domain -> 1 in N
	rec       Record            // handed to emit, reused
}

// NewDecoder returns a Decoder; cfg.TemplateTTL and cfg.MaxExporters
// must be positive.
func NewDecoder(cfg DecoderConfig) *Decoder {
	return &Decoder{cfg: cfg, exporters: make(map[netip.Addr]*exporterState)}
}

// Exporters returns how many exporters the decoder keeps state for.
func (d *Decoder) Exporters() int {
	d.mu.Lock()
	defer d.mu.Unlock()
	return len(d.exporters)
}

func (d *Decoder) exporter(a netip.Addr, now time.Time) (*exporterState, error) {
	d.mu.Lock()
	defer d.mu.Unlock()
	if e, ok := d.exporters[a]; ok {
		return e, nil
	}
	if len(d.exporters) >= d.cfg.MaxExporters {
		// A sweep walks every exporter: a flood of new sources must not
		// make each of their datagrams pay for one.
		if now.Sub(d.lastSweep) >= time.Second || now.Before(d.lastSweep) {
			d.lastSweep = now
			d.evict(now)
		}
		if len(d.exporters) >= d.cfg.MaxExporters {
			return nil, ErrTooManyExporters
		}
	}
	e := &exporterState{
		templates: templateCache{ttl: d.cfg.TemplateTTL, templates: make(map[uint64]templateEntry)},
		sampling:  make(map[uint64]uint32),
	}
	d.exporters[a] = e
	return e, nil
}

// evict forgets the exporters silent for a TemplateTTL whose templates
// have all expired. d.mu is held.
func (d *Decoder) evict(now time.Time) {
	for a, e := range d.exporters {
		if !e.mu.TryLock() {
			continue // decoding right now
		}
		if now.Sub(e.seen) > d.cfg.TemplateTTL && !e.templates.live(now) {
			delete(d.exporters, a)
		}
		e.mu.Unlock()
	}
}

// Decode decodes one datagram received from exporter at now and calls
// emit with each flow record. The Record passed to emit is reused: it is
// valid only until emit returns. Decode returns ErrTruncated,
// ErrUnknownVersion, ErrMalformed, ErrNoTemplate or ErrTooManyExporters
// (wrapped); with ErrNoTemplate, the records of the other sets have been
// emitted.
func (d *Decoder) Decode(exporter netip.AddrPort, payload []byte, now time.Time, emit func(*Record)) error {
	if len(payload) < 4 {
		return fmt.Errorf("%d bytes: %w", len(payload), ErrTruncated)
	}
	format := detect(payload)
	if format == "" {
		return fmt.Errorf("first word %#08x: %w", binary.BigEndian.Uint32(payload), ErrUnknownVersion)
	}
	addr := exporter.Addr().Unmap()
	e, err := d.exporter(addr, now)
	if err != nil {
		return fmt.Errorf("%s from %s: %w", format, addr, err)
	}
	e.mu.Lock()
	defer e.mu.Unlock()
	e.seen = now
	e.templates.now = now
	override := d.cfg.SamplingRates[addr]
	e.rec = Record{Exporter: addr, Format: format, Time: now}
	switch {
	case d.cfg.Goflow2Only && format == FormatSFlow5:
		err = e.decodeSFlow(payload, override, emit)
	case d.cfg.Goflow2Only && format == FormatNetFlow5:
		err = e.decodeNetFlow5(payload, override, emit)
	case d.cfg.Goflow2Only:
		err = e.decodeNetFlow(payload, override, emit)
	case format == FormatSFlow5:
		err = e.fastSFlow(payload, override, emit)
	case format == FormatNetFlow5:
		err = e.fastNetFlow5(payload, override, emit)
	default:
		err = e.fastNetFlow(payload, override, emit)
	}
	if err != nil {
		return fmt.Errorf("%s from %s: %w", format, addr, err)
	}
	return nil
}

// detect returns the format of a datagram of 4 bytes or more from its
// version field, or "".
func detect(b []byte) string {
	switch binary.BigEndian.Uint16(b) {
	case 5:
		return FormatNetFlow5
	case 9:
		return FormatNetFlow9
	case 10:
		return FormatIPFIX
	case 0:
		if binary.BigEndian.Uint16(b[2:]) == 5 {
			return FormatSFlow5
		}
	}
	return ""
}

// classify maps a goflow2 error to our sentinels.
func classify(err error) error {
	switch {
	case errors.Is(err, netflow.ErrorTemplateNotFound):
		return ErrNoTemplate
	case errors.Is(err, io.ErrUnexpectedEOF):
		return fmt.Errorf("%w: %w", ErrTruncated, err)
	}
	return fmt.Errorf("%w: %w", ErrMalformed, err)
}

// rate picks the sampling rate: the configured override, else the
// datagram's, else 1.
func rate(override, announced uint32) uint32 {
	if override != 0 {
		return override
	}
	return max(announced, 1)
}

// sflowExpandedCountAt is the offset of the record count in an expanded
// flow sample (sFlow v5 §5: sequence, source type, source index, rate,
// pool, drops, input format, input, output format, output).
const sflowExpandedCountAt = 40

// checkSFlow refuses expanded flow samples claiming more than 1000
// records, the bound goflow2 applies to the other sample formats but not
// to this one (decoders/sflow/sflow.go, DecodeSample: `make([]FlowRecord,
// recordsCount)` unchecked for SAMPLE_FORMAT_EXPANDED_FLOW): without it a
// 60-byte datagram can ask for gigabytes.
func checkSFlow(b []byte) error {
	if len(b) < 8 {
		return ErrTruncated
	}
	off := 8
	switch binary.BigEndian.Uint32(b[4:]) {
	case 1:
		off += 4
	case 2:
		off += 16
	default:
		return nil // goflow2 reports it
	}
	off += 12 // sub-agent, sequence, uptime
	if len(b) < off+4 {
		return ErrTruncated
	}
	n := binary.BigEndian.Uint32(b[off:])
	off += 4
	for i := uint32(0); i < n && len(b)-off >= 8; i++ {
		format, length := binary.BigEndian.Uint32(b[off:]), int(binary.BigEndian.Uint32(b[off+4:]))
		off += 8
		if length < 0 || length > len(b)-off {
			return nil
		}
		if format == sflow.SAMPLE_FORMAT_EXPANDED_FLOW && length >= sflowExpandedCountAt+4 &&
			binary.BigEndian.Uint32(b[off+sflowExpandedCountAt:]) > 1000 {
			return fmt.Errorf("%w: expanded flow sample with %d records", ErrMalformed, binary.BigEndian.Uint32(b[off+sflowExpandedCountAt:]))
		}
		off += length
	}
	return nil
}

func (e *exporterState) decodeSFlow(b []byte, override uint32, emit func(*Record)) error {
	if err := checkSFlow(b); err != nil {
		return err
	}
	var p sflow.Packet
	if err := sflow.DecodeMessageVersion(bytes.NewBuffer(b), &p); err != nil {
		return classify(err)
	}
	e.rec.ObservationDomain = p.SubAgentId
	for _, s := range p.Samples {
		var records []sflow.FlowRecord
		var in, out, announced uint32
		switch s := s.(type) {
		case sflow.FlowSample:
			records, announced = s.Records, s.SamplingRate
			if s.Input>>30 == 0 {
				in = s.Input
			}
			if s.Output>>30 == 0 {
				out = s.Output
			}
		case sflow.ExpandedFlowSample:
			records, announced = s.Records, s.SamplingRate
			if s.InputIfFormat == 0 {
				in = s.InputIfValue
			}
			if s.OutputIfFormat == 0 {
				out = s.OutputIfValue
			}
		default:
			continue // counters, drops
		}
		r := &e.rec
		r.InIf, r.OutIf = in, out
		r.SamplingRate = rate(override, announced)
		if sampledPacket(records, r) {
			r.Packets = uint64(r.SamplingRate)
			r.Bytes *= uint64(r.SamplingRate)
			emit(r)
		}
	}
	return nil
}

// sampledPacket fills r's addresses, ports and Bytes (unscaled) from the
// first record of a sample that has them: a raw packet header, else an
// IPv4 or IPv6 data record.
func sampledPacket(records []sflow.FlowRecord, r *Record) bool {
	for _, fr := range records {
		switch d := fr.Data.(type) {
		case sflow.SampledHeader:
			if parseHeader(d.Protocol, d.HeaderData, r) {
				r.Bytes = uint64(d.FrameLength)
				return true
			}
		case sflow.SampledIPv4:
			return sampledIP(d.SampledIPBase, r)
		case sflow.SampledIPv6:
			return sampledIP(d.SampledIPBase, r)
		}
	}
	return false
}

func sampledIP(d sflow.SampledIPBase, r *Record) bool {
	src, ok1 := netip.AddrFromSlice(d.SrcIP)
	dst, ok2 := netip.AddrFromSlice(d.DstIP)
	if !ok1 || !ok2 {
		return false
	}
	r.Src, r.Dst = src, dst
	r.Proto, r.SrcPort, r.DstPort = uint8(d.Protocol), uint16(d.SrcPort), uint16(d.DstPort)
	r.Bytes = uint64(d.Length)
	return true
}

// Header protocols of sFlow raw packet header records (sFlow v5,
// header_protocol).
const (
	sflowHeaderEthernet = 1
	sflowHeaderIPv4     = 11
	sflowHeaderIPv6     = 12
)

// parseHeader reads the addresses, protocol and ports of a sampled
// packet's first bytes.
func parseHeader(proto uint32, h []byte, r *Record) bool {
	switch proto {
	case sflowHeaderEthernet:
		if len(h) < 14 {
			return false
		}
		etype, off := binary.BigEndian.Uint16(h[12:]), 14
		for (etype == 0x8100 || etype == 0x88a8) && len(h) >= off+4 {
			etype, off = binary.BigEndian.Uint16(h[off+2:]), off+4
		}
		switch etype {
		case 0x0800:
			return parseIPv4(h[off:], r)
		case 0x86dd:
			return parseIPv6(h[off:], r)
		}
	case sflowHeaderIPv4:
		return parseIPv4(h, r)
	case sflowHeaderIPv6:
		return parseIPv6(h, r)
	}
	return false
}

func parseIPv4(h []byte, r *Record) bool {
	if len(h) < 20 || h[0]>>4 != 4 {
		return false
	}
	r.Proto = h[9]
	r.Src = netip.AddrFrom4([4]byte(h[12:16]))
	r.Dst = netip.AddrFrom4([4]byte(h[16:20]))
	ihl := int(h[0]&0x0f) * 4
	fragOff := binary.BigEndian.Uint16(h[6:]) & 0x1fff
	r.SrcPort, r.DstPort = 0, 0
	if fragOff == 0 && ihl >= 20 {
		ports(h[min(ihl, len(h)):], r)
	}
	return true
}

func parseIPv6(h []byte, r *Record) bool {
	if len(h) < 40 || h[0]>>4 != 6 {
		return false
	}
	r.Proto = h[6]
	r.Src = netip.AddrFrom16([16]byte(h[8:24]))
	r.Dst = netip.AddrFrom16([16]byte(h[24:40]))
	r.SrcPort, r.DstPort = 0, 0
	ports(h[40:], r) // extension headers are not walked
	return true
}

// ports reads TCP, UDP or SCTP ports from the start of l4.
func ports(l4 []byte, r *Record) {
	switch r.Proto {
	case 6, 17, 132:
		if len(l4) >= 4 {
			r.SrcPort = binary.BigEndian.Uint16(l4)
			r.DstPort = binary.BigEndian.Uint16(l4[2:])
		}
	}
}

// netflow5Header and netflow5Record are the sizes of NetFlow v5's parts.
const (
	netflow5Header = 24
	netflow5Record = 48
)

// checkNetFlow5 checks that a NetFlow v5 datagram holds the records its
// header counts: goflow2 allocates Count records before reading them.
func checkNetFlow5(b []byte) error {
	if len(b) < netflow5Header {
		return ErrTruncated
	}
	if n := int(binary.BigEndian.Uint16(b[2:])); len(b) < netflow5Header+n*netflow5Record {
		return fmt.Errorf("%d records in %d bytes: %w", n, len(b), ErrTruncated)
	}
	return nil
}

func (e *exporterState) decodeNetFlow5(b []byte, override uint32, emit func(*Record)) error {
	if err := checkNetFlow5(b); err != nil {
		return err
	}
	var p netflowlegacy.PacketNetFlowV5
	if err := netflowlegacy.DecodeMessageVersion(bytes.NewBuffer(b), &p); err != nil {
		return classify(err)
	}
	r := &e.rec
	r.ObservationDomain = uint32(p.EngineType)<<8 | uint32(p.EngineId)
	// The top 2 bits are the sampling mode, the others the interval.
	r.SamplingRate = rate(override, uint32(p.SamplingInterval&0x3fff))
	n := uint64(r.SamplingRate)
	for _, f := range p.Records {
		r.InIf, r.OutIf = uint32(f.Input), uint32(f.Output)
		r.Src = netip.AddrFrom4(ipv4(uint32(f.SrcAddr)))
		r.Dst = netip.AddrFrom4(ipv4(uint32(f.DstAddr)))
		r.Proto, r.SrcPort, r.DstPort = f.Proto, f.SrcPort, f.DstPort
		r.Bytes, r.Packets = uint64(f.DOctets)*n, uint64(f.DPkts)*n
		emit(r)
	}
	return nil
}

func ipv4(a uint32) [4]byte {
	var b [4]byte
	binary.BigEndian.PutUint32(b[:], a)
	return b
}

// Information elements read from v9 and IPFIX records (RFC 3954 §8; the
// IANA IPFIX registry, whose numbers agree below 128).
const (
	ieBytes            = 1
	iePackets          = 2
	ieProto            = 4
	ieSrcPort          = 7
	ieSrcV4            = 8
	ieInIf             = 10
	ieDstPort          = 11
	ieDstV4            = 12
	ieOutIf            = 14
	ieSrcV6            = 27
	ieDstV6            = 28
	ieSamplingInterval = 34  // v9 SAMPLING_INTERVAL, IPFIX samplingInterval (deprecated)
	ieSamplerRandom    = 50  // v9 FLOW_SAMPLER_RANDOM_INTERVAL, IPFIX samplerRandomInterval
	iePacketInterval   = 305 // IPFIX samplingPacketInterval (RFC 5477): packets selected
	iePacketSpace      = 306 // IPFIX samplingPacketSpace: packets skipped after them
)

func samplingKey(version uint16, domain uint32) uint64 {
	return uint64(version)<<32 | uint64(domain)
}

func (e *exporterState) decodeNetFlow(b []byte, override uint32, emit func(*Record)) error {
	var v9 netflow.NFv9Packet
	var ipfix netflow.IPFIXPacket
	var err error
	if e.rec.Format == FormatNetFlow9 {
		err = decodeNetFlow9(b, &e.templates, &v9)
	} else {
		err = netflow.DecodeMessageVersion(bytes.NewBuffer(b), &e.templates, &v9, &ipfix)
	}
	version, domain, sets := uint16(9), v9.SourceId, v9.FlowSets
	if e.rec.Format == FormatIPFIX {
		version, domain, sets = 10, ipfix.ObservationDomainId, ipfix.FlowSets
	}
	key := samplingKey(version, domain)
	e.rec.ObservationDomain = domain
	for _, s := range sets {
		e.emitSet(s, key, override, emit)
	}
	if err != nil {
		return classify(err)
	}
	return nil
}

// emitSet emits the records of a flowset that goflow2 decoded, and
// learns the sampling rates of an options data set.
func (e *exporterState) emitSet(s any, key uint64, override uint32, emit func(*Record)) {
	r := &e.rec
	switch s := s.(type) {
	case netflow.OptionsDataFlowSet:
		for _, od := range s.Records {
			if n := samplingOf(od.OptionsValues); n > 0 {
				e.sampling[key] = n
			}
		}
	case netflow.DataFlowSet:
		for _, dr := range s.Records {
			announced := samplingOf(dr.Values)
			if announced == 0 {
				announced = e.sampling[key]
			}
			r.SamplingRate = rate(override, announced)
			if dataRecord(dr.Values, r) {
				emit(r)
			}
		}
	}
}

// nfv9HeaderLen is the NetFlow v9 packet header (RFC 3954 §5.1).
const nfv9HeaderLen = 20

// decodeNetFlow9 decodes a NetFlow v9 datagram, every flowset it holds.
// goflow2 takes the header's count as the number of flowsets to read
// (decoders/netflow/netflow.go, DecodeMessageCommon), but RFC 3954 §5.1
// makes it the number of records, and softflowd 1.1.0 counts only the data
// records: its datagram of five templates and one data record says 1, and
// goflow2 would read the first template and silently drop the rest, and
// with them every flow of those templates. The datagram's length bounds
// the flowsets instead.
func decodeNetFlow9(b []byte, templates netflow.NetFlowTemplateSystem, p *netflow.NFv9Packet) error {
	if len(b) < nfv9HeaderLen {
		return fmt.Errorf("netflow v9 header: %w", io.ErrUnexpectedEOF)
	}
	p.Version = 9
	p.Count = binary.BigEndian.Uint16(b[2:4])
	p.SystemUptime = binary.BigEndian.Uint32(b[4:8])
	p.UnixSeconds = binary.BigEndian.Uint32(b[8:12])
	p.SequenceNumber = binary.BigEndian.Uint32(b[12:16])
	p.SourceId = binary.BigEndian.Uint32(b[16:20])
	sets, err := netflow.DecodeMessageCommon(bytes.NewBuffer(b[nfv9HeaderLen:]), templates, p.SourceId, math.MaxUint16, 9)
	p.FlowSets = sets
	return err
}

// samplingOf returns the 1-in-N sampling rate that the fields announce,
// or 0 when none does.
func samplingOf(fields []netflow.DataField) uint32 {
	var interval, space uint64
	for _, f := range fields {
		if f.PenProvided {
			continue
		}
		v, ok := f.Value.([]byte)
		if !ok {
			continue
		}
		switch f.Type {
		case ieSamplingInterval, ieSamplerRandom:
			if n := uint(beUint(v)); n > 0 && n <= 1<<32-1 {
				return uint32(n)
			}
		case iePacketInterval:
			interval = beUint(v)
		case iePacketSpace:
			space = beUint(v)
		}
	}
	return packetSampling(interval, space)
}

// packetSampling returns the 1-in-N rate of IPFIX's
// samplingPacketInterval and samplingPacketSpace, or 0.
func packetSampling(interval, space uint64) uint32 {
	// RFC 5477 §8.2.1: interval packets selected, then space skipped.
	if interval > 0 && space > 0 {
		n := (interval + space) / interval
		if n <= 1<<32-1 {
			return uint32(n)
		}
	}
	if interval > 0 && space == 0 && interval <= 1<<32-1 {
		// Routers that export only samplingPacketInterval put the 1-in-N
		// rate there (as goflow2's producer reads it).
		return uint32(interval)
	}
	return 0
}

// beUint reads a big-endian unsigned integer of up to 8 bytes (RFC 7011
// §6.2 reduced-size encoding); longer values read their last 8 bytes.
func beUint(v []byte) uint64 {
	if len(v) > 8 {
		v = v[len(v)-8:]
	}
	var n uint64
	for _, c := range v {
		n = n<<8 | uint64(c)
	}
	return n
}

// dataRecord fills r from a v9 or IPFIX data record and scales it by
// r.SamplingRate. It returns false without both addresses.
func dataRecord(fields []netflow.DataField, r *Record) bool {
	r.clearFlow()
	for _, f := range fields {
		if f.PenProvided {
			continue
		}
		if v, ok := f.Value.([]byte); ok {
			r.setField(f.Type, v)
		}
	}
	return r.scaleFlow()
}

// clearFlow zeroes the fields a data record sets.
func (r *Record) clearFlow() {
	r.Src, r.Dst = netip.Addr{}, netip.Addr{}
	r.InIf, r.OutIf, r.Proto, r.SrcPort, r.DstPort, r.Bytes, r.Packets = 0, 0, 0, 0, 0, 0, 0
}

// setField sets what information element ie of a v9 or IPFIX data
// record carries, if it is one sdnoc reads.
func (r *Record) setField(ie uint16, v []byte) {
	switch ie {
	case ieBytes:
		r.Bytes = uintOf(v)
	case iePackets:
		r.Packets = uintOf(v)
	case ieProto:
		r.Proto = uint8(uintOf(v))
	case ieSrcPort:
		r.SrcPort = uint16(uintOf(v))
	case ieDstPort:
		r.DstPort = uint16(uintOf(v))
	case ieInIf:
		r.InIf = uint32(uintOf(v))
	case ieOutIf:
		r.OutIf = uint32(uintOf(v))
	case ieSrcV4, ieSrcV6:
		if a, ok := addrOf(v); ok {
			r.Src = a
		}
	case ieDstV4, ieDstV6:
		if a, ok := addrOf(v); ok {
			r.Dst = a
		}
	}
}

// scaleFlow scales a data record by its sampling rate; false when it
// lacks an address.
func (r *Record) scaleFlow() bool {
	if !r.Src.IsValid() || !r.Dst.IsValid() {
		return false
	}
	n := uint64(r.SamplingRate)
	r.Bytes *= n
	r.Packets *= n
	return true
}
