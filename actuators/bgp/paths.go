package bgp

import (
	"errors"
	"fmt"
	"net/netip"

	api "github.com/osrg/gobgp/v3/api"
	"google.golang.org/protobuf/types/known/anypb"
)

// errBadPrefix marks a prefix that cannot be originated.
var errBadPrefix = errors.New("not a routable unicast prefix")

// checkPrefix returns p with its host bits cleared, or an error for what
// cannot be a unicast NLRI: the zero Prefix and IPv4-mapped IPv6 prefixes
// (write them as IPv4).
func checkPrefix(p netip.Prefix) (netip.Prefix, error) {
	if !p.IsValid() || p.Addr().Is4In6() {
		return netip.Prefix{}, errBadPrefix
	}
	return p.Masked(), nil
}

// family returns a new Family message for p. Each request gets its own:
// protobuf messages cache their size on marshal, so sharing one between
// goroutines is a data race.
func family(p netip.Prefix) *api.Family {
	if p.Addr().Is4() {
		return &api.Family{Afi: api.Family_AFI_IP, Safi: api.Family_SAFI_UNICAST}
	}
	return &api.Family{Afi: api.Family_AFI_IP6, Safi: api.Family_SAFI_UNICAST}
}

func families() []*api.Family {
	return []*api.Family{
		family(netip.PrefixFrom(netip.IPv4Unspecified(), 0)),
		family(netip.PrefixFrom(netip.IPv6Unspecified(), 0)),
	}
}

// newPath builds the GoBGP path originating p with origin IGP and the given
// next hop: a NEXT_HOP attribute for IPv4, MP_REACH_NLRI for IPv6 (RFC 4760 §3);
// with prepend, an AS_PATH that starts with those AS numbers.
func newPath(p netip.Prefix, nextHop string, prepend ...uint32) (*api.Path, error) {
	nlri, err := anypb.New(&api.IPAddressPrefix{Prefix: p.Addr().String(), PrefixLen: uint32(p.Bits())})
	if err != nil {
		return nil, fmt.Errorf("encode nlri: %w", err)
	}
	origin, err := anypb.New(&api.OriginAttribute{Origin: 0}) // IGP, RFC 4271 §5.1.1
	if err != nil {
		return nil, fmt.Errorf("encode origin: %w", err)
	}
	var nh *anypb.Any
	if p.Addr().Is4() {
		nh, err = anypb.New(&api.NextHopAttribute{NextHop: nextHop})
	} else {
		nh, err = anypb.New(&api.MpReachNLRIAttribute{Family: family(p), NextHops: []string{nextHop}, Nlris: []*anypb.Any{nlri}})
	}
	if err != nil {
		return nil, fmt.Errorf("encode next hop: %w", err)
	}
	attrs := []*anypb.Any{origin, nh}
	if len(prepend) > 0 {
		// GoBGP puts our AS in front once more when it sends the path over
		// eBGP: the ISP sees len(prepend)+1 copies.
		asPath, err := anypb.New(&api.AsPathAttribute{Segments: []*api.AsSegment{{Type: api.AsSegment_AS_SEQUENCE, Numbers: prepend}}})
		if err != nil {
			return nil, fmt.Errorf("encode as path: %w", err)
		}
		attrs = append(attrs, asPath)
	}
	return &api.Path{Family: family(p), Nlri: nlri, Pattrs: attrs}, nil
}

// parsePrefix reads the prefix of a GoBGP destination ("203.0.113.0/24").
func parsePrefix(s string) (netip.Prefix, error) {
	p, err := netip.ParsePrefix(s)
	if err != nil {
		return netip.Prefix{}, fmt.Errorf("destination %q: %w", s, err)
	}
	return p, nil
}
