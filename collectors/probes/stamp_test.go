package probes

import (
	"bytes"
	"encoding/hex"
	"errors"
	"strings"
	"testing"
	"time"
)

// fromHex decodes a hex dump; spaces and newlines are for reading only.
func fromHex(s string) []byte {
	b, err := hex.DecodeString(strings.Join(strings.Fields(s), ""))
	if err != nil {
		panic(err)
	}
	return b
}

var zeros30 = strings.Repeat("00", 30)

// Laid out by hand from RFC 8762 §4.2.1.
var senderTests = []struct {
	name    string
	in      []byte
	want    SenderPacket
	wantErr error
}{
	{"empty", nil, SenderPacket{}, ErrTruncated},
	{"43 octets", fromHex("00000007 83aa7e8180000000 0f84" + strings.Repeat("00", 29)), SenderPacket{}, ErrTruncated},
	{
		"base", fromHex("00000007 83aa7e8180000000 0f84" + zeros30),
		SenderPacket{Seq: 7, Timestamp: 0x83aa7e81_80000000, ErrorEstimate: 0x0f84}, nil,
	},
	{
		"padded", fromHex("ffffffff e93c7f0000000000 8001" + zeros30 + strings.Repeat("00", 16)),
		SenderPacket{Seq: 0xffffffff, Timestamp: 0xe93c7f00_00000000, ErrorEstimate: 0x8001, Padding: 16}, nil,
	},
	{
		"MBZ not zero is ignored", fromHex("00000007 83aa7e8180000000 0f84" + strings.Repeat("ff", 30)),
		SenderPacket{Seq: 7, Timestamp: 0x83aa7e81_80000000, ErrorEstimate: 0x0f84}, nil,
	},
	{
		"zero multiplier is accepted", fromHex("00000001 83aa7e8180000000 0000" + zeros30),
		SenderPacket{Seq: 1, Timestamp: 0x83aa7e81_80000000}, nil,
	},
	{
		"PTP", fromHex("00000002 659200800ee6b280 4001" + zeros30),
		SenderPacket{Seq: 2, Timestamp: 0x65920080_0ee6b280, ErrorEstimate: 0x4001}, nil,
	},
	{"PTP nanoseconds out of range", fromHex("00000002 659200803b9aca00 4001" + zeros30), SenderPacket{}, ErrMalformed},
}

// Laid out by hand from RFC 8762 §4.3.1.
const reflectorBase = "00000100 e93c7f0040000000 0f84 0000 e93c7f0020000000 00000007 e93c7f0000000000 8001 0000 3f 000000"

var reflectorWant = ReflectorPacket{
	Seq: 0x100, Timestamp: 0xe93c7f00_40000000, ErrorEstimate: 0x0f84, ReceiveTimestamp: 0xe93c7f00_20000000,
	SenderSeq: 7, SenderTimestamp: 0xe93c7f00_00000000, SenderErrorEstimate: 0x8001, SenderTTL: 63,
}

var reflectorTests = []struct {
	name    string
	in      []byte
	want    ReflectorPacket
	wantErr error
}{
	{"empty", nil, ReflectorPacket{}, ErrTruncated},
	{"sender-sized but cut", fromHex(reflectorBase)[:40], ReflectorPacket{}, ErrTruncated},
	{"base", fromHex(reflectorBase), reflectorWant, nil},
	{"padded", fromHex(reflectorBase + strings.Repeat("00", 100)), func() ReflectorPacket {
		p := reflectorWant
		p.Padding = 100
		return p
	}(), nil},
	{
		"MBZ not zero is ignored",
		fromHex("00000100 e93c7f0040000000 0f84 ffff e93c7f0020000000 00000007 e93c7f0000000000 8001 ffff 3f ffffff"),
		reflectorWant, nil,
	},
	{
		"PTP reflector, NTP sender",
		fromHex("00000007 659200800ee6b280 4f84 0000 6592008007735940 00000007 e93c7f0000000000 0001 0000 40 000000"),
		ReflectorPacket{
			Seq: 7, Timestamp: 0x65920080_0ee6b280, ErrorEstimate: 0x4f84, ReceiveTimestamp: 0x65920080_07735940,
			SenderSeq: 7, SenderTimestamp: 0xe93c7f00_00000000, SenderErrorEstimate: 0x0001, SenderTTL: 64,
		}, nil,
	},
	{
		"PTP receive timestamp out of range",
		fromHex("00000007 659200800ee6b280 4f84 0000 65920080ffffffff 00000007 e93c7f0000000000 0001 0000 40 000000"),
		ReflectorPacket{}, ErrMalformed,
	},
	{
		"PTP sender timestamp out of range",
		fromHex("00000007 e93c7f0040000000 0f84 0000 e93c7f0020000000 00000007 65920080ffffffff 4001 0000 40 000000"),
		ReflectorPacket{}, ErrMalformed,
	},
}

func TestParseSenderPacket(t *testing.T) {
	for _, tt := range senderTests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := ParseSenderPacket(tt.in)
			if !errors.Is(err, tt.wantErr) || got != tt.want {
				t.Fatalf("ParseSenderPacket() = %+v, %v; want %+v, %v", got, err, tt.want, tt.wantErr)
			}
		})
	}
}

func TestParseReflectorPacket(t *testing.T) {
	for _, tt := range reflectorTests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := ParseReflectorPacket(tt.in)
			if !errors.Is(err, tt.wantErr) || got != tt.want {
				t.Fatalf("ParseReflectorPacket() = %+v, %v; want %+v, %v", got, err, tt.want, tt.wantErr)
			}
		})
	}
}

// Appending gives the RFC layout back, MBZ zeroed.
func TestAppendPackets(t *testing.T) {
	prefix := []byte("prefix")
	for _, tt := range senderTests {
		if tt.wantErr != nil || tt.name == "MBZ not zero is ignored" {
			continue
		}
		got := AppendSenderPacket(bytes.Clone(prefix), tt.want)
		if want := append(bytes.Clone(prefix), tt.in...); !bytes.Equal(got, want) {
			t.Errorf("%s: AppendSenderPacket() =\n%x\nwant\n%x", tt.name, got, want)
		}
	}
	for _, tt := range reflectorTests {
		if tt.wantErr != nil || tt.name == "MBZ not zero is ignored" {
			continue
		}
		got := AppendReflectorPacket(bytes.Clone(prefix), tt.want)
		if want := append(bytes.Clone(prefix), tt.in...); !bytes.Equal(got, want) {
			t.Errorf("%s: AppendReflectorPacket() =\n%x\nwant\n%x", tt.name, got, want)
		}
	}
	if got := AppendSenderPacket(nil, SenderPacket{Padding: -5}); len(got) != PacketLen {
		t.Errorf("negative Padding: %d octets, want %d", len(got), PacketLen)
	}
}

func TestTimestamps(t *testing.T) {
	for _, tt := range []struct {
		name string
		t    time.Time
		ntp  Timestamp
	}{
		{"unix epoch plus 1.5s", time.Unix(1, 5e8), 0x83aa7e81_80000000},
		{"2024", time.Date(2024, 1, 1, 0, 0, 0, 0, time.UTC), 0xe93c7f00_00000000},
		{"NTP era 1 begins", time.Date(2036, 2, 7, 6, 28, 16, 0, time.UTC), 0},
		{"last second of era 0", time.Date(2036, 2, 7, 6, 28, 15, 0, time.UTC), 0xffffffff_00000000},
	} {
		if got := NTPTimestamp(tt.t); got != tt.ntp {
			t.Errorf("%s: NTPTimestamp() = %#x, want %#x", tt.name, got, tt.ntp)
		}
		if got := tt.ntp.NTPTime(); !got.Equal(tt.t) {
			t.Errorf("%s: NTPTime() = %v, want %v", tt.name, got, tt.t)
		}
	}
	// Every nanosecond survives the trip, from 1968 to 2104.
	for _, tm := range []time.Time{
		time.Date(1968, 1, 20, 3, 14, 8, 0, time.UTC),
		time.Date(2025, 6, 30, 23, 59, 59, 999999999, time.UTC),
		time.Date(2036, 2, 7, 6, 28, 15, 999999999, time.UTC),
		time.Date(2036, 2, 7, 6, 28, 16, 1, time.UTC),
		time.Date(2104, 2, 26, 9, 42, 23, 123456789, time.UTC),
	} {
		if got := NTPTimestamp(tm).NTPTime(); !got.Equal(tm) {
			t.Errorf("NTP round trip of %v gives %v", tm, got)
		}
		if got := PTPTimestamp(tm).PTPTime(); tm.Year() < 2106 && tm.Year() > 1970 && !got.Equal(tm) {
			t.Errorf("PTP round trip of %v gives %v", tm, got)
		}
	}
	ts := PTPTimestamp(time.Date(2024, 1, 1, 0, 0, 0, 250e6, time.UTC))
	if ts != 0x65920080_0ee6b280 {
		t.Errorf("PTPTimestamp() = %#x", ts)
	}
	if got, want := ts.Time(NewErrorEstimate(0, false, true)), time.Date(2024, 1, 1, 0, 0, 0, 250e6, time.UTC); !got.Equal(want) {
		t.Errorf("Time(Z=1) = %v, want %v", got, want)
	}
	if got, want := Timestamp(0xe93c7f00_00000000).Time(localErrorEstimate), time.Date(2024, 1, 1, 0, 0, 0, 0, time.UTC); !got.Equal(want) {
		t.Errorf("Time(Z=0) = %v, want %v", got, want)
	}
}

func TestErrorEstimate(t *testing.T) {
	for _, tt := range []struct {
		name         string
		d            time.Duration
		sync, ptp    bool
		want         ErrorEstimate
		scale, mult  uint8
		min, maxDiff time.Duration // Duration() must be in [min, min+maxDiff]
	}{
		{"1ms is the local estimate", time.Millisecond, false, false, localErrorEstimate, 15, 132, time.Millisecond, 10 * time.Microsecond},
		{"zero gives the smallest", 0, false, false, 0x0001, 0, 1, 0, time.Nanosecond},
		{"flags", time.Second, true, true, 0xc000 | 25<<8 | 128, 25, 128, time.Second, 0},
		{"the largest Duration", 1<<63 - 1, false, false, 58<<8 | 138, 58, 138, 1<<63 - 1, 0},
	} {
		e := NewErrorEstimate(tt.d, tt.sync, tt.ptp)
		if e != tt.want || e.Scale() != tt.scale || e.Multiplier() != tt.mult || e.Synchronized() != tt.sync || e.PTP() != tt.ptp {
			t.Errorf("%s: NewErrorEstimate(%v) = %#04x (S=%v Z=%v scale %d mult %d), want %#04x",
				tt.name, tt.d, uint16(e), e.Synchronized(), e.PTP(), e.Scale(), e.Multiplier(), uint16(tt.want))
		}
		if got := e.Duration(); got < tt.min || got > tt.min+tt.maxDiff {
			t.Errorf("%s: Duration() = %v, want %v..%v", tt.name, got, tt.min, tt.min+tt.maxDiff)
		}
	}
}

func TestErrorEstimateDurationCaps(t *testing.T) {
	if got := ErrorEstimate(0x3fff).Duration(); got != 1<<63-1 {
		t.Errorf("Duration() of the largest estimate = %v, want the largest Duration", got)
	}
}

func FuzzParseSenderPacket(f *testing.F) {
	for _, tt := range senderTests {
		f.Add(tt.in)
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		p, err := ParseSenderPacket(b)
		if err != nil {
			return
		}
		out := AppendSenderPacket(nil, p)
		if len(out) != len(b) || !bytes.Equal(out[:senderErrorEst+2], b[:senderErrorEst+2]) {
			t.Fatalf("AppendSenderPacket(%+v) = %x, from %x", p, out, b)
		}
		if q, err := ParseSenderPacket(out); err != nil || q != p {
			t.Fatalf("round trip: %+v, %v; want %+v", q, err, p)
		}
	})
}

func FuzzParseReflectorPacket(f *testing.F) {
	for _, tt := range reflectorTests {
		f.Add(tt.in)
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		p, err := ParseReflectorPacket(b)
		if err != nil {
			return
		}
		out := AppendReflectorPacket(nil, p)
		if len(out) != len(b) {
			t.Fatalf("AppendReflectorPacket(%+v) is %d octets, from %d", p, len(out), len(b))
		}
		if q, err := ParseReflectorPacket(out); err != nil || q != p {
			t.Fatalf("round trip: %+v, %v; want %+v", q, err, p)
		}
	})
}

func BenchmarkParseReflectorPacket(b *testing.B) {
	pkt := fromHex(reflectorBase)
	var n int
	b.ReportAllocs()
	for b.Loop() {
		if _, err := ParseReflectorPacket(pkt); err != nil {
			b.Fatal(err)
		}
		n++
	}
	b.ReportMetric(float64(n)/b.Elapsed().Seconds(), "packets/s")
}

func BenchmarkAppendSenderPacket(b *testing.B) {
	buf := make([]byte, 0, PacketLen)
	var n int
	b.ReportAllocs()
	for b.Loop() {
		buf = AppendSenderPacket(buf[:0], SenderPacket{Seq: uint32(n), Timestamp: NTPTimestamp(time.Now()), ErrorEstimate: localErrorEstimate})
		n++
	}
	b.ReportMetric(float64(n)/b.Elapsed().Seconds(), "packets/s")
}
