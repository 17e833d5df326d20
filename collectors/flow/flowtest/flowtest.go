// Package flowtest builds real sFlow v5, NetFlow v5, NetFlow v9 and
// IPFIX datagrams from plain structs, for tests and demos that feed the
// flow collector. The encoders write what routers send: the collector
// decodes them with the same code that decodes a router's datagrams.
package flowtest

import (
	"encoding/binary"
	"net/netip"
)

// Template IDs used by the NetFlow v9 and IPFIX encoders. Every
// template datagram carries all three.
const (
	TemplateV4       = 256 // IPv4 flows
	TemplateV6       = 257 // IPv6 flows
	TemplateSampling = 258 // options: the sampling interval
)

// Flow is one flow record as NetFlow v5, v9 and IPFIX carry it: counters
// as the router counted them, before any scaling by the sampling rate.
type Flow struct {
	Src, Dst         netip.Addr
	Proto            uint8
	SrcPort, DstPort uint16
	InIf, OutIf      uint32 // SNMP ifIndex
	Bytes, Packets   uint64
}

// SFlowSample is one sFlow v5 flow sample: one sampled packet, of which
// the encoder writes a raw header record (Ethernet, then IPv4 or IPv6,
// then the first 4 bytes of TCP/UDP).
type SFlowSample struct {
	SamplingRate     uint32 // 1 in N packets
	InIf, OutIf      uint32 // ifIndex
	Src, Dst         netip.Addr
	Proto            uint8
	SrcPort, DstPort uint16
	FrameLength      uint32 // bytes on the wire of the sampled packet
	Expanded         bool   // expanded flow sample (format 3) rather than compact (1)
}

type writer struct{ b []byte }

func (w *writer) u8(v uint8)   { w.b = append(w.b, v) }
func (w *writer) u16(v uint16) { w.b = binary.BigEndian.AppendUint16(w.b, v) }
func (w *writer) u32(v uint32) { w.b = binary.BigEndian.AppendUint32(w.b, v) }
func (w *writer) u64(v uint64) { w.b = binary.BigEndian.AppendUint64(w.b, v) }
func (w *writer) addr(a netip.Addr) {
	w.b = append(w.b, a.AsSlice()...)
}

// put16 writes v at offset i, for lengths known once the body is written.
func (w *writer) put16(i int, v int) { binary.BigEndian.PutUint16(w.b[i:], uint16(v)) }
func (w *writer) put32(i int, v int) { binary.BigEndian.PutUint32(w.b[i:], uint32(v)) }

// SFlowV5 returns an sFlow v5 datagram (sflow.org/sflow_version_5.txt)
// from agent holding samples.
func SFlowV5(agent netip.Addr, samples []SFlowSample) []byte {
	w := &writer{}
	w.u32(5)
	if agent.Is4() {
		w.u32(1)
	} else {
		w.u32(2)
	}
	w.addr(agent)
	w.u32(0)   // sub-agent
	w.u32(1)   // sequence
	w.u32(100) // uptime ms
	w.u32(uint32(len(samples)))
	for i, s := range samples {
		hdr := packetHeader(s)
		format := uint32(1)
		if s.Expanded {
			format = 3
		}
		w.u32(format)
		lenAt := len(w.b)
		w.u32(0)
		start := len(w.b)
		w.u32(uint32(i + 1)) // sample sequence
		if s.Expanded {
			w.u32(0)      // source id type: ifIndex
			w.u32(s.InIf) // source id index
		} else {
			w.u32(s.InIf & 0xffffff)
		}
		w.u32(s.SamplingRate)
		w.u32(s.SamplingRate * uint32(i+1)) // sample pool
		w.u32(0)                            // drops
		if s.Expanded {
			w.u32(0)
			w.u32(s.InIf)
			w.u32(0)
			w.u32(s.OutIf)
		} else {
			w.u32(s.InIf & 0x3fffffff)
			w.u32(s.OutIf & 0x3fffffff)
		}
		w.u32(1) // one record: the raw packet header
		w.u32(1) // format: raw packet header
		w.u32(uint32(16 + len(hdr) + pad4(len(hdr))))
		w.u32(1) // header protocol: Ethernet
		w.u32(s.FrameLength)
		w.u32(4) // stripped: the FCS
		w.u32(uint32(len(hdr)))
		w.b = append(w.b, hdr...)
		w.b = append(w.b, make([]byte, pad4(len(hdr)))...)
		w.put32(lenAt, len(w.b)-start)
	}
	return w.b
}

func pad4(n int) int { return (4 - n%4) % 4 }

// packetHeader returns the first bytes of the sampled frame: Ethernet,
// IP and the ports.
func packetHeader(s SFlowSample) []byte {
	w := &writer{}
	w.b = append(w.b, 0x02, 0, 0, 0, 0, 0x01, 0x02, 0, 0, 0, 0, 0x02) // dst, src MAC
	payload := uint16(s.FrameLength)
	if s.Dst.Is4() {
		w.u16(0x0800)
		w.u8(0x45)
		w.u8(0)
		w.u16(payload - 14 - 4)
		w.u32(0) // id, flags, fragment offset
		w.u8(64)
		w.u8(s.Proto)
		w.u16(0) // checksum: collectors do not check it
		w.addr(s.Src)
		w.addr(s.Dst)
	} else {
		w.u16(0x86dd)
		w.u32(6 << 28)
		w.u16(payload - 14 - 4 - 40)
		w.u8(s.Proto)
		w.u8(64)
		w.addr(s.Src)
		w.addr(s.Dst)
	}
	w.u16(s.SrcPort)
	w.u16(s.DstPort)
	return w.b
}

// NetFlowV5 returns a NetFlow v5 datagram holding flows (IPv4 only; at
// most 30 per datagram on real routers) with the header's sampling
// interval set to samplingInterval (0: not sampled).
func NetFlowV5(samplingInterval uint16, flows []Flow) []byte {
	w := &writer{}
	w.u16(5)
	w.u16(uint16(len(flows)))
	w.u32(100_000)    // sysuptime ms
	w.u32(1700000000) // unix secs
	w.u32(0)          // nsecs
	w.u32(1)          // flow sequence
	w.u8(0)           // engine type
	w.u8(0)           // engine id
	w.u16(1<<14 | samplingInterval&0x3fff)
	for _, f := range flows {
		w.addr(f.Src)
		w.addr(f.Dst)
		w.u32(0) // next hop
		w.u16(uint16(f.InIf))
		w.u16(uint16(f.OutIf))
		w.u32(uint32(f.Packets))
		w.u32(uint32(f.Bytes))
		w.u32(99_000) // first
		w.u32(99_900) // last
		w.u16(f.SrcPort)
		w.u16(f.DstPort)
		w.u8(0) // pad
		w.u8(0) // tcp flags
		w.u8(f.Proto)
		w.u8(0) // tos
		w.u32(0)
		w.u8(24)
		w.u8(24)
		w.u16(0)
	}
	return w.b
}

// Information elements used by the templates (RFC 3954 §8 for v9,
// the IANA IPFIX registry for IPFIX: the numbers agree).
const (
	ieBytes        = 1
	iePackets      = 2
	ieProto        = 4
	ieSrcPort      = 7
	ieSrcV4        = 8
	ieInIf         = 10
	ieDstPort      = 11
	ieDstV4        = 12
	ieOutIf        = 14
	ieSrcV6        = 27
	ieDstV6        = 28
	ieSamplingV9   = 34  // SAMPLING_INTERVAL (RFC 3954)
	ieSamplingIPFX = 305 // samplingPacketInterval (RFC 7011 registry)
)

type field struct{ id, length uint16 }

func flowFields(v6 bool) []field {
	src, dst, alen := uint16(ieSrcV4), uint16(ieDstV4), uint16(4)
	if v6 {
		src, dst, alen = ieSrcV6, ieDstV6, 16
	}
	return []field{
		{ieBytes, 8}, {iePackets, 8}, {ieProto, 1}, {ieSrcPort, 2}, {ieDstPort, 2},
		{src, alen}, {dst, alen}, {ieInIf, 4}, {ieOutIf, 4},
	}
}

func writeFlow(w *writer, f Flow) {
	w.u64(f.Bytes)
	w.u64(f.Packets)
	w.u8(f.Proto)
	w.u16(f.SrcPort)
	w.u16(f.DstPort)
	w.addr(f.Src)
	w.addr(f.Dst)
	w.u32(f.InIf)
	w.u32(f.OutIf)
}

// set writes a set/flowset header with id, then body, padded to 4 bytes.
func set(w *writer, id uint16, body func()) {
	at := len(w.b)
	w.u16(id)
	w.u16(0)
	body()
	w.b = append(w.b, make([]byte, pad4(len(w.b)-at))...)
	w.put16(at+2, len(w.b)-at)
}

func v9Header(w *writer, sourceID uint32, count int) {
	w.u16(9)
	w.u16(uint16(count))
	w.u32(100_000)    // sysuptime
	w.u32(1700000000) // unix secs
	w.u32(1)          // sequence
	w.u32(sourceID)
}

// NetFlowV9Template returns a NetFlow v9 datagram (RFC 3954) from
// sourceID holding the templates TemplateV4 and TemplateV6 and the
// options template TemplateSampling.
func NetFlowV9Template(sourceID uint32) []byte {
	w := &writer{}
	v9Header(w, sourceID, 3)
	set(w, 0, func() {
		for _, t := range []struct {
			id uint16
			v6 bool
		}{{TemplateV4, false}, {TemplateV6, true}} {
			fs := flowFields(t.v6)
			w.u16(t.id)
			w.u16(uint16(len(fs)))
			for _, f := range fs {
				w.u16(f.id)
				w.u16(f.length)
			}
		}
	})
	set(w, 1, func() {
		w.u16(TemplateSampling)
		w.u16(4) // scope length: one scope field
		w.u16(4) // option length: one option field
		w.u16(1) // scope: System
		w.u16(4)
		w.u16(ieSamplingV9)
		w.u16(4)
	})
	return w.b
}

// NetFlowV9Data returns a NetFlow v9 datagram from sourceID holding
// flows, in a TemplateV4 data flowset for the IPv4 ones and a TemplateV6
// one for the IPv6 ones.
func NetFlowV9Data(sourceID uint32, flows []Flow) []byte {
	w := &writer{}
	v9Header(w, sourceID, len(flows))
	dataSets(w, flows)
	return w.b
}

func dataSets(w *writer, flows []Flow) {
	for _, v6 := range []bool{false, true} {
		var fs []Flow
		for _, f := range flows {
			if f.Dst.Is6() == v6 {
				fs = append(fs, f)
			}
		}
		if len(fs) == 0 {
			continue
		}
		id := uint16(TemplateV4)
		if v6 {
			id = TemplateV6
		}
		set(w, id, func() {
			for _, f := range fs {
				writeFlow(w, f)
			}
		})
	}
}

// NetFlowV9Sampling returns a NetFlow v9 datagram from sourceID holding
// an options data record of TemplateSampling: 1 packet in rate sampled.
func NetFlowV9Sampling(sourceID, rate uint32) []byte {
	w := &writer{}
	v9Header(w, sourceID, 1)
	set(w, TemplateSampling, func() {
		w.u32(0) // scope: system 0
		w.u32(rate)
	})
	return w.b
}

func ipfix(domain uint32, body func(w *writer)) []byte {
	w := &writer{}
	w.u16(10)
	w.u16(0)
	w.u32(1700000000) // export time
	w.u32(1)          // sequence
	w.u32(domain)
	body(w)
	w.put16(2, len(w.b))
	return w.b
}

// IPFIXTemplate returns an IPFIX message (RFC 7011) for observation
// domain holding the templates TemplateV4 and TemplateV6 and the options
// template TemplateSampling.
func IPFIXTemplate(domain uint32) []byte {
	return ipfix(domain, func(w *writer) {
		set(w, 2, func() {
			for _, t := range []struct {
				id uint16
				v6 bool
			}{{TemplateV4, false}, {TemplateV6, true}} {
				fs := flowFields(t.v6)
				w.u16(t.id)
				w.u16(uint16(len(fs)))
				for _, f := range fs {
					w.u16(f.id)
					w.u16(f.length)
				}
			}
		})
		set(w, 3, func() {
			w.u16(TemplateSampling)
			w.u16(2)   // field count
			w.u16(1)   // scope field count
			w.u16(149) // scope: observationDomainId
			w.u16(4)
			w.u16(ieSamplingIPFX)
			w.u16(4)
		})
	})
}

// IPFIXData returns an IPFIX message for observation domain holding
// flows, in TemplateV4 and TemplateV6 data sets.
func IPFIXData(domain uint32, flows []Flow) []byte {
	return ipfix(domain, func(w *writer) { dataSets(w, flows) })
}

// IPFIXSampling returns an IPFIX message for observation domain holding
// an options data record of TemplateSampling: 1 packet in rate sampled.
func IPFIXSampling(domain, rate uint32) []byte {
	return ipfix(domain, func(w *writer) {
		set(w, TemplateSampling, func() {
			w.u32(domain)
			w.u32(rate)
		})
	})
}
