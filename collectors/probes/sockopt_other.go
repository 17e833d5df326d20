//go:build !linux

package probes

import "net"

// oobLen is 0: outside Linux, no control messages are asked for.
const oobLen = 0

// setRecvOptions does nothing outside Linux: datagrams are stamped in
// user space and their TTL is unknown.
func setRecvOptions(*net.UDPConn) {}

// parseOOB reports nothing outside Linux.
func parseOOB([]byte) rxInfo { return rxInfo{ttl: -1} }
