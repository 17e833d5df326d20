// Package flow turns the flow datagrams that the edge routers export
// (sFlow v5, NetFlow v5, NetFlow v9 and IPFIX) into traffic rates per ISP
// link and edge prefix, so that when a link fills sdnoc knows which
// prefixes carry its traffic.
//
// The package holds three parts:
//
//   - Decoder, which detects the format of a datagram, decodes it,
//     keeps NetFlow v9/IPFIX templates and sampling rates per exporter,
//     and emits Records scaled by the sampling rate. A fast path
//     (fastpath.go) reads the common layouts straight from the datagram
//     into a reused Record, without a heap allocation; goflow2's decoders
//     (only its decoders/ packages, which register nothing) read the
//     templates and every layout the fast path leaves to them, and remain
//     the reference that FuzzFastPathMatchesGoflow2 holds it to;
//   - Aggregator, which attributes each Record to a link (exporter and
//     input interface, from the configuration) and to the longest edge
//     prefix containing its destination, and keeps bytes and packets in
//     one-second buckets over a window;
//   - Collector, which receives datagrams on several SO_REUSEPORT UDP
//     sockets, one worker each, and feeds both.
//
// Records from unknown exporters or interfaces, or toward destinations
// outside the edge, are counted but not stored, so memory is bounded by
// the configuration whatever the routers send.
package flow
