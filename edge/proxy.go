// Package edge is sdnoc's edge proxy: the reverse proxy (and request
// inspection) that serves customers' sites in every PoP, built for the
// failures edge networks see: origins that close pooled connections
// (seed 002), origins that answer an upload before reading it (seed 000),
// bad configuration and failing security modules (seed 001). sdnoc drains
// it when it shifts traffic away from a PoP.
//
// Plain HTTP/1.1 goes through the package's own engines: event loops on
// Linux (loop_linux.go) for the common exchanges, and a goroutine a
// connection (conn.go, relay.go) for the rest and elsewhere. TLS with
// HTTP/2 or HTTP/1.1 goes through net/http (tls.go). All share the origin
// pools; the goroutine engine and net/http share the relay.
package edge

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"runtime"
	"sort"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/sdnoc/sdnoc/edge/inspect"
	"github.com/sdnoc/sdnoc/edge/sites"
)

// Config is the proxy's own configuration; what it serves comes from the
// site files (edge/sites).
type Config struct {
	// Listen is the plain HTTP/1.1 address; "" serves none.
	Listen string
	// ListenTLS is the HTTPS address (HTTP/2 and HTTP/1.1, certificate
	// chosen by SNI from the sites); "" serves none.
	ListenTLS string
	// Admin serves /healthz, /metrics, /drain and /undrain; "" serves none.
	Admin string
	// ClientIdle bounds a keep-alive client connection's wait for its
	// first request (after that, its site's timeouts.client_idle).
	ClientIdle time.Duration
	// DrainDeadline is how long a drain lets requests in flight finish
	// when the caller gives none.
	DrainDeadline time.Duration
	// Guard is the fail-open policy of request inspection.
	Guard inspect.GuardConfig
	// Engine serves plain HTTP/1.1: "loop" (event loops, one a core, the
	// default on Linux) or "goroutines" (a goroutine a connection).
	Engine string
}

// Engines.
const (
	EngineLoop       = "loop"
	EngineGoroutines = "goroutines"
)

// DefaultConfig is a proxy on the loopback addresses.
func DefaultConfig() Config {
	return Config{
		Listen:        "127.0.0.1:8080",
		Admin:         "127.0.0.1:9090",
		ClientIdle:    60 * time.Second,
		DrainDeadline: 30 * time.Second,
		Guard:         inspect.DefaultGuardConfig(),
		Engine:        defaultEngine(),
	}
}

func defaultEngine() string {
	if loopEngine {
		return EngineLoop
	}
	return EngineGoroutines
}

// Validate reports every bad field with its fix.
func (c Config) Validate() error {
	var errs []error
	for _, a := range []struct{ name, addr string }{{"listen", c.Listen}, {"listen_tls", c.ListenTLS}, {"admin", c.Admin}} {
		if a.addr == "" {
			continue
		}
		if _, _, err := net.SplitHostPort(a.addr); err != nil {
			errs = append(errs, fmt.Errorf("%s: %q is not host:port; write e.g. \"127.0.0.1:8080\"", a.name, a.addr))
		}
	}
	if c.Listen == "" && c.ListenTLS == "" {
		errs = append(errs, errors.New("listen: no address to serve; set listen or listen_tls"))
	}
	if c.ClientIdle <= 0 {
		errs = append(errs, fmt.Errorf("client_idle: %v must be above zero; e.g. 60s", c.ClientIdle))
	}
	if c.DrainDeadline <= 0 {
		errs = append(errs, fmt.Errorf("drain_deadline: %v must be above zero; e.g. 30s", c.DrainDeadline))
	}
	switch {
	case c.Engine == EngineLoop && !loopEngine:
		errs = append(errs, fmt.Errorf("engine: %q needs Linux (epoll); use %q", c.Engine, EngineGoroutines))
	case c.Engine != "" && c.Engine != EngineLoop && c.Engine != EngineGoroutines:
		errs = append(errs, fmt.Errorf("engine: %q is not an engine; use %q or %q", c.Engine, EngineLoop, EngineGoroutines))
	}
	if err := c.Guard.Validate(); err != nil {
		errs = append(errs, fmt.Errorf("guard: %w", err))
	}
	return errors.Join(errs...)
}

// Deps are the proxy's collaborators.
type Deps struct {
	Logger *slog.Logger
	// AccessLog receives one line per request of sites with access_log on;
	// nil logs none.
	AccessLog *slog.Logger
	// Registerer and Gatherer hold the proxy's metrics and serve /metrics;
	// nil uses a private registry.
	Registerer prometheus.Registerer
	Gatherer   prometheus.Gatherer
	// Sites, when set, is shown by the admin API (GET /sites).
	Sites func() *sites.Set
}

// Proxy is the edge proxy.
type Proxy struct {
	cfg    Config
	log    *slog.Logger
	access *slog.Logger
	gather prometheus.Gatherer
	m      *metrics
	guard  *inspect.Guard
	sites  func() *sites.Set

	table atomic.Pointer[table]

	mu        sync.Mutex
	started   bool
	stopped   bool
	listeners []*listener
	dedicated map[string]string // address -> site, as configured
	conns     map[*clientConn]struct{}
	pools     map[poolKey]*originPool
	loops     []*loop // the plain listeners' event loops; none with the goroutine engine
	loopTurn  atomic.Uint32
	admin     *http.Server
	adminAddr net.Addr
	drain     DrainStatus
	drainDone chan struct{}

	draining atomic.Bool
	inflight atomic.Int64
	wg       sync.WaitGroup
}

// New checks cfg and wires the proxy; it opens nothing.
func New(cfg Config, deps Deps) (*Proxy, error) {
	if err := cfg.Validate(); err != nil {
		return nil, fmt.Errorf("edge config: %w", err)
	}
	log := deps.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	reg, gather := deps.Registerer, deps.Gatherer
	if reg == nil {
		r := prometheus.NewRegistry()
		reg, gather = r, r
	}
	p := &Proxy{
		cfg: cfg, log: log, access: deps.AccessLog, gather: gather, sites: deps.Sites,
		conns: make(map[*clientConn]struct{}),
		pools: make(map[poolKey]*originPool),
	}
	p.m = newMetrics(reg, func() float64 { return float64(p.inflight.Load()) })
	g, err := inspect.NewGuard(cfg.Guard, inspect.GuardDeps{Logger: log, Registerer: reg})
	if err != nil {
		return nil, fmt.Errorf("edge inspection guard: %w", err)
	}
	p.guard = g
	p.table.Store(&table{exact: map[string]*site{}, wild: map[string]*site{}, byName: map[string]*site{}})
	return p, nil
}

// listener is one accepting socket: the shared plain or TLS address, or a
// site's dedicated one.
type listener struct {
	addr string // as configured; after the first bind, the bound address
	site string // dedicated to this site; "" for the shared listeners
	tls  bool
	ln   net.Listener
	srv  *http.Server // TLS listeners are served by net/http
}

// Start binds every listener (a busy address fails here) and serves.
func (p *Proxy) Start(ctx context.Context) error {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.started {
		return errors.New("edge proxy already started")
	}
	if p.cfg.Listen != "" {
		p.listeners = append(p.listeners, &listener{addr: p.cfg.Listen})
	}
	if p.cfg.ListenTLS != "" {
		p.listeners = append(p.listeners, &listener{addr: p.cfg.ListenTLS, tls: true})
	}
	t := p.table.Load()
	for _, addr := range sortedKeys(t.dedicated) {
		s := t.byName[t.dedicated[addr]]
		p.listeners = append(p.listeners, &listener{addr: addr, site: s.cfg.Name, tls: s.cfg.TLS != nil})
	}
	p.dedicated = t.dedicated
	if p.cfg.Engine == EngineLoop || (p.cfg.Engine == "" && loopEngine) {
		for range runtime.GOMAXPROCS(0) {
			l, err := newLoop(p)
			if err != nil {
				p.stopLoops()
				return fmt.Errorf("edge event loop: %w", err)
			}
			p.loops = append(p.loops, l)
			p.wg.Go(l.run)
		}
	}
	for _, l := range p.listeners {
		if err := p.bind(ctx, l); err != nil {
			p.closeListeners()
			p.stopLoops()
			return err
		}
	}
	if p.cfg.Admin != "" {
		ln, err := new(net.ListenConfig).Listen(ctx, "tcp", p.cfg.Admin)
		if err != nil {
			p.closeListeners()
			p.stopLoops()
			return fmt.Errorf("edge admin: listen %s: %w", p.cfg.Admin, err)
		}
		p.adminAddr = ln.Addr()
		p.admin = &http.Server{Handler: p.adminHandler(), ReadHeaderTimeout: 10 * time.Second}
		p.wg.Go(func() { p.admin.Serve(ln) })
	}
	for _, op := range p.pools {
		op.start()
	}
	p.started = true
	p.log.Info("edge proxy serving", "listen", p.cfg.Listen, "listen_tls", p.cfg.ListenTLS, "admin", p.cfg.Admin, "sites", len(t.byName))
	return nil
}

// bind opens l and starts accepting on it. Called with p.mu held.
func (p *Proxy) bind(ctx context.Context, l *listener) error {
	ln, err := new(net.ListenConfig).Listen(ctx, "tcp", l.addr)
	if err != nil {
		if l.site != "" {
			return fmt.Errorf("site %s: listen %s: %w", l.site, l.addr, err)
		}
		return fmt.Errorf("edge: listen %s: %w", l.addr, err)
	}
	l.addr = ln.Addr().String() // so that undrain binds the same port
	l.ln = ln
	if l.tls {
		p.serveTLS(l)
		return nil
	}
	p.wg.Go(func() { p.accept(l) })
	return nil
}

func (p *Proxy) accept(l *listener) {
	backoff := 5 * time.Millisecond
	for {
		c, err := l.ln.Accept()
		if err != nil {
			if errors.Is(err, net.ErrClosed) {
				return
			}
			// Out of file descriptors and the like: wait, do not spin.
			p.log.Warn("accept failed", "addr", l.addr, "err", err)
			time.Sleep(backoff)
			backoff = min(2*backoff, time.Second)
			continue
		}
		backoff = 5 * time.Millisecond
		if len(p.loops) > 0 && p.toLoop(c, l) {
			continue
		}
		p.wg.Go(func() { p.serveConn(c, p.pinned(l), "http") })
	}
}

// pinned is the site a dedicated listener serves; nil for the shared ones.
func (p *Proxy) pinned(l *listener) *site {
	if l.site == "" {
		return nil
	}
	return p.table.Load().byName[l.site]
}

// stopLoops ends the event loops; they close what they hold.
func (p *Proxy) stopLoops() {
	for _, l := range p.loops {
		l.stop.Store(true)
		l.wake()
	}
}

// closeListeners stops accepting. Called with p.mu held.
func (p *Proxy) closeListeners() {
	for _, l := range p.listeners {
		if l.ln != nil {
			l.ln.Close()
			l.ln = nil
		}
	}
}

// track records a client connection as open or closed.
func (p *Proxy) track(cc *clientConn, open bool) {
	p.mu.Lock()
	if open {
		p.conns[cc] = struct{}{}
		if p.draining.Load() {
			// Accepted just before the drain: serve no request on it.
			cc.c.SetReadDeadline(time.Now())
		}
	} else {
		delete(p.conns, cc)
	}
	p.mu.Unlock()
}

// Addr is the plain HTTP listener's address, once started.
func (p *Proxy) Addr() string { return p.listenerAddr(false) }

// TLSAddr is the HTTPS listener's address, once started.
func (p *Proxy) TLSAddr() string { return p.listenerAddr(true) }

func (p *Proxy) listenerAddr(tls bool) string {
	p.mu.Lock()
	defer p.mu.Unlock()
	for _, l := range p.listeners {
		if l.site == "" && l.tls == tls {
			return l.addr
		}
	}
	return ""
}

// AdminAddr is the admin listener's address, once started.
func (p *Proxy) AdminAddr() string {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.adminAddr == nil {
		return ""
	}
	return p.adminAddr.String()
}

// Stop drains within ctx's deadline (requests in flight finish, or are cut
// when ctx ends), then releases everything.
func (p *Proxy) Stop(ctx context.Context) error {
	p.mu.Lock()
	if p.stopped {
		p.mu.Unlock()
		return nil
	}
	p.stopped = true
	p.mu.Unlock()
	d := p.cfg.DrainDeadline
	if dl, ok := ctx.Deadline(); ok {
		d = time.Until(dl)
	}
	p.Drain(d)
	p.mu.Lock()
	done := p.drainDone
	p.mu.Unlock()
	if done != nil {
		<-done
	}
	p.mu.Lock()
	if p.admin != nil {
		p.admin.Close()
	}
	pools := p.pools
	p.pools = map[poolKey]*originPool{}
	p.mu.Unlock()
	p.stopLoops()
	for _, op := range pools {
		op.close()
	}
	p.wg.Wait()
	return nil
}

// finish records a served request.
func (p *Proxy) finish(x *exchange, start time.Time) {
	d := time.Since(start)
	m := x.site.m
	class := x.status / 100
	if class < 1 || class > 5 {
		class = 0
	}
	m.class[class].Inc()
	m.duration.Observe(d.Seconds())
	if p.access != nil && x.site.cfg.AccessLog {
		p.access.LogAttrs(context.Background(), slog.LevelInfo, "request",
			slog.String("site", x.site.cfg.Name),
			slog.String("client", x.clientIP),
			slog.String("method", string(x.req.method)),
			slog.String("target", string(x.req.target)),
			slog.Int("status", x.status),
			slog.Int64("bytes", x.sent),
			slog.Duration("duration", d),
			slog.String("origin", x.origin),
			slog.Bool("early_response", x.early),
		)
	}
}

func sortedKeys[V any](m map[string]V) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}
