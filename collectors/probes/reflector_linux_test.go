package probes_test

import (
	"net"
	"net/netip"
	"syscall"
	"testing"
	"time"

	"github.com/sdnoc/sdnoc/collectors/probes"
)

// The reflector copies the TTL (IPv4) or Hop Limit (IPv6) of the test
// packet as it arrived (RFC 8762 §4.3.1). The senders set an unusual
// value, so that the default 64 cannot pass by chance.
func TestReflectorTTL(t *testing.T) {
	t.Parallel()
	for _, tt := range []struct {
		name, listen, dest string
		level, opt         int
	}{
		{"IPv4", "127.0.0.1:0", "127.0.0.1", syscall.IPPROTO_IP, syscall.IP_TTL},
		{"IPv6", "[::1]:0", "::1", syscall.IPPROTO_IPV6, syscall.IPV6_UNICAST_HOPS},
		// The default config listens dual-stack; IPv4 then arrives mapped.
		{"IPv4 to a dual-stack socket", ":0", "127.0.0.1", syscall.IPPROTO_IP, syscall.IP_TTL},
	} {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			if tt.dest == "::1" {
				if c, err := net.ListenPacket("udp6", "[::1]:0"); err != nil {
					t.Skipf("no IPv6 loopback: %v", err)
				} else {
					c.Close()
				}
			}
			r, _ := startReflector(t, tt.listen)
			port := udpAddr(t, r.Addr()).Port()
			conn, err := net.DialUDP("udp", nil, net.UDPAddrFromAddrPort(netip.AddrPortFrom(netip.MustParseAddr(tt.dest), port)))
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { conn.Close() })
			raw, err := conn.SyscallConn()
			if err != nil {
				t.Fatal(err)
			}
			var serr error
			if err := raw.Control(func(fd uintptr) { serr = syscall.SetsockoptInt(int(fd), tt.level, tt.opt, 42) }); err != nil || serr != nil {
				t.Fatal(err, serr)
			}
			in := exchange(t, conn, probes.AppendSenderPacket(nil, probes.SenderPacket{Seq: 1}), 2*time.Second)
			p, err := probes.ParseReflectorPacket(in)
			if err != nil {
				t.Fatal(err)
			}
			if p.SenderTTL != 42 {
				t.Errorf("Session-Sender TTL = %d, want 42", p.SenderTTL)
			}
		})
	}
}

// A reflector listening on every address answers from the address it
// was asked on, not the one the route back picks: on a host holding many
// probe targets, senders match replies by their source. 127.0.0.2 is
// asked; the route back to 127.0.0.1 would pick 127.0.0.1.
func TestReflectorAnswersFromTheAddressAsked(t *testing.T) {
	t.Parallel()
	for _, listen := range []string{"0.0.0.0:0", ":0"} {
		t.Run(listen, func(t *testing.T) {
			t.Parallel()
			r, _ := startReflector(t, listen)
			target := netip.AddrPortFrom(netip.MustParseAddr("127.0.0.2"), udpAddr(t, r.Addr()).Port())
			conn, err := net.ListenUDP("udp4", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { conn.Close() })
			if _, err := conn.WriteToUDPAddrPort(probes.AppendSenderPacket(nil, probes.SenderPacket{Seq: 7}), target); err != nil {
				t.Fatal(err)
			}
			if err := conn.SetReadDeadline(time.Now().Add(2 * time.Second)); err != nil {
				t.Fatal(err)
			}
			buf := make([]byte, 2048)
			n, from, err := conn.ReadFromUDPAddrPort(buf)
			if err != nil {
				t.Fatal(err)
			}
			if from.Addr().Unmap() != target.Addr() || from.Port() != target.Port() {
				t.Fatalf("reply from %v, want %v", from, target)
			}
			if p, err := probes.ParseReflectorPacket(buf[:n]); err != nil || p.SenderSeq != 7 {
				t.Fatalf("reply %+v, %v", p, err)
			}
		})
	}
}
