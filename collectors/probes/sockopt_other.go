//go:build !linux

package probes

import (
	"net"
	"net/netip"
)

// oobLen is 0: outside Linux, no control messages are asked for.
const oobLen = 0

// setRecvOptions does nothing outside Linux: datagrams are stamped in
// user space and their TTL is unknown.
func setRecvOptions(*net.UDPConn) {}

// parseOOB reports nothing outside Linux.
func parseOOB([]byte) rxInfo { return rxInfo{ttl: -1} }

// sourceOOB gives no control message outside Linux: replies leave from
// the address the routing table picks.
func sourceOOB(netip.Addr) []byte { return nil }
