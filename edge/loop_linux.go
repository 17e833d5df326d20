//go:build linux

package edge

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"os"
	"runtime"
	"runtime/debug"
	"sync"
	"sync/atomic"
	"syscall"
	"time"
	"unsafe"

	"golang.org/x/sys/unix"
)

// The event loop serves plain HTTP/1.1 the way nginx does: a few workers,
// each a goroutine waiting in its own epoll set on its client connections
// and on the origin connections they use. With a goroutine per
// connection, Go's netpoller wakes one goroutine per read; on a busy
// 2-core machine those wake-ups left 7-14 % of the CPU idle and spread
// latency (p99 6.8 ms against nginx's 5.3 ms). The loop relays what most
// traffic is: requests without a body or with one up to 64 KiB, and
// responses of any framing (chunked.go), 1xx included. A request the
// loop does not take (a larger or chunked body, an upgrade, an unknown
// host, a malformed head) goes to the goroutine engine (conn.go) before
// anything was sent, and the engine reads it again from its first byte.
// Once the engine is done with it, the connection comes back to a loop
// (handBack), but not right after an upload: more tend to follow, and
// handing each over and back halved their rate.

const (
	loopRead    = 16 << 10               // one read
	loopMaxOut  = 256 << 10              // response bytes held for a slow client before its origin is read no further
	loopMaxBody = 64 << 10               // a larger request body streams through the goroutine engine
	loopTick    = 100 * time.Millisecond // how often timeouts and drains are checked
	loopEvents  = 256
)

// loopEngine is available on this platform.
const loopEngine = true

type loop struct {
	p      *Proxy
	epfd   int
	wakefd int

	mu       sync.Mutex
	incoming []accepted

	stop atomic.Bool
	cut  atomic.Bool  // a drain's deadline: close every connection
	open atomic.Int64 // client connections

	// Owned by the loop's thread.
	fds      []fdEntry // by descriptor
	gen      uint32
	clients  map[*lconn]struct{}
	idle     map[*originPool][]*lup
	scratch  []byte
	decoded  []byte // a chunked body's data, between origin and client
	sw       sliceWriter
	bw       *bufio.Writer
	now      time.Time
	lastScan time.Time
	events   [loopEvents]unix.EpollEvent
}

type accepted struct {
	fd      int
	ip      string
	pinned  *site
	pending []byte // read already (a connection handed back)
}

type fdEntry struct {
	gen uint32
	c   *lconn
	u   *lup
}

// lconn is a client connection of the loop.
type lconn struct {
	fd         int
	ip         string
	pinned     *site
	site       *site // of the last request
	in         []byte
	out        []byte
	outOff     int
	req        head
	reqLen     int // bytes of in the current request took
	busy       bool
	x          exchange
	start      time.Time
	up         *lup
	attempt    int
	sentHead   bool
	remaining  int64        // response body bytes still to come from the origin
	body       bytes.Reader // the request's body, all read: what c.x.body reads
	framing    framing      // of the response body from the origin
	chunkedOut bool         // the body goes chunked to the client
	chunks     chunkDecoder
	closing    bool // close once out is written
	eof        bool // the client will send nothing more
	hup        bool // the client closed its side: read to the end
	rpending   bool // stopped reading before the socket was empty
	serving    bool // in serve: end does not start the next request itself
	lastActive time.Time
	deadline   time.Time // for the response head
}

// lup is an origin connection of the loop.
type lup struct {
	fd         int
	op         *originPool
	c          *lconn // nil when idle
	in         []byte
	resp       head
	out        []byte // the request
	outOff     int    // of out, written
	reused     bool
	connecting bool
	keep       bool // the origin keeps the connection after this response
	rpending   bool
	hup        bool // the origin closed its side: read to the end
	idleSince  time.Time
}

type sliceWriter struct{ b []byte }

func (s *sliceWriter) Write(p []byte) (int, error) {
	s.b = append(s.b, p...)
	return len(p), nil
}

func newLoop(p *Proxy) (*loop, error) {
	epfd, err := unix.EpollCreate1(unix.EPOLL_CLOEXEC)
	if err != nil {
		return nil, fmt.Errorf("epoll_create1: %w", err)
	}
	wakefd, err := unix.Eventfd(0, unix.EFD_NONBLOCK|unix.EFD_CLOEXEC)
	if err != nil {
		unix.Close(epfd)
		return nil, fmt.Errorf("eventfd: %w", err)
	}
	ev := unix.EpollEvent{Events: unix.EPOLLIN, Fd: int32(wakefd)}
	if err := unix.EpollCtl(epfd, unix.EPOLL_CTL_ADD, wakefd, &ev); err != nil {
		unix.Close(epfd)
		unix.Close(wakefd)
		return nil, fmt.Errorf("epoll_ctl: %w", err)
	}
	l := &loop{
		p: p, epfd: epfd, wakefd: wakefd,
		clients: map[*lconn]struct{}{},
		idle:    map[*originPool][]*lup{},
		scratch: make([]byte, loopRead),
	}
	l.bw = bufio.NewWriterSize(&l.sw, 4<<10)
	return l, nil
}

// add hands an accepted connection to the loop.
func (l *loop) add(a accepted) {
	l.mu.Lock()
	if l.wakefd < 0 {
		l.mu.Unlock()
		unix.Close(a.fd) // the loop has ended
		return
	}
	l.incoming = append(l.incoming, a)
	l.mu.Unlock()
	l.wake()
}

func (l *loop) wake() {
	one := uint64(1)
	l.mu.Lock()
	if l.wakefd >= 0 {
		unix.Write(l.wakefd, (*[8]byte)(unsafe.Pointer(&one))[:])
	}
	l.mu.Unlock()
}

// run serves until stop; it closes what it still holds on the way out.
func (l *loop) run() {
	defer l.shutdown()
	l.lastScan = time.Now()
	wait := 0
	for !l.stop.Load() {
		// While busy, poll without blocking: a blocking epoll_wait gives
		// the thread's P away (sysmon retakes it after 20 µs) and costs a
		// thread switch to get one back, several a request in all. Idle,
		// yield once, then block until the next event or tick (gnet does
		// the same).
		n, err := unix.EpollWait(l.epfd, l.events[:], wait)
		if err != nil && err != unix.EINTR {
			l.p.log.Error("event loop: epoll_wait failed", "err", err)
			return
		}
		if n > 0 {
			wait = 0
		} else if wait == 0 {
			wait = int(loopTick / time.Millisecond)
			runtime.Gosched()
			continue
		}
		l.now = time.Now()
		for i := range n {
			l.dispatch(l.events[i])
		}
		if l.now.Sub(l.lastScan) >= loopTick {
			l.lastScan = l.now
			l.scan()
		}
	}
}

func (l *loop) dispatch(ev unix.EpollEvent) {
	fd := int(ev.Fd)
	if fd == l.wakefd {
		var b [8]byte
		unix.Read(l.wakefd, b[:])
		l.takeIncoming()
		l.scan()
		return
	}
	if fd >= len(l.fds) || l.fds[fd].gen != uint32(ev.Pad) {
		return // a descriptor closed earlier in this batch
	}
	e := l.fds[fd]
	defer func() {
		if v := recover(); v != nil {
			// A bug costs the connection, never the process.
			l.p.log.Error("panic in the event loop", "panic", v, "stack", string(debug.Stack()))
			l.p.m.panics.Inc()
			if e.c != nil {
				l.closeClient(e.c)
			} else if e.u != nil {
				if e.u.c != nil {
					l.closeClient(e.u.c)
				} else {
					l.closeUp(e.u)
				}
			}
		}
	}()
	switch {
	case e.c != nil:
		l.clientEvent(e.c, ev.Events)
	case e.u != nil:
		l.upEvent(e.u, ev.Events)
	}
}

func (l *loop) register(fd int, e fdEntry) error {
	l.gen++
	e.gen = l.gen
	if fd >= len(l.fds) {
		l.fds = append(l.fds, make([]fdEntry, fd+1-len(l.fds)+64)...)
	}
	ev := unix.EpollEvent{Events: unix.EPOLLIN | unix.EPOLLOUT | unix.EPOLLRDHUP | unix.EPOLLET, Fd: int32(fd), Pad: int32(e.gen)}
	if err := unix.EpollCtl(l.epfd, unix.EPOLL_CTL_ADD, fd, &ev); err != nil {
		return err
	}
	l.fds[fd] = e
	return nil
}

// forget takes fd out of the loop without closing it.
func (l *loop) forget(fd int) {
	unix.EpollCtl(l.epfd, unix.EPOLL_CTL_DEL, fd, nil)
	l.fds[fd] = fdEntry{}
}

func (l *loop) takeIncoming() {
	l.mu.Lock()
	in := l.incoming
	l.incoming = nil
	l.mu.Unlock()
	for _, a := range in {
		c := &lconn{fd: a.fd, ip: a.ip, pinned: a.pinned, in: a.pending, lastActive: l.now}
		if l.p.draining.Load() || l.stop.Load() {
			unix.Close(a.fd)
			continue
		}
		if err := l.register(a.fd, fdEntry{c: c}); err != nil {
			l.p.log.Warn("event loop: cannot watch a connection", "err", err)
			unix.Close(a.fd)
			continue
		}
		l.clients[c] = struct{}{}
		l.open.Add(1)
		l.p.m.conns.Inc()
		if len(c.in) > 0 {
			l.serve(c)
		}
	}
}

// The client side.

func (l *loop) clientEvent(c *lconn, ev uint32) {
	if ev&unix.EPOLLOUT != 0 && len(c.out) > c.outOff {
		if !l.flush(c) {
			return
		}
	}
	if ev&(unix.EPOLLRDHUP|unix.EPOLLHUP|unix.EPOLLERR) != 0 {
		c.hup = true // read to the end: no event will follow the last bytes
	}
	if ev&(unix.EPOLLIN|unix.EPOLLRDHUP|unix.EPOLLHUP|unix.EPOLLERR) != 0 {
		l.readClient(c)
	}
}

func (l *loop) readClient(c *lconn) {
	c.rpending = false
	for !c.eof {
		if len(c.in) >= maxHeadBytes+loopMaxBody {
			c.rpending = true // a whole head and body fit; pipelined ones wait
			break
		}
		n, err := rawIO(unix.SYS_READ, c.fd, l.scratch)
		if n > 0 {
			c.in = append(c.in, l.scratch[:n]...)
			c.lastActive = l.now
			if n < len(l.scratch) && !c.hup {
				break // the socket is empty: the next bytes bring an event
			}
			continue
		}
		if err == unix.EAGAIN {
			break
		}
		if err == unix.EINTR {
			continue
		}
		c.eof = true // end of stream, or a reset
	}
	if !c.busy {
		l.serve(c)
	}
}

// serve starts the requests buffered on an idle connection.
func (l *loop) serve(c *lconn) {
	if c.serving {
		return
	}
	c.serving = true
	defer func() { c.serving = false }()
	for !c.busy && !c.closing && c.fd >= 0 {
		if l.p.draining.Load() && len(c.in) == 0 {
			// A request already coming in is served (drain's deadline
			// bounds the wait); no new one is taken.
			c.closing = true
			break
		}
		if len(c.in) == 0 {
			break
		}
		n, err := cutHead(c.in, &c.req)
		if err != nil {
			l.handOver(c)
			return
		}
		if n == 0 {
			if len(c.in) >= maxHeadBytes {
				l.handOver(c) // the engine answers 431
				return
			}
			if c.eof {
				c.closing = true // closed in the middle of a head
			}
			break
		}
		if parseRequest(&c.req) != nil {
			l.handOver(c) // the engine answers 400
			return
		}
		if cl := c.req.contentLength; cl > 0 && cl <= loopMaxBody && int64(len(c.in)-n) < cl && !c.eof && !c.req.chunked {
			break // a small body, still on its way
		}
		c.reqLen = n
		if !l.start(c) {
			return
		}
	}
	if c.fd >= 0 && !c.busy && (c.closing || (c.eof && len(c.in) == 0)) && len(c.out) == c.outOff {
		l.closeClient(c)
	}
}

// start begins the exchange of the request at the start of c.in; false
// means the connection left the loop.
func (l *loop) start(c *lconn) bool {
	p := l.p
	r := &c.req
	if r.chunked || r.upgrade || r.expect100 || r.contentLength > loopMaxBody || int64(len(c.in)-c.reqLen) < r.contentLength ||
		(len(r.target) > 0 && r.target[0] != '/' && r.target[0] != '*') {
		l.handOver(c)
		return false
	}
	s := c.pinned
	if s == nil {
		s = p.table.Load().lookup(r.host)
	}
	if s == nil {
		l.handOver(c)
		return false
	}
	c.site = s
	c.busy = true
	c.start = l.now
	c.attempt = 0
	c.sentHead = false
	c.x = exchange{site: s, req: r, clientIP: c.ip, scheme: "http", closeAfter: !r.keepsAlive() || p.draining.Load(), bodyLen: -1}
	if r.contentLength > 0 {
		// The whole body is here: it goes to the origin with the head.
		body := c.in[c.reqLen : c.reqLen+int(r.contentLength)]
		c.reqLen += len(body)
		c.body.Reset(body)
		c.x.body, c.x.bodyLen = &c.body, r.contentLength
	}
	p.inflight.Add(1)
	if s.inspector != nil {
		if v := p.inspect(s, r); v.Block {
			l.respond(c, v.Status, "blocked by rule "+v.Rule)
			return true
		}
	}
	return l.toOrigin(c, false)
}

// toOrigin sends the current request on an origin connection; false means
// the client connection left the loop.
func (l *loop) toOrigin(c *lconn, fresh bool) bool {
	s := c.site
	op := s.pick()
	c.x.origin = op.addr
	u, err := l.upstream(op, fresh, c.retryable())
	if err != nil {
		l.p.log.Warn("origin unreachable", "site", s.cfg.Name, "origin", op.addr, "err", err)
		l.respond(c, statusBadGateway, "origin unreachable")
		return true
	}
	if u == nil {
		// No idle connection and a name to resolve: the goroutine engine
		// dials. Nothing was sent, so it starts the request over.
		c.busy = false
		l.p.inflight.Add(-1)
		l.handOver(c)
		return false
	}
	u.c = c
	c.up = u
	u.in = u.in[:0]
	u.out = l.compose(u.out[:0], func(w *bufio.Writer) { writeRequestHead(w, &c.x) })
	if c.x.body != nil {
		u.out = append(u.out, c.in[c.reqLen-int(c.x.bodyLen):c.reqLen]...)
	}
	u.outOff = 0
	c.deadline = l.now.Add(s.cfg.Timeouts.ResponseHeader)
	op.inflight.Add(1)
	if !u.connecting {
		l.writeUp(u)
	}
	return true
}

// retryable: the request may go again on a fresh connection when a reused
// one failed before any answer (seed 002). As in the goroutine engine,
// not with a body.
func (c *lconn) retryable() bool {
	return isIdempotent(c.req.method) && c.site.cfg.Pool.Retry && c.x.body == nil
}

// respond ends the current exchange with a response of our own.
func (l *loop) respond(c *lconn, status int, msg string) {
	c.x.status = status
	c.out = l.compose(c.out, func(w *bufio.Writer) { writeFail(w, status, msg, c.x.closeAfter) })
	l.end(c)
}

// end finishes the current exchange: metrics, the next request.
func (l *loop) end(c *lconn) {
	if u := l.detach(c); u != nil {
		if u.keep && !u.hup && len(u.out) == 0 && !u.op.gone.Load() && !l.stop.Load() && len(l.idle[u.op]) < u.op.cfg.MaxIdle {
			u.idleSince = l.now
			u.reused = true
			u.rpending = false
			l.idle[u.op] = append(l.idle[u.op], u)
			u.op.m.idle.Inc()
		} else {
			l.closeUp(u)
		}
	}
	c.busy = false
	l.p.inflight.Add(-1)
	l.p.finish(&c.x, c.start)
	c.in = c.in[:copy(c.in, c.in[c.reqLen:])]
	c.reqLen = 0
	c.lastActive = l.now
	if c.x.closeAfter {
		c.closing = true
	}
	if !l.flush(c) {
		return
	}
	if c.rpending {
		l.readClient(c)
		return
	}
	l.serve(c)
}

// flush writes what is waiting for the client; false means the connection
// closed.
func (l *loop) flush(c *lconn) bool {
	for len(c.out) > c.outOff {
		n, err := rawIO(unix.SYS_WRITE, c.fd, c.out[c.outOff:])
		if n > 0 {
			c.outOff += n
			continue
		}
		if err == unix.EAGAIN {
			return true
		}
		if err == unix.EINTR {
			continue
		}
		l.closeClient(c)
		return false
	}
	c.out, c.outOff = c.out[:0], 0
	if c.up != nil && c.up.rpending {
		l.readUp(c.up)
		return c.fd >= 0
	}
	if !c.busy && c.closing {
		l.closeClient(c)
		return false
	}
	return true
}

func (l *loop) closeClient(c *lconn) {
	if c.fd < 0 {
		return
	}
	if c.busy {
		l.dropUp(c)
		c.busy = false
		l.p.inflight.Add(-1)
		l.p.finish(&c.x, c.start)
	}
	l.fds[c.fd] = fdEntry{}
	unix.Close(c.fd)
	c.fd = -1
	delete(l.clients, c)
	l.open.Add(-1)
	l.p.m.conns.Dec()
}

// The origin side.

// upstream returns an origin connection: one of the loop's idle ones, one
// from the origin's shared pool (warmed ahead of demand), or a new one;
// nil with no error when a new one needs a name resolved.
func (l *loop) upstream(op *originPool, fresh, retryable bool) (*lup, error) {
	for !fresh && len(l.idle[op]) > 0 {
		st := l.idle[op]
		u := st[len(st)-1]
		l.idle[op] = st[:len(st)-1]
		op.m.idle.Dec()
		if op.gone.Load() || !op.reusable(l.now.Sub(u.idleSince), retryable, u.alive) {
			l.closeUp(u)
			continue
		}
		return u, nil
	}
	if !fresh {
		if uc := op.takeIdle(retryable); uc != nil {
			if u := l.adopt(op, uc); u != nil {
				return u, nil
			}
		}
	}
	return l.connect(op)
}

// adopt takes a pooled connection into the loop.
func (l *loop) adopt(op *originPool, uc *upConn) *lup {
	defer uc.c.Close()
	if uc.r.Buffered() > 0 {
		return nil
	}
	fd := dupConn(uc.c)
	if fd < 0 {
		return nil
	}
	u := &lup{fd: fd, op: op, reused: uc.reused}
	if err := l.register(fd, fdEntry{u: u}); err != nil {
		unix.Close(fd)
		return nil
	}
	return u
}

func (l *loop) connect(op *originPool) (*lup, error) {
	ap, err := netip.ParseAddrPort(op.addr)
	if err != nil {
		return nil, nil
	}
	var sa unix.Sockaddr
	family := unix.AF_INET
	if ap.Addr().Is4() {
		sa = &unix.SockaddrInet4{Port: int(ap.Port()), Addr: ap.Addr().As4()}
	} else {
		family = unix.AF_INET6
		sa = &unix.SockaddrInet6{Port: int(ap.Port()), Addr: ap.Addr().As16()}
	}
	fd, err := unix.Socket(family, unix.SOCK_STREAM|unix.SOCK_NONBLOCK|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		op.m.dialErrors.Inc()
		return nil, fmt.Errorf("socket: %w", err)
	}
	unix.SetsockoptInt(fd, unix.IPPROTO_TCP, unix.TCP_NODELAY, 1)
	unix.SetsockoptInt(fd, unix.SOL_SOCKET, unix.SO_KEEPALIVE, 1)
	unix.SetsockoptInt(fd, unix.IPPROTO_TCP, unix.TCP_KEEPIDLE, 15)
	unix.SetsockoptInt(fd, unix.IPPROTO_TCP, unix.TCP_KEEPINTVL, 15)
	if err := unix.Connect(fd, sa); err != nil && err != unix.EINPROGRESS {
		unix.Close(fd)
		op.m.dialErrors.Inc()
		return nil, fmt.Errorf("connect %s: %w", op.addr, err)
	}
	u := &lup{fd: fd, op: op, connecting: true}
	if err := l.register(fd, fdEntry{u: u}); err != nil {
		unix.Close(fd)
		return nil, fmt.Errorf("epoll_ctl: %w", err)
	}
	return u, nil
}

// alive peeks at an idle connection, as upConn.alive does.
func (u *lup) alive() bool {
	var b [1]byte
	return peekEmpty(uintptr(u.fd), &b)
}

func (l *loop) closeUp(u *lup) {
	if u.fd < 0 {
		return
	}
	l.fds[u.fd] = fdEntry{}
	unix.Close(u.fd)
	u.fd = -1
}

func (l *loop) upEvent(u *lup, ev uint32) {
	c := u.c
	if c == nil {
		if ev&(unix.EPOLLIN|unix.EPOLLRDHUP|unix.EPOLLHUP|unix.EPOLLERR) != 0 {
			// Idle, and the origin closed it or said something unasked.
			l.dropIdle(u)
			u.op.m.stale.WithLabelValues("liveness").Inc()
		}
		return
	}
	if u.connecting {
		if ev&(unix.EPOLLOUT|unix.EPOLLERR|unix.EPOLLHUP) == 0 {
			return
		}
		if serr, err := unix.GetsockoptInt(u.fd, unix.SOL_SOCKET, unix.SO_ERROR); err != nil || serr != 0 {
			u.op.m.dialErrors.Inc()
			if err == nil {
				err = unix.Errno(serr)
			}
			l.p.log.Warn("origin unreachable", "site", c.site.cfg.Name, "origin", u.op.addr, "err", err)
			l.dropUp(c)
			l.respond(c, statusBadGateway, "origin unreachable")
			return
		}
		u.connecting = false
		u.op.m.dials.Inc()
		l.writeUp(u)
		return
	}
	if ev&unix.EPOLLOUT != 0 && len(u.out) > u.outOff {
		l.writeUp(u)
		if u.c != c {
			return
		}
	}
	if ev&(unix.EPOLLRDHUP|unix.EPOLLHUP|unix.EPOLLERR) != 0 {
		u.hup = true
	}
	if ev&(unix.EPOLLIN|unix.EPOLLRDHUP|unix.EPOLLHUP|unix.EPOLLERR) != 0 {
		l.readUp(u)
	}
}

func (l *loop) dropIdle(u *lup) {
	st := l.idle[u.op]
	for i, v := range st {
		if v == u {
			l.idle[u.op] = append(st[:i], st[i+1:]...)
			u.op.m.idle.Dec()
			break
		}
	}
	l.closeUp(u)
}

// dropUp closes the exchange's origin connection, unusable.
func (l *loop) dropUp(c *lconn) {
	if u := l.detach(c); u != nil {
		l.closeUp(u)
	}
}

// detach ends the exchange's use of its origin connection and returns it.
func (l *loop) detach(c *lconn) *lup {
	u := c.up
	if u != nil {
		c.up = nil
		u.c = nil
		u.op.inflight.Add(-1)
	}
	return u
}

func (l *loop) writeUp(u *lup) {
	for len(u.out) > u.outOff {
		n, err := rawIO(unix.SYS_WRITE, u.fd, u.out[u.outOff:])
		if n > 0 {
			u.outOff += n
			if u.outOff == len(u.out) {
				u.out, u.outOff = u.out[:0], 0
			}
			continue
		}
		if err == unix.EAGAIN {
			return
		}
		if err == unix.EINTR {
			continue
		}
		l.upFailed(u, "writing the request", err)
		return
	}
}

func (l *loop) readUp(u *lup) {
	u.rpending = false
	for u.c != nil {
		c := u.c
		if len(c.out)-c.outOff >= loopMaxOut {
			u.rpending = true // the client is slow: wait for it
			return
		}
		n, err := rawIO(unix.SYS_READ, u.fd, l.scratch)
		if n > 0 {
			l.fromOrigin(u, l.scratch[:n])
			if n < len(l.scratch) && !u.hup {
				return
			}
			continue
		}
		switch err {
		case unix.EAGAIN:
			return
		case unix.EINTR:
			continue
		case nil:
			if c.sentHead && c.framing == closeBody {
				l.endChunked(c) // the end of a body delimited by the close
				return
			}
			err = errEOF
		}
		l.upFailed(u, "reading the response", err)
		return
	}
}

var errEOF = fmt.Errorf("origin closed the connection")

// upFailed handles an origin connection that failed mid-exchange.
func (l *loop) upFailed(u *lup, what string, err error) {
	c := u.c
	s := c.site
	if !c.sentHead && len(u.in) == 0 && u.reused && c.attempt == 0 && c.retryable() {
		// Seed 002: the origin closed a pooled connection under us. The
		// request got no answer and may be sent again, once, fresh.
		u.op.m.stale.WithLabelValues("reuse_failed").Inc()
		s.m.retries.Inc()
		l.dropUp(c)
		c.attempt = 1
		l.toOrigin(c, true)
		return
	}
	if !c.sentHead {
		if u.reused && len(u.in) == 0 {
			u.op.m.stale.WithLabelValues("reuse_failed").Inc()
		}
		l.originFailed(c, what, err)
		return
	}
	l.p.log.Warn("origin response cut short", "site", s.cfg.Name, "origin", u.op.addr, "err", err)
	l.closeClient(c)
}

// originFailed answers 502 for an origin that failed before any byte of
// its response reached the client, as the goroutine engine's
// upstreamError does.
func (l *loop) originFailed(c *lconn, what string, err error) {
	l.p.log.Warn("origin failed", "site", c.site.cfg.Name, "origin", c.x.origin, "while", what, "err", err)
	c.site.m.originErrors.Inc()
	l.dropUp(c)
	l.respond(c, statusBadGateway, "origin failed")
}

// fromOrigin takes bytes of the response.
func (l *loop) fromOrigin(u *lup, b []byte) {
	c := u.c
	if c.sentHead {
		l.body(c, u, b)
		return
	}
	u.in = append(u.in, b...)
	var n int
	for {
		var err error
		n, err = cutHead(u.in, &u.resp)
		if err == nil && n > 0 {
			err = parseResponse(&u.resp)
		}
		if err == nil && u.resp.status == 101 {
			// The loop sends no upgrade request (handOver takes them).
			err = errors.New("101 to a request that asked for no upgrade")
		}
		if err != nil {
			l.originFailed(c, "reading the response head", err)
			return
		}
		if n == 0 {
			return
		}
		if u.resp.status >= 200 {
			break
		}
		// An interim response (103 Early Hints): passed on, but not to
		// an HTTP/1.0 client; the final one follows.
		if c.req.minor >= 1 {
			c.out = l.compose(c.out, func(w *bufio.Writer) { writeInterim(w, &u.resp) })
			if !l.flush(c) {
				return
			}
		}
		u.in = u.in[:copy(u.in, u.in[n:])]
	}
	fr := responseFraming(&c.req, &u.resp)
	c.x.status = u.resp.status
	u.keep = u.resp.keepsAlive() && fr != closeBody
	if c.x.body != nil && len(u.out) > 0 {
		// The origin answered before it had the whole body (seed 000):
		// the answer goes to the client at once, and the origin
		// connection, its request unfinished, is not reused.
		c.x.early = true
		switch {
		case c.site.cfg.Upload.EarlyResponse == "abort":
			c.site.m.earlyAborted.Inc()
			c.x.closeAfter = true
			u.out, u.outOff, u.keep = u.out[:0], 0, false
		case !u.keep:
			c.site.m.earlyRelayed.Inc()
			u.out, u.outOff = u.out[:0], 0 // it closes: stop sending
		default:
			c.site.m.earlyRelayed.Inc() // it may go on reading: the body goes on
		}
	}
	c.x.closeAfter = c.x.closeAfter || l.p.draining.Load() || endsByClose(&c.req, fr)
	c.out = l.compose(c.out, func(w *bufio.Writer) {
		c.chunkedOut, _ = writeResponseHead(w, &c.req, &u.resp, fr, c.x.closeAfter)
	})
	c.sentHead = true
	c.remaining = 0
	c.framing = fr
	switch fr {
	case lengthBody:
		c.remaining = u.resp.contentLength
	case chunkBody:
		c.chunks.reset()
	}
	l.body(c, u, u.in[n:])
}

// body relays response body bytes.
func (l *loop) body(c *lconn, u *lup, b []byte) {
	switch c.framing {
	case chunkBody:
		l.chunkedBody(c, u, b)
		return
	case closeBody:
		l.appendBody(c, b)
		l.flush(c)
		return
	}
	take := int64(len(b))
	if take > c.remaining {
		take = c.remaining
		u.keep = false // more than it said: the connection's framing is lost
	}
	c.out = append(c.out, b[:take]...)
	c.x.sent += take
	c.remaining -= take
	if c.remaining == 0 {
		l.end(c)
		return
	}
	l.flush(c)
}

// chunkedBody relays bytes of a chunked response body: the data goes on
// in one chunk per read (or as it is to an HTTP/1.0 client, which the
// end of the connection tells where it ends), extensions and trailers
// are dropped, as the goroutine engine does.
func (l *loop) chunkedBody(c *lconn, u *lup, b []byte) {
	data, used, err := c.chunks.decode(l.decoded[:0], b)
	l.decoded = data[:0]
	l.appendBody(c, data)
	if err != nil {
		l.p.log.Warn("origin response cut short", "site", c.site.cfg.Name, "origin", u.op.addr, "err", err)
		l.flush(c)
		l.closeClient(c)
		return
	}
	if !c.chunks.done() {
		l.flush(c)
		return
	}
	if used < len(b) {
		u.keep = false // more than the body: the connection's framing is lost
	}
	l.endChunked(c)
}

// appendBody appends body data of a response without a length to what
// goes to the client: a chunk, or as it is to an HTTP/1.0 client.
func (l *loop) appendBody(c *lconn, data []byte) {
	if c.chunkedOut {
		c.out = appendChunk(c.out, data)
	} else {
		c.out = append(c.out, data...)
	}
	c.x.sent += int64(len(data))
}

// endChunked ends a response without a length: the last chunk, when the
// client gets chunks.
func (l *loop) endChunked(c *lconn) {
	if c.chunkedOut {
		c.out = append(c.out, "0\r\n\r\n"...)
	}
	l.end(c)
}

// compose appends what write writes to dst.
func (l *loop) compose(dst []byte, write func(w *bufio.Writer)) []byte {
	l.sw.b = dst
	l.bw.Reset(&l.sw)
	write(l.bw)
	l.bw.Flush()
	dst = l.sw.b
	l.sw.b = nil
	return dst
}

// rawIO reads or writes a non-blocking socket. It never blocks, so it
// skips the scheduler's bookkeeping around a system call, four times a
// request. An error is a unix.Errno; a read at the end of the stream
// returns 0 and no error.
func rawIO(trap uintptr, fd int, b []byte) (int, error) {
	var p unsafe.Pointer
	if len(b) > 0 {
		p = unsafe.Pointer(&b[0])
	}
	n, _, errno := unix.RawSyscall(trap, uintptr(fd), uintptr(p), uintptr(len(b)))
	if errno != 0 {
		return -1, errno
	}
	return int(n), nil
}

// Hand-overs to the goroutine engine.

// handOver gives an idle connection to the goroutine engine, which reads
// the request at the start of c.in again.
func (l *loop) handOver(c *lconn) {
	l.p.m.handovers.Inc()
	nc := l.release(c)
	if nc == nil {
		return
	}
	pending := append([]byte(nil), c.in...)
	pinned := c.pinned
	l.p.wg.Go(func() { l.p.serveConn(&replayConn{Conn: nc, pending: pending}, pinned, "http") })
}

// release takes a client connection out of the loop as a net.Conn.
func (l *loop) release(c *lconn) net.Conn {
	l.forget(c.fd)
	nc, err := fileConn(c.fd, "client")
	c.fd = -1
	delete(l.clients, c)
	l.open.Add(-1)
	l.p.m.conns.Dec()
	if err != nil {
		l.p.log.Warn("event loop: cannot hand over a connection", "err", err)
		return nil
	}
	return nc
}

// fileConn turns a descriptor into a net.Conn and closes the descriptor
// (the net.Conn holds a duplicate).
func fileConn(fd int, name string) (net.Conn, error) {
	f := os.NewFile(uintptr(fd), name)
	defer f.Close()
	return net.FileConn(f)
}

// replayConn reads pending before the connection's own bytes.
type replayConn struct {
	net.Conn
	pending []byte
}

func (r *replayConn) Read(b []byte) (int, error) {
	if len(r.pending) > 0 {
		n := copy(b, r.pending)
		r.pending = r.pending[n:]
		return n, nil
	}
	return r.Conn.Read(b)
}

func (r *replayConn) CloseWrite() error {
	if cw, ok := r.Conn.(interface{ CloseWrite() error }); ok {
		return cw.CloseWrite()
	}
	return nil
}

// Timeouts, drains and the end.

func (l *loop) scan() {
	draining := l.p.draining.Load()
	if l.cut.Load() {
		for c := range l.clients {
			l.closeClient(c)
		}
		return
	}
	for c := range l.clients {
		switch {
		case c.busy && !c.sentHead && l.now.After(c.deadline):
			s := c.site
			l.p.log.Warn("origin response timeout", "site", s.cfg.Name, "origin", c.x.origin, "timeout", s.cfg.Timeouts.ResponseHeader)
			l.dropUp(c)
			l.respond(c, statusGatewayTimeout, "origin did not answer in time")
		case c.busy:
		case draining && len(c.out) == c.outOff && len(c.in) == 0:
			l.closeClient(c)
		case l.now.Sub(c.lastActive) >= l.clientIdle(c):
			l.closeClient(c)
		}
	}
	for op, st := range l.idle {
		n := 0
		for _, u := range st {
			if op.gone.Load() || l.now.Sub(u.idleSince) >= op.cfg.IdleTimeout {
				op.m.idle.Dec()
				if !op.gone.Load() {
					op.m.expired.Inc()
				}
				l.closeUp(u)
				continue
			}
			st[n] = u
			n++
		}
		if n == 0 {
			delete(l.idle, op)
		} else {
			l.idle[op] = st[:n]
		}
	}
}

func (l *loop) clientIdle(c *lconn) time.Duration {
	if c.site != nil {
		return c.site.cfg.Timeouts.ClientIdle
	}
	return l.p.cfg.ClientIdle
}

func (l *loop) shutdown() {
	for c := range l.clients {
		l.closeClient(c)
	}
	for op, st := range l.idle {
		for _, u := range st {
			op.m.idle.Dec()
			l.closeUp(u)
		}
	}
	l.idle = nil
	l.mu.Lock()
	for _, a := range l.incoming {
		unix.Close(a.fd)
	}
	l.incoming = nil
	unix.Close(l.wakefd)
	l.wakefd = -1
	l.mu.Unlock()
	unix.Close(l.epfd)
}

// toLoop deals an accepted connection to a loop, which takes a duplicate
// of its descriptor (a listener's RawConn cannot accept: Go's listener
// waits for the connection, a few system calls a connection, nothing a
// request); false leaves it to the goroutine engine.
func (p *Proxy) toLoop(c net.Conn, ln *listener) bool {
	fd := dupConn(c)
	if fd < 0 {
		p.log.Warn("event loop cannot take a connection; serving it with a goroutine", "addr", ln.addr)
		return false
	}
	ip := remoteIP(c)
	c.Close()
	p.nextLoop().add(accepted{fd: fd, ip: ip, pinned: p.pinned(ln)})
	return true
}

func (p *Proxy) nextLoop() *loop {
	return p.loops[int(p.loopTurn.Add(1))%len(p.loops)]
}

// handBack returns an idle connection of the goroutine engine to a loop
// (after an exchange the loop handed over), with the bytes read already;
// false leaves it where it is.
func (p *Proxy) handBack(cc *clientConn) bool {
	if len(p.loops) == 0 || cc.scheme != "http" || cc.req.chunked || cc.req.contentLength > loopMaxBody {
		return false
	}
	raw, rest := cc.c, []byte(nil)
	if rc, ok := raw.(*replayConn); ok {
		raw, rest = rc.Conn, rc.pending
	}
	if cc.w.Flush() != nil {
		return false
	}
	fd := dupConn(raw)
	if fd < 0 {
		return false
	}
	buffered, _ := cc.r.Peek(cc.r.Buffered())
	pending := append(append(make([]byte, 0, len(buffered)+len(rest)), buffered...), rest...)
	raw.Close() // the loop holds a duplicate: no FIN
	p.m.handbacks.Inc()
	p.nextLoop().add(accepted{fd: fd, ip: cc.clientIP, pinned: cc.pinned, pending: pending})
	return true
}

// dupConn returns a duplicate of c's descriptor, or -1.
func dupConn(c net.Conn) int {
	sc, ok := c.(syscall.Conn)
	if !ok {
		return -1
	}
	rc, err := sc.SyscallConn()
	if err != nil {
		return -1
	}
	fd := -1
	rc.Control(func(s uintptr) {
		fd, _ = unix.FcntlInt(s, unix.F_DUPFD_CLOEXEC, 0)
	})
	return fd
}
