//go:build !linux

package flow

import "syscall"

// reusePort does nothing off Linux: there, Sockets above 1 fails to
// bind.
func reusePort(_, _ string, _ syscall.RawConn) error { return nil }
