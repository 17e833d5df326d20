package loopback

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math"
	"math/rand/v2"
	"net"
	"net/netip"
	"sync"
	"sync/atomic"
	"time"

	"github.com/sdnoc/sdnoc/internal/waitctx"
)

const (
	// defaultIdle is how long a client mapping lives without traffic when
	// RelayConfig.Idle is 0.
	defaultIdle = 30 * time.Second
	// maxClients bounds the mappings; datagrams from further clients are
	// dropped.
	maxClients = 1024
	// maxQueued bounds the datagrams held back by SetDelay; beyond it
	// they are dropped, as a router's full queue would.
	maxQueued = 4096
	// maxDatagram fits any UDP payload.
	maxDatagram = 1 << 16
)

// RelayConfig is the configuration of a Relay.
type RelayConfig struct {
	Listen string // host:port the clients send to, e.g. "127.0.0.21:0"
	Target string // IP:port every datagram is forwarded to, e.g. a reflector's
	// Seed seeds the drop decisions: with the same seed, the nth datagram
	// from the clients meets the same fate.
	Seed int64
	// Idle closes a client's mapping after this long without traffic
	// either way; 0: 30s.
	Idle time.Duration
}

// RelayStats counts the datagrams through a Relay.
type RelayStats struct {
	Forward RelayCounts // from the clients to the target
	Reverse RelayCounts // from the target back to the clients
	Clients int         // mappings open now
}

// RelayCounts counts one direction of a Relay.
type RelayCounts struct {
	Forwarded uint64
	Dropped   uint64 // by SetLoss, SetBlackhole, a full delay queue or a send error
}

// Relay is an impairable UDP relay that stands in for an ISP's data path
// between probe senders and a reflector. Each client address gets its
// own upstream socket, so replies go back to the client that caused
// them. Impairments apply to the forward direction (client to target),
// except the blackhole, which drops both ways: the loss a sender
// measures through the relay is then the loss set, and the round-trip
// time grows by the delay set.
type Relay struct {
	cfg    RelayConfig
	log    *slog.Logger
	target netip.AddrPort
	epoch  time.Time // for the mappings' idle clocks

	loss      atomic.Uint64 // float64 bits, percent
	delay     atomic.Int64  // time.Duration
	blackhole atomic.Bool

	fwdOK, fwdDrop, revOK, revDrop atomic.Uint64

	queue chan queued

	mu      sync.Mutex
	conn    *net.UDPConn // nil before Start and after Stop
	clients map[netip.AddrPort]*mapping
	cancel  context.CancelFunc
	wg      sync.WaitGroup
}

// mapping is one client's path through the relay.
type mapping struct {
	client netip.AddrPort
	up     *net.UDPConn // connected to the target
	last   atomic.Int64 // time since Relay.epoch of the last datagram either way
}

// queued is a forward datagram held back until due.
type queued struct {
	m   *mapping
	due time.Time
	b   []byte
}

// NewRelay checks cfg. It opens no socket.
func NewRelay(cfg RelayConfig, log *slog.Logger) (*Relay, error) {
	var errs []error
	if _, _, err := net.SplitHostPort(cfg.Listen); err != nil {
		errs = append(errs, fmt.Errorf("listen: %q is not host:port; write e.g. \"127.0.0.21:0\"", cfg.Listen))
	}
	target, err := netip.ParseAddrPort(cfg.Target)
	if err != nil || target.Port() == 0 {
		errs = append(errs, fmt.Errorf("target: %q is not IP:port; write the reflector's address, e.g. \"127.0.0.1:862\"", cfg.Target))
	}
	if cfg.Idle < 0 {
		errs = append(errs, fmt.Errorf("idle: %v is negative; set 0 for the default (%v)", cfg.Idle, defaultIdle))
	}
	if err := errors.Join(errs...); err != nil {
		return nil, err
	}
	if cfg.Idle == 0 {
		cfg.Idle = defaultIdle
	}
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	return &Relay{
		cfg: cfg, log: log, target: target,
		queue:   make(chan queued, maxQueued),
		clients: make(map[netip.AddrPort]*mapping),
	}, nil
}

// Start binds the listening socket and returns once the relay forwards.
// ctx bounds the bind only; the relay runs until Stop.
func (r *Relay) Start(ctx context.Context) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.cancel != nil {
		return errors.New("relay already started")
	}
	pc, err := new(net.ListenConfig).ListenPacket(ctx, "udp", r.cfg.Listen)
	if err != nil {
		return fmt.Errorf("listen %s: %w", r.cfg.Listen, err)
	}
	conn := pc.(*net.UDPConn)
	run, cancel := context.WithCancel(context.WithoutCancel(ctx))
	r.conn, r.cancel, r.epoch = conn, cancel, time.Now()
	rng := rand.New(rand.NewPCG(uint64(r.cfg.Seed), 0))
	r.wg.Go(func() { r.forward(conn, rng) })
	r.wg.Go(func() { r.pace(run) })
	r.wg.Go(func() { r.expire(run) })
	return nil
}

// Stop closes every socket and waits for the relay's goroutines, or gives
// up when ctx ends. Datagrams still delayed are dropped.
func (r *Relay) Stop(ctx context.Context) error {
	r.mu.Lock()
	conn, cancel := r.conn, r.cancel
	r.conn = nil
	for c, m := range r.clients {
		m.up.Close()
		delete(r.clients, c)
	}
	r.mu.Unlock()
	if conn == nil {
		return nil
	}
	cancel()
	err := conn.Close()
	if err := waitctx.Wait(ctx, &r.wg); err != nil {
		return fmt.Errorf("stop relay: %w", err)
	}
	if err != nil {
		return fmt.Errorf("close %s: %w", r.cfg.Listen, err)
	}
	return nil
}

// Addr is the address the clients send to, nil when the relay is not
// running.
func (r *Relay) Addr() net.Addr {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.conn == nil {
		return nil
	}
	return r.conn.LocalAddr()
}

// SetLoss drops each forward datagram with probability pct/100 (clamped
// to 0..100), drawn from the seeded generator.
func (r *Relay) SetLoss(pct float64) {
	r.loss.Store(math.Float64bits(min(max(pct, 0), 100)))
}

// SetDelay holds each forward datagram back by d (negative counts as 0)
// from its arrival. Datagrams leave in the order they came, so lowering
// the delay does not reorder them: the new ones wait behind the old.
func (r *Relay) SetDelay(d time.Duration) {
	r.delay.Store(int64(max(d, 0)))
}

// SetBlackhole drops every datagram both ways while on, including the
// forward ones already held back by SetDelay.
func (r *Relay) SetBlackhole(on bool) {
	r.blackhole.Store(on)
}

// Stats returns the counts so far.
func (r *Relay) Stats() RelayStats {
	r.mu.Lock()
	clients := len(r.clients)
	r.mu.Unlock()
	return RelayStats{
		Forward: RelayCounts{Forwarded: r.fwdOK.Load(), Dropped: r.fwdDrop.Load()},
		Reverse: RelayCounts{Forwarded: r.revOK.Load(), Dropped: r.revDrop.Load()},
		Clients: clients,
	}
}

// forward reads the clients' datagrams, decides their fate and queues
// the survivors. It alone draws from rng, so the draws follow the order
// of arrival.
func (r *Relay) forward(conn *net.UDPConn, rng *rand.Rand) {
	buf := make([]byte, maxDatagram)
	for {
		n, client, err := conn.ReadFromUDPAddrPort(buf)
		if errors.Is(err, net.ErrClosed) {
			return
		}
		if err != nil {
			r.log.Debug("relay read", "err", err)
			time.Sleep(10 * time.Millisecond) // no busy loop if the error persists
			continue
		}
		// Draw for every datagram, whatever the settings, so that one seed
		// gives one sequence of fates.
		lost := rng.Float64()*100 < math.Float64frombits(r.loss.Load())
		if lost || r.blackhole.Load() {
			r.fwdDrop.Add(1)
			continue
		}
		m := r.mapping(netip.AddrPortFrom(client.Addr().Unmap(), client.Port()), conn)
		if m == nil {
			r.fwdDrop.Add(1)
			continue
		}
		m.touch(r.epoch)
		select {
		case r.queue <- queued{m: m, due: time.Now().Add(time.Duration(r.delay.Load())), b: append([]byte(nil), buf[:n]...)}:
		default:
			r.fwdDrop.Add(1)
		}
	}
}

// pace sends the queued datagrams upstream when they are due.
func (r *Relay) pace(ctx context.Context) {
	timer := time.NewTimer(time.Hour)
	defer timer.Stop()
	for {
		var q queued
		select {
		case <-ctx.Done():
			return
		case q = <-r.queue:
		}
		if wait := time.Until(q.due); wait > 0 {
			timer.Reset(wait)
			select {
			case <-ctx.Done():
				return
			case <-timer.C:
			}
		}
		if r.blackhole.Load() {
			r.fwdDrop.Add(1)
			continue
		}
		if _, err := q.m.up.Write(q.b); err != nil {
			r.fwdDrop.Add(1) // the mapping expired meanwhile, or the target refused
			continue
		}
		r.fwdOK.Add(1)
	}
}

// mapping returns client's mapping, opening it on first use; nil when
// the relay is stopping, full, or cannot open a socket.
func (r *Relay) mapping(client netip.AddrPort, conn *net.UDPConn) *mapping {
	r.mu.Lock()
	defer r.mu.Unlock()
	if m, ok := r.clients[client]; ok {
		return m
	}
	if r.conn == nil || len(r.clients) >= maxClients {
		return nil
	}
	// Leave from the relay's own address when it has one, so the target
	// sees each relay (each "ISP") as a distinct source.
	var laddr *net.UDPAddr
	if ap, err := netip.ParseAddrPort(conn.LocalAddr().String()); err == nil && !ap.Addr().IsUnspecified() {
		laddr = net.UDPAddrFromAddrPort(netip.AddrPortFrom(ap.Addr(), 0))
	}
	up, err := net.DialUDP("udp", laddr, net.UDPAddrFromAddrPort(r.target))
	if err != nil {
		r.log.Warn("relay cannot open upstream socket", "client", client.String(), "err", err)
		return nil
	}
	m := &mapping{client: client, up: up}
	m.touch(r.epoch)
	r.clients[client] = m
	r.wg.Go(func() { r.reverse(m, conn) })
	r.log.Debug("relay mapping opened", "client", client.String(), "upstream", up.LocalAddr().String())
	return m
}

// reverse returns the target's datagrams to m's client until m is closed.
func (r *Relay) reverse(m *mapping, conn *net.UDPConn) {
	buf := make([]byte, maxDatagram)
	for {
		n, err := m.up.Read(buf)
		if errors.Is(err, net.ErrClosed) {
			return
		}
		if err != nil {
			// A connected UDP socket reports an ICMP error once, e.g. when
			// the target is not listening; the next read waits again.
			r.log.Debug("relay upstream read", "client", m.client.String(), "err", err)
			continue
		}
		m.touch(r.epoch)
		if r.blackhole.Load() {
			r.revDrop.Add(1)
			continue
		}
		if _, err := conn.WriteToUDPAddrPort(buf[:n], m.client); err != nil {
			r.revDrop.Add(1)
			continue
		}
		r.revOK.Add(1)
	}
}

// expire closes the mappings idle for longer than cfg.Idle.
func (r *Relay) expire(ctx context.Context) {
	t := time.NewTicker(max(r.cfg.Idle/4, 10*time.Millisecond))
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		now := time.Since(r.epoch)
		r.mu.Lock()
		for c, m := range r.clients {
			if now-time.Duration(m.last.Load()) > r.cfg.Idle {
				m.up.Close()
				delete(r.clients, c)
				r.log.Debug("relay mapping expired", "client", c.String())
			}
		}
		r.mu.Unlock()
	}
}

func (m *mapping) touch(epoch time.Time) {
	m.last.Store(int64(time.Since(epoch)))
}
