package probes

import (
	"net"
	"net/netip"
	"time"
)

// rxInfo is what the kernel told about a received datagram.
type rxInfo struct {
	at  time.Time // arrival; from the kernel when it stamps, else read time
	ttl int       // IPv4 TTL or IPv6 Hop Limit; -1 when unknown
	// dst is the address the datagram was sent to (IP_PKTINFO); the
	// zero Addr when unknown.
	dst netip.Addr
}

// readDatagram reads one datagram from c into buf, with its source
// (IPv4-mapped addresses unmapped, so that they compare equal to the
// configured IPv4 ones) and its arrival time. The arrival time keeps a
// monotonic reading: it is the read time moved back by how long the
// datagram waited in the socket, as the kernel's wall-clock stamp says.
func readDatagram(c *net.UDPConn, buf, oob []byte) (int, netip.AddrPort, rxInfo, error) {
	n, oobn, _, from, err := c.ReadMsgUDPAddrPort(buf, oob)
	now := time.Now()
	if err != nil {
		return 0, netip.AddrPort{}, rxInfo{}, err
	}
	info := parseOOB(oob[:oobn])
	info.at = arrival(now, info.at)
	return n, netip.AddrPortFrom(from.Addr().Unmap(), from.Port()), info, nil
}

// arrival returns now moved back to the kernel's stamp, unless there is
// none or the wall clock stepped between the two readings.
func arrival(now, kernel time.Time) time.Time {
	if kernel.IsZero() {
		return now
	}
	wait := now.Round(0).Sub(kernel)
	if wait < 0 || wait > time.Second {
		return now
	}
	return now.Add(-wait)
}
