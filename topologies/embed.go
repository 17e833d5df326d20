package topologies

import (
	"embed"
	"fmt"
)

//go:embed examples/*.yaml
var examples embed.FS

// Example returns a shipped example topology by file name, e.g.
// "lab.yaml", so that the binary works away from the source tree.
func Example(name string) ([]byte, error) {
	b, err := examples.ReadFile("examples/" + name)
	if err != nil {
		return nil, fmt.Errorf("no example topology %q: %w", name, err)
	}
	return b, nil
}
