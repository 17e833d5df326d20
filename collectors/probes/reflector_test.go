package probes_test

import (
	"bytes"
	"errors"
	"net"
	"runtime"
	"testing"
	"time"

	"github.com/sdnoc/sdnoc/collectors/probes"
)

// exchange sends b to the reflector from conn and returns the reply, or
// nil when none comes within wait.
func exchange(t testing.TB, conn *net.UDPConn, b []byte, wait time.Duration) []byte {
	t.Helper()
	if _, err := conn.Write(b); err != nil {
		t.Fatal(err)
	}
	if err := conn.SetReadDeadline(time.Now().Add(wait)); err != nil {
		t.Fatal(err)
	}
	buf := make([]byte, 2048)
	n, err := conn.Read(buf)
	if isTimeout(err) {
		return nil
	}
	if err != nil {
		t.Fatal(err)
	}
	return buf[:n]
}

func isTimeout(err error) bool {
	var ne net.Error
	return errors.As(err, &ne) && ne.Timeout()
}

// dialReflector returns a socket connected to r.
func dialReflector(t testing.TB, r *probes.Reflector) *net.UDPConn {
	t.Helper()
	conn, err := net.DialUDP("udp", nil, net.UDPAddrFromAddrPort(udpAddr(t, r.Addr())))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	return conn
}

func TestReflector(t *testing.T) {
	t.Parallel()
	r, reg := startReflector(t, "127.0.0.1:0")
	conn := dialReflector(t, r)

	ee := probes.NewErrorEstimate(time.Millisecond, true, false)
	for _, tt := range []struct {
		name    string
		padding []byte
	}{
		{"base", nil},
		{"padded", bytes.Repeat([]byte{0xaa}, 56)},
	} {
		before := time.Now()
		out := probes.AppendSenderPacket(nil, probes.SenderPacket{Seq: 41, Timestamp: probes.NTPTimestamp(before), ErrorEstimate: ee})
		out = append(out, tt.padding...)
		in := exchange(t, conn, out, 2*time.Second)
		after := time.Now()
		if in == nil {
			t.Fatalf("%s: no reply", tt.name)
		}
		if len(in) != len(out) {
			t.Errorf("%s: reply is %d octets, want %d like the request", tt.name, len(in), len(out))
		}
		if !bytes.Equal(in[probes.PacketLen:], make([]byte, len(tt.padding))) {
			t.Errorf("%s: reply padding %x, want zeros", tt.name, in[probes.PacketLen:])
		}
		p, err := probes.ParseReflectorPacket(in)
		if err != nil {
			t.Fatalf("%s: %v", tt.name, err)
		}
		if p.Seq != 41 || p.SenderSeq != 41 || p.SenderTimestamp != probes.NTPTimestamp(before) || p.SenderErrorEstimate != ee {
			t.Errorf("%s: reply %+v does not echo seq 41, the timestamp and the error estimate %#x", tt.name, p, ee)
		}
		if p.ErrorEstimate.PTP() || p.ErrorEstimate.Multiplier() == 0 {
			t.Errorf("%s: reflector error estimate %#x, want NTP and a nonzero multiplier", tt.name, p.ErrorEstimate)
		}
		t2, t3 := p.ReceiveTimestamp.NTPTime(), p.Timestamp.NTPTime()
		if t2.Before(before.Truncate(time.Microsecond)) || t3.Before(t2) || t3.After(after) {
			t.Errorf("%s: want request %v <= T2 %v <= T3 %v <= reply %v", tt.name, before, t2, t3, after)
		}
		if runtime.GOOS != "linux" && p.SenderTTL != 255 {
			t.Errorf("%s: TTL %d, want 255 where it cannot be read", tt.name, p.SenderTTL)
		}
	}

	// Too short: dropped and counted.
	if in := exchange(t, conn, make([]byte, 10), 200*time.Millisecond); in != nil {
		t.Errorf("reply %x to a 10-octet datagram, want none", in)
	}
	if got := metric(t, reg, "reflector_malformed_total"); got != 1 {
		t.Errorf("reflector_malformed_total = %v, want 1", got)
	}
	if got := metric(t, reg, "reflector_reflected_total"); got != 2 {
		t.Errorf("reflector_reflected_total = %v, want 2", got)
	}
}

func TestReflectorLifecycle(t *testing.T) {
	t.Parallel()
	if _, err := probes.NewReflector(probes.ReflectorConfig{Listen: "no port"}, probes.ReflectorDeps{}); err == nil {
		t.Error("NewReflector accepted listen \"no port\"")
	}
	r, _ := startReflector(t, "127.0.0.1:0")
	if err := r.Start(t.Context()); err == nil {
		t.Error("second Start succeeded")
	}
	// A busy port fails at Start.
	r2, err := probes.NewReflector(probes.ReflectorConfig{Listen: r.Addr().String()}, probes.ReflectorDeps{})
	if err != nil {
		t.Fatal(err)
	}
	if err := r2.Start(t.Context()); err == nil {
		r2.Stop(t.Context())
		t.Error("Start on a busy port succeeded")
	}
	if err := r.Stop(t.Context()); err != nil {
		t.Fatal(err)
	}
	if r.Addr() != nil {
		t.Errorf("Addr() = %v after Stop, want nil", r.Addr())
	}
}

func BenchmarkReflectorRoundTrip(b *testing.B) {
	r, _ := startReflector(b, "127.0.0.1:0")
	conn := dialReflector(b, r)
	out := probes.AppendSenderPacket(nil, probes.SenderPacket{})
	buf := make([]byte, 2048)
	var n int
	for b.Loop() {
		if _, err := conn.Write(out); err != nil {
			b.Fatal(err)
		}
		if _, err := conn.Read(buf); err != nil {
			b.Fatal(err)
		}
		n++
	}
	b.ReportMetric(float64(n)/b.Elapsed().Seconds(), "probes/s")
}
