package demo

import (
	"net/netip"
	"slices"
	"strings"
	"testing"

	"github.com/sdnoc/sdnoc/topologies"
)

// The demo tests do not run in parallel: GoBGP v3.37.0's StartBgp writes
// process-wide route-selection settings that running servers read (see
// bgp.Speaker.Start), so one demo must not start while another's routers
// select routes.

// TestDemoBuiltin runs `sdnoc demo` end to end: real GoBGP sessions and
// real STAMP probes on loopback. Every step is checked in the ISPs' own
// RIBs by the scenario; here we check the report says so and carries the
// figures.
func TestDemoBuiltin(t *testing.T) {
	rep, err := Run(t.Context(), Config{Base: 61})
	if err != nil {
		t.Fatal(err)
	}
	for _, s := range rep.Steps {
		t.Logf("%-22s passed=%v %6.0f ms  %s", s.Name, s.Passed, s.ElapsedMS, s.Observed)
	}
	if !rep.Passed || len(rep.Steps) != 5 {
		t.Fatalf("demo did not pass: %d steps", len(rep.Steps))
	}
	if rep.WithdrawLatencyMS <= 0 || rep.BlackholeWithdrawLatencyMS <= 0 || rep.RestoreLatencyMS <= 0 {
		t.Fatalf("latencies missing from the report: %+v", rep)
	}
	if !strings.Contains(rep.Refusal, "strand") || !strings.Contains(rep.Refusal, "demo/isp3") {
		t.Fatalf("refusal %q does not explain keeping the prefixes on isp3", rep.Refusal)
	}
	t.Logf("withdraw %.0f ms, black-hole withdraw %.0f ms, restore %.0f ms, total %.1f s",
		rep.WithdrawLatencyMS, rep.BlackholeWithdrawLatencyMS, rep.RestoreLatencyMS, rep.DurationMS/1000)
}

// TestDemoTopologyFile plays the scenario on a PoP of the shipped example
// topology: its names, ASNs and prefixes, on loopback.
func TestDemoTopologyFile(t *testing.T) {
	topo, err := topologies.Load("../topologies/examples/two-pops.yaml")
	if err != nil {
		t.Fatal(err)
	}
	rep, err := Run(t.Context(), Config{Topology: topo, PoP: "fra", Base: 62})
	if err != nil {
		t.Fatal(err)
	}
	if !rep.Passed {
		for _, s := range rep.Steps {
			t.Logf("%-22s passed=%v %s", s.Name, s.Passed, s.Observed)
		}
		t.Fatal("demo on fra did not pass")
	}
	if rep.Links[0] != "fra/transit1" || len(rep.Prefixes) < 2 {
		t.Fatalf("played links %v prefixes %v; want fra's", rep.Links, rep.Prefixes)
	}
}

func TestDemoRefusesSmallPoP(t *testing.T) {
	topo := builtin()
	topo.PoPs[0].Links = topo.PoPs[0].Links[:2]
	_, err := Run(t.Context(), Config{Topology: topo, Base: 63})
	if err == nil || !strings.Contains(err.Error(), "at least 3") {
		t.Fatalf("Run with a 2-link PoP: err = %v; want a refusal naming the 3-link need", err)
	}
}

// TestDemoCongestion runs `sdnoc demo --scenario congestion` end to end:
// real GoBGP sessions, a real gNMI agent over gRPC, IPFIX and sFlow
// datagrams from the encoders, on loopback. The scenario checks the ISPs'
// RIBs; here we check that what moved is exactly the fewest prefixes.
func TestDemoCongestion(t *testing.T) {
	rep, err := Run(t.Context(), Config{Scenario: ScenarioCongestion, Base: 64})
	if err != nil {
		t.Fatal(err)
	}
	for _, s := range rep.Steps {
		t.Logf("%-14s passed=%v %6.0f ms  %s", s.Name, s.Passed, s.ElapsedMS, s.Observed)
	}
	if !rep.Passed || len(rep.Steps) != 3 || rep.Scenario != ScenarioCongestion {
		t.Fatalf("congestion demo did not pass: %d steps", len(rep.Steps))
	}
	if len(rep.Moved) == 0 || !slices.Equal(rep.Moved, rep.ExpectedMoved) {
		t.Fatalf("moved %v, want the fewest: %v", rep.Moved, rep.ExpectedMoved)
	}
	if rep.MoveLatencyMS <= 0 || rep.BackLatencyMS <= 0 {
		t.Fatalf("latencies missing: %+v", rep)
	}
}

func TestDemoUnknownScenario(t *testing.T) {
	_, err := Run(t.Context(), Config{Scenario: "earthquake"})
	if err == nil || !strings.Contains(err.Error(), "congestion") {
		t.Fatalf("Run with an unknown scenario: err = %v; want one listing the scenarios", err)
	}
}

// TestMinimalMove: the check the scenario judges sdnoc by takes the
// largest prefixes first until the rest fits.
func TestMinimalMove(t *testing.T) {
	ps := []netip.Prefix{netip.MustParsePrefix("192.0.2.0/24"), netip.MustParsePrefix("198.51.100.0/24"), netip.MustParsePrefix("203.0.113.0/24")}
	got := minimalMove([]float64{300e6, 500e6, 400e6}, ps, 1e9, 90)
	if !slices.Equal(got, []netip.Prefix{ps[1]}) {
		t.Fatalf("1.2G on 1G at 90%%: %v, want only the 500M prefix", got)
	}
	if got := minimalMove([]float64{300e6, 500e6, 400e6}, ps, 1e9, 40); !slices.Equal(got, []netip.Prefix{ps[1], ps[2]}) {
		t.Fatalf("at 40%%: %v, want the two largest, sorted", got)
	}
	if got := minimalMove([]float64{100e6, 100e6, 100e6}, ps, 1e9, 90); got != nil {
		t.Fatalf("under target: %v, want nothing", got)
	}
}
