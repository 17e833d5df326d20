package main

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"

	"github.com/spf13/cobra"

	"github.com/sdnoc/sdnoc/demo"
	"github.com/sdnoc/sdnoc/topologies"
)

func newDemo(lf *logFlags) *cobra.Command {
	var (
		asJSON, keep, verbose bool
		topoPath, pop         string
		scenario              string
	)
	c := &cobra.Command{
		Use:   "demo",
		Short: "Run the whole loop on loopback (no config, no root): ISPs lose packets, go dark and heal; sdnoc withdraws and restores",
		Long: `demo starts, in this process and on loopback addresses only, sdnoc's BGP
speaker, three ISP routers (GoBGP) peering with it, a STAMP reflector behind
each ISP and an impairable path per link. It then plays a scenario and checks
every step in the ISPs' own RIBs:

  all healthy → ISP-2 loses 30% → withdrawn from ISP-2 → ISP-1 goes dark →
  withdrawn from ISP-1 → ISP-3 loses 30% too → kept on ISP-3, refusal
  explained → links heal → announced again after the exit duration.

--scenario congestion plays the other thing sdnoc detects, on its own
network (one PoP, three ISPs): router br1 reports isp1 and isp2 over gNMI (an
in-process gNMI agent) and IPFIX, router br2 reports isp3 over sFlow, all as
real packets and RPCs on loopback. A flash crowd fills isp1 → sdnoc moves the
fewest prefixes, by their measured rates, off isp1 onto links with room →
the crowd leaves → they come back.

Exit status 0 only when every step behaved as expected.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			cfg := demo.Config{Scenario: scenario, PoP: pop, KeepThresholds: keep, Log: slog.New(slog.DiscardHandler)}
			if scenario == demo.ScenarioCongestion && (topoPath != "" || pop != "") {
				return errors.New("--scenario congestion runs on its own network; drop --topology and --pop")
			}
			if verbose {
				l, err := stderrLogger(cmd, lf)
				if err != nil {
					return err
				}
				cfg.Log = l
			}
			if topoPath != "" {
				t, err := topologies.Load(topoPath)
				if err != nil {
					return err
				}
				cfg.Topology = t
			}
			out := cmd.OutOrStdout()
			if !asJSON {
				if scenario == demo.ScenarioCongestion {
					fmt.Fprintln(out, "sdnoc demo: congestion on loopback, real BGP (GoBGP), gNMI (gRPC), IPFIX and sFlow")
				} else {
					fmt.Fprintln(out, "sdnoc demo: the loop on loopback, real BGP (GoBGP) and real STAMP probes")
				}
				cfg.OnLine = func(l demo.Line) { printLine(out, l) }
			}
			rep, err := demo.Run(cmd.Context(), cfg)
			if err != nil {
				return err
			}
			if asJSON {
				enc := json.NewEncoder(out)
				enc.SetIndent("", "  ")
				if err := enc.Encode(jsonReport(rep)); err != nil {
					return err
				}
			} else {
				printSummary(out, rep)
			}
			if !rep.Passed {
				return fmt.Errorf("demo %w: a step did not behave as expected", errFailed)
			}
			return nil
		},
	}
	c.Flags().BoolVar(&asJSON, "json", false, "print one JSON report instead of the timeline")
	c.Flags().StringVar(&scenario, "scenario", demo.ScenarioDegradation, "the scenario to play: degradation or congestion")
	c.Flags().StringVar(&topoPath, "topology", "", "use this topology file's PoP, links, prefixes (on loopback) instead of the built-in network")
	c.Flags().StringVar(&pop, "pop", "", "with --topology: the PoP to play (default: the first with 3 or more links)")
	c.Flags().BoolVar(&keep, "keep-thresholds", false, "with --topology: use its thresholds, not the demo's short ones (slower)")
	c.Flags().BoolVarP(&verbose, "verbose", "v", false, "also log the components (BGP, probes, controller) to stderr")
	return c
}

func printLine(w io.Writer, l demo.Line) {
	at := fmt.Sprintf("%6.2fs", l.At.Seconds())
	link := l.Link
	if link == "" {
		link = "-"
	}
	fmt.Fprintf(w, "%s  %-10s %-12s %s\n", at, l.Kind, link, l.Text)
	if l.Evidence != "" {
		fmt.Fprintf(w, "%s  %-10s %-12s %s\n", "       ", "", "", l.Evidence)
	}
}

func printSummary(w io.Writer, r *demo.Report) {
	fmt.Fprintln(w)
	for _, s := range r.Steps {
		mark := "PASS"
		if !s.Passed {
			mark = "FAIL"
		}
		fmt.Fprintf(w, "%s  %-24s %8.0f ms  %s\n", mark, s.Name, s.ElapsedMS, s.Observed)
	}
	if r.Scenario == demo.ScenarioCongestion {
		fmt.Fprintf(w, "\nmove latency (flash crowd starts -> prefixes gone from isp1's RIB): %.0f ms\n", r.MoveLatencyMS)
		fmt.Fprintf(w, "moved: %v (the fewest that fit: %v)\n", r.Moved, r.ExpectedMoved)
		fmt.Fprintf(w, "back latency (crowd over -> every prefix back in isp1's RIB): %.0f ms\n", r.BackLatencyMS)
	} else {
		fmt.Fprintf(w, "\nwithdraw latency (30%% loss starts -> gone from the ISP's RIB): %.0f ms\n", r.WithdrawLatencyMS)
		fmt.Fprintf(w, "black-hole withdraw latency (link dark -> gone from the ISP's RIB): %.0f ms\n", r.BlackholeWithdrawLatencyMS)
		fmt.Fprintf(w, "restore latency (links heal -> back in every RIB): %.0f ms\n", r.RestoreLatencyMS)
	}
	verdict := "PASSED"
	if !r.Passed {
		verdict = "FAILED"
	}
	fmt.Fprintf(w, "verdict: %s in %.1f s\n", verdict, r.DurationMS/1000)
}

// jsonReport flattens durations into milliseconds for the JSON report.
func jsonReport(r *demo.Report) any {
	type line struct {
		AtMS     float64 `json:"at_ms"`
		Kind     string  `json:"kind"`
		Link     string  `json:"link,omitempty"`
		Text     string  `json:"text"`
		Evidence string  `json:"evidence,omitempty"`
	}
	tl := make([]line, len(r.Timeline))
	for i, l := range r.Timeline {
		tl[i] = line{AtMS: float64(l.At.Microseconds()) / 1000, Kind: l.Kind, Link: l.Link, Text: l.Text, Evidence: l.Evidence}
	}
	th := r.Thresholds
	return struct {
		*demo.Report
		Thresholds map[string]any `json:"thresholds"`
		Timeline   []line         `json:"timeline"`
	}{r, map[string]any{
		"loss_pct": th.LossPct, "loss_window": th.LossWindow.String(), "rtt": th.RTT.String(), "jitter": th.Jitter.String(),
		"enter": th.Enter.String(), "exit": th.Exit.String(), "hold_down": th.HoldDown.String(), "down_after": th.DownAfter.String(),
		"stale_after": th.StaleAfter.String(), "min_probes": th.MinProbes, "max_withdrawals": th.MaxWithdrawals,
		"withdrawal_window": th.WithdrawalWindow.String(), "probe_interval": r.Probes.Interval.String(),
		"probe_timeout": r.Probes.Timeout.String(), "probe_window": r.Probes.Window.String(),
	}, tl}
}
