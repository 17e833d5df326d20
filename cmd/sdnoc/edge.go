package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/spf13/cobra"

	"github.com/sdnoc/sdnoc/edge"
	"github.com/sdnoc/sdnoc/edge/sites"
	"github.com/sdnoc/sdnoc/edge/snapper"
)

// edgeFlags are what `edge serve` and `edge run` share.
type edgeFlags struct {
	sites, state             string
	listen, listenTLS, admin string
	accessLog                bool
	drainDeadline            time.Duration
	engine                   string
}

func (f *edgeFlags) add(c *cobra.Command) {
	def := edge.DefaultConfig()
	c.Flags().StringVar(&f.sites, "sites", "sites", "directory of site files (one YAML file per site)")
	c.Flags().StringVar(&f.state, "state", "edge-state", "directory where every accepted version of every site file is kept")
	c.Flags().StringVar(&f.listen, "listen", def.Listen, "plain HTTP address; empty for none")
	c.Flags().StringVar(&f.listenTLS, "listen-tls", "", "HTTPS address (HTTP/2 and HTTP/1.1, certificates from the sites); empty for none")
	c.Flags().StringVar(&f.admin, "admin", def.Admin, "admin address: /healthz, /metrics, /drain, /undrain, /sites, /inspection")
	c.Flags().BoolVar(&f.accessLog, "access-log", true, "log one line per request (for sites with access_log on) to standard output")
	c.Flags().DurationVar(&f.drainDeadline, "drain-deadline", def.DrainDeadline, "how long a drain (and a stop) lets requests in flight finish")
	c.Flags().StringVar(&f.engine, "engine", def.Engine, "plain HTTP/1.1 engine: loop (event loops, one a core; Linux) or goroutines (one a connection)")
}

// args renders the flags back for the supervised child.
func (f *edgeFlags) args() []string {
	return []string{"--sites", f.sites, "--state", f.state, "--listen", f.listen, "--listen-tls", f.listenTLS,
		"--admin", f.admin, fmt.Sprintf("--access-log=%v", f.accessLog), "--drain-deadline", f.drainDeadline.String(), "--engine", f.engine}
}

func newEdge(lf *logFlags) *cobra.Command {
	c := &cobra.Command{
		Use:   "edge",
		Short: "The edge proxy: serve sites from local files, drain for PoP shifts, self-heal bad configuration",
	}
	c.AddCommand(newEdgeServe(lf), newEdgeRun(lf), newEdgeCheck(), newEdgeDrain(lf, true), newEdgeDrain(lf, false), newEdgeStatus())
	return c
}

func newEdgeServe(lf *logFlags) *cobra.Command {
	f := &edgeFlags{}
	var asOf string
	c := &cobra.Command{
		Use:   "serve",
		Short: "Run the edge proxy on the site files (use `edge run` to run it under the snapper)",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			log, err := stderrLogger(cmd, lf)
			if err != nil {
				return err
			}
			var at time.Time
			if asOf != "" {
				if at, err = time.Parse(time.RFC3339Nano, asOf); err != nil {
					return fmt.Errorf("--as-of %q: write an RFC 3339 time, e.g. 2026-11-24T10:00:00Z", asOf)
				}
			}
			return serveEdge(cmd.Context(), f, at, log, cmd)
		},
	}
	f.add(c)
	c.Flags().StringVar(&asOf, "as-of", "", "serve the site files as they were at this time (RFC 3339), from the kept versions, and do not watch the directory")
	return c
}

func serveEdge(ctx context.Context, f *edgeFlags, asOf time.Time, log *slog.Logger, cmd *cobra.Command) error {
	reg := prometheus.NewRegistry()
	reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	cfg := edge.DefaultConfig()
	cfg.Listen, cfg.ListenTLS, cfg.Admin, cfg.DrainDeadline, cfg.Engine = f.listen, f.listenTLS, f.admin, f.drainDeadline, f.engine
	deps := edge.Deps{Logger: log, Registerer: reg, Gatherer: reg}
	if f.accessLog {
		deps.AccessLog = slog.New(slog.NewJSONHandler(cmd.OutOrStdout(), nil))
	}
	var store *sites.Store
	deps.Sites = func() *sites.Set { return store.Current() }
	proxy, err := edge.New(cfg, deps)
	if err != nil {
		return err
	}
	scfg := sites.DefaultConfig()
	scfg.Dir, scfg.StateDir, scfg.AsOf = f.sites, f.state, asOf
	store, err = sites.New(scfg, sites.Deps{Logger: log, Registerer: reg, OnChange: proxy.Apply})
	if err != nil {
		return err
	}
	if err := store.Start(ctx); err != nil {
		return err
	}
	defer store.Stop(context.WithoutCancel(ctx))
	if err := proxy.Start(ctx); err != nil {
		return err
	}
	if !asOf.IsZero() {
		log.Warn("serving the site files as they were at an earlier time; the directory is not watched", "as_of", asOf)
	}
	<-ctx.Done()
	log.Info("stopping: draining first", "deadline", f.drainDeadline)
	stopCtx, cancel := context.WithTimeout(context.WithoutCancel(ctx), f.drainDeadline+5*time.Second)
	defer cancel()
	return proxy.Stop(stopCtx)
}

func newEdgeRun(lf *logFlags) *cobra.Command {
	f := &edgeFlags{}
	scfg := snapper.DefaultConfig()
	c := &cobra.Command{
		Use:   "run",
		Short: "Run `edge serve` under the snapper: crash loops roll the site files back 10 minutes, 1 hour, 24 hours",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			log, err := stderrLogger(cmd, lf)
			if err != nil {
				return err
			}
			self, err := os.Executable()
			if err != nil {
				return fmt.Errorf("finding this binary: %w", err)
			}
			base := append([]string{"edge", "serve", "--log-level", lf.level, "--log-format", lf.format}, f.args()...)
			sup, err := snapper.New(scfg, snapper.Deps{
				Logger: log,
				Start: func(ctx context.Context, asOf time.Time) (snapper.Process, error) {
					args := base
					if !asOf.IsZero() {
						args = append(append([]string(nil), base...), "--as-of", asOf.UTC().Format(time.RFC3339Nano))
					}
					ch := exec.Command(self, args...)
					ch.Stdout, ch.Stderr = cmd.OutOrStdout(), cmd.ErrOrStderr()
					if err := ch.Start(); err != nil {
						return nil, fmt.Errorf("starting %s: %w", self, err)
					}
					return execProcess{ch}, nil
				},
				Describe: func(asOf time.Time) (string, error) { return describeVersions(f.state, f.sites, asOf) },
				Changed:  func(since time.Time) bool { return changedSince(f.sites, since) },
			})
			if err != nil {
				return err
			}
			return sup.Run(cmd.Context())
		},
	}
	f.add(c)
	c.Flags().IntVar(&scfg.Crashes, "crashes", scfg.Crashes, "crashes within --within that step the configuration back")
	c.Flags().DurationVar(&scfg.Within, "within", scfg.Within, "window in which --crashes crashes count as a crash loop")
	return c
}

// execProcess is a child started with os/exec.
type execProcess struct{ c *exec.Cmd }

func (p execProcess) Wait() error              { return p.c.Wait() }
func (p execProcess) Signal(s os.Signal) error { return p.c.Process.Signal(s) }
func (p execProcess) Pid() int                 { return p.c.Process.Pid }

// describeVersions names the site versions the configuration as of t is
// made of.
func describeVersions(state, dir string, t time.Time) (string, error) {
	_, versions, err := sites.AsOf(state, dir, t)
	if err != nil {
		return "", err
	}
	if len(versions) == 0 {
		return "no site", nil
	}
	parts := make([]string, 0, len(versions))
	for _, v := range versions {
		parts = append(parts, fmt.Sprintf("%s@%s (%.12s)", v.Site, v.Time.UTC().Format(time.RFC3339), v.SHA256))
	}
	return strings.Join(parts, " "), nil
}

// changedSince reports whether a site file was written after t.
func changedSince(dir string, t time.Time) bool {
	changed := false
	filepath.WalkDir(dir, func(path string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return nil
		}
		if info, err := d.Info(); err == nil && info.ModTime().After(t) {
			changed = true
			return filepath.SkipAll
		}
		return nil
	})
	return changed
}

func newEdgeCheck() *cobra.Command {
	return &cobra.Command{
		Use:   "check FILE...",
		Short: "Validate site files as the proxy would, without serving them",
		Args:  cobra.MinimumNArgs(1),
		RunE: func(cmd *cobra.Command, files []string) error {
			var errs []error
			for _, file := range files {
				data, err := os.ReadFile(file)
				if err != nil {
					errs = append(errs, err)
					continue
				}
				s, err := sites.Parse(file, data)
				if err != nil {
					errs = append(errs, err)
					continue
				}
				fmt.Fprintf(cmd.OutOrStdout(), "%s: site %s, %d hosts, %d origins, %d rules: ok\n", file, s.Name, len(s.Hosts), len(s.Origins), len(s.Rules))
			}
			if len(errs) > 0 {
				for _, err := range errs {
					fmt.Fprintln(cmd.ErrOrStderr(), err)
				}
				return errFailed
			}
			return nil
		},
	}
}

// newEdgeDrain makes `edge drain` (or `edge undrain`): the admin call a
// PoP shift makes, with progress until the proxy is empty.
func newEdgeDrain(lf *logFlags, drain bool) *cobra.Command {
	var admin string
	var deadline time.Duration
	var wait bool
	use, short := "undrain", "Take new connections again"
	if drain {
		use, short = "drain", "Stop taking new connections, let requests in flight finish, report progress"
	}
	c := &cobra.Command{
		Use:   use,
		Short: short,
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			client := &http.Client{Timeout: 10 * time.Second}
			url := "http://" + admin + "/" + use
			if drain {
				url += "?deadline=" + deadline.String()
			}
			st, err := adminCall(cmd.Context(), client, http.MethodPost, url)
			if err != nil {
				return err
			}
			printDrain(cmd, st)
			for drain && wait && !st.Done {
				select {
				case <-cmd.Context().Done():
					return cmd.Context().Err()
				case <-time.After(500 * time.Millisecond):
				}
				if st, err = adminCall(cmd.Context(), client, http.MethodGet, "http://"+admin+"/drain"); err != nil {
					return err
				}
				printDrain(cmd, st)
			}
			return nil
		},
	}
	c.Flags().StringVar(&admin, "admin", edge.DefaultConfig().Admin, "the proxy's admin address")
	if drain {
		c.Flags().DurationVar(&deadline, "deadline", edge.DefaultConfig().DrainDeadline, "how long requests in flight may take")
		c.Flags().BoolVar(&wait, "wait", true, "report progress until the proxy is empty")
	}
	return c
}

func newEdgeStatus() *cobra.Command {
	var admin string
	var asJSON bool
	c := &cobra.Command{
		Use:   "status",
		Short: "Show whether a proxy is draining, and what it still serves",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			st, err := adminCall(cmd.Context(), &http.Client{Timeout: 10 * time.Second}, http.MethodGet, "http://"+admin+"/drain")
			if err != nil {
				return err
			}
			if asJSON {
				return json.NewEncoder(cmd.OutOrStdout()).Encode(st)
			}
			printDrain(cmd, st)
			return nil
		},
	}
	c.Flags().StringVar(&admin, "admin", edge.DefaultConfig().Admin, "the proxy's admin address")
	c.Flags().BoolVar(&asJSON, "json", false, "print the proxy's answer as JSON")
	return c
}

func adminCall(ctx context.Context, client *http.Client, method, url string) (edge.DrainStatus, error) {
	var st edge.DrainStatus
	req, err := http.NewRequestWithContext(ctx, method, url, nil)
	if err != nil {
		return st, err
	}
	resp, err := client.Do(req)
	if err != nil {
		if errors.Is(err, syscall.ECONNREFUSED) {
			return st, fmt.Errorf("%s: no edge proxy answers there (is --admin right?): %w", url, err)
		}
		return st, fmt.Errorf("%s: %w", url, err)
	}
	defer resp.Body.Close()
	if resp.StatusCode >= 300 {
		var e struct{ Error string }
		json.NewDecoder(resp.Body).Decode(&e)
		return st, fmt.Errorf("%s: %s: %s", url, resp.Status, e.Error)
	}
	if err := json.NewDecoder(resp.Body).Decode(&st); err != nil {
		return st, fmt.Errorf("%s: reading the answer: %w", url, err)
	}
	return st, nil
}

func printDrain(cmd *cobra.Command, st edge.DrainStatus) {
	switch {
	case !st.Draining:
		fmt.Fprintln(cmd.OutOrStdout(), "serving: taking new connections")
	case st.Done:
		fmt.Fprintf(cmd.OutOrStdout(), "drained: nothing in flight (since %s)\n", st.Since.Format(time.RFC3339))
	default:
		fmt.Fprintf(cmd.OutOrStdout(), "draining: %d requests in flight on %d connections, deadline %s\n",
			st.InFlight, st.Connections, st.Deadline.Format(time.RFC3339))
	}
}
