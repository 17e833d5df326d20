// Package probes measures each ISP link with active probes: STAMP
// (RFC 8762) test packets sent through the link to one or more
// reflectors, turned into one Sample per link per window (loss, RTT,
// jitter, time since the last reply).
//
// The package holds three parts:
//
//   - a codec for the unauthenticated STAMP test packets, pure functions
//     over []byte (ParseSenderPacket, AppendSenderPacket,
//     ParseReflectorPacket, AppendReflectorPacket);
//   - Reflector, a stateless Session-Reflector (RFC 8762 §4.3) that the
//     far ends run (sdnoc reflector);
//   - Collector, one Session-Sender per ISP link, each on its own socket
//     bound to the link's local address so that its probes leave through
//     that ISP.
//
// A link whose socket cannot be bound or whose probes cannot be sent
// reports Known=false rather than loss: missing data is not bad data.
package probes
