package main

import (
	"encoding/binary"
	"errors"
	"fmt"
	"maps"
	"os"
	"path/filepath"
	"slices"
)

// Formats the replayer sends, as -format names them.
const (
	formatSFlow    = "sflow"
	formatNetFlow5 = "netflow5"
	formatNetFlow9 = "netflow9"
	formatIPFIX    = "ipfix"
)

// captureGlobs names, per format, the captures whose layouts the
// datagrams copy: softflowd 1.1.0 for NetFlow v5, v9 and IPFIX, pmacctd
// 1.7.7's sfprobe for sFlow.
var captureGlobs = map[string]string{
	formatSFlow:    "pmacct-1.7.7-sfprobe-*.bin",
	formatNetFlow5: "softflowd-1.1.0-v5-*.bin",
	formatNetFlow9: "softflowd-1.1.0-v9-*.bin",
	formatIPFIX:    "softflowd-1.1.0-ipfix-*.bin",
}

// Records per data datagram: what fits in a 1,400-byte payload, as real
// exporters fill them (NetFlow v5 allows 30 at most).
var recordsPerDatagram = map[string]int{
	formatSFlow:    8,  // 28-byte header + 8 samples of 152 to 176 bytes
	formatNetFlow5: 30, // 24 + 30 x 48
	formatNetFlow9: 30, // 20 + 4 + 30 x 42
	formatIPFIX:    30, // 16 + 4 + 30 x 42
}

// datagram is one UDP payload and the flow records it holds, as sdnoc's
// decoder counts them: one per flow sample for sFlow, one per data
// record for NetFlow and IPFIX (options data records aside).
type datagram struct {
	b       []byte
	records int
}

// replay is what every exporter sends: setup first (the templates, for
// NetFlow v9 and IPFIX), then data over and over.
type replay struct {
	setup []datagram
	data  []datagram
}

// build makes distinct data datagrams of format from the captures in
// dir. It reads the captured records and writes them again, as many per
// datagram as an exporter packs, changing only each record's
// destination address so that the records spread over 256 edge
// prefixes: record j goes to 198.18.(j/256%256).(j%256) for IPv4 and to
// the captured IPv6 destination with its last 16 bits set to j. Every
// other byte (headers, templates, field layout, counters, sampling
// rates, interfaces) is the capture's.
func build(dir, format string, distinct int) (replay, error) {
	glob, ok := captureGlobs[format]
	if !ok {
		return replay{}, fmt.Errorf("format %q: want %s, %s, %s or %s", format, formatSFlow, formatNetFlow5, formatNetFlow9, formatIPFIX)
	}
	files, err := filepath.Glob(filepath.Join(dir, glob))
	if err != nil || len(files) == 0 {
		return replay{}, fmt.Errorf("captures %s in %s: none found (%v)", glob, dir, err)
	}
	slices.Sort(files) // the order softflowd sent them: templates first
	var caps [][]byte
	for _, f := range files {
		b, err := os.ReadFile(f)
		if err != nil {
			return replay{}, fmt.Errorf("read capture: %w", err)
		}
		caps = append(caps, b)
	}
	per := recordsPerDatagram[format]
	switch format {
	case formatSFlow:
		return buildSFlow(caps, distinct, per)
	case formatNetFlow5:
		return buildNetFlow5(caps, distinct, per)
	}
	return buildNetFlow(caps, format == formatIPFIX, distinct, per)
}

// setDst writes j into the last 16 bits of the destination address at
// b[off:off+size]; for IPv4, also bytes 2 and 3 so that the address is
// 198.18.x.y whatever the capture's.
func setDst(b []byte, off, size, j int) {
	if size == 4 {
		b[off], b[off+1] = 198, 18
	}
	binary.BigEndian.PutUint16(b[off+size-2:], uint16(j))
}

// NetFlow v5 (Cisco's format): a 24-byte header, then 48-byte records
// whose destination address is at offset 4.
const (
	v5Header    = 24
	v5Record    = 48
	v5DstOffset = 4
)

func buildNetFlow5(caps [][]byte, distinct, per int) (replay, error) {
	var recs [][]byte
	for _, c := range caps {
		if len(c) < v5Header {
			return replay{}, errors.New("netflow5 capture shorter than its header")
		}
		n := int(binary.BigEndian.Uint16(c[2:]))
		if len(c) != v5Header+n*v5Record {
			return replay{}, fmt.Errorf("netflow5 capture: %d bytes for %d records", len(c), n)
		}
		for i := range n {
			recs = append(recs, c[v5Header+i*v5Record:v5Header+(i+1)*v5Record])
		}
	}
	var r replay
	j := 0
	for range distinct {
		b := slices.Clone(caps[0][:v5Header])
		binary.BigEndian.PutUint16(b[2:], uint16(per))
		for range per {
			at := len(b)
			b = append(b, recs[j%len(recs)]...)
			setDst(b, at+v5DstOffset, 4, j)
			j++
		}
		r.data = append(r.data, datagram{b, per})
	}
	return r, nil
}

// sFlow v5 datagram header with an IPv4 agent: version, address type,
// address, sub-agent, sequence, uptime, sample count.
const sflowHeader = 28

func buildSFlow(caps [][]byte, distinct, per int) (replay, error) {
	type sample struct {
		b       []byte
		dst     int // offset of the sampled packet's destination address
		dstSize int
	}
	var samples []sample
	for _, c := range caps {
		if len(c) < sflowHeader || binary.BigEndian.Uint32(c[4:]) != 1 {
			return replay{}, errors.New("sflow capture: want an IPv4 agent")
		}
		n := int(binary.BigEndian.Uint32(c[24:]))
		off := sflowHeader
		for range n {
			if len(c) < off+8 {
				return replay{}, errors.New("sflow capture: truncated sample")
			}
			format, length := binary.BigEndian.Uint32(c[off:]), int(binary.BigEndian.Uint32(c[off+4:]))
			if len(c) < off+8+length {
				return replay{}, errors.New("sflow capture: truncated sample")
			}
			s := c[off : off+8+length]
			off += 8 + length
			if format != 1 {
				continue // only flow samples make records
			}
			dst, size := sflowDst(s)
			if dst < 0 {
				continue
			}
			samples = append(samples, sample{s, dst, size})
		}
	}
	if len(samples) == 0 {
		return replay{}, errors.New("sflow captures: no flow sample with a raw packet header")
	}
	var r replay
	j := 0
	for range distinct {
		b := slices.Clone(caps[0][:sflowHeader])
		binary.BigEndian.PutUint32(b[24:], uint32(per))
		for range per {
			s := samples[j%len(samples)]
			at := len(b)
			b = append(b, s.b...)
			setDst(b, at+s.dst, s.dstSize, j)
			j++
		}
		r.data = append(r.data, datagram{b, per})
	}
	return r, nil
}

// sflowDst returns the offset in s (a flow sample with its format and
// length words) of the destination address in its raw packet header
// record (Ethernet, then IPv4 or IPv6), and its size; -1 if none.
func sflowDst(s []byte) (int, int) {
	const recordsAt = 8 + 28 // format, length; sequence, source, rate, pool, drops, input, output
	if len(s) < recordsAt+4 {
		return -1, 0
	}
	n := int(binary.BigEndian.Uint32(s[recordsAt:]))
	off := recordsAt + 4
	for range n {
		if len(s) < off+8 {
			return -1, 0
		}
		format, length := binary.BigEndian.Uint32(s[off:]), int(binary.BigEndian.Uint32(s[off+4:]))
		body := off + 8
		off = body + length
		// Raw packet header: protocol, frame length, stripped, header
		// length, then the header.
		if format != 1 || len(s) < off || length < 16 || binary.BigEndian.Uint32(s[body:]) != 1 {
			continue
		}
		h := body + 16
		switch binary.BigEndian.Uint16(s[h+12:]) {
		case 0x0800:
			if h+14+20 <= off {
				return h + 14 + 16, 4
			}
		case 0x86dd:
			if h+14+40 <= off {
				return h + 14 + 24, 16
			}
		}
	}
	return -1, 0
}

// Information elements the NetFlow v9 and IPFIX data records are read
// and written by (RFC 3954 §8; the IPFIX registry agrees).
const (
	ieDstV4 = 12
	ieDstV6 = 28
)

type template struct {
	size    int // bytes per record
	dst     int // offset of the destination address; -1 if none
	dstSize int
}

// buildNetFlow sends the first capture holding templates as setup and
// fills data datagrams with the captured records of one template, in one
// data set as softflowd writes it.
func buildNetFlow(caps [][]byte, ipfix bool, distinct, per int) (replay, error) {
	hdr, tmplSet, optsSet := 20, uint16(0), uint16(1)
	if ipfix {
		hdr, tmplSet, optsSet = 16, 2, 3
	}
	templates := make(map[uint16]template)
	recs := make(map[uint16][][]byte)
	var r replay
	for _, c := range caps {
		sets, err := splitSets(c, hdr)
		if err != nil {
			return replay{}, err
		}
		records := 0
		hasTemplates := false
		for _, s := range sets {
			id := binary.BigEndian.Uint16(s)
			switch {
			case id == tmplSet:
				hasTemplates = true
				if err := parseTemplates(s[4:], ipfix, templates); err != nil {
					return replay{}, err
				}
			case id == optsSet || id < 256:
			default:
				t, ok := templates[id]
				if !ok {
					continue // an options template's data
				}
				body := s[4:]
				for len(body) >= t.size {
					recs[id] = append(recs[id], body[:t.size])
					body = body[t.size:]
					records++
				}
			}
		}
		if hasTemplates && r.setup == nil {
			r.setup = []datagram{{slices.Clone(c), records}}
		}
	}
	if r.setup == nil {
		return replay{}, errors.New("netflow captures: no template datagram")
	}
	// The IPv4 template with the most captured records (softflowd's
	// 1024: TCP and UDP flows with ports), else the IPv6 one.
	var id uint16
	better := func(k uint16) bool {
		t, cur := templates[k], templates[id]
		if len(recs[id]) == 0 || (t.dstSize == 4) != (cur.dstSize == 4) {
			return t.dstSize == 4 || len(recs[id]) == 0
		}
		return len(recs[k]) > len(recs[id])
	}
	for _, k := range slices.Sorted(maps.Keys(recs)) {
		if templates[k].dst >= 0 && better(k) {
			id = k
		}
	}
	if len(recs[id]) == 0 {
		return replay{}, errors.New("netflow captures: no data record with a destination address")
	}
	t := templates[id]
	for j := 0; len(r.data) < distinct; {
		b := slices.Clone(r.setup[0].b[:hdr])
		at := len(b)
		b = binary.BigEndian.AppendUint16(b, id)
		b = binary.BigEndian.AppendUint16(b, 0)
		for range per {
			rec := len(b)
			b = append(b, recs[id][j%len(recs[id])]...)
			setDst(b, rec+t.dst, t.dstSize, j)
			j++
		}
		b = append(b, make([]byte, (4-(len(b)-at)%4)%4)...)
		binary.BigEndian.PutUint16(b[at+2:], uint16(len(b)-at))
		if ipfix {
			binary.BigEndian.PutUint16(b[2:], uint16(len(b))) // message length
		} else {
			binary.BigEndian.PutUint16(b[2:], uint16(per)) // softflowd counts data records
		}
		r.data = append(r.data, datagram{b, per})
	}
	return r, nil
}

// splitSets returns the sets (header included) of a NetFlow v9 or IPFIX
// datagram with a hdr-byte header.
func splitSets(c []byte, hdr int) ([][]byte, error) {
	if len(c) < hdr {
		return nil, errors.New("netflow capture shorter than its header")
	}
	var sets [][]byte
	for off := hdr; off+4 <= len(c); {
		n := int(binary.BigEndian.Uint16(c[off+2:]))
		if n < 4 || off+n > len(c) {
			return nil, fmt.Errorf("netflow capture: set at %d has length %d", off, n)
		}
		sets = append(sets, c[off:off+n])
		off += n
	}
	return sets, nil
}

// parseTemplates adds the templates of a template set's body to ts.
func parseTemplates(b []byte, ipfix bool, ts map[uint16]template) error {
	for len(b) >= 4 {
		id, n := binary.BigEndian.Uint16(b), int(binary.BigEndian.Uint16(b[2:]))
		b = b[4:]
		t := template{dst: -1}
		for range n {
			if len(b) < 4 {
				return errors.New("netflow capture: truncated template")
			}
			ie, size := binary.BigEndian.Uint16(b), int(binary.BigEndian.Uint16(b[2:]))
			b = b[4:]
			if ipfix && ie&0x8000 != 0 {
				if len(b) < 4 {
					return errors.New("netflow capture: truncated template")
				}
				b = b[4:] // enterprise number
			}
			if (ie == ieDstV4 && size == 4) || (ie == ieDstV6 && size == 16) {
				t.dst, t.dstSize = t.size, size
			}
			t.size += size
		}
		ts[id] = t
	}
	return nil
}
