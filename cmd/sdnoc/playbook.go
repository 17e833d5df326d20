package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/netip"
	"os"
	"os/user"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/sdnoc/sdnoc/controller"
	"github.com/sdnoc/sdnoc/controller/api"
	"github.com/sdnoc/sdnoc/lab/netlab"
	"github.com/sdnoc/sdnoc/playbooks"
)

func newPlaybook(lf *logFlags) *cobra.Command {
	var df daemonFlags
	c := &cobra.Command{
		Use:   "playbook",
		Short: "Move traffic by hand: plan, apply, list and release playbooks (drain-pop, disable-isp, shift-prefix, restore)",
		Long: `A playbook is a YAML file (see playbooks/examples): what to move, why, who,
and for how long. plan asks the running daemon what it would change on each
BGP session and which edge proxies it would drain, and whether it would
strand a prefix or overload the PoPs that take the traffic; apply does it;
while it holds, automation leaves what it covers alone; when it expires or
is released, automation takes over again. Every apply and release is in the
daemon's journal with its author, reason and client.`,
	}
	df.add(c)
	var asJSON bool
	c.PersistentFlags().BoolVar(&asJSON, "json", false, "print the daemon's answer as JSON")
	load := func(file string) (*playbooks.Playbook, error) {
		b, err := os.ReadFile(file)
		if err != nil {
			return nil, err
		}
		return playbooks.Parse(file, b)
	}
	show := func(cmd *cobra.Command, p controller.Plan, applied bool, err error) error {
		var ae *api.APIError
		refused := errors.As(err, &ae) && ae.Plan != nil
		if err != nil && !refused {
			return err
		}
		if asJSON {
			enc := json.NewEncoder(cmd.OutOrStdout())
			enc.SetIndent("", "  ")
			if jerr := enc.Encode(p); jerr != nil {
				return jerr
			}
		} else {
			writePlan(cmd.OutOrStdout(), p, applied && err == nil)
		}
		if err != nil || len(p.Refusals) > 0 {
			fmt.Fprintln(cmd.ErrOrStderr(), "refused: nothing was applied")
			return errFailed
		}
		return nil
	}
	// send is plan or apply: read FILE, ask the daemon, show the plan.
	send := func(use, short string, apply bool) *cobra.Command {
		return &cobra.Command{
			Use:   use + " FILE",
			Short: short,
			Args:  cobra.ExactArgs(1),
			RunE: func(cmd *cobra.Command, args []string) error {
				pb, err := load(args[0])
				if err != nil {
					return err
				}
				cl, err := df.client()
				if err != nil {
					return err
				}
				ask := cl.Plan
				if apply {
					ask = cl.Apply
				}
				p, err := ask(cmd.Context(), pb)
				return show(cmd, p, apply, err)
			},
		}
	}
	c.AddCommand(send("plan", "Say what FILE would change, session by session, and refuse what it must not do; applies nothing", false),
		send("apply", "Apply FILE: plan it and, unless refused, make it so until it expires or is released", true),
		&cobra.Command{
			Use:   "list",
			Short: "List the active playbooks",
			Args:  cobra.NoArgs,
			RunE: func(cmd *cobra.Command, _ []string) error {
				cl, err := df.client()
				if err != nil {
					return err
				}
				ms, err := cl.Overrides(cmd.Context())
				if err != nil {
					return err
				}
				if asJSON {
					enc := json.NewEncoder(cmd.OutOrStdout())
					enc.SetIndent("", "  ")
					return enc.Encode(ms)
				}
				if len(ms) == 0 {
					fmt.Fprintln(cmd.OutOrStdout(), "no playbook active")
				}
				for _, m := range ms {
					writeManual(cmd.OutOrStdout(), time.Now(), m)
				}
				return nil
			},
		}, newRelease(&df), newRehearse(lf, load))
	return c
}

func newRehearse(lf *logFlags, load func(string) (*playbooks.Playbook, error)) *cobra.Command {
	f := &labFlags{}
	c := &cobra.Command{
		Use:   "rehearse FILE",
		Short: "Rehearse FILE on the lab first (root): build it, plan, apply, check where the traffic goes, release, report what moved",
		Long: `rehearse builds the lab (as sdnoc lab scenario does), runs sdnoc's daemon on
it, sends traffic to the prefixes the playbook withdraws, applies the
playbook through the daemon's API, and reports how long the traffic took
to leave the links it withdraws from (interface counters on the PoP
borders), whether the edge proxies it drains drained, then releases it and
reports the traffic coming back. The lab is removed at the end. The
playbook must name the lab topology's PoPs and ISPs.`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			pb, err := load(args[0])
			if err != nil {
				return err
			}
			l, err := f.build(cmd.Context(), cmd, lf)
			if err != nil {
				return err
			}
			defer func() { _, _ = netlab.Down(context.WithoutCancel(cmd.Context()), f.prefix, "") }()
			sc := netlab.Rehearse(pb)
			out := cmd.OutOrStdout()
			fmt.Fprintf(out, "== %s\n", sc.About)
			res := netlab.Play(cmd.Context(), l, sc)
			for _, ln := range res.Lines {
				fmt.Fprintf(out, "   %s\n", ln)
			}
			for _, fig := range res.Figures {
				fmt.Fprintf(out, "   %-45s %v\n", fig.Name, fig.Value)
			}
			if !res.Passed {
				fmt.Fprintf(out, "   FAIL in %v: %s\n", res.Took.Round(time.Second), res.Failure)
				return errFailed
			}
			fmt.Fprintf(out, "   PASS in %v\n", res.Took.Round(time.Second))
			return nil
		},
	}
	c.Flags().StringVar(&f.dir, "dir", "/run/sdnoc-lab", "where the lab keeps its routers' files, logs and state")
	c.Flags().StringVar(&f.prefix, "prefix", "sdnoc-lab-", "the prefix of the lab's namespace names")
	c.Flags().StringVar(&f.topology, "topology", "", "a lab topology (default: the shipped topologies/examples/lab.yaml)")
	return c
}

func newRelease(df *daemonFlags) *cobra.Command {
	var author, reason string
	c := &cobra.Command{
		Use:   "release NAME --reason WHY",
		Short: "End an active playbook now; automation takes over what it covered",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			if strings.TrimSpace(reason) == "" {
				return errors.New("--reason is required: the journal keeps why")
			}
			if author == "" {
				if u, err := user.Current(); err == nil {
					author = u.Username
				}
			}
			cl, err := df.client()
			if err != nil {
				return err
			}
			if err := cl.Release(cmd.Context(), args[0], api.Release{Author: author, Reason: reason}); err != nil {
				return err
			}
			fmt.Fprintf(cmd.OutOrStdout(), "released %s\n", args[0])
			return nil
		},
	}
	c.Flags().StringVar(&author, "author", "", "who releases it (default: your login)")
	c.Flags().StringVar(&reason, "reason", "", "why, for the journal")
	return c
}

// writePlan prints a plan for people.
func writePlan(w io.Writer, p controller.Plan, applied bool) {
	verb := "would change"
	if applied {
		verb = "applied; it changes"
	}
	fmt.Fprintf(w, "playbook %s (%s) %s:\n", p.Playbook, p.Kind, verb)
	if len(p.Release) > 0 {
		fmt.Fprintf(w, "  releases: %s\n", strings.Join(p.Release, ", "))
	}
	if len(p.Sessions) == 0 {
		fmt.Fprintln(w, "  no BGP announcement")
	}
	for _, s := range p.Sessions {
		fmt.Fprintf(w, "  %s (neighbor %s, AS%d):\n", s.Link, s.Neighbor, s.PeerASN)
		for _, x := range []struct {
			verb string
			ps   []netip.Prefix
		}{{"withdraw", s.Withdraw}, {"announce", s.Announce}} {
			if len(x.ps) > 0 {
				fmt.Fprintf(w, "    %s %d: %s\n", x.verb, len(x.ps), prefixList(x.ps))
			}
		}
	}
	if p.Prepend > 0 {
		fmt.Fprintf(w, "  first announces with %d extra copies of the AS on %s, for %v: the traffic that can come in elsewhere leaves before the withdrawals\n",
			p.Prepend, strings.Join(p.PrependLinks, ", "), p.PrependFor)
	}
	if len(p.Proxies) > 0 {
		what := "drains"
		if p.Kind == playbooks.Restore {
			what = "undrains"
		}
		fmt.Fprintf(w, "  %s edge proxies: %s\n", what, strings.Join(p.Proxies, ", "))
	}
	for _, l := range p.Load {
		fmt.Fprintf(w, "  load on %s: %s measured + %s moving = %.0f%% of %s (target %.0f%%)\n", l.Link, mbps(l.MeasuredBps), mbps(l.MovedBps),
			l.ProjectedPc, mbps(l.CapacityBps), l.LimitPct)
	}
	if !p.Expires.IsZero() {
		fmt.Fprintf(w, "  holds until %s, then automation takes over\n", p.Expires.UTC().Format(time.RFC3339))
	}
	for _, x := range p.Warnings {
		fmt.Fprintf(w, "  warning: %s\n", x)
	}
	for _, x := range p.Refusals {
		fmt.Fprintf(w, "  REFUSED: %s\n", x)
	}
}

func prefixList(ps []netip.Prefix) string {
	var b strings.Builder
	for i, p := range ps {
		if i == 6 {
			fmt.Fprintf(&b, " and %d more", len(ps)-i)
			break
		}
		if i > 0 {
			b.WriteString(" ")
		}
		b.WriteString(p.String())
	}
	return b.String()
}

func mbps(v float64) string { return fmt.Sprintf("%.1f Mbit/s", v/1e6) }
