package cli_test

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/sdnoc/sdnoc/actuators/cli"
	"github.com/sdnoc/sdnoc/lab/frrssh"
)

// router is a frrssh router with an actuator on it that records steps.
type router struct {
	*frrssh.Router
	act   *cli.Actuator
	steps []cli.Step
}

func startRouter(t *testing.T) *router {
	r := &router{Router: frrssh.Start(t)}
	cfg := cli.DefaultConfig()
	cfg.Timeout = 10 * time.Second
	cfg.Routers = []cli.Router{r.CLI("br1")}
	var err error
	r.act, err = cli.New(cfg, cli.Deps{OnStep: func(s cli.Step) { r.steps = append(r.steps, s) }})
	if err != nil {
		t.Fatal(err)
	}
	return r
}

func TestShutAndEnableNeighborOverSSH(t *testing.T) {
	r := startRouter(t)
	ctx := t.Context()
	text, err := r.act.Running(ctx, "br1")
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(text, "router bgp 64502") || !strings.Contains(text, "neighbor "+r.Peer.String()+" remote-as 65000") {
		t.Fatalf("running config over SSH:\n%s", text)
	}

	res, err := r.act.Apply(ctx, cli.ShutNeighbor("br1", 64502, r.Peer))
	if err != nil {
		t.Fatalf("shut: %v\nsteps: %+v", err, res.Steps)
	}
	if !strings.Contains(res.Diff, "+ neighbor "+r.Peer.String()+" shutdown\n") || strings.Count(res.Diff, "\n+") != 1 || strings.Contains(res.Diff, "\n-") {
		t.Fatalf("diff of the shut:\n%s", res.Diff)
	}
	took := r.WaitSession(t, false)
	t.Logf("neighbor shut over SSH; the BGP session went down %v after", took)
	if !strings.Contains(r.Running(t), "neighbor "+r.Peer.String()+" shutdown") {
		t.Fatal("vtysh on the router does not show the shutdown")
	}
	var phases []string
	for _, s := range res.Steps {
		phases = append(phases, s.Phase+":"+s.Input)
	}
	want := []string{"capture:show running-config", "apply:router bgp 64502", "apply:neighbor " + r.Peer.String() + " shutdown", "apply:exit", "capture:show running-config"}
	if !slices.Equal(phases, want) {
		t.Fatalf("steps = %q\nwant %q", phases, want)
	}
	if len(r.steps) < len(want) {
		t.Fatalf("OnStep saw %d steps", len(r.steps))
	}

	if res, err = r.act.Apply(ctx, cli.EnableNeighbor("br1", 64502, r.Peer)); err != nil {
		t.Fatalf("enable: %v", err)
	}
	if !strings.Contains(res.Diff, "- neighbor "+r.Peer.String()+" shutdown\n") {
		t.Fatalf("diff of the enable:\n%s", res.Diff)
	}
	r.WaitSession(t, true)
}

func TestFailedChangeRollsBack(t *testing.T) {
	r := startRouter(t)
	ctx := t.Context()
	before := r.Running(t)
	// The description goes in, then a command FRR refuses: the change
	// must be undone, the description gone again.
	ch := cli.Change{Router: "br1", Commands: []string{"router bgp 64502", "neighbor " + r.Peer.String() + " description set-by-test",
		"neighbor " + r.Peer.String() + " no-such-keyword 1", "exit"}}
	res, err := r.act.Apply(ctx, ch)
	if !errors.Is(err, cli.ErrRolledBack) || !res.RolledBack || res.Residual != "" {
		t.Fatalf("err = %v, rolled back %v, residual %q; want a clean rollback", err, res.RolledBack, res.Residual)
	}
	if !strings.Contains(err.Error(), "no-such-keyword") {
		t.Fatalf("the error does not name the failing command: %v", err)
	}
	if !strings.Contains(res.Diff, "description set-by-test") || !slices.Contains(res.Undo, "no neighbor "+r.Peer.String()+" description set-by-test") {
		t.Fatalf("diff %q, undo %q", res.Diff, res.Undo)
	}
	if after := r.Running(t); after != before {
		t.Fatalf("the router is not as it was:\nbefore:\n%s\nafter:\n%s", before, after)
	}

	// A change that FRR takes but that does not do what it promised is
	// undone too.
	ch = cli.Change{Router: "br1", Commands: []string{"router bgp 64502", "timers bgp 5 15", "exit"}, Expect: []string{"timers bgp 10 30"}}
	res, err = r.act.Apply(ctx, ch)
	if !errors.Is(err, cli.ErrRolledBack) || !strings.Contains(err.Error(), "lacks timers bgp 10 30") || res.Residual != "" {
		t.Fatalf("broken promise: err = %v, residual %q", err, res.Residual)
	}
	if after := r.Running(t); after != before {
		t.Fatalf("the router is not as it was after the second rollback:\n%s", after)
	}
	r.WaitSession(t, true)
}

func TestWrongHostKeyRefused(t *testing.T) {
	r := startRouter(t)
	other := frrssh.KeyPair(t, filepath.Join(r.Dir, "other"))
	os.WriteFile(r.KnownHosts, []byte(fmt.Sprintf("[%s]:%d %s\n", r.Addr.Addr(), r.Addr.Port(), other)), 0o600)
	before := r.Running(t)
	_, err := r.act.Apply(t.Context(), cli.ShutNeighbor("br1", 64502, r.Peer))
	if err == nil {
		t.Fatal("a router with another host key was configured")
	}
	if after := r.Running(t); after != before {
		t.Fatal("the configuration changed")
	}
}
