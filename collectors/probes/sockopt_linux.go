//go:build linux

package probes

import (
	"encoding/binary"
	"net"
	"syscall"
	"time"
)

// oobLen holds the control messages that setRecvOptions asks for: one
// timespec and one int, each with its header, with room to spare.
const oobLen = 128

// setRecvOptions asks the kernel to attach to each datagram read from c
// its arrival time (SO_TIMESTAMPNS) and its IPv4 TTL or IPv6 Hop Limit.
// Each option is best effort: an IPv4 socket refuses the IPv6 one, and
// what is not given is stamped in user space or reported as unknown.
// A dual-stack IPv6 socket takes IP_RECVTTL too, for IPv4-mapped peers.
func setRecvOptions(c *net.UDPConn) {
	raw, err := c.SyscallConn()
	if err != nil {
		return
	}
	_ = raw.Control(func(fd uintptr) {
		s := int(fd)
		_ = syscall.SetsockoptInt(s, syscall.SOL_SOCKET, syscall.SO_TIMESTAMPNS, 1)
		_ = syscall.SetsockoptInt(s, syscall.IPPROTO_IP, syscall.IP_RECVTTL, 1)
		_ = syscall.SetsockoptInt(s, syscall.IPPROTO_IPV6, syscall.IPV6_RECVHOPLIMIT, 1)
	})
}

// parseOOB reads the control messages that setRecvOptions asked for.
func parseOOB(oob []byte) rxInfo {
	info := rxInfo{ttl: -1}
	msgs, err := syscall.ParseSocketControlMessage(oob)
	if err != nil {
		return info
	}
	for _, m := range msgs {
		h := m.Header
		switch {
		case h.Level == syscall.SOL_SOCKET && h.Type == syscall.SCM_TIMESTAMPNS:
			// struct timespec: two longs, 64 or 32 bits wide.
			switch len(m.Data) {
			case 16:
				info.at = time.Unix(int64(binary.NativeEndian.Uint64(m.Data)), int64(binary.NativeEndian.Uint64(m.Data[8:])))
			case 8:
				info.at = time.Unix(int64(int32(binary.NativeEndian.Uint32(m.Data))), int64(binary.NativeEndian.Uint32(m.Data[4:])))
			}
		case h.Level == syscall.IPPROTO_IP && h.Type == syscall.IP_TTL,
			h.Level == syscall.IPPROTO_IPV6 && h.Type == syscall.IPV6_HOPLIMIT:
			if len(m.Data) >= 4 {
				info.ttl = int(binary.NativeEndian.Uint32(m.Data))
			}
		}
	}
	return info
}
