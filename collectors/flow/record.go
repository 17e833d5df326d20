package flow

import (
	"errors"
	"net/netip"
	"time"
)

// Formats, as Record.Format and the format metric label say them.
const (
	FormatSFlow5   = "sflow5"
	FormatNetFlow5 = "netflow5"
	FormatNetFlow9 = "netflow9"
	FormatIPFIX    = "ipfix"
)

// Record is one flow, or one sampled packet for sFlow, with its counters
// already scaled by the sampling rate.
type Record struct {
	Exporter          netip.Addr // UDP source of the datagram (unmapped)
	ObservationDomain uint32     // v9 source ID, IPFIX domain, sFlow sub-agent, v5 engine type<<8|id
	Format            string     // one of the Format constants
	InIf, OutIf       uint32     // SNMP ifIndex; 0 when not given
	Src, Dst          netip.Addr
	Proto             uint8
	SrcPort, DstPort  uint16
	Bytes, Packets    uint64 // already multiplied by SamplingRate
	SamplingRate      uint32 // the one applied; 1 when unsampled or unknown
	Time              time.Time
}

// Errors that Decode returns, wrapped with the format's context; match
// them with errors.Is.
var (
	// ErrTruncated: the datagram ends inside a header or a record.
	ErrTruncated = errors.New("truncated datagram")
	// ErrUnknownVersion: not sFlow v5 nor NetFlow v5, v9 or IPFIX.
	ErrUnknownVersion = errors.New("unknown flow protocol version")
	// ErrMalformed: the datagram is long enough but its content is
	// invalid (bad length, count, template or address type).
	ErrMalformed = errors.New("malformed datagram")
	// ErrNoTemplate: a NetFlow v9 or IPFIX data set refers to a template
	// that the exporter has not sent yet, or that has expired. The other
	// sets of the datagram are still decoded.
	ErrNoTemplate = errors.New("template not known yet")
	// ErrTooManyExporters: the datagram comes from a new exporter while
	// the decoder already keeps state for its maximum.
	ErrTooManyExporters = errors.New("too many exporters")
)
