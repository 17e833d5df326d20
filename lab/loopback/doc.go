// Package loopback is an in-process network lab on loopback addresses: ISP
// routers (GoBGP), impairable UDP relays and what else a scenario needs,
// used by `sdnoc demo` and integration tests; it needs no root.
//
// Each part binds its own 127.0.0.0/8 address (Linux routes the whole /8 to
// lo), so an ISP at 127.0.0.2:11179 and another at 127.0.0.3:11179 are
// distinct peers, and nothing leaves the machine.
package loopback
