//go:build linux

package flow

import (
	"syscall"

	"golang.org/x/sys/unix"
)

// reusePort lets several sockets bind the same address, the kernel
// spreading datagrams over them by source (SO_REUSEPORT, Linux 3.9).
func reusePort(_, _ string, c syscall.RawConn) error {
	var serr error
	if err := c.Control(func(fd uintptr) {
		serr = unix.SetsockoptInt(int(fd), unix.SOL_SOCKET, unix.SO_REUSEPORT, 1)
	}); err != nil {
		return err
	}
	return serr
}
