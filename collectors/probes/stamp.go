package probes

import (
	"encoding/binary"
	"errors"
)

// Port is the well-known UDP port of a STAMP Session-Reflector
// (RFC 8762 §4.1, the port IANA assigned to the TWAMP-Test receiver).
const Port = 862

// PacketLen is the length of an unauthenticated STAMP test packet, of
// either side (RFC 8762 §4.2.1 and §4.3.1). The Session-Sender packet
// carries 30 octets of MBZ so that it is as long as the reflected one,
// and both may be longer (padding, RFC 8972 TLVs).
const PacketLen = 44

// Field offsets in the Session-Sender packet, unauthenticated mode
// (RFC 8762 §4.2.1): Sequence Number (4), Timestamp (8), Error Estimate
// (2), MBZ (30).
const (
	senderSeq       = 0
	senderTimestamp = 4
	senderErrorEst  = 12
)

// Field offsets in the Session-Reflector packet, unauthenticated mode
// (RFC 8762 §4.3.1): Sequence Number (4), Timestamp (8), Error Estimate
// (2), MBZ (2), Receive Timestamp (8), Session-Sender Sequence Number (4),
// Session-Sender Timestamp (8), Session-Sender Error Estimate (2), MBZ
// (2), Session-Sender TTL (1), MBZ (3).
const (
	reflSeq             = 0
	reflTimestamp       = 4
	reflErrorEst        = 12
	reflReceive         = 16
	reflSenderSeq       = 24
	reflSenderTimestamp = 28
	reflSenderErrorEst  = 36
	reflSenderTTL       = 40
)

var (
	// ErrTruncated is returned for a datagram shorter than PacketLen.
	ErrTruncated = errors.New("truncated STAMP packet")
	// ErrMalformed is returned for a packet whose fields cannot be used:
	// a PTP timestamp whose nanoseconds reach 10^9.
	ErrMalformed = errors.New("malformed STAMP packet")
)

// SenderPacket is a Session-Sender test packet in unauthenticated mode
// (RFC 8762 §4.2.1).
type SenderPacket struct {
	Seq           uint32        // counts from 0, one per test packet
	Timestamp     Timestamp     // when the packet was sent
	ErrorEstimate ErrorEstimate // of Timestamp; its Z flag names the format
	Padding       int           // octets after the first PacketLen; written as zeros
}

// ParseSenderPacket decodes a Session-Sender test packet. Octets beyond
// PacketLen are counted in Padding, so that a reflector can reply with a
// packet as long (RFC 8762 §4.3: the reflected packet is symmetrical).
// MBZ octets are ignored, as RFC 8762 §4.2.1 asks of a receiver. A zero
// Multiplier in the Error Estimate, which RFC 4656 §4.1.2 calls corrupt,
// is accepted: dropping such probes would look like loss, which is worse
// than an Error Estimate that says nothing.
func ParseSenderPacket(b []byte) (SenderPacket, error) {
	if len(b) < PacketLen {
		return SenderPacket{}, ErrTruncated
	}
	p := SenderPacket{
		Seq:           binary.BigEndian.Uint32(b[senderSeq:]),
		Timestamp:     Timestamp(binary.BigEndian.Uint64(b[senderTimestamp:])),
		ErrorEstimate: ErrorEstimate(binary.BigEndian.Uint16(b[senderErrorEst:])),
		Padding:       len(b) - PacketLen,
	}
	if !p.Timestamp.valid(p.ErrorEstimate) {
		return SenderPacket{}, ErrMalformed
	}
	return p, nil
}

// AppendSenderPacket appends p to dst in wire format, MBZ and padding
// zeroed, and returns the extended slice.
func AppendSenderPacket(dst []byte, p SenderPacket) []byte {
	dst = binary.BigEndian.AppendUint32(dst, p.Seq)
	dst = binary.BigEndian.AppendUint64(dst, uint64(p.Timestamp))
	dst = binary.BigEndian.AppendUint16(dst, uint16(p.ErrorEstimate))
	return appendZeros(dst, PacketLen-senderErrorEst-2+max(p.Padding, 0))
}

// ReflectorPacket is a Session-Reflector test packet in unauthenticated
// mode (RFC 8762 §4.3.1).
type ReflectorPacket struct {
	// Seq is the sender's Seq for a stateless reflector, the reflector's
	// own count for a stateful one (RFC 8762 §4.3.1).
	Seq              uint32
	Timestamp        Timestamp     // when the reflector sent the packet (T3)
	ErrorEstimate    ErrorEstimate // of Timestamp and ReceiveTimestamp
	ReceiveTimestamp Timestamp     // when the reflector received the test packet (T2)

	// The Session-Sender fields copy the test packet that caused this one.
	SenderSeq           uint32
	SenderTimestamp     Timestamp // T1
	SenderErrorEstimate ErrorEstimate
	SenderTTL           uint8 // IPv4 TTL or IPv6 Hop Limit of the test packet as received

	Padding int // octets after the first PacketLen; written as zeros
}

// ParseReflectorPacket decodes a Session-Reflector test packet. Like
// ParseSenderPacket, it counts extra octets in Padding, ignores MBZ and
// accepts a zero Multiplier.
func ParseReflectorPacket(b []byte) (ReflectorPacket, error) {
	if len(b) < PacketLen {
		return ReflectorPacket{}, ErrTruncated
	}
	p := ReflectorPacket{
		Seq:                 binary.BigEndian.Uint32(b[reflSeq:]),
		Timestamp:           Timestamp(binary.BigEndian.Uint64(b[reflTimestamp:])),
		ErrorEstimate:       ErrorEstimate(binary.BigEndian.Uint16(b[reflErrorEst:])),
		ReceiveTimestamp:    Timestamp(binary.BigEndian.Uint64(b[reflReceive:])),
		SenderSeq:           binary.BigEndian.Uint32(b[reflSenderSeq:]),
		SenderTimestamp:     Timestamp(binary.BigEndian.Uint64(b[reflSenderTimestamp:])),
		SenderErrorEstimate: ErrorEstimate(binary.BigEndian.Uint16(b[reflSenderErrorEst:])),
		SenderTTL:           b[reflSenderTTL],
		Padding:             len(b) - PacketLen,
	}
	if !p.Timestamp.valid(p.ErrorEstimate) || !p.ReceiveTimestamp.valid(p.ErrorEstimate) ||
		!p.SenderTimestamp.valid(p.SenderErrorEstimate) {
		return ReflectorPacket{}, ErrMalformed
	}
	return p, nil
}

// AppendReflectorPacket appends p to dst in wire format, MBZ and padding
// zeroed, and returns the extended slice.
func AppendReflectorPacket(dst []byte, p ReflectorPacket) []byte {
	dst = binary.BigEndian.AppendUint32(dst, p.Seq)
	dst = binary.BigEndian.AppendUint64(dst, uint64(p.Timestamp))
	dst = binary.BigEndian.AppendUint16(dst, uint16(p.ErrorEstimate))
	dst = appendZeros(dst, 2)
	dst = binary.BigEndian.AppendUint64(dst, uint64(p.ReceiveTimestamp))
	dst = binary.BigEndian.AppendUint32(dst, p.SenderSeq)
	dst = binary.BigEndian.AppendUint64(dst, uint64(p.SenderTimestamp))
	dst = binary.BigEndian.AppendUint16(dst, uint16(p.SenderErrorEstimate))
	dst = appendZeros(dst, 2)
	dst = append(dst, p.SenderTTL)
	return appendZeros(dst, 3+max(p.Padding, 0))
}

func appendZeros(dst []byte, n int) []byte {
	return append(dst, make([]byte, n)...)
}
