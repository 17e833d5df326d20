// Package telemetry reads each ISP link's utilisation, oper-status and
// BGP session state from its router's streaming telemetry: one gNMI
// STREAM SAMPLE subscription per router, through gnmic's Go API, turned
// into one Sample per link per interval.
//
// Octet counters become bit/s between consecutive samples; a counter
// that goes back (reset, wrap) drops that interval. A router that
// stops answering makes its links Known=false, never idle, and is
// subscribed to again with backoff.
package telemetry

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"math"
	"slices"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/sdnoc/sdnoc/internal/waitctx"
)

// Deps are what a Collector needs from its host.
type Deps struct {
	Log *slog.Logger          // nil: discard
	Reg prometheus.Registerer // nil: metrics are created but not exported
	Now func() time.Time      // stamps Sample.Time; nil: time.Now
	// OnSample receives one Sample per link per interval; required. It
	// is called from one goroutine, so calls never overlap; it must
	// return quickly, or the next samples are late.
	OnSample func(Sample)
}

// Collector subscribes to each router and reports its links.
type Collector struct {
	cfg     Config
	deps    Deps
	log     *slog.Logger
	metrics metrics
	routers []*router

	mu     sync.Mutex
	cancel context.CancelFunc
	wg     sync.WaitGroup
}

// New checks cfg and deps and wires them. It opens no connection and
// starts no goroutine.
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
	c := &Collector{cfg: cfg, deps: deps, log: deps.Log, metrics: newMetrics(deps.Reg)}
	for _, rc := range cfg.Routers {
		r, err := newRouter(c, rc)
		if err != nil {
			return nil, fmt.Errorf("router %s: %w", rc.Name, err)
		}
		c.routers = append(c.routers, r)
	}
	return c, nil
}

// Start subscribes to every router and starts sampling. A router that
// cannot be reached is not an error: its links are Known=false until it
// answers. Connections are made in the background; ctx is not kept.
func (c *Collector) Start(ctx context.Context) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.cancel != nil {
		return errors.New("telemetry collector already started")
	}
	run, cancel := context.WithCancel(context.WithoutCancel(ctx))
	c.cancel = cancel
	for _, r := range c.routers {
		c.metrics.routerUp.WithLabelValues(r.cfg.Name).Set(0)
		c.wg.Go(func() { r.run(run) })
	}
	c.wg.Go(func() { c.emit(run) })
	return nil
}

// Stop ends the subscriptions and waits for the goroutines, or gives up
// when ctx ends.
func (c *Collector) Stop(ctx context.Context) error {
	c.mu.Lock()
	cancel := c.cancel
	c.cancel = nil
	c.mu.Unlock()
	if cancel == nil {
		return nil
	}
	cancel()
	if err := waitctx.Wait(ctx, &c.wg); err != nil {
		return fmt.Errorf("stop telemetry collector: %w", err)
	}
	return nil
}

// emit reports every link each interval until ctx ends.
func (c *Collector) emit(ctx context.Context) {
	t := time.NewTicker(c.cfg.Interval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		now, stamp := time.Now(), c.deps.Now()
		for _, r := range c.routers {
			for _, s := range r.samples(now, stamp) {
				c.metrics.utilisation.WithLabelValues(s.Link).Set(nanIf(!s.Known, s.Utilisation))
				c.deps.OnSample(s)
			}
		}
	}
}

func nanIf(cond bool, v float64) float64 {
	if cond {
		return math.NaN()
	}
	return v
}

// linkIDs are a router's link IDs in order, so samples come in a stable
// order.
func linkIDs(links map[string]LinkMap) []string {
	return slices.Sorted(maps.Keys(links))
}
