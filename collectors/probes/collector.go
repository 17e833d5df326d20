package probes

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/netip"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/sdnoc/sdnoc/internal/waitctx"
)

// Deps are what a Collector needs from its host.
type Deps struct {
	Log *slog.Logger          // nil: discard
	Reg prometheus.Registerer // nil: metrics are created but not exported
	// Now stamps the samples' Start and End; nil: time.Now. Probes are
	// always timed with the real clock.
	Now func() time.Time
	// OnSample receives one Sample per link per window; required. It is
	// called from one goroutine of the collector, so calls never overlap.
	// It must return quickly: a few windows' samples queue up behind it,
	// and then the links wait, their probes with them.
	OnSample func(Sample)
}

// Collector sends STAMP probes through each configured link and reports
// one Sample per link per window. Each link has its own socket, bound to
// the link's local address, and one session per target.
type Collector struct {
	cfg     Config
	deps    Deps
	log     *slog.Logger
	metrics metrics
	links   []*link
	samples chan Sample // from the links to OnSample

	mu      sync.Mutex
	started bool
	cancel  context.CancelFunc
	runs    sync.WaitGroup // link loops; they start the readers
	readers sync.WaitGroup // one per bound socket; end when it is closed
	emitter sync.WaitGroup // calls OnSample
}

// New checks cfg and deps and wires them. It opens no socket and starts
// no goroutine.
func New(cfg Config, deps Deps) (*Collector, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	if deps.OnSample == nil {
		return nil, errors.New("deps: OnSample is nil; the collector needs somewhere to send its samples")
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
	c := &Collector{
		cfg: cfg, deps: deps, log: deps.Log, metrics: newMetrics(deps.Reg),
		samples: make(chan Sample, 4*len(cfg.Links)),
	}
	for _, lc := range cfg.Links {
		c.links = append(c.links, newLink(c, lc))
	}
	return c, nil
}

// Start binds each link's socket and starts probing. A link whose local
// address cannot be bound is not an error: it reports Known=false samples
// and is bound again at the end of each window. ctx bounds the first
// binds only; probing runs until Stop. A Collector starts once.
func (c *Collector) Start(ctx context.Context) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.started {
		return errors.New("probe collector already started")
	}
	c.started = true
	run, cancel := context.WithCancel(context.WithoutCancel(ctx))
	c.cancel = cancel
	c.emitter.Go(func() { c.emit(run) })
	now, stamp := time.Now(), c.deps.Now()
	for _, l := range c.links {
		l.start(now, stamp)
		l.bind(ctx)
		c.runs.Go(func() { l.run(run) })
	}
	return nil
}

// Stop ends probing, closes the sockets and waits for the goroutines, or
// gives up when ctx ends. Probes still waiting for a reply are dropped
// uncounted: they are neither received nor lost.
func (c *Collector) Stop(ctx context.Context) error {
	c.mu.Lock()
	cancel := c.cancel
	c.cancel = nil
	c.mu.Unlock()
	if cancel == nil {
		return nil
	}
	cancel()
	// The link loops end at once, but may still bind a socket until then;
	// the emitter may be inside OnSample.
	if err := waitctx.Wait(ctx, &c.runs); err != nil {
		return fmt.Errorf("stop probe collector: %w", err)
	}
	var errs []error
	for _, l := range c.links {
		if err := l.close(); err != nil {
			errs = append(errs, fmt.Errorf("link %s: %w", l.cfg.ID, err))
		}
	}
	if err := waitctx.Wait(ctx, &c.readers); err != nil {
		errs = append(errs, fmt.Errorf("stop probe collector: %w", err))
	} else if err := waitctx.Wait(ctx, &c.emitter); err != nil {
		errs = append(errs, fmt.Errorf("stop probe collector: OnSample has not returned: %w", err))
	}
	return errors.Join(errs...)
}

// emit hands the links' samples to OnSample until ctx ends.
func (c *Collector) emit(ctx context.Context) {
	for {
		select {
		case <-ctx.Done():
			return
		case s := <-c.samples:
			c.deps.OnSample(s)
		}
	}
}

// bindTarget returns the network and address that a link's socket binds
// to: its local address (IPv4 or IPv6) with any free port.
func bindTarget(local string) (network, addr string) {
	if local == "" {
		return "udp", ":0"
	}
	if netip.MustParseAddr(local).Unmap().Is4() {
		network = "udp4"
	} else {
		network = "udp6"
	}
	return network, net.JoinHostPort(local, "0")
}
