// Package starttest starts a component for a test and stops it when the
// test ends: the New, Start, t.Cleanup(Stop) dance every component test
// repeats.
package starttest

import (
	"context"
	"testing"
)

// Component is anything with sdnoc's Start/Stop lifecycle.
type Component interface {
	Start(ctx context.Context) error
	Stop(ctx context.Context) error
}

// Start starts c, failing the test if it cannot, and stops it (reporting
// a failed Stop) when the test ends. It returns c.
func Start[C Component](t testing.TB, c C) C {
	t.Helper()
	if err := c.Start(t.Context()); err != nil {
		t.Fatalf("start: %v", err)
	}
	t.Cleanup(func() {
		if err := c.Stop(context.Background()); err != nil {
			t.Errorf("stop: %v", err)
		}
	})
	return c
}
