package cli

import (
	"os"
	"slices"
	"strings"
	"testing"
)

func parseFile(t *testing.T, path string) []*Node {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	ns, err := ParseConfig(string(b))
	if err != nil {
		t.Fatal(err)
	}
	return ns
}

func parse(t *testing.T, s string) []*Node {
	t.Helper()
	ns, err := ParseConfig(s)
	if err != nil {
		t.Fatal(err)
	}
	return ns
}

// edited returns the isp2 configuration with old replaced by new.
func edited(t *testing.T, old, new string) []*Node {
	t.Helper()
	b, _ := os.ReadFile("testdata/isp2.conf")
	s := string(b)
	if !strings.Contains(s, old) {
		t.Fatalf("isp2.conf lacks %q", old)
	}
	return parse(t, strings.Replace(s, old, new, 1))
}

func TestParseConfig(t *testing.T) {
	ns := parseFile(t, "testdata/isp2.conf")
	var top []string
	for _, n := range ns {
		top = append(top, n.Line)
	}
	want := []string{"frr version 8.4.4", "frr defaults traditional", "hostname isp2", "log file /run/sdnoc-lab/frr/isp2/bgpd.log",
		"route-map lp0 permit 10", "router bgp 64502"}
	if !slices.Equal(top, want) {
		t.Fatalf("top level = %q\nwant %q", top, want)
	}
	bgp := ns[5]
	if len(bgp.Children) != 12 || bgp.Children[10].Line != "address-family ipv4 unicast" || len(bgp.Children[10].Children) != 3 {
		t.Fatalf("router bgp children = %d: %q", len(bgp.Children), Lines(bgp.Children))
	}
	if !Has(ns, "  neighbor 198.18.22.1 activate") || Has(ns, "neighbor 198.18.12.1 shutdown") {
		t.Fatal("Has")
	}
	// Text → tree → text → tree is stable.
	again := parse(t, strings.Join(Lines(ns), "\n"))
	if d := Diff(ns, again); d != "" {
		t.Fatalf("reparse differs:\n%s", d)
	}
}

func TestUndo(t *testing.T) {
	before := parseFile(t, "testdata/isp2.conf")
	for _, c := range []struct {
		name     string
		old, new string
		undo     []string
		diff     []string
	}{
		{"neighbor shut", " neighbor 198.18.12.1 timers connect 1\n", " neighbor 198.18.12.1 timers connect 1\n neighbor 198.18.12.1 shutdown\n",
			[]string{"router bgp 64502", "no neighbor 198.18.12.1 shutdown", "exit"},
			[]string{"+ neighbor 198.18.12.1 shutdown"}},
		{"af line removed", "  neighbor 198.18.22.1 activate\n exit-address-family\n !\n address-family ipv6", " exit-address-family\n !\n address-family ipv6",
			[]string{"router bgp 64502", "address-family ipv4 unicast", "neighbor 198.18.22.1 activate", "exit-address-family", "exit"},
			[]string{"-  neighbor 198.18.22.1 activate"}},
		{"value changed", " timers bgp 3 9\n", " timers bgp 1 3\n",
			[]string{"router bgp 64502", "no timers bgp 1 3", "exit", "router bgp 64502", "timers bgp 3 9", "exit"},
			[]string{"- timers bgp 3 9", "+ timers bgp 1 3"}},
		{"block added", "router bgp 64502\n", "route-map deny-all deny 10\nexit\n!\nrouter bgp 64502\n",
			[]string{"no route-map deny-all deny 10"}, []string{"+route-map deny-all deny 10"}},
		{"block removed", "route-map lp0 permit 10\n set local-preference 200\nexit\n", "",
			[]string{"route-map lp0 permit 10", "set local-preference 200", "exit"}, []string{"-route-map lp0 permit 10", "- set local-preference 200"}},
		{"negation removed", " no bgp ebgp-requires-policy\n", "",
			[]string{"router bgp 64502", "no bgp ebgp-requires-policy", "exit"}, []string{"- no bgp ebgp-requires-policy"}},
		{"negation added", " bgp graceful-restart\n", " bgp graceful-restart\n no bgp fast-external-failover\n",
			[]string{"router bgp 64502", "bgp fast-external-failover", "exit"}, []string{"+ no bgp fast-external-failover"}},
	} {
		t.Run(c.name, func(t *testing.T) {
			after := edited(t, c.old, c.new)
			if got := Undo(before, after); !slices.Equal(got, c.undo) {
				t.Errorf("Undo = %q\nwant %q", got, c.undo)
			}
			d := Diff(before, after)
			for _, w := range c.diff {
				if !strings.Contains(d, w+"\n") {
					t.Errorf("diff lacks %q:\n%s", w, d)
				}
			}
			if n := strings.Count(d, "\n"); n > len(c.diff)+2*diffContext+2 {
				t.Errorf("diff of %d lines for a %d-line change:\n%s", n, len(c.diff), d)
			}
			if Diff(before, before) != "" || len(Undo(before, before)) != 0 {
				t.Error("a configuration differs from itself")
			}
		})
	}
}

func TestParseFile(t *testing.T) {
	good := "timeout: 5s\nrouters:\n  - {name: br1, address: \"198.18.250.2:22\", user: noc, key_file: /etc/sdnoc/id, known_hosts: /etc/sdnoc/known_hosts}\n"
	cfg, err := ParseFile("routers.yaml", []byte(good))
	if err != nil || cfg.Timeout.Seconds() != 5 || len(cfg.Routers) != 1 || cfg.Routers[0].KnownHosts != "/etc/sdnoc/known_hosts" {
		t.Fatalf("cfg %+v, err %v", cfg, err)
	}
	for _, c := range []struct{ doc, want string }{
		{"", "routers.yaml: the file is empty"},
		{"routers: [{name: a, adress: x}]", "field adress not found"},
		{"timeout: soon\n", `routers.yaml: timeout: "soon" is not a duration`},
		{"routers:\n  - {name: br1, address: br1.example:22, user: u, key_file: k, known_hosts: h}\n", `routers.yaml: routers[0].address: "br1.example:22" is not IP:port`},
		{"routers:\n  - {name: br1, address: \"192.0.2.1:22\", user: u, key_file: k}\n", "routers.yaml: routers[0].known_hosts: missing"},
		{"routers:\n  - {name: br1, address: \"192.0.2.1:22\", key_file: k, insecure_host_key: true}\n  - {name: br1, address: \"192.0.2.2:22\", user: u, key_file: k, insecure_host_key: true}\n",
			"routers.yaml: routers[1].name: \"br1\" is empty or taken"},
	} {
		_, err := ParseFile("routers.yaml", []byte(c.doc))
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%q: err = %v; want %q", c.doc, err, c.want)
		}
	}
	// Every line of a multi-problem error names the file.
	_, err = ParseFile("routers.yaml", []byte("routers:\n  - {name: x}\n"))
	for _, l := range strings.Split(err.Error(), "\n") {
		if !strings.HasPrefix(l, "routers.yaml: routers[0].") {
			t.Errorf("line %q lacks the file and field", l)
		}
	}
}

// CI saw vtysh repeat a command typed before its line editor was ready,
// prompt included, inside the captured output; the capture's lines then
// became undo commands.
func TestCleanCapture(t *testing.T) {
	conf, err := os.ReadFile("testdata/isp2.conf")
	if err != nil {
		t.Fatal(err)
	}
	const cmd = "show running-config"
	for _, echo := range []string{"vm# show running-config\r\n", "show running-config\n", "vm# show running-config \n", "vm#\n"} {
		got, err := CleanCapture(echo+string(conf), cmd)
		if err != nil || got != string(conf) {
			t.Fatalf("with the echo %q: err %v, the capture changed beyond the echo: %v", echo, err, got != string(conf))
		}
	}
	if got, err := CleanCapture(string(conf), cmd); err != nil || got != string(conf) {
		t.Fatalf("a clean capture changed: err %v", err)
	}
	for _, bad := range []string{"vm(config-router)# timers bgp 5 15\n", "vm# show version\n", "vm(config)# end\n"} {
		if _, err := CleanCapture(string(conf)+bad, cmd); err == nil || !strings.Contains(err.Error(), "out of step") {
			t.Fatalf("a capture with %q was taken: %v", bad, err)
		}
	}
}
