package main

import (
	"errors"
	"fmt"
	"io"
	"net/netip"
	"os"
	"os/user"
	"strings"

	"github.com/spf13/cobra"

	"github.com/sdnoc/sdnoc/actuators/cli"
	"github.com/sdnoc/sdnoc/controller/api"
)

func newRouter() *cobra.Command {
	var df daemonFlags
	c := &cobra.Command{
		Use:   "router",
		Short: "Change a router's configuration over SSH, through the daemon: diffed, checked, rolled back on failure, journaled",
		Long: `router asks the daemon (sdnoc daemon --routers FILE) to change a border
router's configuration over SSH, where the router, not sdnoc's speaker,
holds the ISP session. The daemon captures the running configuration,
applies, captures again and shows the diff; if a command fails or the
configuration does not hold what the change promised, it undoes the diff
and checks the router is back as it was. Every command and its answer is
in the daemon's journal with who asked and why.`,
	}
	df.add(c)
	var author, reason string
	c.PersistentFlags().StringVar(&author, "author", "", "who asks (default: your login)")
	c.PersistentFlags().StringVar(&reason, "reason", "", "why, for the journal (required for changes)")
	change := func(cmd *cobra.Command, name string, rc api.RouterChange) error {
		if strings.TrimSpace(reason) == "" {
			return errors.New("--reason is required: the journal keeps why")
		}
		rc.Author, rc.Reason = author, reason
		if rc.Author == "" {
			if u, err := user.Current(); err == nil {
				rc.Author = u.Username
			}
		}
		cl, err := df.client()
		if err != nil {
			return err
		}
		rr, err := cl.ChangeRouter(cmd.Context(), name, rc)
		writeRouterResult(cmd.OutOrStdout(), name, rr.Result)
		return err
	}
	var asn uint32
	var neighbor string
	var shut, enable bool
	nb := &cobra.Command{
		Use:   "neighbor NAME --asn N --neighbor ADDR --shutdown|--enable --reason WHY",
		Short: "Shut or enable a BGP neighbour on router NAME",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			addr, err := netip.ParseAddr(neighbor)
			if err != nil {
				return fmt.Errorf("--neighbor %q: write the neighbour's IP address", neighbor)
			}
			if shut == enable || asn == 0 {
				return errors.New("give --asn and one of --shutdown or --enable")
			}
			ch := cli.ShutNeighbor(args[0], asn, addr)
			if enable {
				ch = cli.EnableNeighbor(args[0], asn, addr)
			}
			return change(cmd, args[0], api.RouterChange{Commands: ch.Commands, Expect: ch.Expect, Absent: ch.Absent})
		},
	}
	nb.Flags().Uint32Var(&asn, "asn", 0, "the router's own AS number (its router bgp)")
	nb.Flags().StringVar(&neighbor, "neighbor", "", "the neighbour's address")
	nb.Flags().BoolVar(&shut, "shutdown", false, "shut the neighbour (the session goes down, its routes with it)")
	nb.Flags().BoolVar(&enable, "enable", false, "enable it again")

	var file string
	var expect, absent []string
	ch := &cobra.Command{
		Use:   "change NAME --commands FILE --reason WHY [--expect LINE]... [--absent LINE]...",
		Short: "Enter the commands of FILE in configuration mode on router NAME",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			b, err := os.ReadFile(file)
			if err != nil {
				return err
			}
			var cmds []string
			for l := range strings.Lines(string(b)) {
				if l = strings.TrimSpace(l); l != "" && !strings.HasPrefix(l, "!") {
					cmds = append(cmds, l)
				}
			}
			if len(cmds) == 0 {
				return fmt.Errorf("%s: no command in it", file)
			}
			return change(cmd, args[0], api.RouterChange{Commands: cmds, Expect: expect, Absent: absent})
		},
	}
	ch.Flags().StringVar(&file, "commands", "", "file of configuration commands, one a line ('!' lines are comments)")
	ch.Flags().StringArrayVar(&expect, "expect", nil, "a line the configuration must hold after (else roll back)")
	ch.Flags().StringArrayVar(&absent, "absent", nil, "a line it must not hold after (else roll back)")

	run := &cobra.Command{
		Use:   "running NAME",
		Short: "Print router NAME's running configuration, read over SSH",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			cl, err := df.client()
			if err != nil {
				return err
			}
			text, err := cl.RouterRunning(cmd.Context(), args[0])
			if err != nil {
				return err
			}
			fmt.Fprint(cmd.OutOrStdout(), text)
			return nil
		},
	}
	c.AddCommand(nb, ch, run)
	return c
}

func writeRouterResult(w io.Writer, name string, r cli.Result) {
	if len(r.Steps) == 0 {
		return
	}
	fmt.Fprintf(w, "router %s: %d commands sent\n", name, len(r.Steps))
	if r.Diff == "" {
		fmt.Fprintln(w, "no configuration change")
	} else {
		fmt.Fprintf(w, "diff (before → after the change):\n%s", r.Diff)
	}
	if r.RolledBack {
		fmt.Fprintf(w, "ROLLED BACK with: %s\n", strings.Join(r.Undo, "; "))
		if r.Residual != "" {
			fmt.Fprintf(w, "STILL DIFFERENT from before:\n%s", r.Residual)
		} else {
			fmt.Fprintln(w, "the router is as it was before")
		}
	}
}
