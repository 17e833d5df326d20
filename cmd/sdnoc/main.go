// Command sdnoc is the software-defined NOC controller: one binary whose
// subcommands run the daemon, the demo and the probe reflector. It parses
// flags and configuration, wires the parts and runs them; the logic lives
// in the packages.
package main

import (
	"context"
	"fmt"
	"os"
	"os/signal"
	"syscall"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := newRoot().ExecuteContext(ctx); err != nil {
		fmt.Fprintln(os.Stderr, "sdnoc:", err)
		os.Exit(exitCode(err))
	}
}
