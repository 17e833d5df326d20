package controller_test

import (
	"context"
	"fmt"
	"log/slog"
	"net/netip"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/sdnoc/sdnoc/controller"
	"github.com/sdnoc/sdnoc/journal"
	"github.com/sdnoc/sdnoc/lab/loopback"
	"github.com/sdnoc/sdnoc/topologies"
)

var prefixes = []netip.Prefix{
	netip.MustParsePrefix("198.51.100.0/24"),
	netip.MustParsePrefix("203.0.113.0/24"),
	netip.MustParsePrefix("2001:db8:100::/48"),
}

// harness is a loopback lab with a controller on it.
type harness struct {
	t    *testing.T
	lab  *loopback.Lab
	topo *topologies.Topology
	dir  string
	mu   sync.Mutex
	evs  []controller.Event
}

// newHarness starts a three-ISP lab on 127.<base>.x.y and returns a
// topology for it with the default loss thresholds (those the 15 s goal
// is about) and shorter exit and hold-down, so restores fit in a test.
func newHarness(t *testing.T, base byte) *harness {
	t.Helper()
	var specs []loopback.LinkSpec
	for i := range 3 {
		specs = append(specs, loopback.LinkSpec{Name: fmt.Sprintf("isp%d", i+1), PeerASN: uint32(64501 + i)})
	}
	lab, err := loopback.StartLab(t.Context(), base, 65000, specs, nil)
	t.Cleanup(func() {
		if lab != nil {
			lab.Stop(context.Background())
		}
	})
	if err != nil {
		t.Fatal(err)
	}
	th := topologies.DefaultThresholds()
	th.Exit, th.HoldDown = 5*time.Second, 5*time.Second
	topo := &topologies.Topology{Name: "it", Thresholds: th, Probes: topologies.DefaultProbes(), BGP: topologies.DefaultBGP(),
		Flow: topologies.DefaultFlow(), Telemetry: topologies.DefaultTelemetry()}
	topo.BGP.ConnectRetry, topo.BGP.HoldTime, topo.BGP.Keepalive = time.Second, 9*time.Second, 3*time.Second
	pop := topologies.PoP{Name: "pop1", Speaker: topologies.Speaker{RouterID: netip.MustParseAddr("198.18.0.1"), ASN: 65000}}
	var ids []string
	for i, x := range lab.ISPs {
		pop.Links = append(pop.Links, topologies.Link{Name: x.Name, PeerASN: uint32(64501 + i), Neighbor: x.Neighbor.Addr(),
			NeighborPort: int(x.Neighbor.Port()), Local: x.Local, ListenPort: -1, Capacity: 1e10, ProbeTargets: x.Targets(), Thresholds: th})
		ids = append(ids, "pop1/"+x.Name)
	}
	topo.PoPs = []topologies.PoP{pop}
	for _, p := range prefixes {
		topo.Prefixes = append(topo.Prefixes, topologies.Prefix{Prefix: p, Publish: ids})
	}
	if err := topo.Validate(); err != nil {
		t.Fatal(err)
	}
	return &harness{t: t, lab: lab, topo: topo, dir: t.TempDir()}
}

func (h *harness) start() *controller.Controller {
	h.t.Helper()
	cfg := controller.DefaultConfig()
	cfg.Topology, cfg.JournalPath = h.topo, filepath.Join(h.dir, "journal.jsonl")
	log := slog.New(slog.DiscardHandler)
	if testing.Verbose() {
		log = slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelWarn}))
	}
	c, err := controller.New(cfg, controller.Deps{Log: log, OnEvent: func(e controller.Event) {
		h.mu.Lock()
		h.evs = append(h.evs, e)
		h.mu.Unlock()
	}})
	if err != nil {
		h.t.Fatal(err)
	}
	if err := c.Start(h.t.Context()); err != nil {
		h.t.Fatal(err)
	}
	return c
}

// wait polls ISP i's own RIB until cond holds and returns how long it took.
func (h *harness) wait(i int, timeout time.Duration, what string, cond func([]netip.Prefix) bool) time.Duration {
	h.t.Helper()
	ctx, cancel := context.WithTimeout(h.t.Context(), timeout)
	defer cancel()
	got, took, err := h.lab.ISPs[i].Router.WaitRoutes(ctx, cond, 10*time.Millisecond)
	if err != nil {
		h.t.Fatalf("%s: %s's RIB = %v after %v: %v", what, h.lab.ISPs[i].Name, got, timeout, err)
	}
	return took
}

func all(rs []netip.Prefix) bool {
	for _, p := range prefixes {
		if !slices.Contains(rs, p) {
			return false
		}
	}
	return true
}

func none(rs []netip.Prefix) bool {
	for _, p := range prefixes {
		if slices.Contains(rs, p) {
			return false
		}
	}
	return true
}

// TestLoopOnRealPeers: real GoBGP peers, real STAMP probes through
// impairable relays. A black-holed link and a link with 5 % loss are each
// withdrawn, in their ISP's own RIB, and restored after healing; the other
// ISPs keep everything meanwhile.
func TestLoopOnRealPeers(t *testing.T) {
	h := newHarness(t, 71)
	c := h.start()
	t.Cleanup(func() { c.Stop(context.Background()) })
	for i := range h.lab.ISPs {
		h.wait(i, 20*time.Second, "baseline", all)
	}
	time.Sleep(h.topo.Thresholds.LossWindow) // judged healthy on a full window

	h.lab.ISPs[0].SetBlackhole(true)
	dark := h.wait(0, 10*time.Second, "black hole", none)
	for i := 1; i < 3; i++ {
		if rs, _ := h.lab.ISPs[i].Router.Routes(t.Context()); !all(rs) {
			t.Fatalf("%s lost prefixes when isp1 went dark: %v", h.lab.ISPs[i].Name, rs)
		}
	}
	h.lab.ISPs[0].SetBlackhole(false)
	restore := h.wait(0, 40*time.Second, "restore after black hole", all)

	h.lab.ISPs[1].SetLoss(5)
	lossy := h.wait(1, 90*time.Second, "5% loss", none)
	if rs, _ := h.lab.ISPs[2].Router.Routes(t.Context()); !all(rs) {
		t.Fatalf("isp3 lost prefixes when isp2 degraded: %v", rs)
	}
	h.lab.ISPs[1].SetLoss(0)
	h.wait(1, 60*time.Second, "restore after 5% loss", all)
	t.Logf("black hole -> withdrawn at the ISP: %v; healed -> restored: %v; 5%% loss -> withdrawn: %v (default thresholds)",
		dark.Round(time.Millisecond), restore.Round(time.Millisecond), lossy.Round(time.Millisecond))

	// Every withdrawal was journaled with its evidence before it was applied.
	if err := c.Stop(t.Context()); err != nil {
		t.Fatal(err)
	}
	b, err := os.ReadFile(filepath.Join(h.dir, "journal.jsonl"))
	if err != nil {
		t.Fatal(err)
	}
	text := string(b)
	for _, want := range []string{`"kind":"intent"`, `"action":"withdraw"`, `"link":"pop1/isp1"`, `"verdict":"no reply for`, `"link":"pop1/isp2"`, `"kind":"applied"`} {
		if !strings.Contains(text, want) {
			t.Errorf("journal lacks %s", want)
		}
	}
}

// TestRestartKeepsWithdrawal: a link withdrawn before a restart stays
// withdrawn after it, from the first UPDATE on (invariant 7): the new
// controller reads the journal before deciding, and its ISP never sees
// the prefixes again while the others get them back.
func TestRestartKeepsWithdrawal(t *testing.T) {
	h := newHarness(t, 72)
	c := h.start()
	for i := range h.lab.ISPs {
		h.wait(i, 20*time.Second, "baseline", all)
	}
	h.lab.ISPs[1].SetBlackhole(true)
	h.wait(1, 10*time.Second, "black hole", none)
	if err := c.Stop(t.Context()); err != nil { // the ISPs drop every route
		t.Fatal(err)
	}
	snap, err := journal.Read(filepath.Join(h.dir, "journal.jsonl"))
	if err != nil || !snap.Withdrawn["pop1/isp2"] {
		t.Fatalf("journal after stop: %+v, %v; want pop1/isp2 withdrawn", snap, err)
	}
	for i := range h.lab.ISPs {
		h.wait(i, 20*time.Second, "after stop", none)
	}
	c2 := h.start()
	t.Cleanup(func() { c2.Stop(context.Background()) })
	h.wait(0, 20*time.Second, "restart", all)
	h.wait(2, 20*time.Second, "restart", all)
	// isp2 is still dark: it must not get the prefixes at any moment.
	for range 100 {
		rs, err := h.lab.ISPs[1].Router.Routes(t.Context())
		if err != nil {
			t.Fatal(err)
		}
		if !none(rs) {
			t.Fatalf("withdrawn isp2 got %v after the restart", rs)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func TestHealth(t *testing.T) {
	h := newHarness(t, 75)
	cfg := controller.DefaultConfig()
	cfg.Topology, cfg.JournalPath = h.topo, filepath.Join(h.dir, "journal.jsonl")
	c, err := controller.New(cfg, controller.Deps{})
	if err != nil {
		t.Fatal(err)
	}
	if err := c.Health(); err == nil {
		t.Fatal("healthy before Start")
	}
	if err := c.Start(t.Context()); err != nil {
		t.Fatal(err)
	}
	if err := c.Health(); err != nil {
		t.Fatalf("unhealthy right after Start: %v", err)
	}
	if err := c.Halt(t.Context()); err != nil {
		t.Fatal(err)
	}
	time.Sleep(2100 * time.Millisecond)
	if err := c.Health(); err == nil || !strings.Contains(err.Error(), "stalled") {
		t.Fatalf("Health() after the loop stopped = %v; want a stall", err)
	}
	if err := c.Stop(t.Context()); err != nil {
		t.Fatal(err)
	}
}

func TestPrefixSample(t *testing.T) {
	var ps []netip.Prefix
	for i := range 10 {
		ps = append(ps, netip.PrefixFrom(netip.AddrFrom4([4]byte{100, 64, byte(i), 0}), 24))
	}
	if got := controller.PrefixSample(ps[:2]); got != "100.64.0.0/24 100.64.1.0/24" {
		t.Errorf("two prefixes: %q", got)
	}
	if got := controller.PrefixSample(ps); !strings.HasSuffix(got, "100.64.7.0/24 and 2 more") {
		t.Errorf("ten prefixes: %q", got)
	}
}
