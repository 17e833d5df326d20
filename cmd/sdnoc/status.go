package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"

	"github.com/sdnoc/sdnoc/controller/api"
	"github.com/sdnoc/sdnoc/decisions"
	"github.com/sdnoc/sdnoc/journal"
)

// daemonFlags say how a client command reaches the daemon's API.
type daemonFlags struct {
	target    string
	tokenFile string
}

func (f *daemonFlags) add(c *cobra.Command) {
	def := os.Getenv("SDNOC_DAEMON")
	if def == "" {
		def = "sdnoc.sock"
	}
	c.PersistentFlags().StringVar(&f.target, "daemon", def, "the daemon's API: its --api socket, or http://host:port for --api-tcp (env SDNOC_DAEMON)")
	c.PersistentFlags().StringVar(&f.tokenFile, "token-file", "", "file holding the bearer token, for an http:// daemon")
}

func (f *daemonFlags) client() (*api.Client, error) {
	token := ""
	if f.tokenFile != "" {
		t, err := api.ReadToken(f.tokenFile)
		if err != nil {
			return nil, err
		}
		token = t
	}
	return api.NewClient(f.target, token)
}

func newStatus() *cobra.Command {
	var (
		df       daemonFlags
		asJSON   bool
		watch    bool
		interval time.Duration
	)
	c := &cobra.Command{
		Use:   "status",
		Short: "Show the network as sdnoc sees it: PoPs × links, state, loss, RTT, load, prefixes, playbooks",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			cl, err := df.client()
			if err != nil {
				return err
			}
			out := cmd.OutOrStdout()
			show := func(ctx context.Context) error {
				st, err := cl.Status(ctx)
				if err != nil {
					return err
				}
				if asJSON {
					enc := json.NewEncoder(out)
					enc.SetIndent("", "  ")
					return enc.Encode(st)
				}
				if watch {
					fmt.Fprint(out, "\x1b[H\x1b[2J") // home, clear: one screen, redrawn
				}
				writeStatus(out, st)
				return nil
			}
			if !watch {
				return show(cmd.Context())
			}
			for {
				if err := show(cmd.Context()); err != nil {
					fmt.Fprintf(out, "%v\n", err) // keep watching: the daemon may be restarting
				}
				select {
				case <-cmd.Context().Done():
					return nil
				case <-time.After(interval):
				}
			}
		},
	}
	df.add(c)
	c.Flags().BoolVar(&asJSON, "json", false, "print the daemon's answer as JSON")
	c.Flags().BoolVar(&watch, "watch", false, "redraw until interrupted")
	c.Flags().DurationVar(&interval, "interval", 2*time.Second, "how often --watch redraws")
	return c
}

// writeStatus prints one screen: a line per link, grouped by PoP, then
// the active playbooks.
func writeStatus(w io.Writer, st api.Status) {
	fmt.Fprintf(w, "sdnoc %s at %s: %s\n\n", st.Topology, st.At.UTC().Format("2006-01-02 15:04:05 MST"), st.Health)
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "POP\tLINK\tSTATE\tLOSS\tRTT\tJITTER\tLOAD\tPREFIXES\tBGP\tNOTE")
	for _, l := range st.Links {
		_, name, _ := strings.Cut(l.Link, "/")
		load := "-"
		if l.Utilisation >= 0 {
			load = fmt.Sprintf("%.0f%%", l.Utilisation)
		}
		rtt, jit, loss := "-", "-", "-"
		if l.Window.Resolved > 0 {
			loss = fmt.Sprintf("%.1f%%", l.Window.LossPct)
			rtt, jit = showDur(l.Window.RTTAvg), showDur(l.Window.Jitter)
		}
		pub := fmt.Sprintf("%d/%d", l.Published, l.Configured)
		session := "?"
		if l.SessionSeen {
			session = map[bool]string{true: "up", false: "DOWN"}[l.SessionUp]
		}
		var notes []string
		if l.Withdrawn {
			notes = append(notes, "withdrawn")
		}
		if l.Congested {
			notes = append(notes, fmt.Sprintf("congested, %d moved", l.Moved))
		}
		for _, id := range l.Overrides {
			notes = append(notes, "playbook "+id+until(st, id))
		}
		state := l.State.String()
		if l.State != decisions.Healthy {
			state = strings.ToUpper(state)
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n", l.PoP, name, state, loss, rtt, jit, load, pub, session, strings.Join(notes, "; "))
	}
	tw.Flush()
	if len(st.Alerts) > 0 {
		fmt.Fprintln(w, "\nalerts:")
		for _, a := range st.Alerts {
			fmt.Fprintf(w, "  %-10s %s\n", strings.ToUpper(a.Kind), a.Text)
		}
	}
	if len(st.Overrides) == 0 {
		fmt.Fprintln(w, "\nno playbook active: automation has every link")
		return
	}
	fmt.Fprintln(w, "\nplaybooks (automation leaves alone what they cover):")
	for _, m := range st.Overrides {
		writeManual(w, st.At, m)
	}
}

func writeManual(w io.Writer, now time.Time, m journal.Manual) {
	if now.Before(m.Override.From) {
		fmt.Fprintf(w, "  %s  prepending %d extra copies of the AS on %s; withdraws at %s (in %v)\n", m.Override.ID, m.Prepend,
			strings.Join(m.PrependLinks, ", "), m.Override.From.UTC().Format("15:04:05 MST"), m.Override.From.Sub(now).Round(time.Second))
	}
	left := m.Override.Expires.Sub(now).Round(time.Second)
	fmt.Fprintf(w, "  %s  %s by %s (%s), applied %s, expires %s (%v left): %s\n", m.Override.ID, m.Audit.Kind, m.Audit.Author, m.Audit.Via,
		m.Applied.UTC().Format("15:04:05"), m.Override.Expires.UTC().Format("15:04:05 MST"), left, m.Audit.Reason)
}

func until(st api.Status, id string) string {
	for _, m := range st.Overrides {
		if m.Override.ID == id {
			return fmt.Sprintf(" until %s", m.Override.Expires.UTC().Format("15:04"))
		}
	}
	return ""
}

func showDur(d time.Duration) string {
	switch {
	case d >= time.Second:
		return fmt.Sprintf("%.2fs", d.Seconds())
	case d >= time.Millisecond:
		return fmt.Sprintf("%.1fms", float64(d)/float64(time.Millisecond))
	}
	return fmt.Sprintf("%dµs", d.Microseconds())
}
