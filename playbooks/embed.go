package playbooks

import (
	"embed"
	"fmt"
)

//go:embed examples/*.yaml
var examples embed.FS

// Example returns a shipped example playbook by file name, e.g.
// "drain-pop1.yaml", parsed, so that the binary and the lab's scenarios
// work away from the source tree.
func Example(name string) (*Playbook, error) {
	b, err := examples.ReadFile("examples/" + name)
	if err != nil {
		return nil, fmt.Errorf("no example playbook %q: %w", name, err)
	}
	return Parse("playbooks/examples/"+name, b)
}
