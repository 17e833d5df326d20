package decisions

import "math/bits"

// bitset is a set of prefix indices. Publication is kept as one bitset per
// link so that a step over 1,000 links × 20,000 prefixes costs 1,000 × 313
// word operations rather than 20 million map look-ups.
type bitset []uint64

func newBitset(n int) bitset { return make(bitset, (n+63)/64) }

func (b bitset) set(i int)      { b[i/64] |= 1 << (uint(i) % 64) }
func (b bitset) has(i int) bool { return b[i/64]&(1<<(uint(i)%64)) != 0 }
func (b bitset) clear(i int)    { b[i/64] &^= 1 << (uint(i) % 64) }

func (b bitset) count() int {
	n := 0
	for _, w := range b {
		n += bits.OnesCount64(w)
	}
	return n
}

// each calls f for every index in b &^ minus.
func (b bitset) each(minus bitset, f func(int)) {
	for wi, w := range b {
		w &^= minus[wi]
		for w != 0 {
			t := bits.TrailingZeros64(w)
			f(wi*64 + t)
			w &= w - 1
		}
	}
}
