package controller

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"runtime"
	"time"

	"github.com/sdnoc/sdnoc/collectors/flow"
	"github.com/sdnoc/sdnoc/collectors/telemetry"
	"github.com/sdnoc/sdnoc/decisions"
	"github.com/sdnoc/sdnoc/topologies"
)

// flowLink is a link whose per-prefix rates come from flows.
type flowLink struct {
	id       string
	exporter netip.Addr
	// utilisation: the link has no gNMI, so the sum of its flows is also
	// its load.
	utilisation bool
}

// flowConfig maps every link that lands on a flow-exporting router to
// its exporter and ifindex. ok is false when no router exports flows.
func flowConfig(t *topologies.Topology) (cfg flow.Config, links []flowLink, ok bool) {
	if !t.HasFlows() {
		return flow.Config{}, nil, false
	}
	cfg = flow.DefaultConfig()
	cfg.Listen, cfg.Window, cfg.TemplateTTL = t.Flow.Listen, t.Flow.Window, t.Flow.TemplateTTL
	cfg.Sockets = t.Flow.Sockets
	if cfg.Sockets == 0 {
		cfg.Sockets = runtime.NumCPU()
	}
	for _, p := range t.PoPs {
		for _, r := range p.Routers {
			if !r.FlowExporter.IsValid() {
				continue
			}
			e := flow.ExporterConfig{Address: r.FlowExporter, SamplingRate: r.FlowSamplingRate, Interfaces: map[uint32]string{}}
			for _, l := range p.Links {
				if l.Router == r.Name && l.IfIndex != 0 {
					id := t.LinkID(p.Name, l.Name)
					e.Interfaces[l.IfIndex] = id
					links = append(links, flowLink{id: id, exporter: r.FlowExporter, utilisation: r.GNMI == ""})
				}
			}
			cfg.Exporters = append(cfg.Exporters, e)
		}
	}
	for _, p := range t.Prefixes {
		cfg.Prefixes = append(cfg.Prefixes, p.Prefix)
	}
	return cfg, links, true
}

// telemetryConfig subscribes to every router with a gNMI target, for the
// links that land on it. ok is false when no router has one.
func telemetryConfig(t *topologies.Topology) (telemetry.Config, bool) {
	if !t.HasTelemetry() {
		return telemetry.Config{}, false
	}
	cfg := telemetry.DefaultConfig()
	cfg.Interval = t.Telemetry.Interval
	for _, p := range t.PoPs {
		for _, r := range p.Routers {
			if r.GNMI == "" {
				continue
			}
			rc := telemetry.RouterConfig{
				Name: r.Name, Address: r.GNMI,
				Insecure: r.GNMITLS == topologies.TLSInsecure, SkipVerify: r.GNMITLS == topologies.TLSSkipVerify,
				Username: r.GNMIUsername, Password: r.GNMIPassword,
				Links: map[string]telemetry.LinkMap{},
			}
			for _, l := range p.Links {
				if l.Router == r.Name {
					rc.Links[t.LinkID(p.Name, l.Name)] = telemetry.LinkMap{Interface: l.Interface, Capacity: l.Capacity, Neighbor: l.Neighbor}
				}
			}
			if len(rc.Links) > 0 {
				cfg.Routers = append(cfg.Routers, rc)
			}
		}
	}
	return cfg, len(cfg.Routers) > 0
}

// onLoad hands a telemetry sample to the loop without blocking the
// collector.
func (c *Controller) onLoad(s telemetry.Sample) {
	select {
	case c.loads <- s:
	default:
		c.metrics.samplesDropped.Inc()
	}
}

func (c *Controller) observeLoad(s telemetry.Sample) {
	err := c.engine.ObserveLoad(decisions.Load{Link: s.Link, Source: s.Source, End: s.Time, Known: s.Known, InBps: s.InBps})
	if err != nil {
		c.log.Warn("load sample dropped", "link", s.Link, "err", err)
	}
}

// readFlows gives the engine each flow link's per-prefix rates and, for
// links without gNMI, their sum as the link's load. A link's flows are
// trusted only once the collector has run a whole window (a partial one
// reads low) and while its exporter keeps sending: an exporter gone quiet
// leaves rates of zero that mean nothing, so its links' load turns
// unknown rather than idle (invariant 2).
func (c *Controller) readFlows(now time.Time) {
	if c.flows == nil {
		return
	}
	window := c.cfg.Topology.Flow.Window
	warm := now.Sub(c.flowsStarted) >= window
	for _, fl := range c.flowLinks {
		last := c.flows.LastDatagram(fl.exporter)
		fresh := warm && !last.IsZero() && now.Sub(last) <= 2*window
		rates := c.flows.Rates(fl.id)
		var sum float64
		pl := decisions.PrefixLoad{Link: fl.id, End: now, Rates: make(map[netip.Prefix]float64, len(rates))}
		for _, r := range rates {
			bps := 8 * r.BytesPerSec
			pl.Rates[r.Prefix] = bps
			sum += bps
		}
		if fresh {
			if err := c.engine.ObservePrefixLoad(pl); err != nil {
				c.log.Warn("prefix load dropped", "link", fl.id, "err", err)
			}
		}
		if fl.utilisation {
			if err := c.engine.ObserveLoad(decisions.Load{Link: fl.id, Source: "flows", End: now, Known: fresh, InBps: sum}); err != nil {
				c.log.Warn("load dropped", "link", fl.id, "err", err)
			}
		}
	}
}

// startLoad starts the flow and telemetry collectors, if any; a busy flow
// port fails here, before the loop runs.
func (c *Controller) startLoad(ctx context.Context) error {
	if c.flows != nil {
		if err := c.flows.Start(ctx); err != nil {
			return fmt.Errorf("flow collector: %w", err)
		}
		c.flowsStarted = c.deps.Now()
	}
	if c.telemetry != nil {
		if err := c.telemetry.Start(ctx); err != nil {
			if c.flows != nil {
				_ = c.flows.Stop(context.WithoutCancel(ctx))
			}
			return fmt.Errorf("telemetry collector: %w", err)
		}
	}
	return nil
}

// FlowAddr returns the flow collector's address once started; nil when
// no router exports flows.
func (c *Controller) FlowAddr() net.Addr {
	if c.flows == nil {
		return nil
	}
	return c.flows.Addr()
}

// ErrNoFlows is returned by TopPrefixes when no router exports flows.
var ErrNoFlows = errors.New("no router exports flows in this topology")

// TopPrefixes returns the n edge prefixes with the most traffic arriving
// through link over the flow window, busiest first.
func (c *Controller) TopPrefixes(link string, n int) ([]flow.PrefixRate, error) {
	if c.flows == nil {
		return nil, ErrNoFlows
	}
	for _, fl := range c.flowLinks {
		if fl.id == link {
			return c.flows.Top(link, n), nil
		}
	}
	return nil, fmt.Errorf("link %q has no flows: it is not in the topology, or its router exports none", link)
}
