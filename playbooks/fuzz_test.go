package playbooks

import (
	"errors"
	"testing"
	"time"

	"github.com/sdnoc/sdnoc/topologies"
)

// FuzzParse: any bytes give a playbook or an error made of Errors, never a
// panic; an accepted playbook keeps the rules Parse promises and resolves
// against the lab topology without panicking.
func FuzzParse(f *testing.F) {
	b, err := topologies.Example("lab.yaml")
	if err != nil {
		f.Fatal(err)
	}
	topo, err := topologies.Parse("lab.yaml", b)
	if err != nil {
		f.Fatal(err)
	}
	f.Add([]byte("kind: drain-pop\npop: pop1\nreason: r\nauthor: a\nexpires: 1h\n"))
	f.Fuzz(func(t *testing.T, data []byte) {
		p, err := Parse("fuzz.yaml", data)
		if err != nil {
			var e Error
			if !errors.As(err, &e) || e.File != "fuzz.yaml" || e.Field == "" {
				t.Fatalf("error without file and field: %v", err)
			}
			return
		}
		if !nameRE.MatchString(p.Name) || p.Reason == "" || p.Author == "" {
			t.Fatalf("accepted %+v", p)
		}
		if p.Kind == Restore {
			return
		}
		if p.Expiry <= 0 || p.Expiry > MaxExpiry {
			t.Fatalf("expiry %v accepted", p.Expiry)
		}
		if o, err := p.Override(topo, time.Unix(0, 0)); err == nil && o.ID != p.Name {
			t.Fatalf("override id %q for %q", o.ID, p.Name)
		}
	})
}
