// Package waitctx waits for a component's goroutines to end, or gives up
// when a context ends: what every Stop(ctx) does.
package waitctx

import (
	"context"
	"sync"
)

// Wait returns nil once wg is done, or ctx.Err() if ctx ends first; the
// goroutines are then left to finish on their own.
func Wait(ctx context.Context, wg *sync.WaitGroup) error {
	done := make(chan struct{})
	go func() { wg.Wait(); close(done) }()
	select {
	case <-done:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}
