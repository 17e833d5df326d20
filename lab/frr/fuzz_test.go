package frr

import (
	"os"
	"testing"
)

// FuzzParseRoutes: vtysh output is outside input; a router's odd JSON is
// an error, never a panic.
func FuzzParseRoutes(f *testing.F) {
	if b, err := os.ReadFile("testdata/show-bgp-ipv4-unicast.json"); err == nil {
		f.Add(b)
	}
	f.Add([]byte(`{"routes":{"2001:db8::/32":[{"valid":true,"peerId":"::","nexthops":[]}]}}`))
	f.Fuzz(func(t *testing.T, b []byte) {
		tab, err := ParseRoutes(b)
		if err != nil && tab != nil {
			t.Fatalf("a table with the error %v", err)
		}
		for p := range tab {
			if !p.IsValid() {
				t.Fatalf("invalid prefix %v parsed", p)
			}
		}
	})
}

func FuzzParseNeighbors(f *testing.F) {
	if b, err := os.ReadFile("testdata/show-bgp-neighbors.json"); err == nil {
		f.Add(b)
	}
	f.Add([]byte(`{"198.18.1.1":{"bgpState":"Active","addressFamilyInfo":{"ipv4Unicast":{"acceptedPrefixCounter":1}}}}`))
	f.Fuzz(func(t *testing.T, b []byte) {
		ss, err := ParseNeighbors(b)
		if err != nil && ss != nil {
			t.Fatalf("sessions with the error %v", err)
		}
		for a := range ss {
			if !a.IsValid() {
				t.Fatalf("invalid address %v parsed", a)
			}
		}
	})
}
