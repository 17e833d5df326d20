package controller

import (
	"context"
	"errors"
	"fmt"

	"github.com/sdnoc/sdnoc/actuators/cli"
	"github.com/sdnoc/sdnoc/journal"
)

// ErrNoRouters is returned, wrapped, when the daemon has no routers file.
var ErrNoRouters = errors.New("no routers configured (sdnoc daemon --routers FILE)")

// ChangeRouter makes a configuration change on a router over the CLI:
// the request is journaled with its audit before anything is sent, every
// command and its answer as it is answered, then the outcome with the
// diff. A failed change is rolled back by the actuator (cli.ErrRolledBack).
func (c *Controller) ChangeRouter(ctx context.Context, ch cli.Change, a journal.Audit) (cli.Result, error) {
	if c.routers == nil {
		return cli.Result{}, ErrNoRouters
	}
	if c.journal == nil {
		return cli.Result{}, errors.New("dry run: no router is changed")
	}
	seq, err := c.journal.Append(journal.Record{Time: c.deps.Now(), Kind: journal.KindRouter, Target: ch.Router, Audit: &a,
		Router: &journal.RouterChange{Commands: ch.Commands, Expect: ch.Expect, Absent: ch.Absent}})
	if err != nil {
		// Journal first or not at all (invariant 6).
		return cli.Result{}, fmt.Errorf("router %s not changed: journal: %w", ch.Router, err)
	}
	c.log.Warn("router change", "router", ch.Router, "commands", len(ch.Commands), "author", a.Author, "reason", a.Reason, "via", a.Via)
	res, aerr := c.routers.Apply(ctx, ch)
	done := journal.Record{Time: c.deps.Now(), Kind: journal.KindRouterDone, Target: ch.Router, Ref: seq,
		Router: &journal.RouterChange{Diff: res.Diff, RolledBack: res.RolledBack, Residual: res.Residual}}
	outcome := "applied"
	switch {
	case errors.Is(aerr, cli.ErrRolledBack):
		outcome = "rolled_back"
	case aerr != nil:
		outcome = "failed"
	}
	c.metrics.routerChanges.WithLabelValues(outcome).Inc()
	if aerr != nil {
		done.Error = aerr.Error()
		c.log.Error("router change failed", "router", ch.Router, "rolled_back", res.RolledBack, "err", aerr)
	}
	c.record(done)
	c.emit(Event{Time: c.deps.Now(), Kind: "router", Text: fmt.Sprintf("%s: %d commands by %s (%s): %v", ch.Router, len(ch.Commands), a.Author, a.Reason, errOrOK(aerr))})
	return res, aerr
}

func errOrOK(err error) string {
	if err != nil {
		return err.Error()
	}
	return "applied"
}

// RouterRunning returns a router's running configuration, read over SSH.
func (c *Controller) RouterRunning(ctx context.Context, name string) (string, error) {
	if c.routers == nil {
		return "", ErrNoRouters
	}
	return c.routers.Running(ctx, name)
}

// onRouterStep journals each command the CLI actuator sends.
func (c *Controller) onRouterStep(s cli.Step) {
	c.record(journal.Record{Time: s.Time, Kind: journal.KindCommand, Target: s.Router,
		Command: &journal.Command{Phase: s.Phase, Input: s.Input, Output: s.Output, Failed: s.Failed}})
}
