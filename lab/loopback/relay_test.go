package loopback_test

import (
	"bytes"
	"errors"
	"fmt"
	"math"
	"net"
	"net/netip"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/sdnoc/sdnoc/internal/starttest"
	"github.com/sdnoc/sdnoc/lab/loopback"
)

// echoServer returns every datagram to its sender, after delay, and
// remembers the senders.
type echoServer struct {
	conn  *net.UDPConn
	delay time.Duration

	mu      sync.Mutex
	sources map[netip.AddrPort]int
}

func startEcho(t *testing.T, delay time.Duration) *echoServer {
	t.Helper()
	e := &echoServer{conn: listenLoopback(t), delay: delay, sources: make(map[netip.AddrPort]int)}
	go func() {
		buf := make([]byte, 2048)
		for {
			n, from, err := e.conn.ReadFromUDPAddrPort(buf)
			if err != nil {
				return
			}
			e.mu.Lock()
			e.sources[from]++
			e.mu.Unlock()
			b := bytes.Clone(buf[:n])
			if e.delay == 0 {
				e.conn.WriteToUDPAddrPort(b, from)
				continue
			}
			time.AfterFunc(e.delay, func() { e.conn.WriteToUDPAddrPort(b, from) })
		}
	}()
	return e
}

func (e *echoServer) sourceCount() map[netip.AddrPort]int {
	e.mu.Lock()
	defer e.mu.Unlock()
	out := make(map[netip.AddrPort]int, len(e.sources))
	for k, v := range e.sources {
		out[k] = v
	}
	return out
}

func listenLoopback(t *testing.T) *net.UDPConn {
	t.Helper()
	c, err := net.ListenUDP("udp4", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

func startRelay(t *testing.T, cfg loopback.RelayConfig) *loopback.Relay {
	t.Helper()
	if cfg.Listen == "" {
		cfg.Listen = "127.0.0.1:0"
	}
	r, err := loopback.NewRelay(cfg, nil)
	if err != nil {
		t.Fatal(err)
	}
	starttest.Start(t, r)
	return r
}

// client is a socket sending through the relay.
type client struct {
	t    *testing.T
	conn *net.UDPConn
	to   netip.AddrPort
}

func newClient(t *testing.T, r *loopback.Relay) *client {
	return &client{t: t, conn: listenLoopback(t), to: netip.MustParseAddrPort(r.Addr().String())}
}

func (c *client) send(msg string) {
	c.t.Helper()
	if _, err := c.conn.WriteToUDPAddrPort([]byte(msg), c.to); err != nil {
		c.t.Fatal(err)
	}
}

// recv returns the next datagram, or "" when none comes within wait.
func (c *client) recv(wait time.Duration) string {
	c.t.Helper()
	c.conn.SetReadDeadline(time.Now().Add(wait))
	buf := make([]byte, 2048)
	n, _, err := c.conn.ReadFromUDPAddrPort(buf)
	var ne net.Error
	if errors.As(err, &ne) && ne.Timeout() {
		return ""
	}
	if err != nil {
		c.t.Fatal(err)
	}
	return string(buf[:n])
}

// waitStats polls r's stats until cond holds, or fails the test.
func waitStats(t *testing.T, r *loopback.Relay, what string, cond func(loopback.RelayStats) bool) loopback.RelayStats {
	t.Helper()
	deadline := time.Now().Add(3 * time.Second)
	for {
		s := r.Stats()
		if cond(s) {
			return s
		}
		if time.Now().After(deadline) {
			t.Fatalf("relay stats %+v: still waiting for %s", s, what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// Each client gets its own upstream socket, and only its own replies.
func TestRelayPerClientMapping(t *testing.T) {
	t.Parallel()
	echo := startEcho(t, 0)
	r := startRelay(t, loopback.RelayConfig{Target: echo.conn.LocalAddr().String()})
	a, b := newClient(t, r), newClient(t, r)
	const n = 20
	for i := range n {
		a.send(fmt.Sprintf("a%d", i))
		b.send(fmt.Sprintf("b%d", i))
		if got := a.recv(time.Second); got != fmt.Sprintf("a%d", i) {
			t.Fatalf("client a got %q, want a%d", got, i)
		}
		if got := b.recv(time.Second); got != fmt.Sprintf("b%d", i) {
			t.Fatalf("client b got %q, want b%d", got, i)
		}
	}
	srcs := echo.sourceCount()
	if len(srcs) != 2 {
		t.Fatalf("the target saw sources %v, want 2", srcs)
	}
	for src, count := range srcs {
		if count != n || src == netip.MustParseAddrPort(a.conn.LocalAddr().String()) || src == netip.MustParseAddrPort(b.conn.LocalAddr().String()) {
			t.Errorf("the target saw %d datagrams from %v; want %d from a relay socket", count, src, n)
		}
	}
	// The relay counts a forward datagram after its write returns, which
	// may be after the echo's reply came back: let the counters settle.
	want := loopback.RelayStats{Forward: loopback.RelayCounts{Forwarded: 2 * n}, Reverse: loopback.RelayCounts{Forwarded: 2 * n}, Clients: 2}
	got := r.Stats()
	for deadline := time.Now().Add(time.Second); got != want && time.Now().Before(deadline); got = r.Stats() {
		time.Sleep(time.Millisecond)
	}
	if got != want {
		t.Errorf("Stats() = %+v, want %+v", got, want)
	}
}

// SetLoss drops the share asked for, forward only, the same way for the
// same seed.
func TestRelayLoss(t *testing.T) {
	t.Parallel()
	echo := startEcho(t, 0)
	const n, batch = 1000, 100
	run := func(seed int64) loopback.RelayStats {
		r := startRelay(t, loopback.RelayConfig{Target: echo.conn.LocalAddr().String(), Seed: seed})
		r.SetLoss(40)
		c := newClient(t, r)
		for i := range n {
			c.send("x")
			if (i+1)%batch == 0 { // let the relay keep up, so no socket buffer drops
				waitStats(t, r, fmt.Sprintf("%d datagrams counted", i+1), func(s loopback.RelayStats) bool {
					return s.Forward.Forwarded+s.Forward.Dropped == uint64(i+1)
				})
			}
		}
		return waitStats(t, r, "every echo returned", func(s loopback.RelayStats) bool {
			return s.Reverse.Forwarded == s.Forward.Forwarded
		})
	}
	s := run(7)
	// Binomial: σ = sqrt(p(1−p)/n); 4σ is about 6.2%.
	got := float64(s.Forward.Dropped) / n
	if sigma := math.Sqrt(0.4 * 0.6 / n); math.Abs(got-0.4) > 4*sigma {
		t.Errorf("dropped %.1f%%, want 40%% ± %.1f%%", 100*got, 400*sigma)
	}
	if s.Reverse.Dropped != 0 {
		t.Errorf("%d replies dropped; loss applies forward only", s.Reverse.Dropped)
	}
	if again := run(7); again.Forward.Dropped != s.Forward.Dropped {
		t.Errorf("seed 7 dropped %d, then %d; want the same", s.Forward.Dropped, again.Forward.Dropped)
	}
}

func TestRelayBlackhole(t *testing.T) {
	t.Parallel()
	echo := startEcho(t, 100*time.Millisecond)
	r := startRelay(t, loopback.RelayConfig{Target: echo.conn.LocalAddr().String()})
	c := newClient(t, r)

	// A reply on its way when the hole opens is dropped too.
	c.send("before")
	waitStats(t, r, "the request forwarded", func(s loopback.RelayStats) bool { return s.Forward.Forwarded == 1 })
	r.SetBlackhole(true)
	for range 10 {
		c.send("during")
	}
	if got := c.recv(300 * time.Millisecond); got != "" {
		t.Errorf("got %q through a blackhole", got)
	}
	want := loopback.RelayStats{
		Forward: loopback.RelayCounts{Forwarded: 1, Dropped: 10},
		Reverse: loopback.RelayCounts{Dropped: 1},
		Clients: 1,
	}
	if got := waitStats(t, r, "the reply dropped", func(s loopback.RelayStats) bool { return s.Reverse.Dropped > 0 }); got != want {
		t.Errorf("Stats() = %+v, want %+v", got, want)
	}

	r.SetBlackhole(false)
	c.send("after")
	if got := c.recv(time.Second); got != "after" {
		t.Errorf("got %q after the blackhole closed, want \"after\"", got)
	}
}

func TestRelayDelay(t *testing.T) {
	t.Parallel()
	echo := startEcho(t, 0)
	r := startRelay(t, loopback.RelayConfig{Target: echo.conn.LocalAddr().String()})
	c := newClient(t, r)
	r.SetDelay(50 * time.Millisecond)
	var rtts []time.Duration
	for i := range 7 {
		start := time.Now()
		c.send(fmt.Sprint(i))
		got := c.recv(time.Second)
		rtt := time.Since(start)
		if got != fmt.Sprint(i) || rtt < 50*time.Millisecond {
			t.Errorf("got %q after %v; want %q after 50ms or more", got, rtt, fmt.Sprint(i))
		}
		rtts = append(rtts, rtt)
	}
	// A busy machine may hold one up; the median shows the delay itself.
	slices.Sort(rtts)
	if m := rtts[len(rtts)/2]; m > 70*time.Millisecond {
		t.Errorf("median round trip %v (of %v); want 50ms and a little", m, rtts)
	}

	// Lowering the delay does not let new datagrams overtake held ones.
	r.SetDelay(100 * time.Millisecond)
	for i := range 5 {
		c.send(fmt.Sprint(i))
	}
	r.SetDelay(0)
	for i := 5; i < 10; i++ {
		c.send(fmt.Sprint(i))
	}
	var got []string
	for range 10 {
		got = append(got, c.recv(time.Second))
	}
	if want := "0 1 2 3 4 5 6 7 8 9"; strings.Join(got, " ") != want {
		t.Errorf("received %q, want %q in order", got, want)
	}
}

func TestRelayIdleExpiry(t *testing.T) {
	t.Parallel()
	echo := startEcho(t, 0)
	r := startRelay(t, loopback.RelayConfig{Target: echo.conn.LocalAddr().String(), Idle: 50 * time.Millisecond})
	c := newClient(t, r)
	c.send("one")
	if got := c.recv(time.Second); got != "one" {
		t.Fatalf("got %q, want \"one\"", got)
	}
	waitStats(t, r, "the mapping to expire", func(s loopback.RelayStats) bool { return s.Clients == 0 })
	c.send("two")
	if got := c.recv(time.Second); got != "two" {
		t.Errorf("got %q after expiry, want \"two\" through a new mapping", got)
	}
	if srcs := echo.sourceCount(); len(srcs) != 2 {
		t.Errorf("the target saw sources %v, want 2 (one per mapping)", srcs)
	}
}

func TestNewRelay(t *testing.T) {
	t.Parallel()
	_, err := loopback.NewRelay(loopback.RelayConfig{Listen: "nowhere", Target: "localhost:862", Idle: -1}, nil)
	if err == nil {
		t.Fatal("NewRelay accepted a bad config")
	}
	for _, w := range []string{"listen:", "target:", "idle:"} {
		if !strings.Contains(err.Error(), w) {
			t.Errorf("NewRelay() = %q; want it to name %q", err, w)
		}
	}
	r, err := loopback.NewRelay(loopback.RelayConfig{Listen: "127.0.0.1:0", Target: "127.0.0.1:862"}, nil)
	if err != nil {
		t.Fatal(err)
	}
	if r.Addr() != nil {
		t.Errorf("Addr() = %v before Start, want nil", r.Addr())
	}
	if err := r.Stop(t.Context()); err != nil {
		t.Errorf("Stop before Start: %v", err)
	}
}
