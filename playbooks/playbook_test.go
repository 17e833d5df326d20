package playbooks

import (
	"net/netip"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/sdnoc/sdnoc/topologies"
)

func labTopology(t *testing.T) *topologies.Topology {
	t.Helper()
	b, err := topologies.Example("lab.yaml")
	if err != nil {
		t.Fatal(err)
	}
	topo, err := topologies.Parse("lab.yaml", b)
	if err != nil {
		t.Fatal(err)
	}
	return topo
}

func mustParse(t *testing.T, file string) *Playbook {
	t.Helper()
	b, err := os.ReadFile(file)
	if err != nil {
		t.Fatal(err)
	}
	p, err := Parse(file, b)
	if err != nil {
		t.Fatal(err)
	}
	return p
}

func pfxs(ss ...string) []netip.Prefix {
	var out []netip.Prefix
	for _, s := range ss {
		out = append(out, netip.MustParsePrefix(s))
	}
	return out
}

// Every shipped example parses and resolves against the lab topology.
func TestExamples(t *testing.T) {
	files, _ := filepath.Glob("examples/*.yaml")
	if len(files) < 4 {
		t.Fatalf("%d examples, want at least one per kind", len(files))
	}
	topo := labTopology(t)
	kinds := map[Kind]bool{}
	for _, f := range files {
		p := mustParse(t, f)
		kinds[p.Kind] = true
		if p.Name != NameOf(f) {
			t.Errorf("%s: name %q", f, p.Name)
		}
		if p.Kind == Restore {
			continue
		}
		if _, err := p.Override(topo, time.Now()); err != nil {
			t.Errorf("%s: %v", f, err)
		}
	}
	if len(kinds) != 4 {
		t.Fatalf("examples cover %v; want all four kinds", kinds)
	}
}

func TestDrainPoPOverride(t *testing.T) {
	now := time.Date(2026, 12, 7, 12, 0, 0, 0, time.UTC)
	p := mustParse(t, "examples/drain-pop1.yaml")
	if !p.DrainProxies || p.Expiry != 4*time.Hour {
		t.Fatalf("parsed %+v", p)
	}
	o, err := p.Override(labTopology(t), now)
	if err != nil {
		t.Fatal(err)
	}
	if o.ID != "drain-pop1" || !o.Expires.Equal(now.Add(4*time.Hour)) {
		t.Fatalf("id %q expires %v", o.ID, o.Expires)
	}
	all := pfxs("198.51.100.0/24", "2001:db8:100::/48", "203.0.113.0/26", "203.0.113.64/26")
	for _, l := range []string{"pop1/isp1", "pop1/isp2", "pop1/isp3"} {
		if !slices.Equal(o.Withdraw[l], all) {
			t.Errorf("withdraw on %s = %v, want %v", l, o.Withdraw[l], all)
		}
	}
	if len(o.Withdraw) != 3 {
		t.Errorf("withdraws on %d links, want pop1's 3", len(o.Withdraw))
	}
	// pop1's own /26s go to pop2's three links; the anycast ones are
	// there already.
	own := pfxs("203.0.113.0/26", "203.0.113.64/26")
	for _, l := range []string{"pop2/isp1", "pop2/isp2", "pop2/isp3"} {
		if !slices.Equal(o.Announce[l], own) {
			t.Errorf("announce on %s = %v, want %v", l, o.Announce[l], own)
		}
	}
}

func TestGentleDrain(t *testing.T) {
	now := time.Date(2026, 12, 7, 12, 0, 0, 0, time.UTC)
	p := mustParse(t, "examples/drain-pop1-gently.yaml")
	if p.Prepend != 3 || p.PrependFor != 10*time.Second || p.Check() != nil {
		t.Fatalf("parsed %+v (check %v)", p, p.Check())
	}
	o, err := p.Override(labTopology(t), now)
	if err != nil || !o.From.Equal(now.Add(10*time.Second)) || len(o.Withdraw) != 3 {
		t.Fatalf("override %+v, %v; want withdrawals from now+10s", o, err)
	}
	p.Prepend, p.PrependFor = 0, 0
	if o, _ = p.Override(labTopology(t), now); !o.From.IsZero() {
		t.Fatalf("no prepend, From = %v", o.From)
	}
	q := mustParse(t, "examples/drain-pop1.yaml")
	if q.Prepend != 0 {
		t.Fatal("drain-pop1 prepends")
	}
	q.PrependFor = time.Minute
	q.Prepend = 2
	q.Expiry = 30 * time.Second
	if err := q.Check(); err == nil {
		t.Fatal("prepend longer than the expiry passed Check")
	}
}

func TestDisableISPAndShift(t *testing.T) {
	topo := labTopology(t)
	now := time.Now()
	p := mustParse(t, "examples/disable-isp2-pop1.yaml")
	o, err := p.Override(topo, now)
	if err != nil {
		t.Fatal(err)
	}
	if len(o.Withdraw) != 1 || len(o.Withdraw["pop1/isp2"]) != 4 || len(o.Announce) != 0 {
		t.Fatalf("disable-isp2-pop1 = %+v", o)
	}
	p.PoP = ""
	if o, err = p.Override(topo, now); err != nil || len(o.Withdraw) != 2 || o.Withdraw["pop2/isp2"] == nil {
		t.Fatalf("isp2 everywhere = %+v, %v", o, err)
	}
	p.ISP = "isp9"
	if _, err := p.Override(topo, now); err == nil || !strings.Contains(err.Error(), `"isp9"`) {
		t.Fatalf("unknown ISP: err = %v", err)
	}

	s := mustParse(t, "examples/shift-pop1-range.yaml")
	if o, err = s.Override(topo, now); err != nil {
		t.Fatal(err)
	}
	moved := pfxs("203.0.113.0/26", "203.0.113.64/26")
	if !slices.Equal(o.Withdraw["pop1/isp1"], moved) || len(o.Withdraw) != 3 || !slices.Equal(o.Announce["pop2/isp3"], moved) || len(o.Announce) != 3 {
		t.Fatalf("shift = %+v", o)
	}
	s.Prefixes = pfxs("192.0.2.0/24")
	if _, err := s.Override(topo, now); err == nil || !strings.Contains(err.Error(), "no edge prefix inside") {
		t.Fatalf("shift of nothing: err = %v", err)
	}
	s.Prefixes, s.To = moved, []string{"pop7"}
	if _, err := s.Override(topo, now); err == nil || !strings.Contains(err.Error(), `to: no PoP "pop7"`) {
		t.Fatalf("unknown to: err = %v", err)
	}
}

// Bad files are refused whole, each problem with its field and a fix.
func TestParseErrors(t *testing.T) {
	for _, c := range []struct {
		name, yaml string
		want       []string
	}{
		{"empty", "", []string{"x.yaml: (file): the file is empty"}},
		{"not yaml", "kind: [", []string{"x.yaml: (file):"}},
		{"unknown key", "kind: drain-pop\npoop: pop1\n", []string{"field poop not found", "remove the key"}},
		{"nothing", "kind: drain-pop\n", []string{"x.yaml: pop: missing", "x.yaml: reason: missing", "x.yaml: author: missing", "x.yaml: expires: missing"}},
		{"kind", "kind: drain\nreason: r\nauthor: a\nexpires: 1h\n", []string{`kind: "drain" is not a playbook kind; write one of`}},
		{"too long", "kind: drain-pop\npop: p\nreason: r\nauthor: a\nexpires: 25h\n", []string{"expires: 25h0m0s is longer than the 24h0m0s cap"}},
		{"not a duration", "kind: drain-pop\npop: p\nreason: r\nauthor: a\nexpires: tomorrow\n", []string{`expires: "tomorrow" is not a duration`}},
		{"negative", "kind: drain-pop\npop: p\nreason: r\nauthor: a\nexpires: -1h\n", []string{"expires: \"-1h\" is not positive"}},
		{"wrong key for kind", "kind: disable-isp\nisp: isp2\nprefixes: [10.0.0.0/8]\nreason: r\nauthor: a\nexpires: 1h\n", []string{"prefixes: not used by a disable-isp playbook"}},
		{"host bits", "kind: shift-prefix\nfrom: pop1\nprefixes: [203.0.113.1/26, nope]\nreason: r\nauthor: a\nexpires: 1h\n",
			[]string{"prefixes[0]: 203.0.113.1/26 has host bits set; write 203.0.113.0/26", `prefixes[1]: "nope" is not a prefix`}},
		{"to from", "kind: shift-prefix\nfrom: pop1\nto: [pop1]\nprefixes: [203.0.113.0/26]\nreason: r\nauthor: a\nexpires: 1h\n", []string{"to: lists pop1"}},
		{"restore expires", "kind: restore\nall: true\nreason: r\nauthor: a\nexpires: 1h\n", []string{"expires: a restore ends at once"}},
		{"restore nothing", "kind: restore\nreason: r\nauthor: a\n", []string{"release: missing"}},
		{"prepend range", "kind: drain-pop\npop: p\nprepend: 11\nreason: r\nauthor: a\nexpires: 1h\n", []string{"prepend: 11: write 1 to 10"}},
		{"prepend_for alone", "kind: drain-pop\npop: p\nprepend_for: 1m\nreason: r\nauthor: a\nexpires: 1h\n", []string{"prepend_for: set without prepend"}},
		{"prepend_for too long", "kind: drain-pop\npop: p\nprepend: 2\nprepend_for: 2h\nreason: r\nauthor: a\nexpires: 3h\n", []string{"prepend_for: 2h0m0s is longer than 30m0s"}},
		{"prepend past expiry", "kind: drain-pop\npop: p\nprepend: 2\nprepend_for: 20m\nreason: r\nauthor: a\nexpires: 10m\n", []string{"is not shorter than expires"}},
		{"prepend elsewhere", "kind: disable-isp\nisp: x\nprepend: 2\nreason: r\nauthor: a\nexpires: 1h\n", []string{"prepend: not used by a disable-isp playbook"}},
		{"name", "name: Drain POP\nkind: restore\nall: true\nreason: r\nauthor: a\n", []string{`name: "Drain POP" is not a usable name`}},
	} {
		t.Run(c.name, func(t *testing.T) {
			p, err := Parse("x.yaml", []byte(c.yaml))
			if err == nil {
				t.Fatalf("accepted: %+v", p)
			}
			for _, w := range c.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q\nlacks %q", err, w)
				}
			}
		})
	}
}

func TestCheck(t *testing.T) {
	for _, f := range []string{"examples/drain-pop1.yaml", "examples/restore-all.yaml", "examples/shift-pop1-range.yaml"} {
		if err := mustParse(t, f).Check(); err != nil {
			t.Errorf("%s: %v", f, err)
		}
	}
	p := mustParse(t, "examples/drain-pop1.yaml")
	p.Expiry = 48 * time.Hour
	if err := p.Check(); err == nil || !strings.Contains(err.Error(), "expiry") {
		t.Fatalf("48h: err = %v", err)
	}
	r := mustParse(t, "examples/restore-all.yaml")
	r.All = false
	if err := r.Check(); err == nil {
		t.Fatal("restore of nothing passed")
	}
	p = mustParse(t, "examples/disable-isp2-pop1.yaml")
	p.ISP, p.Author = "", " "
	if err := p.Check(); err == nil || !strings.Contains(err.Error(), "isp") || !strings.Contains(err.Error(), "author") {
		t.Fatalf("err = %v", err)
	}
}
