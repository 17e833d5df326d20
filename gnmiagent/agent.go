// Package gnmiagent serves a router's interface counters, interface
// oper-status and BGP session states over gNMI (Capabilities, Get,
// Subscribe ONCE, POLL and STREAM), at their OpenConfig paths, read
// from Linux: interfaces from sysfs, BGP neighbours from FRR's vtysh.
// It stands in for the gNMI server that FRR routers do not have, so
// that sdnoc's telemetry collector sees them as any other router.
//
// Every STREAM subscription is served as SAMPLE, ON_CHANGE included:
// each sample_interval (DefaultSampleInterval when 0, never below
// Config.MinSampleInterval) it sends every leaf under the path. Set is
// not served.
package gnmiagent

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"sync"
	"time"

	"github.com/openconfig/gnmi/proto/gnmi"
	"github.com/prometheus/client_golang/prometheus"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/status"
)

// gnmiVersion is the gNMI specification version of the protos served
// (gnmi.proto's gnmi_service option).
const gnmiVersion = "0.10.0"

// Deps are what an Agent needs from its host.
type Deps struct {
	Log *slog.Logger          // nil: discard
	Reg prometheus.Registerer // nil: metrics are created but not exported
	Now func() time.Time      // stamps notifications; nil: time.Now
	// Interfaces and Neighbors are the data sources; nil: Sysfs at
	// Config.SysfsRoot and Command running Config.BGPCommand.
	Interfaces InterfaceSource
	Neighbors  NeighborSource
}

// Agent is a gNMI server over the host's interfaces and BGP sessions.
type Agent struct {
	gnmi.UnimplementedGNMIServer

	cfg     Config
	log     *slog.Logger
	now     func() time.Time
	ifs     InterfaceSource
	bgp     NeighborSource
	metrics metrics

	mu     sync.Mutex
	srv    *grpc.Server
	ln     net.Listener
	cancel context.CancelFunc
	run    context.Context // ends at Stop; streams end with it
	served sync.WaitGroup
}

// New checks cfg and wires deps. It opens no socket and starts no
// goroutine.
func New(cfg Config, deps Deps) (*Agent, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	if deps.Log == nil {
		deps.Log = slog.New(slog.DiscardHandler)
	}
	if deps.Reg == nil {
		deps.Reg = prometheus.NewRegistry()
	}
	if deps.Now == nil {
		deps.Now = time.Now
	}
	if deps.Interfaces == nil {
		deps.Interfaces = Sysfs{Root: cfg.SysfsRoot}
	}
	if deps.Neighbors == nil {
		deps.Neighbors = Command{Argv: cfg.BGPCommand}
	}
	return &Agent{
		cfg: cfg, log: deps.Log, now: deps.Now, ifs: deps.Interfaces, bgp: deps.Neighbors,
		metrics: newMetrics(deps.Reg),
	}, nil
}

// Start loads the TLS key pair, listens and serves. ctx bounds the
// listen only; the server runs until Stop. An Agent starts once.
func (a *Agent) Start(ctx context.Context) error {
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.srv != nil {
		return errors.New("gnmi agent already started")
	}
	// Stop waits for the handlers: no RPC goroutine outlives the agent.
	opts := []grpc.ServerOption{grpc.WaitForHandlers(true)}
	if a.cfg.TLSCert != "" {
		creds, err := credentials.NewServerTLSFromFile(a.cfg.TLSCert, a.cfg.TLSKey)
		if err != nil {
			return fmt.Errorf("load tls key pair: %w", err)
		}
		opts = append(opts, grpc.Creds(creds))
	}
	ln, err := new(net.ListenConfig).Listen(ctx, "tcp", a.cfg.Listen)
	if err != nil {
		return fmt.Errorf("listen %s: %w", a.cfg.Listen, err)
	}
	if a.cfg.TLSCert == "" {
		a.log.Warn("gNMI served without TLS: anyone who reaches the port reads the counters", "addr", ln.Addr().String())
	}
	a.ln = ln
	a.srv = grpc.NewServer(opts...)
	gnmi.RegisterGNMIServer(a.srv, a)
	a.run, a.cancel = context.WithCancel(context.WithoutCancel(ctx))
	a.served.Go(func() {
		if err := a.srv.Serve(ln); err != nil {
			a.log.Error("gNMI server stopped", "err", err)
		}
	})
	return nil
}

// Addr is the address listened on, once started (nil before).
func (a *Agent) Addr() net.Addr {
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.ln == nil {
		return nil
	}
	return a.ln.Addr()
}

// Stop closes the listener and the connections, ending every RPC (a
// stream's client sees Unavailable), and waits for the handlers, or
// gives up when ctx ends. Subscriptions never end on their own, so a
// graceful stop would only wait for them.
func (a *Agent) Stop(ctx context.Context) error {
	a.mu.Lock()
	srv, cancel := a.srv, a.cancel
	a.cancel = nil
	a.mu.Unlock()
	if cancel == nil {
		return nil
	}
	cancel()
	done := make(chan struct{})
	go func() {
		srv.Stop()
		a.served.Wait()
		close(done)
	}()
	select {
	case <-done:
		return nil
	case <-ctx.Done():
		return fmt.Errorf("stop gnmi agent: %w", ctx.Err())
	}
}

// Capabilities lists the models and encodings served.
func (a *Agent) Capabilities(context.Context, *gnmi.CapabilityRequest) (*gnmi.CapabilityResponse, error) {
	a.metrics.requests.WithLabelValues("capabilities").Inc()
	return &gnmi.CapabilityResponse{
		SupportedModels: []*gnmi.ModelData{
			{Name: "openconfig-interfaces", Organization: "OpenConfig working group", Version: "3.0.0"},
			{Name: "openconfig-network-instance", Organization: "OpenConfig working group", Version: "4.0.0"},
		},
		// Leaves are scalars (uint_val, string_val), valid in all of these.
		SupportedEncodings: []gnmi.Encoding{gnmi.Encoding_JSON, gnmi.Encoding_JSON_IETF, gnmi.Encoding_PROTO},
		GNMIVersion:        gnmiVersion,
	}, nil
}

// Get returns one notification per requested path; a path that selects
// nothing is NotFound.
func (a *Agent) Get(ctx context.Context, req *gnmi.GetRequest) (*gnmi.GetResponse, error) {
	a.metrics.requests.WithLabelValues("get").Inc()
	paths := req.GetPath()
	if len(paths) == 0 {
		paths = []*gnmi.Path{{}} // the prefix alone names what is wanted
	}
	qs := make([][]*gnmi.PathElem, len(paths))
	for i, p := range paths {
		qs[i] = fullPath(req.GetPrefix(), p)
	}
	leaves, ts, err := a.read(ctx, qs)
	if err != nil {
		return nil, status.Errorf(codes.Unavailable, "read state: %v", err)
	}
	resp := &gnmi.GetResponse{}
	for i, q := range qs {
		n := notification(req.GetPrefix(), ts, leaves, q)
		if len(n.Update) == 0 {
			return nil, status.Errorf(codes.NotFound, "path %d selects no data", i)
		}
		resp.Notification = append(resp.Notification, n)
	}
	return resp, nil
}

// read reads the sources that the request paths need, and when. A
// source that fails is left out and its error returned with the leaves
// of the others, so that a broken vtysh does not hide the counters.
func (a *Agent) read(ctx context.Context, qs [][]*gnmi.PathElem) ([]leaf, int64, error) {
	var needIf, needBGP bool
	for _, q := range qs {
		needIf = needIf || wants(q, "interfaces")
		needBGP = needBGP || wants(q, "network-instances")
	}
	var leaves []leaf
	var errs []error
	if needIf {
		itfs, err := a.ifs.Interfaces(ctx)
		if err != nil {
			a.metrics.sourceErrors.WithLabelValues("sysfs").Inc()
			errs = append(errs, err)
		}
		leaves = interfaceLeaves(itfs)
	}
	ts := a.now().UnixNano()
	if needBGP {
		ns, err := a.bgp.Neighbors(ctx)
		if err != nil {
			a.metrics.sourceErrors.WithLabelValues("bgp").Inc()
			errs = append(errs, fmt.Errorf("bgp neighbours: %w", err))
		}
		leaves = append(leaves, neighborLeaves(ns)...)
	}
	return leaves, ts, errors.Join(errs...)
}

// notification holds the leaves under q; its prefix keeps the request's
// target and origin, and each update carries the leaf's full path.
func notification(prefix *gnmi.Path, ts int64, leaves []leaf, qs ...[]*gnmi.PathElem) *gnmi.Notification {
	n := &gnmi.Notification{Timestamp: ts}
	if prefix.GetTarget() != "" || prefix.GetOrigin() != "" {
		n.Prefix = &gnmi.Path{Target: prefix.GetTarget(), Origin: prefix.GetOrigin()}
	}
	for _, l := range leaves {
		for _, q := range qs {
			if match(q, l.path) {
				n.Update = append(n.Update, &gnmi.Update{Path: &gnmi.Path{Elem: l.path}, Val: l.val})
				break
			}
		}
	}
	return n
}
