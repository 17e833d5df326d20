// Package demo is `sdnoc demo`: the whole loop, real protocols, one
// process, loopback only. Three ISP routers (GoBGP) peer with sdnoc's
// speaker, a STAMP reflector sits behind each, and an impairable UDP relay
// stands for each ISP's data path. A scripted scenario degrades, darkens
// and heals the links and checks, in each ISP's own RIB, that sdnoc
// withdrew and restored the right prefixes and never stranded them.
package demo

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/netip"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/sdnoc/sdnoc/controller"
	"github.com/sdnoc/sdnoc/lab/loopback"
	"github.com/sdnoc/sdnoc/topologies"
)

// Scenarios that Config.Scenario names.
const (
	// ScenarioDegradation: links lose packets, go dark and heal; sdnoc
	// withdraws and restores whole links. The default.
	ScenarioDegradation = "degradation"
	// ScenarioCongestion: a flash crowd fills a link; sdnoc moves the
	// fewest prefixes off it and brings them back when it cools. It
	// runs on its own built-in network; Topology and PoP do not apply.
	ScenarioCongestion = "congestion"
)

// Config says how to run the demo.
type Config struct {
	// Scenario is ScenarioDegradation ("" too) or ScenarioCongestion.
	Scenario string
	// Topology, if set, supplies the PoP, links, prefixes and thresholds
	// instead of the built-in network; its addresses are replaced by the
	// lab's loopback ones.
	Topology *topologies.Topology
	// PoP picks the topology's PoP; "" takes the first with three or more
	// links.
	PoP string
	// KeepThresholds runs with the topology's own thresholds instead of
	// the demo's shortened ones (the scenario then takes much longer).
	KeepThresholds bool
	// Base is the second octet of the 127.x.y.z addresses the lab uses;
	// 0 means 66. Tests running in parallel pick different ones.
	Base byte
	// Log receives the components' logs; nil discards them.
	Log *slog.Logger
	// OnLine, if set, receives each timeline line as it happens.
	OnLine func(Line)
}

// Line is one entry of the timeline.
type Line struct {
	At       time.Duration `json:"at_ms"`
	Kind     string        `json:"kind"`
	Link     string        `json:"link,omitempty"`
	Text     string        `json:"text"`
	Evidence string        `json:"evidence,omitempty"`
}

// Step is one scripted step and what was observed.
type Step struct {
	Name      string  `json:"name"`
	Expected  string  `json:"expected"`
	Observed  string  `json:"observed"`
	ElapsedMS float64 `json:"elapsed_ms"`
	Passed    bool    `json:"passed"`
}

// Report is the demo's result.
type Report struct {
	Scenario                   string                `json:"scenario"`
	Passed                     bool                  `json:"passed"`
	Steps                      []Step                `json:"steps"`
	WithdrawLatencyMS          float64               `json:"withdraw_latency_ms"`
	BlackholeWithdrawLatencyMS float64               `json:"blackhole_withdraw_latency_ms"`
	RestoreLatencyMS           float64               `json:"restore_latency_ms"`
	Thresholds                 topologies.Thresholds `json:"thresholds"`
	Probes                     topologies.Probes     `json:"probes"`
	Topology                   string                `json:"topology"`
	Links                      []string              `json:"links"`
	Prefixes                   []netip.Prefix        `json:"prefixes"`
	Timeline                   []Line                `json:"timeline"`
	DurationMS                 float64               `json:"duration_ms"`
	Refusal                    string                `json:"refusal,omitempty"`
	// The congestion scenario: how long from the flash crowd to the first
	// prefixes gone from the full link's RIB, and from its end to all
	// back; which prefixes left, and which the fewest would be.
	MoveLatencyMS float64        `json:"move_latency_ms,omitempty"`
	BackLatencyMS float64        `json:"back_latency_ms,omitempty"`
	Moved         []netip.Prefix `json:"moved,omitempty"`
	ExpectedMoved []netip.Prefix `json:"expected_moved,omitempty"`
}

// runner holds one run's state.
type runner struct {
	cfg      Config
	start    time.Time
	lab      *loopback.Lab
	ctl      *controller.Controller
	topo     *topologies.Topology
	links    []string
	prefixes []netip.Prefix
	mu       sync.Mutex
	report   Report
}

// Run runs the demo and returns its report. The error is for a demo that
// could not run at all; a scenario that ran but misbehaved returns a report
// with Passed false.
func Run(ctx context.Context, cfg Config) (*Report, error) {
	if cfg.Log == nil {
		cfg.Log = slog.New(slog.DiscardHandler)
	}
	if cfg.Base == 0 {
		cfg.Base = 66
	}
	switch cfg.Scenario {
	case "", ScenarioDegradation:
	case ScenarioCongestion:
		return runCongestion(ctx, cfg)
	default:
		return nil, fmt.Errorf("no scenario %q; the scenarios are %s and %s", cfg.Scenario, ScenarioDegradation, ScenarioCongestion)
	}
	src := cfg.Topology
	if src == nil {
		src = builtin()
	}
	pop, err := pickPoP(src, cfg.PoP)
	if err != nil {
		return nil, err
	}
	r := &runner{cfg: cfg, start: time.Now()}
	var specs []loopback.LinkSpec
	for _, l := range pop.Links {
		specs = append(specs, loopback.LinkSpec{Name: l.Name, PeerASN: l.PeerASN})
	}
	l, err := loopback.StartLab(ctx, cfg.Base, pop.Speaker.ASN, specs, cfg.Log)
	if err != nil {
		return nil, fmt.Errorf("start the loopback lab: %w", err)
	}
	r.lab = l
	defer l.Stop(context.WithoutCancel(ctx))
	var th *topologies.Thresholds
	if !cfg.KeepThresholds {
		d := DemoThresholds()
		th = &d
	}
	topo, err := fitToLab(src, pop, l, th)
	if err != nil {
		return nil, err
	}
	r.topo = topo
	for _, lk := range topo.PoPs[0].Links {
		r.links = append(r.links, topo.LinkID(pop.Name, lk.Name))
	}
	for _, p := range topo.Prefixes {
		r.prefixes = append(r.prefixes, p.Prefix)
	}
	r.report = Report{Scenario: ScenarioDegradation, Thresholds: topo.PoPs[0].Links[0].Thresholds, Probes: topo.Probes, Topology: src.Name,
		Links: r.links, Prefixes: r.prefixes}
	dir, err := os.MkdirTemp("", "sdnoc-demo-")
	if err != nil {
		return nil, fmt.Errorf("journal directory: %w", err)
	}
	defer os.RemoveAll(dir)
	if err := r.startController(ctx, topo, dir); err != nil {
		return nil, err
	}
	defer r.ctl.Stop(context.WithoutCancel(ctx))
	r.line(Line{Kind: "start", Text: fmt.Sprintf("sdnoc speaker AS%d with %d ISP links, %d prefixes; thresholds: %s",
		pop.Speaker.ASN, len(r.links), len(r.prefixes), describe(r.report.Thresholds))})
	r.scenario(ctx)
	return r.finish(), nil
}

// startController starts sdnoc's controller on topo with its journal in
// dir, the demo's events going to the timeline. The caller stops it.
func (r *runner) startController(ctx context.Context, topo *topologies.Topology, dir string) error {
	ccfg := controller.DefaultConfig()
	ccfg.Topology, ccfg.JournalPath = topo, filepath.Join(dir, "journal.jsonl")
	// Faster than a network needs, so the demo sees drift and load soon.
	ccfg.AppliedSync, ccfg.FlowPoll = 2*time.Second, 250*time.Millisecond
	ctl, err := controller.New(ccfg, controller.Deps{Log: r.cfg.Log, OnEvent: r.onEvent})
	if err != nil {
		return err
	}
	if err := ctl.Start(ctx); err != nil {
		return fmt.Errorf("start the controller: %w", err)
	}
	r.ctl = ctl
	return nil
}

// finish judges the run and returns a copy of its report.
func (r *runner) finish() *Report {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.report.Passed = len(r.report.Steps) > 0
	for _, s := range r.report.Steps {
		r.report.Passed = r.report.Passed && s.Passed
	}
	r.report.DurationMS = ms(time.Since(r.start))
	rep := r.report
	rep.Timeline = slices.Clone(r.report.Timeline)
	return &rep
}

func pickPoP(t *topologies.Topology, name string) (topologies.PoP, error) {
	for _, p := range t.PoPs {
		if name != "" && p.Name == name || name == "" && len(p.Links) >= 3 {
			if len(p.Links) < 3 {
				return p, fmt.Errorf("pop %s has %d links; the demo's scenario needs at least 3", p.Name, len(p.Links))
			}
			return p, nil
		}
	}
	if name != "" {
		return topologies.PoP{}, fmt.Errorf("no pop %q in the topology", name)
	}
	return topologies.PoP{}, errors.New("no pop with at least 3 links in the topology; the demo's scenario needs 3")
}

func describe(t topologies.Thresholds) string {
	return fmt.Sprintf("loss > %.1f%% over %v for %v (enter), healthy after %v (exit), hold-down %v, down after %v without reply, unknown after %v without samples, min %d probes",
		t.LossPct, t.LossWindow, t.Enter, t.Exit, t.HoldDown, t.DownAfter, t.StaleAfter, t.MinProbes)
}

func ms(d time.Duration) float64 { return float64(d.Microseconds()) / 1000 }

func (r *runner) line(l Line) {
	r.mu.Lock()
	l.At = time.Since(r.start)
	r.report.Timeline = append(r.report.Timeline, l)
	r.mu.Unlock()
	if r.cfg.OnLine != nil {
		r.cfg.OnLine(l)
	}
}

// onEvent turns the controller's events into timeline lines.
func (r *runner) onEvent(e controller.Event) {
	switch e.Kind {
	case "transition", "change", "refusal", "failed", "congestion", "move":
		r.line(Line{Kind: e.Kind, Link: e.Link, Text: e.Text})
	case "applied":
		r.line(Line{Kind: "bgp", Link: e.Link, Text: fmt.Sprintf("%s %s", e.Action, prefixList(e.Prefixes))})
	case "alert":
		if e.Rule != "unknown" { // startup noise before the first samples
			r.line(Line{Kind: "alert", Link: e.Link, Text: e.Text})
		}
	}
	if e.Kind == "refusal" && e.Rule == "never-strand" {
		r.mu.Lock()
		r.report.Refusal = e.Text
		r.mu.Unlock()
	}
}

func prefixList(ps []netip.Prefix) string {
	s := make([]string, len(ps))
	for i, p := range ps {
		s[i] = p.String()
	}
	return strings.Join(s, " ")
}
