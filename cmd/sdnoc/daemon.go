package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/netip"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	"github.com/spf13/cobra"

	"github.com/sdnoc/sdnoc/actuators/cli"
	edgeact "github.com/sdnoc/sdnoc/actuators/edge"
	"github.com/sdnoc/sdnoc/controller"
	"github.com/sdnoc/sdnoc/controller/api"
	"github.com/sdnoc/sdnoc/topologies"
)

func newDaemon(lf *logFlags) *cobra.Command {
	var (
		cfgPath, journalPath, listen string
		apiSock, apiTCP, apiToken    string
		routersFile                  string
		dryRun, withdrawOnExit       bool
		maxOverride, drainDeadline   time.Duration
	)
	c := &cobra.Command{
		Use:   "daemon --config FILE",
		Short: "Run the loop on a real topology: probe every ISP link, withdraw and restore prefixes over BGP",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			log, err := stderrLogger(cmd, lf)
			if err != nil {
				return err
			}
			if cfgPath == "" {
				return errors.New("--config FILE is required (see topologies/examples/two-pops.yaml)")
			}
			topo, err := topologies.Load(cfgPath)
			if err != nil {
				return err
			}
			reg := prometheus.NewRegistry()
			reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
			switch apiSock {
			case "":
				apiSock = filepath.Join(filepath.Dir(journalPath), "sdnoc.sock")
			case "none":
				apiSock = ""
			}
			if apiTCP != "" && apiToken == "" {
				return errors.New("--api-tcp needs --api-token-file: the API moves traffic, and TCP is open to more than this machine's users")
			}
			ec := edgeact.DefaultConfig()
			ec.Deadline = drainDeadline
			drainer, err := edgeact.New(ec, edgeact.Deps{Log: log.With("component", "edge")})
			if err != nil {
				return err
			}
			cc := controller.DefaultConfig()
			cc.Topology, cc.JournalPath, cc.DryRun, cc.MaxOverride = topo, journalPath, dryRun, maxOverride
			if routersFile != "" {
				b, err := os.ReadFile(routersFile)
				if err != nil {
					return fmt.Errorf("--routers: %w", err)
				}
				if cc.Routers, err = cli.ParseFile(routersFile, b); err != nil {
					return err
				}
			}
			ctl, err := controller.New(cc, controller.Deps{Log: log, Reg: reg, Proxies: drainer})
			if err != nil {
				return err
			}
			apiSrv, err := api.New(api.Config{TokenFile: apiToken, Topology: topo.Name}, api.Deps{Log: log.With("component", "api"), Controller: ctl})
			if err != nil {
				return err
			}
			ln, err := adminListen(cmd.Context(), listen)
			if err != nil {
				return fmt.Errorf("listen %s for /metrics and /healthz: %w", listen, err)
			}
			var apiLns []net.Listener
			closeAll := func() {
				ln.Close()
				for _, l := range apiLns {
					l.Close()
				}
			}
			if apiSock != "" {
				l, err := apiListen(cmd.Context(), apiSock)
				if err != nil {
					closeAll()
					return fmt.Errorf("--api %s: %w", apiSock, err)
				}
				apiLns = append(apiLns, l)
			}
			if apiTCP != "" {
				l, err := new(net.ListenConfig).Listen(cmd.Context(), "tcp", apiTCP)
				if err != nil {
					closeAll()
					return fmt.Errorf("--api-tcp %s: %w", apiTCP, err)
				}
				apiLns = append(apiLns, l)
			}
			if err := ctl.Start(cmd.Context()); err != nil {
				closeAll()
				return err
			}
			apiCtx, stopAPI := context.WithCancel(context.WithoutCancel(cmd.Context()))
			defer stopAPI()
			for _, l := range apiLns {
				go func() {
					if err := apiSrv.Serve(apiCtx, l); err != nil {
						log.Error("api server", "addr", l.Addr().String(), "err", err)
					}
				}()
			}
			srv := &http.Server{Handler: adminMux(reg, ctl), ReadHeaderTimeout: 5 * time.Second}
			go func() {
				if err := srv.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
					log.Error("admin server", "err", err)
				}
			}()
			log.Info("sdnoc daemon running", "topology", cfgPath, "pops", len(topo.PoPs), "prefixes", len(topo.Prefixes),
				"dry_run", dryRun, "journal", journalPath, "admin", ln.Addr().String(), "api", apiSock, "api_tcp", apiTCP)
			<-cmd.Context().Done()
			stopAPI()
			ctx, cancel := context.WithTimeout(context.WithoutCancel(cmd.Context()), 30*time.Second)
			defer cancel()
			if withdrawOnExit {
				log.Warn("shutting down: withdrawing every prefix from every ISP (--withdraw-on-exit)")
				return errors.Join(srv.Shutdown(ctx), ctl.WithdrawAll(ctx), ctl.Stop(ctx))
			}
			if dryRun {
				log.Info("shutting down (dry run: no BGP sessions to keep or close)")
				return errors.Join(srv.Shutdown(ctx), ctl.Stop(ctx))
			}
			// Exiting without closing the BGP sessions is deliberate: they
			// die with the process, without a NOTIFICATION, so the ISPs keep
			// the edge's routes for the graceful restart time while sdnoc
			// restarts (a clean BGP stop would make them drop the routes).
			log.Info("shutting down; BGP sessions end with the process, ISPs keep routes for the graceful restart time",
				"graceful_restart", topo.BGP.GracefulRestart)
			return errors.Join(srv.Shutdown(ctx), ctl.Halt(ctx))
		},
	}
	c.Flags().StringVar(&cfgPath, "config", "", "topology file (YAML); SDNOC_* environment variables override its scalar keys")
	c.Flags().StringVar(&journalPath, "journal", "sdnoc-journal.jsonl", "append-only journal of intents; read back at start")
	c.Flags().StringVar(&listen, "listen", "127.0.0.1:9470", "address for /metrics, /healthz and /status: host:port, or a Unix socket path (with a /)")
	c.Flags().StringVar(&apiSock, "api", "", "Unix socket for the API (status, playbooks), guarded by its file permissions (default: sdnoc.sock beside --journal; \"none\" serves none)")
	c.Flags().StringVar(&apiTCP, "api-tcp", "", "also serve the API on this host:port, to clients with the bearer token of --api-token-file")
	c.Flags().StringVar(&apiToken, "api-token-file", "", "file holding the API's bearer token for --api-tcp (mode 600)")
	c.Flags().StringVar(&routersFile, "routers", "", "routers sdnoc may configure over SSH (YAML; see actuators/cli/README.md)")
	c.Flags().DurationVar(&maxOverride, "max-override", controller.DefaultConfig().MaxOverride, "the longest a playbook may hold (at most 24h)")
	c.Flags().DurationVar(&drainDeadline, "drain-deadline", 0, "how long a drained edge proxy lets requests in flight finish (0: the proxy's own default)")
	c.Flags().BoolVar(&dryRun, "dry-run", false, "plan and explain, touch nothing: no BGP sessions, no journal writes")
	c.Flags().BoolVar(&withdrawOnExit, "withdraw-on-exit", false,
		"on SIGTERM withdraw every prefix from every ISP before stopping (default: leave them to graceful restart)")
	return c
}

func adminMux(reg *prometheus.Registry, ctl *controller.Controller) *http.ServeMux {
	mux := http.NewServeMux()
	mux.Handle("GET /metrics", promhttp.HandlerFor(reg, promhttp.HandlerOpts{Registry: reg}))
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, _ *http.Request) {
		if err := ctl.Health(); err != nil {
			http.Error(w, err.Error(), http.StatusServiceUnavailable)
			return
		}
		fmt.Fprintln(w, "ok")
	})
	mux.HandleFunc("GET /status", func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		enc := json.NewEncoder(w)
		enc.SetIndent("", "  ")
		_ = enc.Encode(ctl.Status())
	})
	// The busiest edge prefixes arriving through a link, from flows:
	// /flows/top?link=ams/transit1&n=10.
	mux.HandleFunc("GET /flows/top", func(w http.ResponseWriter, r *http.Request) {
		n := 10
		if s := r.URL.Query().Get("n"); s != "" {
			v, err := strconv.Atoi(s)
			if err != nil || v < 1 {
				http.Error(w, fmt.Sprintf("n=%q: want a count of 1 or more", s), http.StatusBadRequest)
				return
			}
			n = v
		}
		top, err := ctl.TopPrefixes(r.URL.Query().Get("link"), n)
		if err != nil {
			http.Error(w, err.Error(), http.StatusNotFound)
			return
		}
		type row struct {
			Prefix        netip.Prefix `json:"prefix"`
			BitsPerSec    float64      `json:"bits_per_sec"`
			PacketsPerSec float64      `json:"packets_per_sec"`
		}
		rows := make([]row, len(top))
		for i, p := range top {
			rows[i] = row{p.Prefix, 8 * p.BytesPerSec, p.PacketsPerSec}
		}
		w.Header().Set("Content-Type", "application/json")
		enc := json.NewEncoder(w)
		enc.SetIndent("", "  ")
		_ = enc.Encode(rows)
	})
	return mux
}

// adminListen listens on a TCP host:port, or on a Unix socket when addr
// holds a '/': a socket file reaches across network namespaces (the
// lab's daemon runs in one) and is guarded by file permissions. A socket
// file left by a previous run is replaced.
func adminListen(ctx context.Context, addr string) (net.Listener, error) {
	if !strings.Contains(addr, "/") {
		return new(net.ListenConfig).Listen(ctx, "tcp", addr)
	}
	if err := os.Remove(addr); err != nil && !errors.Is(err, os.ErrNotExist) {
		return nil, err
	}
	return new(net.ListenConfig).Listen(ctx, "unix", addr)
}

// apiListen listens on a Unix socket readable and writable by its owner
// and group only: whoever can open it can move traffic. A socket file
// left by a previous run is replaced.
func apiListen(ctx context.Context, path string) (net.Listener, error) {
	if err := os.Remove(path); err != nil && !errors.Is(err, os.ErrNotExist) {
		return nil, err
	}
	ln, err := new(net.ListenConfig).Listen(ctx, "unix", path)
	if err != nil {
		return nil, err
	}
	if err := os.Chmod(path, 0o660); err != nil {
		ln.Close()
		return nil, err
	}
	return ln, nil
}
