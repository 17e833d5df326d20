package cli

import (
	"slices"
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

// FuzzCleanCapture: a router's output is outside input. What CleanCapture
// keeps is the input's lines in order, without the command's echo and
// without any prompt line.
func FuzzCleanCapture(f *testing.F) {
	f.Add("vm# show running-config\r\nfrr version 8.4.4\n!\nrouter bgp 1\n")
	f.Add("show running-config\nhostname vm\nvm(config)# x\n")
	f.Fuzz(func(t *testing.T, text string) {
		const cmd = "show running-config"
		got, err := CleanCapture(text, cmd)
		if err != nil {
			return
		}
		in := slices.Collect(strings.Lines(text))
		for line := range strings.Lines(got) {
			i := slices.Index(in, line)
			if i < 0 {
				t.Fatalf("kept %q, which is not the next line of the input", line)
			}
			in = in[i+1:]
			l := strings.TrimRight(line, "\r\n \t")
			if l == cmd || promptLine.MatchString(l) {
				t.Fatalf("kept %q", line)
			}
		}
	})
}
