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
