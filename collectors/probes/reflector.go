package probes

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/sdnoc/sdnoc/internal/waitctx"
)

// unknownTTL goes in Session-Sender TTL when the kernel did not give the
// received TTL (outside Linux): the largest value, which no hop has
// decremented, so it cannot be mistaken for a measured one.
const unknownTTL = 255

// ReflectorDeps are what a Reflector needs from its host.
type ReflectorDeps struct {
	Log *slog.Logger          // nil: discard
	Reg prometheus.Registerer // nil: metrics are created but not exported
}

// Reflector is a stateless STAMP Session-Reflector (RFC 8762 §4.3): it
// answers each test packet at once with a reflected packet of the same
// length, whose Sequence Number is the sender's, and keeps no session.
// Since a reply is never longer than its request, the reflector cannot
// amplify traffic.
type Reflector struct {
	cfg     ReflectorConfig
	log     *slog.Logger
	metrics reflectorMetrics

	mu   sync.Mutex
	conn *net.UDPConn // set by Start, nil after Stop
	wg   sync.WaitGroup
}

// NewReflector checks cfg and wires deps. It opens no socket.
func NewReflector(cfg ReflectorConfig, deps ReflectorDeps) (*Reflector, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	if deps.Log == nil {
		deps.Log = slog.New(slog.DiscardHandler)
	}
	if deps.Reg == nil {
		deps.Reg = prometheus.NewRegistry()
	}
	return &Reflector{cfg: cfg, log: deps.Log, metrics: newReflectorMetrics(deps.Reg)}, nil
}

// Start binds the socket and returns once the reflector is answering, so
// a busy port fails here. ctx bounds the bind only.
func (r *Reflector) Start(ctx context.Context) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.conn != nil {
		return errors.New("reflector already started")
	}
	pc, err := new(net.ListenConfig).ListenPacket(ctx, "udp", r.cfg.Listen)
	if err != nil {
		return fmt.Errorf("listen %s: %w", r.cfg.Listen, err)
	}
	conn := pc.(*net.UDPConn)
	setRecvOptions(conn)
	r.conn = conn
	r.wg.Go(func() { r.serve(conn) })
	r.log.Info("stamp reflector listening", "addr", conn.LocalAddr().String())
	return nil
}

// Stop closes the socket and waits for the reflector to finish, or gives
// up when ctx ends.
func (r *Reflector) Stop(ctx context.Context) error {
	r.mu.Lock()
	conn := r.conn
	r.conn = nil
	r.mu.Unlock()
	if conn == nil {
		return nil
	}
	err := conn.Close()
	if err := waitctx.Wait(ctx, &r.wg); err != nil {
		return fmt.Errorf("stop reflector: %w", err)
	}
	if err != nil {
		return fmt.Errorf("close %s: %w", r.cfg.Listen, err)
	}
	return nil
}

// Addr is the address the reflector answers on, nil when it is not
// running.
func (r *Reflector) Addr() net.Addr {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.conn == nil {
		return nil
	}
	return r.conn.LocalAddr()
}

func (r *Reflector) serve(conn *net.UDPConn) {
	buf := make([]byte, 1<<16) // any UDP payload fits, so no reply is cut short
	oob := make([]byte, oobLen)
	var out []byte
	for {
		n, from, rx, err := readDatagram(conn, buf, oob)
		if errors.Is(err, net.ErrClosed) {
			return
		}
		if err != nil {
			r.log.Debug("stamp reflector read", "err", err)
			time.Sleep(10 * time.Millisecond) // no busy loop if the error persists
			continue
		}
		in, err := ParseSenderPacket(buf[:n])
		if err != nil {
			r.metrics.malformed.Inc()
			continue
		}
		ttl := uint8(unknownTTL)
		if rx.ttl >= 0 && rx.ttl <= 255 {
			ttl = uint8(rx.ttl)
		}
		reply := ReflectorPacket{
			Seq:                 in.Seq, // stateless: RFC 8762 §4.3.1
			ErrorEstimate:       localErrorEstimate,
			ReceiveTimestamp:    NTPTimestamp(rx.at),
			SenderSeq:           in.Seq,
			SenderTimestamp:     in.Timestamp,
			SenderErrorEstimate: in.ErrorEstimate,
			SenderTTL:           ttl,
			Padding:             in.Padding,
		}
		// Stamp last, so that T3-T2 covers all the reflector's own time.
		reply.Timestamp = NTPTimestamp(time.Now())
		out = AppendReflectorPacket(out[:0], reply)
		// Answer from the address asked, not the one the route back
		// would pick: a reflector on a host with many target addresses
		// must reply from each, or senders drop the replies as foreign.
		if _, _, err := conn.WriteMsgUDPAddrPort(out, sourceOOB(rx.dst), from); err != nil {
			r.metrics.sendErrors.Inc()
			r.log.Debug("stamp reflector send", "to", from.String(), "err", err)
			continue
		}
		r.metrics.reflected.Inc()
	}
}
