package edge

import (
	"bufio"
	"context"
	"io"
	"log/slog"
	"net"
	"sync"
	"sync/atomic"
	"syscall"
	"time"
	"unsafe"

	"golang.org/x/sys/unix"

	"github.com/sdnoc/sdnoc/edge/sites"
)

// originPool keeps connections to one origin of one site (seed 002: TCP
// pre-pooling done safely):
//
//   - warm connections are opened ahead of demand;
//   - an idle connection is closed by us after IdleTimeout, which a site's
//     config must set below the origin's own keep-alive timeout, so the
//     origin never closes one we are about to use;
//   - before reuse, a non-blocking peek tells whether the origin closed the
//     connection (or sent something unasked, such as a 408) while it sat
//     idle, and such a connection is dropped, not written to;
//   - a request that fails on a reused connection before any byte of the
//     response is retried once on a fresh one (see relay).
type originPool struct {
	site, addr string
	cfg        sites.Pool
	health     sites.HealthCheck
	host       string // the Host of health checks: the site's first name
	log        *slog.Logger
	m          *originMetrics

	mu     sync.Mutex
	idle   []*upConn // last in, first out: busy ones stay warm, spare ones age out
	closed bool
	gone   atomic.Bool // closed, for the event loops' idle connections

	healthy  atomic.Bool
	inflight atomic.Int64

	stop chan struct{}
	wg   sync.WaitGroup
}

// upConn is one connection to an origin.
type upConn struct {
	c         net.Conn
	raw       syscall.RawConn
	r         *bufio.Reader
	w         *bufio.Writer
	idleSince time.Time
	reused    bool // served a request before this one

	// The liveness check's state, kept here so that a check allocates
	// nothing.
	peekBuf  [1]byte
	peekOK   bool
	peekFunc func(fd uintptr) bool
}

func newOriginPool(site string, o sites.Origin, cfg sites.Pool, log *slog.Logger, m *originMetrics) *originPool {
	p := &originPool{
		site: site, addr: o.Address, cfg: cfg, m: m,
		log:  log.With("site", site, "origin", o.Address),
		stop: make(chan struct{}),
	}
	p.healthy.Store(true)
	return p
}

// start runs the pool's upkeep: closing connections at their idle timeout
// and keeping Warm idle connections open.
func (p *originPool) start() {
	p.wg.Go(p.upkeep)
	p.wg.Go(p.checkHealth)
}

// close stops the upkeep and closes every idle connection. Connections in
// use are closed by their requests when they finish (put sees closed).
func (p *originPool) close() {
	p.mu.Lock()
	if p.closed {
		p.mu.Unlock()
		return
	}
	p.closed = true
	p.gone.Store(true)
	idle := p.idle
	p.idle = nil
	p.mu.Unlock()
	close(p.stop)
	for _, c := range idle {
		c.c.Close()
	}
	p.m.idle.Sub(float64(len(idle)))
	p.wg.Wait()
}

func (p *originPool) upkeep() {
	tick := max(p.cfg.IdleTimeout/4, 10*time.Millisecond)
	t := time.NewTicker(min(tick, time.Second))
	defer t.Stop()
	for {
		p.expire(time.Now())
		p.warm()
		select {
		case <-p.stop:
			return
		case <-t.C:
		}
	}
}

// expire closes idle connections that reached the idle timeout. The stack
// is ordered by idleSince, oldest at the bottom.
func (p *originPool) expire(now time.Time) {
	p.mu.Lock()
	n := 0
	for n < len(p.idle) && now.Sub(p.idle[n].idleSince) >= p.cfg.IdleTimeout {
		n++
	}
	old := make([]*upConn, n)
	copy(old, p.idle[:n])
	p.idle = append(p.idle[:0], p.idle[n:]...)
	p.mu.Unlock()
	for _, c := range old {
		c.c.Close()
	}
	if n > 0 {
		p.m.idle.Sub(float64(n))
		p.m.expired.Add(float64(n))
	}
}

// warm opens connections until Warm are idle, when the origin is healthy.
func (p *originPool) warm() {
	if !p.healthy.Load() {
		return
	}
	p.mu.Lock()
	need := p.cfg.Warm - len(p.idle)
	p.mu.Unlock()
	for range need {
		ctx, cancel := context.WithTimeout(context.Background(), p.cfg.DialTimeout)
		c, err := p.dial(ctx)
		cancel()
		if err != nil {
			p.log.Debug("warm connection failed", "err", err)
			return
		}
		p.m.warmed.Inc()
		p.put(c)
	}
}

func (p *originPool) dial(ctx context.Context) (*upConn, error) {
	d := net.Dialer{Timeout: p.cfg.DialTimeout, KeepAlive: 15 * time.Second}
	c, err := d.DialContext(ctx, "tcp", p.addr)
	if err != nil {
		p.m.dialErrors.Inc()
		return nil, err
	}
	p.m.dials.Inc()
	return newUpConn(c, c), nil
}

// newUpConn wraps an origin connection; r is where its bytes are read
// (c itself, or c after bytes already read).
func newUpConn(c net.Conn, r io.Reader) *upConn {
	uc := &upConn{c: c, r: bufio.NewReaderSize(r, 8<<10), w: bufio.NewWriterSize(c, 8<<10)}
	if sc, ok := c.(syscall.Conn); ok {
		uc.raw, _ = sc.SyscallConn()
	}
	return uc
}

// recentlyUsed is how long after its last request an idle connection is
// reused without a liveness check by a request that can be retried.
const recentlyUsed = 20 * time.Millisecond

// get returns a connection: an idle one that is still alive, or a new one.
// fresh forces a new connection (the retry after a stale one); retryable
// says the request can be sent again if the connection fails before any
// response byte.
func (p *originPool) get(ctx context.Context, fresh, retryable bool) (*upConn, error) {
	if !fresh {
		if c := p.takeIdle(retryable); c != nil {
			return c, nil
		}
	}
	return p.dial(ctx)
}

// takeIdle returns an idle connection that is still alive, or nil.
func (p *originPool) takeIdle(retryable bool) *upConn {
	for {
		p.mu.Lock()
		n := len(p.idle)
		if n == 0 {
			p.mu.Unlock()
			return nil
		}
		c := p.idle[n-1]
		p.idle = p.idle[:n-1]
		p.mu.Unlock()
		p.m.idle.Dec()
		if !p.reusable(time.Since(c.idleSince), retryable, c.alive) {
			c.c.Close()
			continue
		}
		return c
	}
}

// reusable decides whether a connection idle for idle may carry a request
// (counting the ones it may not): under the idle timeout, and alive when
// checked. A request that may be retried skips the check on a connection
// that was busy a moment ago.
func (p *originPool) reusable(idle time.Duration, retryable bool, alive func() bool) bool {
	if idle >= p.cfg.IdleTimeout {
		p.m.expired.Inc()
		return false
	}
	if p.cfg.LivenessCheck && (!retryable || idle >= recentlyUsed) && !alive() {
		p.m.stale.WithLabelValues("liveness").Inc()
		return false
	}
	return true
}

// put returns a connection that finished a request cleanly.
func (p *originPool) put(c *upConn) {
	c.idleSince = time.Now()
	p.mu.Lock()
	if p.closed || len(p.idle) >= p.cfg.MaxIdle {
		p.mu.Unlock()
		c.c.Close()
		return
	}
	p.idle = append(p.idle, c)
	p.mu.Unlock()
	p.m.idle.Inc()
}

// alive peeks at an idle connection without blocking. Nothing to read
// means the origin still holds it open; end of stream means it closed it;
// bytes mean it said something unasked (a 408, say), so the next response
// on it would not be ours.
func (c *upConn) alive() bool {
	if c.r.Buffered() > 0 {
		return false
	}
	if c.raw == nil {
		return true
	}
	if c.peekFunc == nil {
		c.peekFunc = c.peek
	}
	c.peekOK = false
	err := c.raw.Read(c.peekFunc)
	return err == nil && c.peekOK
}

func (c *upConn) peek(fd uintptr) bool {
	c.peekOK = peekEmpty(fd, &c.peekBuf)
	return true
}

// peekEmpty tells whether a socket has nothing to read and is not closed.
func peekEmpty(fd uintptr, buf *[1]byte) bool {
	// recvfrom without an address buffer: x/sys's Recvfrom would allocate
	// one on every check.
	_, _, errno := unix.Syscall6(unix.SYS_RECVFROM, fd, uintptr(unsafe.Pointer(&buf[0])), 1,
		unix.MSG_PEEK|unix.MSG_DONTWAIT, 0, 0)
	return errno == unix.EAGAIN
}
