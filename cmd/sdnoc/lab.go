package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/sdnoc/sdnoc/lab"
	"github.com/sdnoc/sdnoc/lab/netlab"
	"github.com/sdnoc/sdnoc/topologies"
)

// labFlags are shared by the lab's subcommands.
type labFlags struct {
	dir, prefix, topology string
}

func newLab(lf *logFlags) *cobra.Command {
	f := &labFlags{}
	c := &cobra.Command{
		Use:   "lab",
		Short: "The lab: a real PoP network in network namespaces (root): FRR ISPs, exporters, traffic, impairments",
		Long: `lab builds, on this machine, the network of a lab topology (by default the
shipped topologies/examples/lab.yaml): an FRR router per ISP and for the
shared internet, a border namespace per PoP with the edge prefixes, iperf3,
the flow exporters and a gNMI agent, and a namespace where sdnoc runs on
every ISP link. See lab/README.md. It needs root.`,
		Args: cobra.NoArgs,
	}
	c.PersistentFlags().StringVar(&f.dir, "dir", "/run/sdnoc-lab", "where the lab keeps its routers' files, logs and state")
	c.PersistentFlags().StringVar(&f.prefix, "prefix", "sdnoc-lab-", "the prefix of the lab's namespace names")
	c.AddCommand(newLabUp(lf, f), newLabDown(f), newLabStatus(f), newLabScenario(lf, f), newLabTraffic(f))
	return c
}

// labTopology loads --topology, or writes the shipped lab.yaml into the
// lab's directory (the daemon in the lab reads it from there).
func (f *labFlags) labTopology() (*topologies.Topology, error) {
	path := f.topology
	if path == "" {
		b, err := topologies.Example("lab.yaml")
		if err != nil {
			return nil, err
		}
		if err := os.MkdirAll(f.dir, 0o755); err != nil {
			return nil, err
		}
		path = filepath.Join(f.dir, "lab.yaml")
		if err := os.WriteFile(path, b, 0o644); err != nil {
			return nil, err
		}
	}
	abs, err := filepath.Abs(path)
	if err != nil {
		return nil, err
	}
	return topologies.Load(abs)
}

// install runs lab/install.sh (embedded) when a tool is missing.
func install(ctx context.Context, out io.Writer) error {
	if os.Geteuid() != 0 {
		return errors.New("the lab needs root (network namespaces): run it with sudo")
	}
	cmd := exec.CommandContext(ctx, "bash", "-s")
	cmd.Stdin = strings.NewReader(lab.InstallScript)
	cmd.Stdout, cmd.Stderr = out, out
	if err := cmd.Run(); err != nil {
		return fmt.Errorf("install the lab's tools: %w", err)
	}
	return nil
}

// build brings the lab up from the flags.
func (f *labFlags) build(ctx context.Context, cmd *cobra.Command, lf *logFlags) (*netlab.Lab, error) {
	if err := install(ctx, cmd.ErrOrStderr()); err != nil {
		return nil, err
	}
	t, err := f.labTopology()
	if err != nil {
		return nil, err
	}
	p, err := netlab.NewPlan(t, f.prefix)
	if err != nil {
		return nil, err
	}
	self, err := copySelf(f.dir)
	if err != nil {
		return nil, err
	}
	log, err := stderrLogger(cmd, lf)
	if err != nil {
		return nil, err
	}
	return netlab.Up(ctx, p, netlab.Options{Dir: f.dir, Sdnoc: self, Log: log})
}

// copySelf copies the running sdnoc into the lab's directory, so that
// the lab's processes, and the daemon the engineer starts in it, run a
// binary that outlives `go run`'s temporary one.
func copySelf(dir string) (string, error) {
	self, err := os.Executable()
	if err != nil {
		return "", err
	}
	b, err := os.ReadFile(self)
	if err != nil {
		return "", err
	}
	dst := filepath.Join(dir, "sdnoc")
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return "", err
	}
	// Replace, not overwrite: a lab process may be running the old one.
	tmp := dst + ".new"
	if err := os.WriteFile(tmp, b, 0o755); err != nil {
		return "", err
	}
	return dst, os.Rename(tmp, dst)
}

func newLabUp(lf *logFlags, f *labFlags) *cobra.Command {
	c := &cobra.Command{
		Use:   "up [--topology FILE]",
		Short: "Build the lab (a lab left by a crashed run is removed first)",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			began := time.Now()
			l, err := f.build(cmd.Context(), cmd, lf)
			if err != nil {
				return err
			}
			out := cmd.OutOrStdout()
			fmt.Fprintf(out, "lab up in %v: namespaces %s\n", time.Since(began).Round(100*time.Millisecond), strings.Join(l.Plan.Namespaces(), " "))
			fmt.Fprintf(out, "run sdnoc in it:  ip netns exec %s %s/sdnoc daemon --config %s --journal %s/journal.jsonl\n",
				l.Plan.NS("sdnoc"), f.dir, l.Plan.Topology.Source, f.dir)
			fmt.Fprintf(out, "its routers:      vtysh --vty_socket %s/frr/isp2/run -c 'show bgp ipv4 unicast'\n", f.dir)
			fmt.Fprintf(out, "see it:           sdnoc status --watch --daemon %s/sdnoc.sock\n", f.dir)
			fmt.Fprintln(out, "send traffic:     sdnoc lab traffic 203.0.113.1 8M   (to pop1's range, from the internet)")
			fmt.Fprintf(out, "drain pop1:       sdnoc playbook apply playbooks/examples/drain-pop1.yaml --daemon %s/sdnoc.sock\n", f.dir)
			fmt.Fprintln(out, "rehearse:         sdnoc lab scenario isp-loss   (builds its own lab: run lab down first)")
			return nil
		},
	}
	c.Flags().StringVar(&f.topology, "topology", "", "a lab topology (default: the shipped topologies/examples/lab.yaml)")
	return c
}

func newLabDown(f *labFlags) *cobra.Command {
	return &cobra.Command{
		Use:   "down",
		Short: "Remove the lab: its processes, namespaces (with their links and nftables tables) and files",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if os.Geteuid() != 0 {
				return errors.New("the lab needs root: run it with sudo")
			}
			removed, err := netlab.Down(cmd.Context(), f.prefix, f.dir)
			fmt.Fprintf(cmd.OutOrStdout(), "removed %d namespaces\n", len(removed))
			return err
		},
	}
}

func newLabStatus(f *labFlags) *cobra.Command {
	return &cobra.Command{
		Use:   "status",
		Short: "Show the lab's namespaces, processes and ISP sessions",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			b, err := os.ReadFile(filepath.Join(f.dir, "state.json"))
			if errors.Is(err, os.ErrNotExist) {
				fmt.Fprintln(cmd.OutOrStdout(), "no lab up (sdnoc lab up builds one)")
				return nil
			}
			if err != nil {
				return err
			}
			var st netlab.State
			if err := json.Unmarshal(b, &st); err != nil {
				return fmt.Errorf("%s: %w", filepath.Join(f.dir, "state.json"), err)
			}
			return netlab.WriteStatus(cmd.Context(), cmd.OutOrStdout(), st, f.dir)
		},
	}
}

func newLabScenario(lf *logFlags, f *labFlags) *cobra.Command {
	var results string
	c := &cobra.Command{
		Use:   "scenario NAME|all [--results FILE]",
		Short: "Build the lab and play a scenario on it with the real sdnoc daemon; exit 0 only if it passes",
		Long:  "Scenarios:\n" + scenarioList(),
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			var play []netlab.Scenario
			for _, sc := range netlab.Scenarios() {
				if args[0] == "all" || sc.Name == args[0] {
					play = append(play, sc)
				}
			}
			if len(play) == 0 {
				return fmt.Errorf("no scenario %q; the scenarios are:\n%s", args[0], scenarioList())
			}
			l, err := f.build(cmd.Context(), cmd, lf)
			if err != nil {
				return err
			}
			defer func() { _, _ = netlab.Down(context.WithoutCancel(cmd.Context()), f.prefix, "") }()
			out := cmd.OutOrStdout()
			var all []*netlab.Result
			failed := 0
			for _, sc := range play {
				fmt.Fprintf(out, "== %s: %s\n", sc.Name, sc.About)
				res := netlab.Play(cmd.Context(), l, sc)
				all = append(all, res)
				for _, fig := range res.Figures {
					fmt.Fprintf(out, "   %-55s %v\n", fig.Name, fig.Value)
				}
				if res.Passed {
					fmt.Fprintf(out, "   PASS in %v\n", res.Took.Round(time.Second))
				} else {
					failed++
					fmt.Fprintf(out, "   FAIL in %v: %s\n", res.Took.Round(time.Second), res.Failure)
				}
			}
			if results != "" {
				if err := os.WriteFile(results, []byte(netlab.ResultsTable(all)), 0o644); err != nil {
					return err
				}
			}
			if failed > 0 {
				return fmt.Errorf("%d of %d scenarios %w", failed, len(play), errFailed)
			}
			return nil
		},
	}
	c.Flags().StringVar(&f.topology, "topology", "", "a lab topology (default: the shipped topologies/examples/lab.yaml)")
	c.Flags().StringVar(&results, "results", "", "write the results table (Markdown) to this file, e.g. lab/RESULTS.md")
	return c
}

func scenarioList() string {
	var b strings.Builder
	for _, sc := range netlab.Scenarios() {
		fmt.Fprintf(&b, "  %-19s %s\n", sc.Name, sc.About)
	}
	return b.String()
}

func newLabTraffic(f *labFlags) *cobra.Command {
	return &cobra.Command{
		Use:   "traffic ADDR RATE",
		Short: "Send UDP at RATE (e.g. 8M) from the lab's internet to ADDR until interrupted, to watch it move",
		Long: `traffic sends UDP (port 9) from the internet namespace of a lab that is up
to ADDR, e.g. 203.0.113.1 in pop1's range, at RATE bit/s (k, M, G
suffixes), until interrupted. It needs no server, so it keeps flowing when
a playbook or sdnoc moves the range: watch the LOAD column of sdnoc status.`,
		Args: cobra.ExactArgs(2),
		RunE: func(cmd *cobra.Command, args []string) error {
			if os.Geteuid() != 0 {
				return errors.New("the lab needs root: run it with sudo")
			}
			dst, err := netip.ParseAddr(args[0])
			if err != nil {
				return fmt.Errorf("ADDR %q: write an IP address, e.g. 203.0.113.1", args[0])
			}
			bps, err := topologies.ParseRate(args[1])
			if err != nil || bps == 0 {
				return fmt.Errorf("RATE %q: write a rate such as 8M or 500k", args[1])
			}
			if err := netlab.Blast(cmd.Context(), f.prefix+"internet", dst, bps); err != nil {
				return err
			}
			fmt.Fprintf(cmd.OutOrStdout(), "sending %s bit/s to %s from %sinternet; ^C stops\n", args[1], dst, f.prefix)
			<-cmd.Context().Done()
			return nil
		},
	}
}
