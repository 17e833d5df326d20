package probes

import (
	"context"
	"errors"
	"log/slog"
	"math/bits"
	"net"
	"net/netip"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// replyBufLen is larger than any reply to our 44-octet probes; a longer
// datagram is cut, which changes nothing for the fields we read.
const replyBufLen = 2048

// link is the Session-Sender of one ISP link: a socket and one session
// per target. Its loop (run) sends, times out and reports; a reader
// goroutine per bound socket matches the replies. mu guards what both use.
type link struct {
	c       *Collector
	cfg     LinkConfig
	log     *slog.Logger
	network string // of the socket: udp, udp4 or udp6
	local   string // host:port the socket binds to

	malformed                   prometheus.Counter
	rttGauge, lossGauge, jitter prometheus.Gauge

	// Owned by the loop.
	bindFailing bool
	rtts        []time.Duration // scratch for the window's percentiles

	mu        sync.Mutex
	conn      *net.UDPConn // nil while unbound
	sessions  []*session
	byAddr    map[netip.AddrPort]*session
	lastReply time.Time // in time, from any target; monotonic
	winStart  time.Time // from Deps.Now
	buf       []byte    // outgoing packet
}

// slotState is where a probe is in its life.
type slotState uint8

const (
	slotFree        slotState = iota // never used
	slotOutstanding                  // sent, waiting for its reply
	slotReceived                     // replied in time
	slotLost                         // timed out
	slotLate                         // timed out, then replied
)

// slot remembers one probe. A session's slots form a ring indexed by
// sequence number, so memory is fixed per target.
type slot struct {
	seq    uint32
	state  slotState
	sentAt time.Time // monotonic
	ts     Timestamp // as sent, to check the echo
}

// session is the STAMP test session with one target.
type session struct {
	target      string
	addr        netip.AddrPort
	next        uint32 // sequence number of the next probe
	ring        []slot // power-of-two length
	outstanding int
	sendFailing bool // for logging the first failure and the recovery only

	win    windowCounts
	jitter jitter

	sent, received, lost, late, sendErrors prometheus.Counter
}

// windowCounts are a target's figures for the current window.
type windowCounts struct {
	sent, sendErrors, received, lost, late int
	rtts                                   []time.Duration
}

func newLink(c *Collector, cfg LinkConfig) *link {
	network, local := bindTarget(cfg.Local)
	m := c.metrics
	l := &link{
		c: c, cfg: cfg, network: network, local: local,
		log:       c.log.With("link", cfg.ID),
		malformed: m.malformed.WithLabelValues(cfg.ID),
		rttGauge:  m.rtt.WithLabelValues(cfg.ID),
		lossGauge: m.loss.WithLabelValues(cfg.ID),
		jitter:    m.jitter.WithLabelValues(cfg.ID),
		byAddr:    make(map[netip.AddrPort]*session),
	}
	// Outcomes are remembered for twice the timeout, so that a late reply
	// is told apart from a duplicate; outstanding probes are fewer still.
	n := 2*int((c.cfg.Timeout+c.cfg.Interval-1)/c.cfg.Interval) + 8
	n = 1 << bits.Len(uint(n-1))
	for _, t := range cfg.Targets {
		addr, _ := parseTarget(t) // checked by Validate
		s := &session{
			target: t, addr: addr, ring: make([]slot, n),
			sent:       m.sent.WithLabelValues(cfg.ID, t),
			received:   m.received.WithLabelValues(cfg.ID, t),
			lost:       m.lost.WithLabelValues(cfg.ID, t),
			late:       m.late.WithLabelValues(cfg.ID, t),
			sendErrors: m.sendErrors.WithLabelValues(cfg.ID, t),
		}
		l.sessions = append(l.sessions, s)
		l.byAddr[addr] = s
	}
	return l
}

func (l *link) start(now, stamp time.Time) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.lastReply = now
	l.winStart = stamp
}

// run sends to the targets in turn, Interval/len(targets) apart, so each
// target gets one probe per Interval and the targets do not fire at once.
// Timeouts are checked at least every Interval and every Window/5.
func (l *link) run(ctx context.Context) {
	cfg := l.c.cfg
	send := time.NewTicker(max(cfg.Interval/time.Duration(len(l.sessions)), time.Microsecond))
	defer send.Stop()
	sweep := time.NewTicker(min(cfg.Interval, cfg.Window/5))
	defer sweep.Stop()
	window := time.NewTicker(cfg.Window)
	defer window.Stop()
	next := 0
	for {
		select {
		case <-ctx.Done():
			return
		case <-send.C:
			l.send(l.sessions[next])
			next = (next + 1) % len(l.sessions)
		case now := <-sweep.C:
			l.sweep(now)
		case <-window.C:
			l.endWindow(ctx)
		}
	}
}

// bind opens the link's socket, unless it is open. Failing is logged once
// until it works again.
func (l *link) bind(ctx context.Context) {
	l.mu.Lock()
	bound := l.conn != nil
	l.mu.Unlock()
	if bound {
		return
	}
	pc, err := new(net.ListenConfig).ListenPacket(ctx, l.network, l.local)
	if err != nil {
		if !l.bindFailing {
			l.bindFailing = true
			l.log.Warn("cannot bind probe socket; link is unknown until it can", "local", l.local, "err", err)
		}
		return
	}
	if l.bindFailing {
		l.bindFailing = false
		l.log.Info("probe socket bound", "local", pc.LocalAddr().String())
	}
	conn := pc.(*net.UDPConn)
	setRecvOptions(conn)
	l.mu.Lock()
	l.conn = conn
	// The time without a socket was not time without replies: count
	// silence from now, or a link whose address just came back would be
	// reported down before its first probe could be answered.
	l.lastReply = time.Now()
	l.mu.Unlock()
	l.c.readers.Go(func() { l.read(conn) })
}

// close closes the socket, which ends its reader.
func (l *link) close() error {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.conn == nil {
		return nil
	}
	err := l.conn.Close()
	l.conn = nil
	return err
}

// send sends the next probe of s. The probe is recorded before it is
// written, under the lock, so a fast reply cannot arrive unannounced.
// A probe that cannot be written is a send error, not a loss, and does
// not use up its sequence number.
func (l *link) send(s *session) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.conn == nil {
		return
	}
	sl := &s.ring[s.next&uint32(len(s.ring)-1)]
	if sl.state == slotOutstanding {
		// The ring is sized so that sweeps free it first; should they
		// not, memory stays bounded and the old probe counts as lost.
		l.resolveLost(s, sl)
	}
	old := *sl
	now := time.Now()
	*sl = slot{seq: s.next, state: slotOutstanding, sentAt: now, ts: NTPTimestamp(now)}
	l.buf = AppendSenderPacket(l.buf[:0], SenderPacket{Seq: s.next, Timestamp: sl.ts, ErrorEstimate: localErrorEstimate})
	if _, err := l.conn.WriteToUDPAddrPort(l.buf, s.addr); err != nil {
		*sl = old
		s.win.sendErrors++
		s.sendErrors.Inc()
		if !s.sendFailing {
			s.sendFailing = true
			l.log.Warn("cannot send probe; link is unknown while this lasts", "target", s.target, "err", err)
		}
		return
	}
	if s.sendFailing {
		s.sendFailing = false
		l.log.Info("probes sent again", "target", s.target)
	}
	s.next++
	s.outstanding++
	s.win.sent++
	s.sent.Inc()
}

// sweep counts as lost the probes that have waited longer than Timeout.
func (l *link) sweep(now time.Time) {
	l.mu.Lock()
	defer l.mu.Unlock()
	for _, s := range l.sessions {
		for i := range s.ring {
			if s.outstanding == 0 {
				break
			}
			if sl := &s.ring[i]; sl.state == slotOutstanding && now.Sub(sl.sentAt) > l.c.cfg.Timeout {
				l.resolveLost(s, sl)
			}
		}
	}
}

func (l *link) resolveLost(s *session, sl *slot) {
	sl.state = slotLost
	s.outstanding--
	s.win.lost++
	s.lost.Inc()
}

// endWindow reports the window that ends now and, if the socket is not
// bound, tries again.
func (l *link) endWindow(ctx context.Context) {
	now := time.Now()
	l.sweep(now)
	smp := l.takeSample(now, l.c.deps.Now())
	l.rttGauge.Set(nanIf(smp.Received == 0, smp.RTTAvg.Seconds()))
	l.lossGauge.Set(nanIf(smp.Received+smp.Lost == 0, smp.LossPct/100))
	l.jitter.Set(smp.Jitter.Seconds())
	select {
	case l.c.samples <- smp:
	case <-ctx.Done():
		return
	}
	l.bind(ctx)
}

// read matches the replies that arrive on conn until it is closed.
func (l *link) read(conn *net.UDPConn) {
	buf := make([]byte, replyBufLen)
	oob := make([]byte, oobLen)
	for {
		n, from, rx, err := readDatagram(conn, buf, oob)
		if errors.Is(err, net.ErrClosed) {
			return
		}
		if err != nil {
			l.log.Debug("probe socket read", "err", err)
			time.Sleep(10 * time.Millisecond) // no busy loop if the error persists
			continue
		}
		l.reply(from, buf[:n], rx.at)
	}
}

// reply matches one datagram to its probe. Replies are matched on the
// source address and the echoed Session-Sender Sequence Number (the
// reflected Sequence Number is the reflector's own when it is stateful,
// RFC 8762 §4.3.1), and the echoed timestamp must be the one sent, so a
// stray reply to an earlier run of the collector does not match.
func (l *link) reply(from netip.AddrPort, b []byte, at time.Time) {
	p, perr := ParseReflectorPacket(b)
	l.mu.Lock()
	defer l.mu.Unlock()
	s := l.byAddr[from]
	if s == nil || perr != nil {
		l.malformed.Inc()
		return
	}
	sl := &s.ring[p.SenderSeq&uint32(len(s.ring)-1)]
	if sl.state == slotFree || sl.seq != p.SenderSeq || sl.ts != p.SenderTimestamp {
		l.malformed.Inc()
		return
	}
	switch sl.state {
	case slotOutstanding:
		if at.Sub(sl.sentAt) > l.c.cfg.Timeout {
			// Not swept yet, but late all the same.
			l.resolveLost(s, sl)
			l.resolveLate(s, sl)
			return
		}
		sl.state = slotReceived
		s.outstanding--
		s.win.received++
		s.received.Inc()
		s.win.rtts = append(s.win.rtts, rtt(sl.sentAt, at, p))
		s.jitter.add(p.ReceiveTimestamp.Time(p.ErrorEstimate).Sub(sl.ts.NTPTime()))
		l.lastReply = at
	case slotLost:
		l.resolveLate(s, sl)
	default: // a duplicate
		l.malformed.Inc()
	}
}

func (l *link) resolveLate(s *session, sl *slot) {
	sl.state = slotLate
	s.win.late++
	s.late.Inc()
}

// rtt is the round-trip time of a probe sent at t1 and answered at t4,
// less the reflector's time between receiving and sending (T3−T2).
// Reflector times that cannot be right (negative, longer than the round
// trip) are ignored rather than trusted.
func rtt(t1, t4 time.Time, p ReflectorPacket) time.Duration {
	raw := t4.Sub(t1)
	held := p.Timestamp.Time(p.ErrorEstimate).Sub(p.ReceiveTimestamp.Time(p.ErrorEstimate))
	if held < 0 || held > raw {
		held = 0
	}
	return max(raw-held, 0)
}
