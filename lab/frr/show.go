package frr

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net/netip"
	"slices"
	"strconv"
	"strings"
)

// Path is one path of a route in a router's BGP table.
type Path struct {
	NextHop netip.Addr
	// Peer is the neighbour the path came from; the zero Addr for a
	// path the router originates.
	Peer  netip.Addr
	Best  bool
	Stale bool // kept for a restarting neighbour (graceful restart)
	// ASPath is the path's AS_PATH, nearest AS first; AS_SET members
	// ({...}) are left out.
	ASPath []uint32
}

// showRoutes is the part of `show bgp ipv4|ipv6 unicast json` read here.
type showRoutes struct {
	Routes map[string][]struct {
		Valid    bool   `json:"valid"`
		Bestpath bool   `json:"bestpath"`
		Stale    bool   `json:"stale"`
		PeerID   string `json:"peerId"`
		ASPath   string `json:"path"`
		Nexthops []struct {
			IP string `json:"ip"`
		} `json:"nexthops"`
	} `json:"routes"`
}

// ParseRoutes reads the JSON of `show bgp ipv4 unicast json` (or ipv6):
// every prefix with its valid paths.
func ParseRoutes(b []byte) (map[netip.Prefix][]Path, error) {
	var s showRoutes
	if err := json.Unmarshal(b, &s); err != nil {
		return nil, fmt.Errorf("bgp table: %w", err)
	}
	out := make(map[netip.Prefix][]Path, len(s.Routes))
	for k, paths := range s.Routes {
		p, err := netip.ParsePrefix(k)
		if err != nil {
			return nil, fmt.Errorf("bgp table: prefix %q: %w", k, err)
		}
		for _, rp := range paths {
			if !rp.Valid {
				continue
			}
			path := Path{Best: rp.Bestpath, Stale: rp.Stale}
			for _, f := range strings.Fields(rp.ASPath) {
				if n, err := strconv.ParseUint(f, 10, 32); err == nil {
					path.ASPath = append(path.ASPath, uint32(n))
				}
			}
			if a, err := netip.ParseAddr(rp.PeerID); err == nil && !a.IsUnspecified() {
				path.Peer = a
			}
			if len(rp.Nexthops) > 0 {
				path.NextHop, _ = netip.ParseAddr(rp.Nexthops[0].IP)
			}
			out[p] = append(out[p], path)
		}
	}
	return out, nil
}

// Table returns the router's IPv4 and IPv6 unicast BGP tables, valid
// paths only, read with one vtysh run (it prints one JSON document per
// command): the lab's scenarios time withdrawals by it.
func (r *Router) Table(ctx context.Context) (map[netip.Prefix][]Path, error) {
	b, err := r.VTY(ctx, "show bgp ipv4 unicast json", "show bgp ipv6 unicast json")
	if err != nil {
		return nil, err
	}
	all := make(map[netip.Prefix][]Path)
	dec := json.NewDecoder(bytes.NewReader(b))
	for range 2 {
		var raw json.RawMessage
		if err := dec.Decode(&raw); err != nil {
			return nil, fmt.Errorf("frr %s: bgp table: %w", r.cfg.Name, err)
		}
		t, err := ParseRoutes(raw)
		if err != nil {
			return nil, fmt.Errorf("frr %s: %w", r.cfg.Name, err)
		}
		for p, ps := range t {
			all[p] = ps
		}
	}
	return all, nil
}

// From returns the prefixes of table that have a valid path learnt from
// peer, sorted.
func From(table map[netip.Prefix][]Path, peer netip.Addr) []netip.Prefix {
	var out []netip.Prefix
	for p, ps := range table {
		for _, path := range ps {
			if path.Peer == peer {
				out = append(out, p)
				break
			}
		}
	}
	slices.SortFunc(out, func(a, b netip.Prefix) int {
		if c := a.Addr().Compare(b.Addr()); c != 0 {
			return c
		}
		return a.Bits() - b.Bits()
	})
	return out
}

// Session is one neighbour as the router sees it.
type Session struct {
	State        string // "Established", "Active", ...
	UpdatesRecv  uint64 // UPDATE messages received since the router started
	PrefixesRecv uint64 // IPv4 + IPv6 prefixes accepted from it now
}

// ParseNeighbors reads the JSON of `show bgp neighbors json`.
func ParseNeighbors(b []byte) (map[netip.Addr]Session, error) {
	var raw map[string]json.RawMessage
	if err := json.Unmarshal(b, &raw); err != nil {
		return nil, fmt.Errorf("bgp neighbors: %w", err)
	}
	out := make(map[netip.Addr]Session, len(raw))
	for k, v := range raw {
		a, err := netip.ParseAddr(k)
		if err != nil {
			continue // not a neighbour entry
		}
		var n struct {
			State        string `json:"bgpState"`
			MessageStats struct {
				UpdatesRecv uint64 `json:"updatesRecv"`
			} `json:"messageStats"`
			AFI map[string]struct {
				Accepted uint64 `json:"acceptedPrefixCounter"`
			} `json:"addressFamilyInfo"`
		}
		if err := json.Unmarshal(v, &n); err != nil {
			return nil, fmt.Errorf("bgp neighbors: %s: %w", k, err)
		}
		s := Session{State: n.State, UpdatesRecv: n.MessageStats.UpdatesRecv}
		for _, af := range n.AFI {
			s.PrefixesRecv += af.Accepted
		}
		out[a] = s
	}
	return out, nil
}

// Sessions returns the router's neighbours by address.
func (r *Router) Sessions(ctx context.Context) (map[netip.Addr]Session, error) {
	b, err := r.VTY(ctx, "show bgp neighbors json")
	if err != nil {
		return nil, err
	}
	s, err := ParseNeighbors(b)
	if err != nil {
		return nil, fmt.Errorf("frr %s: %w", r.cfg.Name, err)
	}
	return s, nil
}
