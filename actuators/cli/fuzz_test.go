package cli

import (
	"strings"
	"testing"
)

// FuzzParseConfig: a router's configuration is outside input. Any text
// parses without panicking; the tree printed and parsed again is the same
// tree; Undo and Diff of it against itself are empty.
func FuzzParseConfig(f *testing.F) {
	f.Add("router bgp 1\n neighbor 192.0.2.1 remote-as 2\n address-family ipv4 unicast\n  network 192.0.2.0/24\n exit-address-family\nexit\n")
	f.Add("hostname r\n!\nroute-map x permit 10\n\tset metric 1\n")
	f.Fuzz(func(t *testing.T, text string) {
		ns, err := ParseConfig(text)
		if err != nil {
			return
		}
		again, err := ParseConfig(strings.Join(Lines(ns), "\n"))
		if err != nil {
			t.Fatalf("reparse: %v", err)
		}
		if d := Diff(ns, again); d != "" {
			t.Fatalf("reparse differs:\n%s", d)
		}
		if u := Undo(ns, ns); len(u) != 0 {
			t.Fatalf("Undo of no change = %q", u)
		}
		_ = Undo(nil, ns)
		_ = Diff(nil, ns)
	})
}

// FuzzParseFile: any routers file gives a valid Config or an error, never
// a panic.
func FuzzParseFile(f *testing.F) {
	f.Add([]byte("timeout: 5s\nrouters:\n  - {name: br1, address: \"198.18.250.2:22\", user: noc, key_file: k, known_hosts: h}\n"))
	f.Fuzz(func(t *testing.T, data []byte) {
		cfg, err := ParseFile("f.yaml", data)
		if err == nil {
			if verr := cfg.Validate(); verr != nil {
				t.Fatalf("accepted an invalid config: %v", verr)
			}
		}
	})
}
