package gnmiagent

import (
	"errors"
	"net/netip"
	"os"
	"slices"
	"strings"
	"testing"

	"github.com/openconfig/gnmi/proto/gnmi"
)

var frrTests = []struct {
	name    string
	in      string
	want    []Neighbor
	wantErr error
}{
	{"empty object", `{}`, nil, nil},
	{"one established", `{"192.0.2.1":{"remoteAs":64501,"bgpState":"Established"}}`,
		[]Neighbor{{netip.MustParseAddr("192.0.2.1"), "ESTABLISHED"}}, nil},
	{"sorted, v6, mapped v4 unmapped", `{"2001:db8::1":{"bgpState":"Idle"},"::ffff:192.0.2.9":{"bgpState":"OpenSent"},"192.0.2.1":{"bgpState":"Active"}}`,
		[]Neighbor{{netip.MustParseAddr("192.0.2.1"), "ACTIVE"}, {netip.MustParseAddr("192.0.2.9"), "OPENSENT"}, {netip.MustParseAddr("2001:db8::1"), "IDLE"}}, nil},
	{"interface key and no state skipped", `{"eth0":{"bgpState":"Connect"},"192.0.2.1":{"remoteAs":1},"192.0.2.2":[1,2]}`, nil, nil},
	{"not json", `% Unknown command: show bgp neighbors json`, nil, ErrNotFRRJSON},
	{"array", `[]`, nil, ErrNotFRRJSON},
	{"truncated", `{"192.0.2.1":{"bgpState":"Estab`, nil, ErrNotFRRJSON},
}

func TestParseFRRNeighbors(t *testing.T) {
	for _, tt := range frrTests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := ParseFRRNeighbors([]byte(tt.in))
			if !errors.Is(err, tt.wantErr) || !slices.Equal(got, tt.want) {
				t.Fatalf("ParseFRRNeighbors = %v, %v; want %v, %v", got, err, tt.want, tt.wantErr)
			}
		})
	}
}

func TestParseFRRSample(t *testing.T) {
	b, err := os.ReadFile("testdata/frr-neighbors.json")
	if err != nil {
		t.Fatal(err)
	}
	got, err := ParseFRRNeighbors(b)
	want := []Neighbor{
		{netip.MustParseAddr("192.0.2.1"), "ESTABLISHED"},
		{netip.MustParseAddr("203.0.113.1"), "ACTIVE"},
		{netip.MustParseAddr("2001:db8::1"), "IDLE"},
	}
	if err != nil || !slices.Equal(got, want) {
		t.Fatalf("sample: %v, %v; want %v", got, err, want)
	}
}

func FuzzParseFRRNeighbors(f *testing.F) {
	for _, tt := range frrTests {
		f.Add([]byte(tt.in))
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		ns, err := ParseFRRNeighbors(b)
		if err != nil && ns != nil {
			t.Fatalf("neighbours %v with error %v", ns, err)
		}
		for _, n := range ns {
			if !n.Address.IsValid() || n.SessionState == "" {
				t.Fatalf("invalid neighbour %+v", n)
			}
		}
	})
}

func TestOperStatus(t *testing.T) {
	for in, want := range map[string]string{
		"up\n": "UP", "down": "DOWN", "unknown\n": "UNKNOWN", "lowerlayerdown\n": "LOWER_LAYER_DOWN",
		"notpresent": "NOT_PRESENT", "dormant": "DORMANT", "bogus": "UNKNOWN", "": "UNKNOWN",
	} {
		if got := OperStatus(in); got != want {
			t.Errorf("OperStatus(%q) = %q; want %q", in, got, want)
		}
	}
}

func TestMatch(t *testing.T) {
	leafPath := p("", "interfaces", "interface[name=eth0]", "state", "counters", "in-octets").Elem
	tests := []struct {
		name string
		q    *gnmi.Path
		want bool
	}{
		{"exact", p("", "interfaces", "interface[name=eth0]", "state", "counters", "in-octets"), true},
		{"root", p(""), true},
		{"subtree", p("", "interfaces", "interface[name=eth0]"), true},
		{"no key selects all", p("", "interfaces", "interface", "state"), true},
		{"key wildcard", p("", "interfaces", "interface[name=*]", "state", "counters", "in-octets"), true},
		{"name wildcard", p("", "interfaces", "*", "state"), true},
		{"any depth", p("", "...", "in-octets"), true},
		{"any depth, other leaf", p("", "...", "out-octets"), false},
		{"other key", p("", "interfaces", "interface[name=eth1]"), false},
		{"unknown key", p("", "interfaces", "interface[index=1]"), false},
		{"longer than leaf", p("", "interfaces", "interface[name=eth0]", "state", "counters", "in-octets", "x"), false},
		{"other leaf", p("", "interfaces", "interface[name=eth0]", "state", "oper-status"), false},
	}
	for _, tt := range tests {
		if got := match(tt.q.Elem, leafPath); got != tt.want {
			t.Errorf("%s: match = %v; want %v", tt.name, got, tt.want)
		}
	}
}

func TestConfigValidate(t *testing.T) {
	if err := DefaultConfig().Validate(); err != nil {
		t.Fatalf("default config: %v", err)
	}
	bad := Config{Listen: "9339", TLSCert: "c.pem", MinSampleInterval: 0}
	err := bad.Validate()
	for _, field := range []string{"listen:", "tls_cert, tls_key:", "sysfs_root:", "min_sample_interval:"} {
		if err == nil || !strings.Contains(err.Error(), field) {
			t.Errorf("Validate() = %v; want an error naming %s", err, field)
		}
	}
}
