package flow

import (
	"encoding/binary"
	"net/netip"
	"slices"
)

// v6key is an IPv6 address or prefix as two words.
type v6key struct{ hi, lo uint64 }

// prefixTable finds the longest configured prefix containing an address.
// It keeps one map per prefix length in use, probed from the longest
// length to the shortest: at most 33 (IPv4) or 129 (IPv6) probes, in
// practice the few lengths an edge announces. It is read-only once built.
type prefixTable struct {
	prefixes []netip.Prefix // index -> prefix
	v4       map[uint64]int // len<<32 | masked address -> index
	v4lens   []int          // lengths in use, longest first
	v6       map[v6len]int
	v6lens   []int
}

type v6len struct {
	k   v6key
	len int
}

// newPrefixTable indexes prefixes, which must be masked and distinct;
// a prefix's index is its position.
func newPrefixTable(prefixes []netip.Prefix) *prefixTable {
	t := &prefixTable{prefixes: prefixes, v4: make(map[uint64]int), v6: make(map[v6len]int)}
	for i, p := range prefixes {
		bits := p.Bits()
		if p.Addr().Is4() {
			t.v4[uint64(bits)<<32|uint64(mask4(v4word(p.Addr()), bits))] = i
			if !slices.Contains(t.v4lens, bits) {
				t.v4lens = append(t.v4lens, bits)
			}
			continue
		}
		t.v6[v6len{mask6(v6word(p.Addr()), bits), bits}] = i
		if !slices.Contains(t.v6lens, bits) {
			t.v6lens = append(t.v6lens, bits)
		}
	}
	slices.SortFunc(t.v4lens, func(a, b int) int { return b - a })
	slices.SortFunc(t.v6lens, func(a, b int) int { return b - a })
	return t
}

// lookup returns the index of the longest prefix containing a, or false.
func (t *prefixTable) lookup(a netip.Addr) (int, bool) {
	a = a.Unmap()
	if a.Is4() {
		w := v4word(a)
		for _, l := range t.v4lens {
			if i, ok := t.v4[uint64(l)<<32|uint64(mask4(w, l))]; ok {
				return i, true
			}
		}
		return 0, false
	}
	if !a.Is6() {
		return 0, false
	}
	w := v6word(a)
	for _, l := range t.v6lens {
		if i, ok := t.v6[v6len{mask6(w, l), l}]; ok {
			return i, true
		}
	}
	return 0, false
}

func v4word(a netip.Addr) uint32 {
	b := a.As4()
	return binary.BigEndian.Uint32(b[:])
}

func v6word(a netip.Addr) v6key {
	b := a.As16()
	return v6key{binary.BigEndian.Uint64(b[:8]), binary.BigEndian.Uint64(b[8:])}
}

func mask4(w uint32, bits int) uint32 {
	if bits == 0 {
		return 0
	}
	return w &^ (1<<(32-bits) - 1)
}

func mask6(k v6key, bits int) v6key {
	switch {
	case bits == 0:
		return v6key{}
	case bits <= 64:
		return v6key{k.hi &^ (1<<(64-bits) - 1), 0}
	case bits == 128:
		return k
	}
	return v6key{k.hi, k.lo &^ (1<<(128-bits) - 1)}
}
