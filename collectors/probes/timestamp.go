package probes

import (
	"math"
	"time"
)

// ntpUnixOffset is the number of seconds from the NTP prime epoch,
// 1900-01-01 (RFC 5905 §6), to the Unix epoch, 1970-01-01.
const ntpUnixOffset = 2208988800

// Timestamp is a 64-bit STAMP timestamp (RFC 8762 §4.2.1). The Z flag of
// the Error Estimate that travels with it names its format: NTP 64-bit
// (Z=0; RFC 5905 §6: seconds since 1900 in the high 32 bits, a binary
// fraction of a second in the low 32 bits) or PTPv2 truncated (Z=1;
// RFC 8186 §2.3: seconds since 1970 in the high 32 bits, nanoseconds in
// the low 32 bits).
type Timestamp uint64

// NTPTimestamp returns t in NTP 64-bit format. Seconds wrap into the
// current NTP era (RFC 5905 §6); NTPTime undoes that for 1968 to 2104.
func NTPTimestamp(t time.Time) Timestamp {
	sec := uint64(t.Unix()+ntpUnixOffset) & math.MaxUint32
	// Round the fraction up so that NTPTime, which rounds down, gives back
	// the same nanosecond: one fraction step (~233 ps) is finer than 1 ns.
	frac := (uint64(t.Nanosecond())<<32 + 1e9 - 1) / 1e9
	return Timestamp(sec<<32 | frac)
}

// NTPTime reads ts as an NTP 64-bit timestamp. Seconds with the top bit
// clear are taken to be in era 1, from 2036 (RFC 4330 §3), so the result
// lies between 1968 and 2104.
func (ts Timestamp) NTPTime() time.Time {
	sec := int64(ts >> 32)
	if sec < 1<<31 {
		sec += 1 << 32
	}
	ns := uint64(uint32(ts)) * 1e9 >> 32
	return time.Unix(sec-ntpUnixOffset, int64(ns)).UTC()
}

// PTPTimestamp returns t in PTPv2 truncated format. sdnoc stamps with the
// system clock (UTC), so the 37 s by which PTP time (TAI) is ahead are
// not added; only differences between timestamps of one clock are used.
func PTPTimestamp(t time.Time) Timestamp {
	return Timestamp(uint64(uint32(t.Unix()))<<32 | uint64(t.Nanosecond()))
}

// PTPTime reads ts as a PTPv2 truncated timestamp.
func (ts Timestamp) PTPTime() time.Time {
	return time.Unix(int64(ts>>32), int64(uint32(ts))).UTC()
}

// Time reads ts in the format that e's Z flag names.
func (ts Timestamp) Time(e ErrorEstimate) time.Time {
	if e.PTP() {
		return ts.PTPTime()
	}
	return ts.NTPTime()
}

// valid reports whether ts can be read in the format that e names: every
// NTP value is a time, but PTP nanoseconds stop below 10^9.
func (ts Timestamp) valid(e ErrorEstimate) bool {
	return !e.PTP() || uint32(ts) < 1e9
}

// ErrorEstimate is the 16-bit Error Estimate field of RFC 4656 §4.1.2,
// with the Z flag of RFC 8186 §2.3:
//
//	 0                   1
//	 0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5
//	+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//	|S|Z|   Scale   |   Multiplier  |
//	+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//
// The estimated error is Multiplier×2^(Scale−32) seconds.
type ErrorEstimate uint16

const (
	errorEstimateS = 1 << 15 // clock synchronised to UTC by an external source
	errorEstimateZ = 1 << 14 // timestamps are PTPv2 truncated, not NTP

	// localErrorEstimate is what sdnoc puts in its own packets: S=0 (we do
	// not know whether the host clock is disciplined), Z=0 (NTP), and
	// 132×2^(15−32) s ≈ 1.007 ms, the order of the delay between a
	// datagram's arrival and a user-space stamp on a busy host.
	localErrorEstimate ErrorEstimate = 15<<8 | 132
)

// NewErrorEstimate returns the Error Estimate with the flags given and
// the smallest Scale whose Multiplier still covers d. RFC 4656 §4.1.2
// forbids a zero Multiplier, so d <= 0 gives the smallest estimate there
// is, 2^−32 s.
func NewErrorEstimate(d time.Duration, synchronized, ptp bool) ErrorEstimate {
	var e ErrorEstimate
	if synchronized {
		e |= errorEstimateS
	}
	if ptp {
		e |= errorEstimateZ
	}
	units := math.Ceil(d.Seconds() * (1 << 32)) // in 2^-32 s
	// Any Duration fits below Scale 63: the largest is under 2^34 s.
	scale := 0
	for units > math.Ldexp(math.MaxUint8, scale) {
		scale++
	}
	m := max(math.Ceil(math.Ldexp(units, -scale)), 1)
	return e | ErrorEstimate(scale)<<8 | ErrorEstimate(m)
}

// Synchronized reports the S flag: the sender's clock is synchronised to
// UTC by an external source.
func (e ErrorEstimate) Synchronized() bool { return e&errorEstimateS != 0 }

// PTP reports the Z flag: the timestamps are PTPv2 truncated, not NTP.
func (e ErrorEstimate) PTP() bool { return e&errorEstimateZ != 0 }

// Scale is the 6-bit exponent of the estimate.
func (e ErrorEstimate) Scale() uint8 { return uint8(e>>8) & 0x3f }

// Multiplier is the 8-bit mantissa of the estimate. RFC 4656 §4.1.2 says
// it must not be 0; the parsers accept 0 all the same (see
// ParseSenderPacket).
func (e ErrorEstimate) Multiplier() uint8 { return uint8(e) }

// Duration is the estimated error, Multiplier×2^(Scale−32) seconds,
// capped at the largest Duration.
func (e ErrorEstimate) Duration() time.Duration {
	ns := float64(e.Multiplier()) * math.Ldexp(1, int(e.Scale())-32) * 1e9
	if ns >= math.MaxInt64 {
		return math.MaxInt64
	}
	return time.Duration(math.Ceil(ns))
}
