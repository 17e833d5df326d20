package flow

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/netip"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/sdnoc/sdnoc/internal/waitctx"
)

// maxDatagram is the largest UDP payload.
const maxDatagram = 65535

// Deps are what a Collector needs from its host.
type Deps struct {
	Log *slog.Logger          // nil: discard
	Reg prometheus.Registerer // nil: metrics are created but not exported
	// Now stamps the records and ends the rate windows; nil: time.Now.
	Now func() time.Time
	// OnRecord, when not nil, receives every decoded record, attributed
	// or not. It is called from every worker at once, and the Record is
	// reused once it returns: copy what it keeps.
	OnRecord func(*Record)
}

// Stats are the Collector's counts since it was created.
type Stats struct {
	Datagrams    uint64 // received
	Records      uint64 // decoded
	DecodeErrors uint64 // datagrams that failed to decode, ErrNoTemplate aside
	NoTemplate   uint64 // datagrams with a data set of an unknown template
	Refused             // records decoded but not stored, by reason
}

// Collector receives flow datagrams, decodes them and aggregates their
// records per link and edge prefix.
type Collector struct {
	cfg     Config
	deps    Deps
	log     *slog.Logger
	dec     *Decoder
	agg     *Aggregator
	metrics metrics
	// Counters resolved once, so that a record costs no label lookup.
	datagramsBy, recordsBy map[string]prometheus.Counter
	unattributedBy         map[string]prometheus.Counter
	// lastSeen holds, per configured exporter, the Unix nanoseconds of
	// its last datagram. Built in New, read-only since: no lock.
	lastSeen map[netip.Addr]*atomic.Int64

	datagrams, records, decodeErrors, noTemplate atomic.Uint64

	mu      sync.Mutex
	started bool
	conns   []*net.UDPConn
	workers sync.WaitGroup
}

// New checks cfg and wires deps. It opens no socket and starts no
// goroutine.
func New(cfg Config, deps Deps) (*Collector, error) {
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
	overrides := make(map[netip.Addr]uint32)
	for _, e := range cfg.Exporters {
		if e.SamplingRate > 0 {
			overrides[e.Address.Unmap()] = e.SamplingRate
		}
	}
	c := &Collector{
		cfg: cfg, deps: deps, log: deps.Log, metrics: newMetrics(deps.Reg),
		dec:            NewDecoder(DecoderConfig{TemplateTTL: cfg.TemplateTTL, MaxExporters: cfg.MaxExporters, SamplingRates: overrides}),
		agg:            NewAggregator(cfg),
		datagramsBy:    make(map[string]prometheus.Counter),
		recordsBy:      make(map[string]prometheus.Counter),
		unattributedBy: make(map[string]prometheus.Counter),
		lastSeen:       make(map[netip.Addr]*atomic.Int64),
	}
	for _, e := range cfg.Exporters {
		c.lastSeen[e.Address.Unmap()] = new(atomic.Int64)
	}
	for _, f := range []string{FormatSFlow5, FormatNetFlow5, FormatNetFlow9, FormatIPFIX, "unknown"} {
		c.datagramsBy[f] = c.metrics.datagrams.WithLabelValues(f)
		c.recordsBy[f] = c.metrics.records.WithLabelValues(f)
	}
	for _, r := range []string{ReasonUnknownExporter, ReasonUnknownInterface, ReasonNotEdge, ReasonStale} {
		c.unattributedBy[r] = c.metrics.unattributed.WithLabelValues(r)
	}
	return c, nil
}

// Start binds cfg.Sockets UDP sockets to cfg.Listen with SO_REUSEPORT
// and starts a worker on each; it returns once they receive, so a busy
// port fails here. With port 0, the first socket picks the port and the
// others join it. ctx bounds the binds only. A Collector starts once.
func (c *Collector) Start(ctx context.Context) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.started {
		return errors.New("flow collector already started")
	}
	c.started = true
	lc := net.ListenConfig{Control: reusePort}
	addr := c.cfg.Listen
	for range c.cfg.Sockets {
		pc, err := lc.ListenPacket(ctx, "udp", addr)
		if err != nil {
			for _, conn := range c.conns {
				conn.Close()
			}
			c.conns = nil
			return fmt.Errorf("listen %s: %w", addr, err)
		}
		conn := pc.(*net.UDPConn)
		addr = conn.LocalAddr().String()
		c.conns = append(c.conns, conn)
	}
	for _, conn := range c.conns {
		c.workers.Go(func() { c.receive(conn) })
	}
	c.log.Info("flow collector listening", "addr", addr, "sockets", len(c.conns))
	return nil
}

// Addr returns the address the sockets are bound to; nil before Start.
func (c *Collector) Addr() net.Addr {
	c.mu.Lock()
	defer c.mu.Unlock()
	if len(c.conns) == 0 {
		return nil
	}
	return c.conns[0].LocalAddr()
}

// Stop closes the sockets and waits for the workers, or gives up when
// ctx ends.
func (c *Collector) Stop(ctx context.Context) error {
	c.mu.Lock()
	conns := c.conns
	c.conns = nil
	c.mu.Unlock()
	var errs []error
	for _, conn := range conns {
		if err := conn.Close(); err != nil {
			errs = append(errs, err)
		}
	}
	if err := waitctx.Wait(ctx, &c.workers); err != nil {
		errs = append(errs, fmt.Errorf("stop flow collector: %w", err))
	}
	return errors.Join(errs...)
}

// receive decodes the datagrams of conn until it is closed.
func (c *Collector) receive(conn *net.UDPConn) {
	buf := make([]byte, maxDatagram)
	var n uint64
	format := ""
	emit := func(r *Record) {
		n++
		format = r.Format
		if c.deps.OnRecord != nil {
			c.deps.OnRecord(r)
		}
		if reason := c.agg.Add(r); reason != "" {
			c.unattributedBy[reason].Inc()
		}
	}
	for {
		size, from, err := conn.ReadFromUDPAddrPort(buf)
		if err != nil {
			if errors.Is(err, net.ErrClosed) {
				return
			}
			c.log.Warn("flow socket read failed", "err", err)
			continue
		}
		n, format = 0, ""
		now := c.deps.Now()
		c.seen(from.Addr(), now)
		err = c.dec.Decode(from, buf[:size], now, emit)
		c.count(buf[:size], format, n, err)
	}
}

// count updates the stats and metrics for one datagram.
func (c *Collector) count(b []byte, format string, records uint64, err error) {
	c.datagrams.Add(1)
	if format == "" {
		format = formatOf(b)
	}
	c.datagramsBy[format].Inc()
	if records > 0 {
		c.records.Add(records)
		c.recordsBy[format].Add(float64(records))
	}
	if err == nil {
		return
	}
	if errors.Is(err, ErrNoTemplate) {
		c.noTemplate.Add(1)
		c.metrics.noTemplate.Inc()
		return
	}
	c.decodeErrors.Add(1)
	c.metrics.decodeErrors.WithLabelValues(errorReason(err)).Inc()
	c.log.Debug("flow datagram dropped", "err", err)
}

// formatOf names the format of a datagram that emitted no record.
func formatOf(b []byte) string {
	if len(b) >= 4 {
		if f := detect(b); f != "" {
			return f
		}
	}
	return "unknown"
}

func errorReason(err error) string {
	switch {
	case errors.Is(err, ErrTruncated):
		return "truncated"
	case errors.Is(err, ErrUnknownVersion):
		return "unknown_version"
	case errors.Is(err, ErrTooManyExporters):
		return "too_many_exporters"
	}
	return "malformed"
}

// Rates returns the traffic through link toward each edge prefix over
// the window ending now, highest bytes/s first.
func (c *Collector) Rates(link string) []PrefixRate {
	return c.agg.Rates(link, c.deps.Now())
}

// Top returns the n prefixes with the most bytes/s through link.
func (c *Collector) Top(link string, n int) []PrefixRate {
	return c.agg.Top(link, n, c.deps.Now())
}

// Stats returns the counts since New.
func (c *Collector) Stats() Stats {
	return Stats{
		Datagrams: c.datagrams.Load(), Records: c.records.Load(),
		DecodeErrors: c.decodeErrors.Load(), NoTemplate: c.noTemplate.Load(),
		Refused: c.agg.Refused(),
	}
}

// seen records a datagram from addr, if addr is a configured exporter.
func (c *Collector) seen(addr netip.Addr, now time.Time) {
	if t, ok := c.lastSeen[addr.Unmap()]; ok {
		t.Store(now.UnixNano())
	}
}

// LastDatagram returns when the configured exporter at addr last sent a
// datagram, whatever it held; the zero Time if it never has or is not
// configured. A link whose exporter has gone quiet has rates of zero that
// mean nothing: this tells the two apart.
func (c *Collector) LastDatagram(addr netip.Addr) time.Time {
	t, ok := c.lastSeen[addr.Unmap()]
	if !ok || t.Load() == 0 {
		return time.Time{}
	}
	return time.Unix(0, t.Load())
}
