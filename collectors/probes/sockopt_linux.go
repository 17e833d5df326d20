//go:build linux

package probes

import (
	"encoding/binary"
	"net"
	"net/netip"
	"syscall"
	"time"
	"unsafe"
)

// oobLen holds the control messages that setRecvOptions asks for: a
// timespec, an int and a packet info, each with its header, with room
// to spare.
const oobLen = 192

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
		// Where each datagram was sent to, so that a reflector listening
		// on every address answers from the one it was asked on.
		_ = syscall.SetsockoptInt(s, syscall.IPPROTO_IP, syscall.IP_PKTINFO, 1)
		_ = syscall.SetsockoptInt(s, syscall.IPPROTO_IPV6, syscall.IPV6_RECVPKTINFO, 1)
	})
}

// sourceOOB returns the control message that makes a datagram leave from
// src: IP_PKTINFO for IPv4 (also on a dual-stack socket, for mapped
// peers), IPV6_PKTINFO for IPv6; nil for the zero Addr.
func sourceOOB(src netip.Addr) []byte {
	switch {
	case src.Is4() || src.Is4In6():
		var pi syscall.Inet4Pktinfo
		pi.Spec_dst = src.Unmap().As4()
		return cmsg(syscall.IPPROTO_IP, syscall.IP_PKTINFO, unsafe.Slice((*byte)(unsafe.Pointer(&pi)), syscall.SizeofInet4Pktinfo))
	case src.Is6():
		var pi syscall.Inet6Pktinfo
		pi.Addr = src.As16()
		return cmsg(syscall.IPPROTO_IPV6, syscall.IPV6_PKTINFO, unsafe.Slice((*byte)(unsafe.Pointer(&pi)), syscall.SizeofInet6Pktinfo))
	}
	return nil
}

// cmsg builds one control message.
func cmsg(level, typ int, data []byte) []byte {
	b := make([]byte, syscall.CmsgSpace(len(data)))
	h := (*syscall.Cmsghdr)(unsafe.Pointer(&b[0]))
	h.Level, h.Type = int32(level), int32(typ)
	h.SetLen(syscall.CmsgLen(len(data)))
	copy(b[syscall.CmsgLen(0):], data)
	return b
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
		case h.Level == syscall.IPPROTO_IP && h.Type == syscall.IP_PKTINFO && len(m.Data) >= syscall.SizeofInet4Pktinfo:
			// struct in_pktinfo: ifindex, spec_dst, addr (the header's
			// destination).
			info.dst = netip.AddrFrom4([4]byte(m.Data[8:12]))
		case h.Level == syscall.IPPROTO_IPV6 && h.Type == syscall.IPV6_PKTINFO && len(m.Data) >= syscall.SizeofInet6Pktinfo:
			info.dst = netip.AddrFrom16([16]byte(m.Data[:16])).Unmap()
		case h.Level == syscall.IPPROTO_IP && h.Type == syscall.IP_TTL,
			h.Level == syscall.IPPROTO_IPV6 && h.Type == syscall.IPV6_HOPLIMIT:
			if len(m.Data) >= 4 {
				info.ttl = int(binary.NativeEndian.Uint32(m.Data))
			}
		}
	}
	return info
}
