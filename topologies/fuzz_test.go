package topologies

import (
	"os"
	"reflect"
	"strings"
	"testing"
)

// FuzzParse checks that Parse never panics, that it returns either a
// Topology or an error, that a Topology it returns validates, that every
// error line names the file, and that it is deterministic.
func FuzzParse(f *testing.F) {
	f.Add([]byte(baseDoc))
	for _, tt := range parseTests {
		doc := tt.doc
		if doc == "" {
			doc = edit(f, baseDoc, tt.edits...)
		}
		f.Add([]byte(doc))
	}
	if example, err := os.ReadFile("examples/two-pops.yaml"); err == nil {
		f.Add(example)
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		top, err := Parse("fuzz.yaml", data)
		if (top == nil) == (err == nil) {
			t.Fatalf("Parse() = %v, %v; want exactly one of them", top, err)
		}
		if err != nil {
			for line := range strings.SplitSeq(err.Error(), "\n") {
				if !strings.HasPrefix(line, "fuzz.yaml: ") {
					t.Fatalf("error line %q does not start with the file name", line)
				}
			}
			if _, err2 := Parse("fuzz.yaml", data); err2 == nil || err2.Error() != err.Error() {
				t.Fatalf("second Parse() disagrees:\n%v\n%v", err, err2)
			}
			return
		}
		if err := top.Validate(); err != nil {
			t.Fatalf("Parse() returned a topology that does not validate: %v", err)
		}
		if top2, _ := Parse("fuzz.yaml", data); !reflect.DeepEqual(top, top2) {
			t.Fatalf("second Parse() returned a different topology")
		}
	})
}
